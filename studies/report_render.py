"""Rendering a :class:`~studies.report.StudyReport`: Markdown (GitHub tables) and a PNG of the α curve.

Pure functions of the report; numbers with two decimals, the paper's precision.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mixup_core import metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from studies.comparison import Comparison
    from studies.report_models import AlphaPoint, FactorCell, LeaderboardRow, StudyReport

LEADERBOARD_ROWS = 10
# Metrics mixup_core reports in percent (see mixup_core.metrics).
_PERCENT = frozenset(
    {
        metrics.TEST_ERROR,
        metrics.VAL_ERROR,
        metrics.MEDIAN_TEST_ERROR,
        metrics.BEST_TEST_ERROR,
        metrics.TRAIN_ERROR,
        metrics.TEST_ECE,
        metrics.FGSM_TEST_ERROR,
    }
)
_COUNT_WORDS = (
    ("finished", "finished"),
    ("stopped", "stopped early"),
    ("failed", "failed"),
    ("running", "running"),
    ("pending", "pending"),
    ("cancelled", "cancelled"),
)


def weight_decay_label(weight_decay: float) -> str:
    """A column label in the paper's style: ``wd 1e-4``, ``wd 5e-4``, ``wd 0``."""
    if weight_decay == 0:
        return "wd 0"
    mantissa, exponent = f"{weight_decay:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"wd {mantissa}e{int(exponent)}"


def format_value(value: Any) -> str:
    """A parameter value for a label: shortest float form (``0.2``, ``1``, ``0.0001``), else ``str``."""
    if isinstance(value, float):
        return f"{value:.12g}"
    return str(value)


def _cell_text(cell: FactorCell) -> str:
    notes = [
        f"{count} {word}"
        for count, word in (
            (cell.stopped, "stopped"),
            (cell.failed, "failed"),
            (cell.running, "running"),
            (cell.cancelled, "cancelled"),
            (cell.missing, "no metric"),
        )
        if count
    ]
    # Say why n is small next to the number, as the reader weighs the mean by it.
    suffix = f" · {', '.join(notes)}" if notes else ""
    if cell.mean is None or cell.std is None:
        return f"–{suffix}"
    if cell.n == 1:  # one trial has no spread: "± 0.00" would claim one was measured
        return f"{cell.mean:.2f} (1){suffix}"
    return f"{cell.mean:.2f} ± {cell.std:.2f} ({cell.n}){suffix}"


def _escape(text: str) -> str:
    # A '|' in a variant name or an error would split the table cell.
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in rows]
    return lines


def counts_line(counts: dict[str, int]) -> str:
    """``12 trials: 10 finished, 1 stopped early, 1 failed`` (statuses with no trial left out)."""
    total = counts.get("total", 0)
    parts = [f"{counts[key]} {word}" for key, word in _COUNT_WORDS if counts.get(key)]
    head = f"{total} trial{'' if total == 1 else 's'}"
    return f"{head}: {', '.join(parts)}" if parts else head


def _factor_section(report: StudyReport) -> list[str]:
    table = report.factor_table
    if table is None:
        return []
    first = "method" if "variant" in table.factors or not table.factors else ", ".join(table.factors)
    rows = []
    for row in table.rows:
        cells = []
        for column, cell in zip(table.columns, row.cells, strict=True):
            text = _cell_text(cell)
            if column.best_row == row.label:
                value, sep, notes = text.partition(" · ")
                text = f"**{value}**{sep}{notes}"
            cells.append(text)
        rows.append([row.label, *cells])
    return [
        f"## {report.metric} by method and weight decay",
        "",
        "Mean ± sample std (n) over trials that finished every epoch (one trial: its value, no ±); trials "
        "stopped early or failed are counted beside the cell, not in it. Best per column in **bold**.",
        "",
        *_table([first, *(c.label for c in table.columns)], rows),
        "",
    ]


def _signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def _comparison_text(c: Comparison) -> str:
    if c.difference is None:
        return "–"
    how = "paired" if c.paired else f"vs {c.n_baseline}"
    if c.ci_low is None or c.ci_high is None:
        return f"{_signed(c.difference)} (n={c.n} {how}; {c.verdict})"
    interval = f"[{_signed(c.ci_low)}, {_signed(c.ci_high)}]"
    verdict = f"**{c.verdict}**" if c.verdict in ("better", "worse") else c.verdict
    return f"{_signed(c.difference)} {interval} (n={c.n} {how}) {verdict}"


def seeds_line(report: StudyReport) -> str:
    """Which seeds ran and what they changed: only initialisation and batch order, or the data too."""
    seeds = ", ".join(str(s) for s in report.seeds)
    if report.seed_data:
        return (
            f"Seeds {seeds}: each seed also resampled the data (training subset, noisy labels, splits: "
            "`search.seed_data`), so the spread over seeds includes the data's."
        )
    return (
        f"Seeds {seeds}: initialisation and batch order only; every trial saw the same data "
        f"(`dataset.split_seed` = {report.split_seed}: subset, noisy labels, splits)."
    )


