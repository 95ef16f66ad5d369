"""The report's PNG: the α curve (drawn as on the study's page) above each row's difference from the baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from studies.plots._canvas import drawing, legend_beside, new_figure, set_titles, to_png
from studies.plots.alpha import alpha_notes, draw_alpha_panels, panel_size

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from studies.comparison import Comparison
    from studies.report_models import AlphaPoint, AlphaTrialPoint, StudyReport


def drawn_comparisons(report: StudyReport) -> list[Comparison]:
    """The report's differences from the baseline that have an interval to draw."""
    result = report.comparisons
    return [c for c in result.comparisons if c.ci_low is not None] if result is not None else []


def draw_comparisons(axes: Sequence[Axes], report: StudyReport, weight_decays: Sequence[float]) -> None:
    """A forest plot per weight decay: each row's difference from the baseline with its 95 % CI, 0 marked."""
    from studies.report_render import weight_decay_label

    drawn = drawn_comparisons(report)
    labels = list(dict.fromkeys(c.row for c in drawn))
    assert report.comparisons is not None
    for i, (ax, wd) in enumerate(zip(axes, weight_decays, strict=True)):
        for y, label in enumerate(labels):
            for c in drawn:
                if c.row == label and c.weight_decay == wd and c.ci_low is not None and c.ci_high is not None:
                    assert c.difference is not None
                    color = {"better": "tab:green", "worse": "tab:red"}.get(c.verdict, "tab:gray")
                    err = [[c.difference - c.ci_low], [c.ci_high - c.difference]]
                    ax.errorbar([c.difference], [y], xerr=err, fmt="o", color=color, capsize=3)
        ax.axvline(0.0, color="black", linewidth=0.8)
        # Every panel has the same rows in the same order: their names once, left of the first panel.
        ax.set_yticks(range(len(labels)), labels=labels if i == 0 else [])
        ax.invert_yaxis()
        ax.set_title(f"{weight_decay_label(wd)}: difference from the baseline")
        ax.set_xlabel(f"Δ {report.metric}")
        ax.grid(alpha=0.3, axis="x")


def report_figure(report: StudyReport) -> Figure | None:
    """The figure :func:`render_plot_png` draws (on an Agg canvas); None when there is nothing to plot.

    Call inside :func:`studies.plots.drawing` when the figure is drawn or saved afterwards (the rcParams and
    the lock that makes it safe with other threads' plots).
    """
    curve: list[AlphaPoint | AlphaTrialPoint] = [*report.alpha_curve, *report.alpha_partial]
    drawn = drawn_comparisons(report)
    if not curve and not drawn:
        return None
    weight_decays = sorted({p.weight_decay for p in curve} | {c.weight_decay for c in drawn})
    width, height = panel_size(len(weight_decays))
    width += 2.5 if drawn else 0.0  # the forest plot's row names, left of its first panel
    rows = int(bool(curve)) + int(bool(drawn))
    fig = new_figure(width, height * rows)
    grid = fig.subplots(rows, len(weight_decays), squeeze=False)
    handles: list[Any] = []
    notes = []
    if curve:
        handles = draw_alpha_panels(list(grid[0]), report, weight_decays)
        notes = [alpha_notes(report).rstrip(".")]
    if drawn:
        draw_comparisons(list(grid[-1]), report, weight_decays)
        assert report.comparisons is not None
        notes.append(
            f"below: each row minus the baseline ({report.comparisons.baseline}) with its 95 % confidence interval; "
            "green better, red worse (the interval excludes 0)"
        )
    legend_beside(fig, handles)
    what = f"{report.metric} vs α" if curve else f"{report.metric}: difference from the baseline"
    set_titles(fig, f"{report.name}: {what}", "; ".join(notes) + ".")
    return fig


def render_plot_png(report: StudyReport) -> bytes | None:
    """The metric against α, and each row's difference from the baseline with its 95 % CI, as a PNG.

    One column of panels per weight decay: the α curve (as :func:`studies.plots.alpha_curve_svg` draws it)
    on top when α was varied, the differences from the baseline (a forest plot) below when there are any
    with an interval. At least 1050 × 690 pixels; the title and caption are wrapped to the width.

    Args:
        report: from :func:`~studies.report.build_report`.

    Returns:
        PNG bytes, or None when there is neither an α curve nor an interval to draw.
    """
    with drawing():
        fig = report_figure(report)
        return None if fig is None else to_png(fig)
