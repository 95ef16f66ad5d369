"""Rendering a :class:`~studies.report.StudyReport` as Markdown (GitHub tables).

Pure functions of the report; numbers with two decimals, the paper's precision. The plots (the report's PNG,
the pages' SVGs) are drawn by :mod:`studies.plots`; :func:`render_plot_png`, :func:`report_figure` and
:func:`warm_up_plotting` are re-exported here for the callers that know them from this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from studies.plots import render_plot_png, report_figure, warm_up_plotting

if TYPE_CHECKING:
    from studies.comparison import Comparison
    from studies.report_models import FactorCell, LeaderboardRow, StudyReport

__all__ = [
    "counts_line",
    "format_value",
    "render_markdown",
    "render_plot_png",
    "report_figure",
    "seeds_line",
    "warm_up_plotting",
    "weight_decay_label",
]

LEADERBOARD_ROWS = 10
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
    total = report.leaderboard_total if report.leaderboard_total is not None else len(report.leaderboard)
    first = shown[0].rank
    which = f"top {len(shown)}" if first == 1 else f"ranks {first}-{shown[-1].rank}"
    title = f"## Leaderboard ({which} of {total})"
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
