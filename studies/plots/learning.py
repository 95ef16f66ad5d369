"""Every trial's learning curve: the metric per epoch, one line per trial, where each ended marked.

Lines are coloured by the factor that tells trials apart most plainly (the mixing layer, else the variant,
else α), so the legend lists those few values and stays readable at 100+ trials; stopped trials end in an
×, failed ones in a red square, running ones in a dot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mixup_core import metrics as M
from studies.plots._canvas import GidNamer, drawing, legend_beside, new_figure, percent_label, set_titles, to_svg

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from studies.curves import TrialCurve

#: The ``id`` of the ``<svg>`` root of :func:`learning_curves_svg`.
LEARNING_PLOT_ID = "plot-learning-curves"
COLOR_FACTORS = ("layer", "variant", "alpha")  # the first that varies colours the lines
MAX_CATEGORIES = 10  # more values than this (a sampled α): a colour scale instead of a legend entry each
# status → (marker, its style, legend text); "finished" ends plainly.
END_MARKS: dict[str, tuple[str, dict[str, Any], str]] = {
    "stopped": ("x", {"markersize": 7, "markeredgewidth": 1.8}, "stopped early (last epoch)"),
    "failed": (
        "s",
        {"markersize": 6, "markerfacecolor": "none", "markeredgecolor": "tab:red", "markeredgewidth": 1.5},
        "failed (last epoch)",
    ),
    "running": ("o", {"markersize": 4}, "running (latest epoch)"),
    "pending": ("o", {"markersize": 4}, "running (latest epoch)"),
    "cancelled": ("v", {"markersize": 6, "markerfacecolor": "none"}, "cancelled (last epoch)"),
}


def color_factor(curves: Sequence[TrialCurve]) -> str | None:
    """The first of :data:`COLOR_FACTORS` with more than one value among the curves, or None."""
    for factor in COLOR_FACTORS:
        if len({str(c.params.get(factor)) for c in curves}) > 1:
            return factor
    return None


def _colors(
    curves: Sequence[TrialCurve], factor: str | None, fig: Figure, ax: Axes
) -> tuple[Callable[[TrialCurve], Any], list[Any]]:
    """A colour for each curve, and the legend entries that explain them (a colour bar for a sampled α)."""
    from matplotlib.lines import Line2D

    from studies.report_render import format_value

    if factor is None:
        return (lambda _c: "C0"), []
    values = list(dict.fromkeys(c.params.get(factor) for c in curves))
    numbers = sorted(float(v) for v in values if isinstance(v, int | float))
    numeric = len(numbers) == len(values)
    if numeric:
        values.sort()
    if len(values) <= MAX_CATEGORIES or not numeric:
        index = {v: i for i, v in enumerate(values)}
        handles = [
            Line2D([], [], color=f"C{index[v] % 10}", linewidth=2, label=f"{factor}={format_value(v)}") for v in values
        ]
        return (lambda c: f"C{index[c.params.get(factor)] % 10}"), handles
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm, Normalize

    low, high = numbers[0], numbers[-1]
    norm = LogNorm(low, high) if low > 0 and high / low >= 10 else Normalize(low, high)
    cmap = colormaps["viridis"]
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=factor)
    return (lambda c: cmap(norm(float(c.params[factor])))), []


def learning_curves_figure(
    curves: Sequence[TrialCurve], metric: str = M.TEST_ERROR, title: str | None = None
) -> Figure | None:
    """The figure :func:`learning_curves_svg` draws; None when no curve has a point. Call inside ``drawing()``."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    drawn = [c for c in curves if c.points]
    if not drawn:
        return None
    fig = new_figure(8.0, 5.0)
    ax = fig.subplots()
    factor = color_factor(drawn)
    color_of, handles = _colors(drawn, factor, fig, ax)
    # Many lines: thinner and lighter, so the bundle shows where most trials are.
    width, opacity = (1.6, 0.9) if len(drawn) <= 20 else (1.0, 0.5)
    namer = GidNamer()
    ended: dict[str, str] = {}
    for curve in drawn:
        epochs, values = zip(*curve.points, strict=True)
        gid = namer(curve.trial_id)
        ax.plot(epochs, values, color=color_of(curve), linewidth=width, alpha=opacity, gid=gid)
        if curve.status in END_MARKS:
            marker, style, text = END_MARKS[curve.status]
            ax.plot(
                epochs[-1:],
                values[-1:],
                linestyle="none",
                marker=marker,
                color=color_of(curve),
                gid=gid.replace("series-", f"{curve.status}-", 1),
                **style,
            )
            ended.setdefault(text, curve.status)
    for text, status in ended.items():
        marker, style, _ = END_MARKS[status]
        handles.append(Line2D([], [], linestyle="none", marker=marker, color="0.3", label=text, **style))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(percent_label(metric))
    ax.grid(alpha=0.3)
    legend_beside(fig, handles)
    what = f"{len(drawn)} trial{'s' if len(drawn) != 1 else ''}, one line each" + (
        f", colour: {factor}" if factor else ""
    )
    set_titles(fig, title or f"{metric} per epoch", what + ".")
    return fig


def learning_curves_svg(
    curves: Sequence[TrialCurve], metric: str = M.TEST_ERROR, title: str | None = None
) -> str | None:
    """Every trial's ``metric`` per epoch, as an inline SVG for the study's page.

    One line per trial (colour: its mixing layer, else variant, else α, whichever varies; a colour bar for
    more than 10 numeric values); a stopped trial ends in an ×, a failed one in a red square, a running one
    in a dot, a cancelled one in a ▽, at its last epoch.

    Args:
        curves: from :func:`studies.curves.trial_curves` (read with the same ``metric``).
        metric: the metric's name, for the axis label (in % for errors).
        title: the plot's title; default ``"<metric> per epoch"``.

    Returns:
        An ``<svg>`` element as :func:`studies.plots.alpha_curve_svg` returns, or None when no trial has a
        point yet. Each trial's line is a ``<g id="series-<trial_id>">`` (:func:`studies.plots.series_gid`),
        its end marker ``stopped-<trial_id>``, ``failed-…``, ``running-…``, ``pending-…`` or ``cancelled-…``.
    """
    with drawing():
        fig = learning_curves_figure(curves, metric, title)
        return None if fig is None else to_svg(fig, title or f"{metric} per epoch", LEARNING_PLOT_ID)
