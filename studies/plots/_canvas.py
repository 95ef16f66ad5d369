"""The figure, the lock and the two outputs (inline SVG for the pages, PNG for the report) every plot shares.

matplotlib is imported inside the functions: it is slow to import and most processes that import
:mod:`studies` (the API, the CLI) never draw.
"""

from __future__ import annotations

import contextlib
import html
import io
import re
import textwrap
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Salt of matplotlib's SVG ids (clip paths, glyphs): fixed, so two renders of the same data are byte-identical.
SVG_HASH_SALT = "mixup-studies"
PNG_DPI = 150
TITLE_SIZE = 13.0
SUBTITLE_SIZE = 10.0
# Glyph paths, not <text>: the page then shows exactly the layout matplotlib measured, whatever fonts the
# browser has (a wider fallback font could push a title past the edge); the glyphs are defined once in
# <defs> and reused, so the SVG grows little. The title is also in the SVG's <title> for screen readers.
_RC: Any = {"svg.hashsalt": SVG_HASH_SALT, "svg.fonttype": "path", "font.size": 10.0, "axes.titlesize": 11.0}

_lock = threading.RLock()  # matplotlib's font cache and rcParams are shared: one figure is drawn at a time
_warm_up: threading.Thread | None = None


def warm_up_plotting() -> None:
    """Import matplotlib and draw a throwaway figure on a background thread (once per process).

    The first plot a process draws pays for importing ``matplotlib.figure`` and loading fonts: 0.5 s of the
    0.6 s that the first PNG took on the 2-core dev box, where later ones take 0.13 s. A study driver calls
    this once its trials train, so that happens while they run, not after the last one.
    """
    global _warm_up
    if _warm_up is not None:
        return

    def draw() -> None:
        with _lock:
            fig = new_figure(1.0, 1.0)
            fig.subplots().set_title("α")
            fig.savefig(io.BytesIO(), format="png", dpi=10)

    _warm_up = threading.Thread(target=draw, name="plot-warm-up", daemon=True)
    _warm_up.start()


@contextlib.contextmanager
def drawing() -> Iterator[None]:
    """Hold the drawing lock, with the plots' rcParams, for building and saving one figure."""
    if _warm_up is not None and _warm_up is not threading.current_thread():
        _warm_up.join()
    import matplotlib

    with _lock, matplotlib.rc_context(_RC):
        yield


def new_figure(width_in: float, height_in: float) -> Figure:
    """A bare Figure on its own Agg canvas, with constrained layout (titles and legends get their room).

    No pyplot: its global figure registry and backend switch are not for a server (``matplotlib.use`` would
    also close the figures of a notebook that imported us).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def wrap(text: str, width_in: float, size_pt: float) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``size_pt`` (a glyph is ~0.6 em wide at most)."""
    chars = max(20, int(width_in * 72 / (size_pt * 0.6)) - 2)
    return "\n".join(textwrap.wrap(text, chars, break_long_words=True)) or text


def set_titles(fig: Figure, title: str, subtitle: str | None = None) -> None:
    """A wrapped bold title above the panels and, for the long explanations, a smaller caption under them."""
    width = fig.get_figwidth() * 0.96
    fig.suptitle(wrap(title, width, TITLE_SIZE), fontsize=TITLE_SIZE, fontweight="bold")
    if subtitle:
        # A caption under the panels (supxlabel: constrained layout keeps room for it, as for the title).
        fig.supxlabel(wrap(subtitle, width, SUBTITLE_SIZE), fontsize=SUBTITLE_SIZE, color="0.3")


_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def series_gid(label: str, prefix: str = "series") -> str:
    """The SVG id of a series: ``series-`` and the label with every run of other characters as one ``_``.

    ``series_gid("layer=input, alpha=0.2") == "series-layer_input_alpha_0.2"``. Browser tests count a plot's
    series as its elements whose id starts with ``series-``.
    """
    return f"{prefix}-{_SLUG.sub('_', label).strip('_') or '_'}"


class GidNamer:
    """Unique ids for one figure: a label that slugs to an id already given gets ``-2``, ``-3``, ..."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, label: str, prefix: str = "series") -> str:
        gid = series_gid(label, prefix)
        count = self._seen.get(gid, 0) + 1
        self._seen[gid] = count
        return gid if count == 1 else f"{gid}-{count}"


_PROLOG = re.compile(r"\A\s*<\?xml[^>]*\?>\s*(<!DOCTYPE[^>]*>\s*)?")
_ROOT = re.compile(r"<svg\b[^>]*>")
_SIZE = re.compile(r'\s(width|height)="[^"]*"')
_ROOT_ID = re.compile(r'\sid="[^"]*"')


def to_svg(fig: Figure, title: str, plot_id: str = "plot") -> str:
    """The figure as an ``<svg>`` element to put inline in HTML: no XML prolog or DOCTYPE, a viewBox,
    ``width="100%"`` and no fixed height (it scales with its container, keeping its aspect), ``role="img"``,
    ``id=plot_id`` (a page's plots' series ids may repeat: select them under it, ``#plot-alpha [id^=series-]``)
    and ``title`` as its ``<title>``. Deterministic: same figure, same bytes. Call inside :func:`drawing`.
    """
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Title": title})
    text = _PROLOG.sub("", buffer.getvalue())
    root = _ROOT.search(text)
    assert root is not None and "viewBox" in root.group(0), "matplotlib writes one <svg> root with a viewBox"
    tag = _ROOT_ID.sub("", _SIZE.sub("", root.group(0)))
    tag = (
        tag[:-1].rstrip() + f' width="100%" role="img" style="height:auto;max-width:100%" id="{html.escape(plot_id)}">'
    )
    # matplotlib writes the metadata's Title as the root's first child, <title> (what a screen reader says).
    return f"{text[: root.start()]}{tag}{text[root.end() :]}"


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes at :data:`PNG_DPI`. Call inside :func:`drawing`."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return buffer.getvalue()


def percent_label(metric: str) -> str:
    """The axis label of a metric: ``test_error (%)`` for those mixup_core reports in percent."""
    from mixup_core import metrics

    percent = {
        metrics.TEST_ERROR,
        metrics.VAL_ERROR,
        metrics.MEDIAN_TEST_ERROR,
        metrics.BEST_TEST_ERROR,
        metrics.TRAIN_ERROR,
        metrics.TEST_ECE,
        metrics.FGSM_TEST_ERROR,
    }
    return metric + (" (%)" if metric in percent else "")


def legend_beside(fig: Figure, handles: list[Any]) -> None:
    """One legend for the whole figure, right of the panels (it never covers data, the title or the caption)."""
    if not handles:
        return
    fig.legend(handles=handles, loc="outside right center", fontsize="small", frameon=False)


def include_in_view(ax: Axes, xs: Sequence[float], ys: Sequence[float]) -> None:
    """Make the axes' autoscale cover points drawn with a nudged (non-data) transform, which it skips."""
    import numpy as np

    finite = [(x, y) for x, y in zip(xs, ys, strict=True) if np.isfinite(y)]
    if finite:
        ax.update_datalim(finite)
        ax.autoscale_view()
