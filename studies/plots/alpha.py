"""The metric against α: one panel per weight decay, one series per mixing layer (or variant), for one study
(:func:`alpha_curve_svg`, and the report's PNG) or several on shared axes (:func:`compare_alpha_svg`).

Finished trials give the points (mean ± std over seeds); trials that did not finish every epoch (stopped early
by ASHA, running, cancelled) are drawn one hollow marker each at their last value, so an ASHA study shows every
α it tried, not only those whose trials all ran to the end. Series are nudged a few points apart along α and
have their own marker shapes, so two layers with the same mean at the same α do not hide each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from studies.plots._canvas import (
    GidNamer,
    drawing,
    include_in_view,
    legend_beside,
    new_figure,
    percent_label,
    set_titles,
    to_svg,
    wrap,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from studies.report_models import AlphaPoint, AlphaTrialPoint, StudyReport

#: The ``id`` of the ``<svg>`` root of :func:`alpha_curve_svg` and of :func:`compare_alpha_svg`.
ALPHA_PLOT_ID, COMPARE_PLOT_ID = "plot-alpha", "plot-compare"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
LINESTYLES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 3)))
NUDGE_PT = 5.0  # horizontal distance between neighbouring series, in points (a marker is ~6 pt wide)
MAX_TICKS = 12  # up to this many α values tried: a tick at each, written as given
FINISHED_NOTE = "points: mean ± std over seeds of the trials that finished every epoch (no bar: one trial)"
PARTIAL_NOTE = "hollow: a trial stopped early (ASHA) or not finished yet, at its last value"
NUDGE_NOTE = "series are nudged apart along α so that none hides another"


def color(index: int) -> str:
    """The ``index``-th colour of matplotlib's tab10 cycle (``C0``, ``C1``, ...)."""
    return f"C{index % 10}"


@dataclass(frozen=True)
class Style:
    """How one series is drawn: colour, marker, line style, and its nudge along α (points)."""

    color: str
    marker: str
    linestyle: Any
    nudge_pt: float


def nudges(count: int) -> list[float]:
    """``count`` offsets in points, centred on 0: [-2.5, 2.5] for two series, [0] for one."""
    return [(i - (count - 1) / 2) * NUDGE_PT for i in range(count)]


def set_alpha_axis(ax: Axes, alphas: Sequence[float], series: int = 1) -> None:
    """A log α axis when α spans a decade or more (symlog, linear near 0, when α = 0 was tried), else linear;
    a tick at each α tried when there are few, written as given (0.2, not 2×10⁻¹)."""
    values = sorted(set(alphas))
    positive = [a for a in values if a > 0]
    if len(values) >= 3 and positive and positive[-1] / positive[0] >= 10:
        if values[0] <= 0:
            ax.set_xscale("symlog", linthresh=positive[0], linscale=0.6)
        else:
            ax.set_xscale("log")
    # Room beyond the outer α values for the nudged series (autoscale left them on the frame at the edges).
    scale = ax.xaxis.get_transform()
    lo, hi = scale.transform([[values[0]], [values[-1]]])[:, 0]
    # A panel is ~250 pt wide: 5 % of it, plus the outermost series' nudge and half a marker.
    pad = (hi - lo) * (0.05 + (max(nudges(series)) + 5.0) / 250.0) or 0.5
    ax.set_xlim(*scale.inverted().transform([[lo - pad], [hi + pad]])[:, 0])
    if len(values) <= MAX_TICKS:
        from studies.report_render import format_value

        ax.set_xticks(values, labels=[format_value(a) for a in values])
        ax.minorticks_off()
    ax.set_xlabel("α")


def draw_series(
    ax: Axes,
    points: Sequence[AlphaPoint],
    partial: Sequence[AlphaTrialPoint],
    style: Style,
    gid: str,
    label: str,
) -> None:
    """One series in one panel: its means with std bars (none where n = 1), its unfinished trials hollow."""
    from matplotlib.figure import Figure
    from matplotlib.transforms import offset_copy

    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure)
    moved = offset_copy(ax.transData, fig=fig, x=style.nudge_pt, y=0.0, units="points")
    if points:
        bars = ax.errorbar(
            [p.alpha for p in points],
            [p.mean for p in points],
            # No bar where one trial is all there is (n = 1): its std of 0 is no measured spread.
            yerr=[p.std if p.n > 1 else math.nan for p in points],
            color=style.color,
            marker=style.marker,
            linestyle=style.linestyle,
            capsize=3,
            transform=moved,
            label=label,
        )
        bars.lines[0].set_gid(gid)
        lows = [p.mean - (p.std if p.n > 1 else 0.0) for p in points]
        highs = [p.mean + (p.std if p.n > 1 else 0.0) for p in points]
        include_in_view(ax, [p.alpha for p in points] * 2, lows + highs)
        for part in bars.lines[2]:
            part.set_gid(gid.replace("series-", "errorbar-", 1))
    for kind, chosen in (("stopped", ["stopped"]), ("unfinished", ["running", "pending", "cancelled"])):
        shown = [p for p in partial if p.status in chosen]
        if shown:
            ax.plot(
                [p.alpha for p in shown],
                [p.value for p in shown],
                linestyle="none",
                marker=style.marker,
                markersize=7 if kind == "stopped" else 5,
                markerfacecolor="none",
                markeredgecolor=style.color,
                alpha=1.0 if kind == "stopped" else 0.6,
                transform=moved,
                gid=gid.replace("series-", f"{kind}-", 1),
            )
            include_in_view(ax, [p.alpha for p in shown], [p.value for p in shown])


