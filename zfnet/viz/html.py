"""Self-contained HTML pages for the experiments' figures (no network fetches, ever).

A page is a title, a "what was computed" table, and a sequence of headings, paragraphs, figures
and tables. Figures point at PNGs *beside* the page (relative links, so the folder can be moved
or zipped) or are embedded as ``data:`` URIs (``embed=True``: one file, nothing beside it).
A figure can carry clickable regions: rectangles in the image's own pixel coordinates, laid
over the image as absolutely positioned links (percentages, so they follow any display scale).

    page = Page("Top-9 of fire9/concat", out_dir)
    page.facts({"model": "squeezenet1_0", "layer": "fire9/concat", "k": 9})
    page.figure("maps/map_0007.png", "map 7: ...", links=[Link((0, 64, 0, 64), "inputs/0003.png", "image 3, (4, 5)")])
    page.write(out_dir / "index.html")        # atomic

All text is escaped; no script, no stylesheet and no font is loaded from anywhere.
"""
import base64
import html
import os
from dataclasses import dataclass
from pathlib import Path

from zfnet.atomic import write_text
from zfnet.errors import ZFNetError

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em;
       color: #222; background: #fff; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
table.facts th { width: 14em; }
figure { margin: 1em 0 1.6em 0; }
.fig { position: relative; display: inline-block; line-height: 0; max-width: 100%; }
.fig img { max-width: 100%; height: auto; image-rendering: pixelated; }
.fig a { position: absolute; display: block; }
.fig a:hover { outline: 2px solid #d33; background: rgba(255, 255, 255, 0.12); }
figcaption { font-size: 0.9em; color: #333; max-width: 60em; margin-top: 0.4em; line-height: 1.35; }
.note { color: #555; font-size: 0.9em; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


@dataclass(frozen=True)
class Link:
    """A clickable rectangle on a figure: box (y0, y1, x0, x1) in image pixels (half-open)."""
    box: tuple
    href: str
    title: str = ""


@dataclass(frozen=True)
class Cell:
    """A table cell with a link (plain strings and numbers are cells without one)."""
    text: str
    href: str = ""
    title: str = ""


def _esc(text):
    return html.escape(str(text), quote=True)


def _png_size(path):
    """(height, width) of an image file, reading only its header."""
    from PIL import Image
    with Image.open(path) as im:
        return im.height, im.width


def _mime(path):
    ext = Path(path).suffix.lower()
    return {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
            ".gif": "image/gif", ".webp": "image/webp", ".svg": "image/svg+xml"}.get(ext, "application/octet-stream")


def data_uri(path):
    """The file at `path` as a ``data:`` URI (for pages that must be a single file)."""
    data = Path(path).read_bytes()
    return f"data:{_mime(path)};base64,{base64.b64encode(data).decode('ascii')}"


class Page:
    """An HTML page under construction; ``write`` renders it atomically.

    out_dir: the folder the page will be written to. Image paths may be absolute or relative to
    it, and must lie inside it unless ``embed=True`` (a page must not reach outside its folder:
    browsers refuse ``file://`` links out of it in some setups, and the folder must stay movable).
    """

    def __init__(self, title, out_dir, embed=False):
        self.title = str(title)
        self.out_dir = Path(out_dir).resolve()
        self.embed = bool(embed)
        self._body = []

    # -- sources -----------------------------------------------------------------------------
    def _abs(self, path):
        p = Path(path)
        return p if p.is_absolute() else self.out_dir / p

    def src(self, path):
        """The value for an image's ``src``: a relative link, or a data: URI if embedding."""
        p = self._abs(path)
        if not p.is_file():
            raise ZFNetError(f"page {self.title!r}: image {p} does not exist (write images before the page)")
        if self.embed:
            return data_uri(p)
        rel = os.path.relpath(p.resolve(), self.out_dir)
        if rel.startswith(".."):
            raise ZFNetError(
                f"page {self.title!r}: {p} is outside the page's folder {self.out_dir}; write it "
                f"beside the page or build the page with embed=True"
            )
        return Path(rel).as_posix()

    def href(self, target):
        """A link target: '#anchor' as is, else a relative link to a file in the page's folder.

        Links are never embedded, even with embed=True (a full image behind every cell would
        multiply the page's size): an embedded page shows all its figures on its own, and its
        links work while the files stay beside it.
        """
        if target.startswith("#"):
            return target
        p = self._abs(target)
        if not p.is_file():
            raise ZFNetError(f"page {self.title!r}: link target {p} does not exist")
        rel = os.path.relpath(p.resolve(), self.out_dir)
        if rel.startswith(".."):
            raise ZFNetError(f"page {self.title!r}: link target {p} is outside the page's folder {self.out_dir}")
        return Path(rel).as_posix()

    # -- content -----------------------------------------------------------------------------
    def heading(self, text, level=2, anchor=None):
        ident = f' id="{_esc(anchor)}"' if anchor else ""
        self._body.append(f"<h{level}{ident}>{_esc(text)}</h{level}>")

    def paragraph(self, text, cls=None):
        c = f' class="{_esc(cls)}"' if cls else ""
        self._body.append(f"<p{c}>{_esc(text)}</p>")

    def facts(self, items, caption=None):
        """A two-column table of what was computed: {"model": ..., "layer": ..., ...}."""
        rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in items.items())
        cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
        self._body.append(f'<table class="facts">{cap}{rows}</table>')

    def table(self, headers, rows, caption=None):
        """headers: list of str; rows: lists of str/number/Cell."""
        def cell(v):
            if isinstance(v, Cell):
                t = f' title="{_esc(v.title)}"' if v.title else ""
                return f'<td><a href="{_esc(self.href(v.href))}"{t}>{_esc(v.text)}</a></td>' if v.href \
                    else f"<td{t}>{_esc(v.text)}</td>"
            return f"<td>{_esc(v)}</td>"
        head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows)
        cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
        self._body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, image, caption, links=(), alt=None, anchor=None, image_hw=None):
        """An image with a caption and clickable regions (``Link``s in the image's pixels)."""
        p = self._abs(image)
        src = self.src(p)
        h, w = image_hw or _png_size(p)
        parts = [f'<img src="{_esc(src)}" width="{w}" height="{h}" alt="{_esc(alt or caption)}">']
        for link in links:
            y0, y1, x0, x1 = link.box
            style = (f"left:{100 * x0 / w:.4f}%;top:{100 * y0 / h:.4f}%;"
                     f"width:{100 * (x1 - x0) / w:.4f}%;height:{100 * (y1 - y0) / h:.4f}%")
            title = f' title="{_esc(link.title)}"' if link.title else ""
            aria = f' aria-label="{_esc(link.title)}"' if link.title else ""
            parts.append(f'<a href="{_esc(self.href(link.href))}" style="{style}"{title}{aria}></a>')
        ident = f' id="{_esc(anchor)}"' if anchor else ""
        self._body.append(
            f'<figure{ident}><div class="fig">{"".join(parts)}</div>'
            f"<figcaption>{_esc(caption)}</figcaption></figure>"
        )

    def raw(self, html_text):
        """Trusted markup built by the caller (already escaped)."""
        self._body.append(str(html_text))

    # -- output ------------------------------------------------------------------------------
    def render(self):
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            # Forbid every fetch that is not from the page's own folder or a data: URI.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "img-src 'self' data: file:; style-src 'unsafe-inline'\">"
            f"<title>{_esc(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
            f"<h1>{_esc(self.title)}</h1>\n" + "\n".join(self._body) + "\n</body></html>\n"
        )

    def write(self, path=None):
        """Write the page (default ``out_dir/index.html``) atomically; returns its path."""
        path = Path(path) if path is not None else self.out_dir / "index.html"
        if path.resolve().parent != self.out_dir:
            raise ZFNetError(f"page {self.title!r} was built for {self.out_dir}, not {path.parent}")
        write_text(path, self.render())
        return path
