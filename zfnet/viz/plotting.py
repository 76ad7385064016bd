"""Matplotlib without global state: figures drawn on the Agg canvas and saved atomically.

    fig = new_figure(12, 6)                  # a matplotlib Figure on an Agg canvas (no pyplot)
    ax = fig.add_subplot(1, 2, 1)
    save_figure(fig, out / "curves.png")     # PNG via zfnet.atomic: all or nothing

No pyplot: a figure made here never touches a GUI backend or pyplot's list of open figures,
so the analyses run headless and in threads.
"""
from zfnet.atomic import atomic_write


def new_figure(width_in, height_in, dpi=100):
    """A Figure of width x height inches on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi=None):
    """Write `fig` as a PNG at `path`, atomically; returns the path."""
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi or fig.dpi)
    return path


def class_colours(n):
    """n distinct RGB colours (tab10, then tab20's light shades) for class maps and legends."""
    from matplotlib import colormaps
    base = list(colormaps["tab10"].colors) + list(colormaps["tab20"].colors[1::2])
    return [base[i % len(base)] for i in range(n)]
