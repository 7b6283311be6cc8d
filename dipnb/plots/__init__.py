"""Figures for the book. Every function draws on a Matplotlib ``ax`` it is given (or a new one),
labels its axes with units, and returns the artist or axes; none calls ``plt.show``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from .. import spectral

__all__ = [
    "use_book_style",
    "PALETTE",
    "show_image",
    "show_spectrum",
    "plot_curve",
    "plot_curves",
    "image_grid",
    "animate_frames",
    "figure_to_png",
    "mark_iteration",
    "num",
]

# Colour-blind-safe (Okabe-Ito)
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def use_book_style() -> None:
    """Set the book's Matplotlib defaults (sizes, fonts, colours, crisp PNG output)."""
    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 3.6),
            "figure.dpi": 100,
            "savefig.dpi": 120,
            "savefig.bbox": "tight",
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.25,
            "axes.prop_cycle": mpl.cycler(color=PALETTE),
            "legend.frameon": False,
            "image.cmap": "gray",
            "animation.embed_limit": 40.0,
            # JPEG frames keep an animation embedded in a page several times smaller than PNG.
            "animation.frame_format": "jpeg",
        }
    )
    try:  # crisp inline figures in notebooks
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except Exception:  # outside IPython
        pass


def _ax(ax):
    return ax if ax is not None else plt.subplots()[1]


def _label_map(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    """Axis labels and title of a map drawn with ``imshow`` (no grid over the pixels)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(False)
    if title:
        ax.set_title(title)


def _to_hwc(img) -> np.ndarray:
    a = np.asarray(img, dtype=np.float32)
    while a.ndim > 3:
        a = a[0]
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    return np.clip(a, 0, 1)


def show_image(img, ax=None, title: str | None = None):
    """Show a ``(C, H, W)`` image in [0, 1] without axes ticks. Returns the AxesImage."""
    ax = _ax(ax)
    a = _to_hwc(img)
    im = ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title)
    return im


def show_spectrum(img, ax=None, title: str | None = None, vmin: float = -8.0, vmax: float = 2.0):
    """Show the log10 power spectrum of an image, DC at the centre, axes in cycles per pixel."""
    ax = _ax(ax)
    p = spectral.power_spectrum_2d(img)
    im = ax.imshow(
        np.log10(p + 1e-12), extent=(-0.5, 0.5, 0.5, -0.5), cmap="magma", vmin=vmin, vmax=vmax
    )
    _label_map(ax, "horizontal frequency (cycles/pixel)", "vertical frequency (cycles/pixel)", title)
    return im


def plot_curve(
    x, y, ax=None, *, label: str | None = None, xlabel: str = "iteration", ylabel: str = "", logy: bool = False, **kw
):
    """One line plot with labelled axes. Returns the axes."""
    ax = _ax(ax)
    ax.plot(x, y, label=label, **kw)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if label:
        ax.legend()
    return ax


def plot_curves(x, ys: dict, ax=None, *, xlabel: str = "iteration", ylabel: str = "", logy: bool = False):
    """Several labelled lines over the same x. ``ys`` maps label -> values. Returns the axes."""
    ax = _ax(ax)
    for label, y in ys.items():
        ax.plot(x, y, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    return ax


def mark_iteration(ax, it: float, label: str | None = None, color: str = "0.3"):
    """A dashed vertical line at an iteration, optionally labelled at the top."""
    ax.axvline(it, color=color, ls="--", lw=1)
    if label:
        ax.annotate(label, (it, 1.0), xycoords=("data", "axes fraction"), ha="left", va="top",
                    fontsize=8, xytext=(3, -3), textcoords="offset points")


def image_grid(images: Sequence, titles: Sequence[str] | None = None, ncols: int | None = None, scale: float = 2.2):
    """A row (or grid) of images with titles. Returns the figure."""
    n = len(images)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            show_image(images[i], ax, titles[i] if titles else None)
        else:
            ax.axis("off")
    fig.tight_layout()
    return fig


def animate_frames(frames: Sequence, titles: Sequence[str], *, spectra: bool = True, interval: int = 200):
    """An animation of output frames (and their power spectra) that plays in a static page.

    Args:
        frames: ``(C, H, W)`` images in time order.
        titles: one caption per frame (e.g. ``"iteration 120"``).
        spectra: show each frame's log power spectrum beside it.

    Returns:
        An ``IPython.display.HTML`` holding a self-contained JavaScript player.
    """
    from IPython.display import HTML
    from matplotlib.animation import FuncAnimation

    ncols = 2 if spectra else 1
    fig, axes = plt.subplots(1, ncols, figsize=(3.2 * ncols, 3.4), squeeze=False)
    im = show_image(frames[0], axes[0, 0], titles[0])
    sp = show_spectrum(frames[0], axes[0, 1], "power spectrum (log10)") if spectra else None
    if spectra:
        axes[0, 1].set_xlabel("cycles/pixel")
        axes[0, 1].set_ylabel("cycles/pixel")
    fig.tight_layout()

    def update(i):
        im.set_data(_to_hwc(frames[i]))
        axes[0, 0].set_title(titles[i])
        if sp is not None:
            sp.set_data(np.log10(spectral.power_spectrum_2d(frames[i]) + 1e-12))
        return (im,) if sp is None else (im, sp)

    anim = FuncAnimation(fig, update, frames=len(frames), interval=interval, blit=False)
    html = offline_player(anim.to_jshtml(default_mode="loop"))
    plt.close(fig)
    return HTML(html)


# Matplotlib's JavaScript player draws its buttons with Font Awesome icons from a CDN; the book
# makes no request outside its own site, so the icons become plain Unicode symbols.
_PLAYER_ICONS = {
    "minus": "\u2212", "plus": "+", "fast-backward": "\u23ee", "step-backward": "\u25c1",
    "play fa-flip-horizontal": "\u25c0", "pause": "\u23f8", "play": "\u25b6", "step-forward": "\u25b7",
    "fast-forward": "\u23ed",
}


def offline_player(html: str) -> str:
    """Matplotlib's ``to_jshtml`` player with its CDN stylesheet removed and its icons as text."""
    import re

    html = re.sub(r"<link[^>]*font-awesome[^>]*>", "", html)
    for name, glyph in _PLAYER_ICONS.items():
        html = html.replace(f'<i class="fa fa-{name}"></i>', f'<span aria-hidden="true">{glyph}</span>')
    if "fa fa-" in html or "https://" in html:
        raise RuntimeError("the animation player still refers to an icon font or a remote resource")
    return html


def figure_to_png(fig, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes (and close it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def num(x, spec: str = ".2f") -> str:
    """A measured number for a printed line: ``format(x, spec)``, or ``"n/a"`` for None or NaN.

    None and NaN are what the experiments return for a point that was never reached: a run that
    never converged, a ratio of two such points, a correlation over nothing (as in a smoke run,
    which stops after a handful of steps). ``inf`` is printed as it is.
    """
    if x is None:
        return "n/a"
    x = float(x)
    return "n/a" if x != x else format(x, spec)


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


_CHAPTER_MODULES = ("gp_prior", "trajectories", "denoising", "decoupling", "upsampling", "kernel_view", "stopping")


def __getattr__(name: str):
    """Import a chapter's plot module on first access (``dipnb.plots.stopping``)."""
    if name in _CHAPTER_MODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