def status_handles(partial: Sequence[AlphaTrialPoint]) -> list[Any]:
    """Legend entries for the hollow markers, only for the kinds the plot has."""
    from matplotlib.lines import Line2D

    handles = []
    hollow: dict[str, Any] = {"linestyle": "none", "marker": "o", "markerfacecolor": "none", "markeredgecolor": "0.3"}
    if any(p.status == "stopped" for p in partial):
        handles.append(Line2D([], [], markersize=7, label="stopped early (last value)", **hollow))
    if any(p.status != "stopped" for p in partial):
        handles.append(Line2D([], [], markersize=5, alpha=0.6, label="running or cancelled (latest value)", **hollow))
    return handles


def _points(report: StudyReport) -> list[AlphaPoint | AlphaTrialPoint]:
    return [*report.alpha_curve, *report.alpha_partial]


def _weight_decays(reports: Sequence[StudyReport]) -> list[float]:
    return sorted({p.weight_decay for r in reports for p in _points(r)})


def _series(report: StudyReport) -> list[str]:
    # The report lists points in table row order; keep it for the legend.
    return list(dict.fromkeys(p.series for p in _points(report)))


def draw_alpha_panels(axes: Sequence[Axes], report: StudyReport, weight_decays: Sequence[float]) -> list[Any]:
    """The study's α curve in one panel per weight decay; returns the series' legend handles."""
    from matplotlib.lines import Line2D

    from studies.report_render import weight_decay_label

    series = _series(report)
    styles = {
        name: Style(color(i), MARKERS[i % len(MARKERS)], "-", nudge)
        for i, (name, nudge) in enumerate(zip(series, nudges(len(series)), strict=True))
    }
    alphas = [p.alpha for p in _points(report)]
    namer = GidNamer()
    for ax, wd in zip(axes, weight_decays, strict=True):
        for name, style in styles.items():
            points = sorted((p for p in report.alpha_curve if (p.series, p.weight_decay) == (name, wd)), key=_alpha)
            partial = [p for p in report.alpha_partial if (p.series, p.weight_decay) == (name, wd)]
            if points or partial:
                draw_series(ax, points, partial, style, namer(f"{name} {weight_decay_label(wd)}"), name)
        set_alpha_axis(ax, alphas, len(series))
        ax.set_title(weight_decay_label(wd))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(percent_label(report.metric))
    handles: list[Any] = []
    if len(series) > 1 or series != ["all"]:
        handles = [
            Line2D([], [], color=s.color, marker=s.marker, linestyle=s.linestyle, label=n) for n, s in styles.items()
        ]
    return handles + status_handles(report.alpha_partial)


def alpha_notes(report: StudyReport) -> str:
    """The α plot's caption: what the points are, and the hollow markers and the nudge where there are some."""
    notes = [FINISHED_NOTE] + ([PARTIAL_NOTE] if report.alpha_partial else [])
    return "; ".join(notes + ([NUDGE_NOTE] if len(_series(report)) > 1 else [])) + "."


def _alpha(p: AlphaPoint) -> float:
    return p.alpha


def panel_size(count: int) -> tuple[float, float]:
    """Figure width and height (inches) for ``count`` panels side by side: wide enough for a page's column."""
    return max(7.0, 4.2 * count), 4.6


def alpha_curve_figure(report: StudyReport) -> Figure | None:
    """The figure :func:`alpha_curve_svg` draws; None when the report has no α point. Call inside ``drawing()``."""
    if not report.alpha_curve and not report.alpha_partial:
        return None
    weight_decays = _weight_decays([report])
    fig = new_figure(*panel_size(len(weight_decays)))
    axes = list(fig.subplots(1, len(weight_decays), squeeze=False, sharey=True)[0])
    handles = draw_alpha_panels(axes, report, weight_decays)
    legend_beside(fig, handles)
    set_titles(fig, f"{report.name}: {report.metric} vs α", alpha_notes(report))
    return fig


