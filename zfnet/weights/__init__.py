"""Pretrained weights: the converted-weights file format, the model cards, and name resolution.

    from zfnet.weights import load_model, class_names
    net = load_model()                       # DEFAULT_MODEL ("squeezenet1_0"), ready to run
    labels = class_names(net)                # 1000 ImageNet labels, e.g. labels[285] == "Egyptian cat"

- format.py   ``save_net`` / ``load_net``: safetensors tensors + architecture + metadata
- registry.py model cards (``weights/*.json`` in the repository, ``zfnet.model_cards`` installed)
- download.py checksums and verified, atomic downloads
- resolve.py  ``load_model`` / ``fetch`` / ``convert_file``: cache, $ZFNET_WEIGHTS, download
- classes.py  ``class_names``
"""
from zfnet.weights.classes import class_names, load_class_list
from zfnet.weights.format import load_net, read_meta, save_net
from zfnet.weights.registry import ModelCard, card_for_sha256, get_card, list_cards
from zfnet.weights.resolve import (DEFAULT_MODEL, cache_dir, complete_meta, convert_file, converted_path,
                                   fetch, load_model, model_status, weights_root)

__all__ = [
    "DEFAULT_MODEL", "load_model", "fetch", "convert_file", "complete_meta", "cache_dir", "weights_root",
    "converted_path", "model_status", "save_net", "load_net", "read_meta", "class_names", "load_class_list", "ModelCard",
    "get_card", "list_cards", "card_for_sha256",
]