def _comparison_section(report: StudyReport) -> list[str]:
    result, table = report.comparisons, report.factor_table
    if result is None or table is None or (result.baseline is not None and not result.comparisons):
        return []  # no table, or the baseline is its only row: nothing to compare
    title = f"## Difference from the baseline ({result.baseline or 'none'})"
    if result.baseline is None:
        return [title, "", f"No comparison: {result.note}.", ""]
    by_cell = {(c.row, c.weight_decay): c for c in result.comparisons}
    rows = [
        [row.label, *(_comparison_text(by_cell[row.label, col.weight_decay]) for col in table.columns)]
        for row in table.rows
        if row.label != result.baseline
    ]
    about = (
        f"Row minus baseline in `{report.metric}`, with a {result.confidence:.0%} confidence interval (Student t) "
        "over seeds: paired by seed where both sides ran the same seeds (n = pairs), else Welch's interval (n = the "
        "row's trials vs the baseline's). **better** / **worse**: the interval excludes 0."
    )
    return [title, "", about, "", *_table(["row", *(c.label for c in table.columns)], rows), ""]


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in params.items())


def _status_text(row: LeaderboardRow, total_epochs: int) -> str:
    # A value from a trial that did not run every epoch is not the final one: say how far it got.
    return row.status if row.status == "finished" else f"{row.status} ({row.epochs}/{total_epochs} epochs)"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _leaderboard_section(report: StudyReport) -> list[str]:
    if not report.leaderboard:
        return ["## Leaderboard", "", f"No trial has reported `{report.metric}` yet.", ""]
    shown = report.leaderboard[:LEADERBOARD_ROWS]
    rows = [
        [
            str(r.rank),
            f"`{r.trial_id}`",
            _params_text(r.params),
            _status_text(r, report.total_epochs),
            str(r.epochs),
            _number(r.value),
            _number(r.test_error),
            _number(r.best_test_error),
        ]
        for r in shown
    ]
    header = ["#", "trial", "params", "status", "epochs", report.metric, "test_error", "best_test_error"]
    title = f"## Leaderboard (top {len(shown)} of {len(report.leaderboard)})"
    return [title, "", *_table(header, rows), ""]


def _fence(text: str) -> str:
    # The fence must be longer than any backtick run inside, or the error text would end the block.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _failures_section(report: StudyReport) -> list[str]:
    if not report.failures:
        return []
    lines = [f"## Failures ({len(report.failures)})", ""]
    lines += [
        f"- `{f.trial_id}` ({_params_text(f.params)}): {(f.error or 'no error message').splitlines()[0]}"
        for f in report.failures
    ]
    error = report.first_error or ""
    fence = _fence(error)
    return [*lines, "", "First error:", "", fence, error, fence, ""]


def render_markdown(report: StudyReport) -> str:
    """The report as Markdown: title and counts, the factor table, the top-10 leaderboard, failures.

    Args:
        report: from :func:`~studies.report.build_report`.

    Returns:
        GitHub-flavoured Markdown, ending in a newline.
    """
    direction = "lower is better" if report.mode == "min" else "higher is better"
    about = f"Metric `{report.metric}` ({direction}), {report.total_epochs} epochs per trial"
    if report.study_id:
        about = f"Study id `{report.study_id}` · " + about
    status = "complete" if report.complete else "in progress"
    if report.study_status not in (None, "running"):  # an ended (or queued) study is not "in progress"
        status = str(report.study_status)
    lines = [f"# Study report: {report.name}", "", about + ".", "", f"{counts_line(report.counts)} ({status}).", ""]
    lines += [seeds_line(report), ""]
    lines += _factor_section(report) + _comparison_section(report)
    lines += _leaderboard_section(report) + _failures_section(report)
    return "\n".join(lines).rstrip("\n") + "\n"


def _series_order(curve: Sequence[AlphaPoint]) -> list[str]:
    # The report lists points in table row order; keep it for the legend.
    return list(dict.fromkeys(p.series for p in curve))


_warm_up: threading.Thread | None = None  # the process's plot warm-up, once started


def warm_up_plotting() -> None:
    """Import matplotlib and draw a throwaway figure on a background thread (once per process).

    The first plot a process draws pays for importing ``matplotlib.figure`` and loading fonts: 0.5 s of the
    0.6 s that the first :func:`render_plot_png` took on the 2-core dev box, where later ones take 0.13 s.
    A study driver calls this once its trials train, so that happens while they run, not after the last one.
    """
    global _warm_up
    if _warm_up is not None:
        return

    def draw() -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(1.0, 1.0))
        FigureCanvasAgg(fig)
        fig.subplots().set_title("α")
        fig.savefig(io.BytesIO(), format="png", dpi=10)

    _warm_up = threading.Thread(target=draw, name="plot-warm-up", daemon=True)
    _warm_up.start()