def alpha_curve_svg(report: StudyReport) -> str | None:
    """The study's metric against α, as an inline SVG for its page.

    One panel per weight decay (shared y axis), one series per mixing layer or variant (the report's
    ``alpha_curve`` series): mean ± std over seeds of the finished trials; every trial that did not finish
    (``alpha_partial``: stopped early, running, cancelled) as a hollow marker at its last value.

    Args:
        report: from :func:`studies.report.build_report`.

    Returns:
        An ``<svg>`` element (see :func:`studies.plots.to_svg`: no prolog, viewBox, width 100 %, a
        ``<title>``), byte-identical for the same report; or None when α was not varied or no trial has
        a value yet. Each series in each panel is a ``<g id="series-<series>_wd_<wd>">`` (see
        :func:`studies.plots.series_gid`; e.g. ``series-input_wd_1e-4``), its hollow markers
        ``stopped-…`` / ``unfinished-…`` and its bars ``errorbar-…``.
    """
    with drawing():
        fig = alpha_curve_figure(report)
        return None if fig is None else to_svg(fig, f"{report.name}: {report.metric} vs α", ALPHA_PLOT_ID)


def compare_alpha_figure(reports: Sequence[tuple[str, StudyReport]]) -> Figure | None:
    """The figure :func:`compare_alpha_svg` draws; None when no report has an α point. Call inside ``drawing()``."""
    from matplotlib.lines import Line2D

    from studies.report_render import weight_decay_label

    drawn = [(name, r) for name, r in reports if r.alpha_curve or r.alpha_partial]
    if not drawn:
        return None
    weight_decays = _weight_decays([r for _, r in drawn])
    all_series = list(dict.fromkeys(s for _, r in drawn for s in _series(r)))
    line = {s: (LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)]) for i, s in enumerate(all_series)}
    pairs = [(i, name, r, s) for i, (name, r) in enumerate(drawn) for s in _series(r)]
    fig = new_figure(*panel_size(len(weight_decays)))
    axes = list(fig.subplots(1, len(weight_decays), squeeze=False, sharey=True)[0])
    namer = GidNamer()
    for (i, name, report, series), nudge in zip(pairs, nudges(len(pairs)), strict=True):
        style = Style(color(i), line[series][1], line[series][0], nudge)
        for ax, wd in zip(axes, weight_decays, strict=True):
            points = sorted((p for p in report.alpha_curve if (p.series, p.weight_decay) == (series, wd)), key=_alpha)
            partial = [p for p in report.alpha_partial if (p.series, p.weight_decay) == (series, wd)]
            if points or partial:
                gid = namer(f"{name} {series} {weight_decay_label(wd)}")
                draw_series(ax, points, partial, style, gid, f"{name}: {series}")
    alphas = [p.alpha for _, r in drawn for p in _points(r)]
    for ax, wd in zip(axes, weight_decays, strict=True):
        set_alpha_axis(ax, alphas, len(pairs))
        ax.set_title(weight_decay_label(wd))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(" / ".join(dict.fromkeys(percent_label(r.metric) for _, r in drawn)))
    # A long study name would make the legend, and so the figure's right margin, as wide as itself.
    handles = [
        Line2D([], [], color=color(i), linewidth=3, label=wrap(name, 2.6, 8.0)) for i, (name, _) in enumerate(drawn)
    ]
    if len(all_series) > 1 or all_series != ["all"]:
        handles += [Line2D([], [], color="0.2", linestyle=ls, marker=m, label=s) for s, (ls, m) in line.items()]
    partial_all = [p for _, r in drawn for p in r.alpha_partial]
    legend_beside(fig, handles + status_handles(partial_all))
    notes = ["colour: study; line style and marker: mixing layer or variant", FINISHED_NOTE]
    notes += [PARTIAL_NOTE] if partial_all else []
    set_titles(fig, "α curves compared: " + ", ".join(name for name, _ in drawn), "; ".join([*notes, NUDGE_NOTE]) + ".")
    return fig


def compare_alpha_svg(reports: Sequence[tuple[str, StudyReport]]) -> str | None:
    """Several studies' α curves on shared axes, as an inline SVG for the compare page.

    One panel per weight decay any of them ran (shared y axis); one colour per study, one line style and
    marker per series (mixing layer or variant), drawn as in :func:`alpha_curve_svg`.

    Args:
        reports: (the study's name as the page shows it, its report), in legend order.

    Returns:
        An ``<svg>`` element as :func:`alpha_curve_svg` returns, or None when no report has an α point.
        Each (study, series, panel) is a ``<g id="series-<study>_<series>_wd_<wd>">``.
    """
    with drawing():
        fig = compare_alpha_figure(reports)
        return (
            None
            if fig is None
            else to_svg(fig, "α curves compared: " + ", ".join(name for name, _ in reports), COMPARE_PLOT_ID)
        )
