"""Regenerate the README figures of the paper's analyses from the real SqueezeNet and the shared photos.

    ZFNET_WEIGHTS=/path/to/shared/data/weights python docs/figures/make_analyses.py [--images DIR]

writes docs/figures/occlusion.png, invariance.png, correspondence.png and evolution.png, each made
by the ``zfnet`` command a user would run (in-process), so a figure here is exactly what the
command gives. Photographs: ``--images`` (default ``$ZFNET_TEST_DATA/images``, else
``../shared/data/images`` beside the checkout). Each command's running time is printed.

- occlusion:      skimage_chelsea.png (a cat), default layer and class, square 48 px, stride 8 px.
- invariance:     four photographs, the paper's sweeps.
- correspondence: four animal faces (two dogs, a cat, a raccoon), each cut out of its photograph
                  around the face (see FACES), with boxes on the eyes and the nose chosen by eye,
                  and 10 random-box trials.
- evolution:      real training checkpoints are not available, so the "checkpoints" here are
                  interpolations w_t = (1 - t) w_0 + t w_trained between a random initialisation
                  w_0 (He-normal, seed 0) and the trained weights, at t = 0, 0.25, 0.5, 0.75, 1.
                  They show how the strongest projections sharpen as the weights approach the
                  trained ones; they are not snapshots of training.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# Face crops (x0, y0, x1, y1) of the shared photos, and the parts inside them, in original pixels.
FACES = {
    "darknet_dog.jpg": {"crop": (215, 215, 335, 335),
                        "left eye": (253, 245, 271, 263), "right eye": (281, 234, 299, 252), "nose": (278, 268, 302, 292)},
    "opencv_chicky_512.png": {"crop": (96, 16, 416, 336),
                              "left eye": (178, 108, 222, 152), "right eye": (310, 138, 354, 182),
                              "nose": (236, 150, 280, 194)},
    "skimage_chelsea.png": {"crop": (60, 0, 420, 300),
                            "left eye": (140, 85, 200, 145), "right eye": (295, 105, 350, 160),
                            "nose": (240, 220, 295, 275)},
    "scipy_face.jpg": {"crop": (420, 130, 860, 570),
                       "left eye": (545, 275, 610, 340), "right eye": (688, 300, 752, 364),
                       "nose": (585, 415, 665, 495)},
}
PARTS = ("left eye", "right eye", "nose")   # "left"/"right" as seen in the image


def zfnet(*argv):
    """Run one ``zfnet`` command in-process; stop on failure. Returns seconds taken."""
    from zfnet.cli import main
    t = time.perf_counter()
    rc = main([str(a) for a in argv])
    if rc:
        sys.exit(f"zfnet {argv[0]} failed with exit status {rc}")
    return time.perf_counter() - t


def publish(src, name):
    from zfnet.atomic import write_bytes
    write_bytes(HERE / name, Path(src).read_bytes())
    print(f"wrote {HERE / name}")


def face_crops(images, folder):
    """Cut the faces out of the photos; boxes shifted into the crops -> (paths, {part: boxes})."""
    from zfnet.atomic import save_png
    from zfnet.image import load_image
    paths, parts = [], {p: [] for p in PARTS}
    for name, spec in FACES.items():
        x0, y0, x1, y1 = spec["crop"]
        path = folder / (Path(name).stem + "_face.png")
        save_png(path, np.ascontiguousarray(load_image(images / name)[y0:y1, x0:x1]))
        paths.append(path)
        for p in PARTS:
            a, b, c, d = spec[p]
            parts[p].append([a - x0, b - y0, c - x0, d - y0])
    return paths, parts


def interpolated_checkpoints(folder, fractions=(0.0, 0.25, 0.5, 0.75, 1.0)):
    """w_t = (1 - t) w_0 + t w_trained, saved as converted files named by t."""
    from zfnet.net import Net
    from zfnet.weights import load_model, save_net
    trained = load_model()
    w0 = Net.random(trained.arch, seed=0)
    paths = []
    for t in fractions:
        params = {k: ((1 - t) * w0.params[k] + t * v).astype(np.float32) for k, v in trained.params.items()}
        paths.append(save_net(Net(trained.arch, params, dict(trained.meta)), folder / f"t={t:.2f}.safetensors"))
    return paths


def main():
    default = Path(os.environ.get("ZFNET_TEST_DATA", REPO.parent / "shared" / "data")) / "images"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=default, help=f"shared photographs (default {default})")
    ap.add_argument("--only", nargs="*", choices=["occlusion", "invariance", "correspondence", "evolution"])
    args = ap.parse_args()
    if not os.environ.get("ZFNET_WEIGHTS"):
        sys.exit("set ZFNET_WEIGHTS to the folder holding squeezenet1_0/ (e.g. ../shared/data/weights)")
    images = args.images
    todo = set(args.only or ["occlusion", "invariance", "correspondence", "evolution"])
    times = {}
    with tempfile.TemporaryDirectory(prefix="zfnet-figures-") as tmp:
        tmp = Path(tmp)
        if "occlusion" in todo:
            times["occlusion"] = zfnet("occlusion", images / "skimage_chelsea.png", "--size", 48, "--stride", 8,
                                       "--out", tmp / "occ")
            publish(tmp / "occ" / "occlusion.png", "occlusion.png")
        if "invariance" in todo:
            times["invariance"] = zfnet("invariance", *[images / n for n in ("skimage_chelsea.png", "opencv_chicky_512.png",
                                                                             "skimage_coffee.png", "darknet_kite.jpg")],
                                        "--out", tmp / "inv")
            publish(tmp / "inv" / "invariance.png", "invariance.png")
        if "correspondence" in todo:
            paths, parts = face_crops(images, tmp)
            (tmp / "parts.json").write_text(json.dumps(parts))
            times["correspondence"] = zfnet("correspondence", *paths, "--boxes", tmp / "parts.json", "--random", 10,
                                            "--out", tmp / "corr")
            publish(tmp / "corr" / "correspondence.png", "correspondence.png")
        if "evolution" in todo:
            ckpts = interpolated_checkpoints(tmp)
            times["evolution"] = zfnet("evolution", *ckpts, "--images", images, "--max-images", 12,
                                       "--layer", "fire5/concat", "--count", 8, "--out", tmp / "evo")
            publish(tmp / "evo" / "evolution.png", "evolution.png")
    for k, v in times.items():
        print(f"{k}: {v:.1f} s")


if __name__ == "__main__":
    main()