def _draw_alpha_curve(axes: Sequence[Any], report: StudyReport, weight_decays: list[float]) -> None:
    curve = report.alpha_curve
    alphas = [p.alpha for p in curve]
    log_x = min(alphas) > 0 and max(alphas) / min(alphas) >= 10
    series = _series_order(curve)
    for ax, wd in zip(axes, weight_decays, strict=True):
        for name in series:
            points = sorted((p for p in curve if p.series == name and p.weight_decay == wd), key=lambda p: p.alpha)
            if points:
                ax.errorbar(
                    [p.alpha for p in points],
                    [p.mean for p in points],
                    # No bar where one trial is all there is (n = 1): its std of 0 is no measured spread.
                    yerr=[p.std if p.n > 1 else math.nan for p in points],
                    marker="o",
                    capsize=3,
                    label=name,
                )
        if log_x:
            ax.set_xscale("log")
        # Ticks at the α values tried, written as given (0.2, not 2×10⁻¹).
        ticks = sorted(set(alphas))
        ax.set_xticks(ticks, labels=[format_value(a) for a in ticks])
        ax.minorticks_off()
        ax.set_title(f"{weight_decay_label(wd)}: mean ± std over finished trials")
        ax.set_xlabel("α")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(report.metric + (" (%)" if report.metric in _PERCENT else ""))
    if len(series) > 1:
        axes[-1].legend(fontsize="small")


def _drawn_comparisons(report: StudyReport) -> list[Comparison]:
    result = report.comparisons
    return [c for c in result.comparisons if c.ci_low is not None] if result is not None else []


def _draw_comparisons(axes: Sequence[Any], report: StudyReport, weight_decays: list[float]) -> None:
    # A forest plot per weight decay: each row's difference from the baseline with its 95 % CI, 0 marked.
    drawn = _drawn_comparisons(report)
    labels = list(dict.fromkeys(c.row for c in drawn))
    assert report.comparisons is not None
    for ax, wd in zip(axes, weight_decays, strict=True):
        for y, label in enumerate(labels):
            for c in drawn:
                if c.row == label and c.weight_decay == wd and c.ci_low is not None and c.ci_high is not None:
                    assert c.difference is not None
                    color = {"better": "tab:green", "worse": "tab:red"}.get(c.verdict, "tab:gray")
                    err = [[c.difference - c.ci_low], [c.ci_high - c.difference]]
                    ax.errorbar([c.difference], [y], xerr=err, fmt="o", color=color, capsize=3)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(labels)), labels=labels)
        ax.invert_yaxis()
        ax.set_title(f"{weight_decay_label(wd)}: minus {report.comparisons.baseline}, 95 % CI")
        ax.set_xlabel(f"Δ {report.metric}")
        ax.grid(alpha=0.3, axis="x")


def render_plot_png(report: StudyReport) -> bytes | None:
    """The metric against α, and each row's difference from the baseline with its 95 % CI.

    One column of panels per weight decay: the α curve (one line, mean ± std, per series) on top when α was
    varied, the differences from the baseline (a forest plot) below when there are any with an interval.

    Args:
        report: from :func:`~studies.report.build_report`.

    Returns:
        PNG bytes, or None when there is neither an α curve nor an interval to draw.
    """
    fig = report_figure(report)
    if fig is None:
        return None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def report_figure(report: StudyReport) -> Figure | None:
    """The figure :func:`render_plot_png` draws (on an Agg canvas); None when there is nothing to plot."""
    curve, drawn = report.alpha_curve, _drawn_comparisons(report)
    if not curve and not drawn:
        return None
    if _warm_up is not None:
        _warm_up.join()  # matplotlib's shared font objects are not safe to draw with from two threads at once
    # Imported here: matplotlib is slow to import and only this function needs it. An explicit Agg canvas
    # on a bare Figure renders headless without pyplot's global figure registry or a global backend switch
    # (matplotlib.use would close the figures of a notebook that imported us).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    weight_decays = sorted({p.weight_decay for p in curve} | {c.weight_decay for c in drawn})
    panels = [draw for draw, present in ((_draw_alpha_curve, curve), (_draw_comparisons, drawn)) if present]
    fig = Figure(figsize=(4.8 * len(weight_decays), 4.0 * len(panels)), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(len(panels), len(weight_decays), squeeze=False)
    for draw, axes in zip(panels, grid, strict=True):
        draw(list(axes), report, weight_decays)
    fig.suptitle(f"{report.name}: {report.metric}")
    return fig
