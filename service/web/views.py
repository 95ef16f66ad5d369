"""What the pages show, computed from the API's own models: plain data for the templates, no HTML here.

Every number is formatted here once (the paper's ``mean ± std (n)`` cells, ages, progress), so the
templates only lay it out; Jinja2 escapes all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service import schemas
from studies.comparison import Comparison
from studies.report import StudyReport
from studies.report_models import FactorCell, FactorTable

#: Trial states that count as done in a progress bar (cancelled: will not run any more either).
DONE = ("finished", "stopped", "failed", "cancelled")


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    counts: dict[str, int]

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def progress(counts: dict[str, int], total: int) -> Progress:
    return Progress(sum(counts.get(key, 0) for key in DONE), total, {k: v for k, v in counts.items() if v})


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """``42 s``, ``5 min``, ``3 h``, ``2 d``: how long ago, the way a list of studies reads best."""
    if moment is None:
        return "–"
    now = now or datetime.now(UTC)
    seconds = max(0.0, (now - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class Cell:
    """One Table 5 cell: ``mean ± std``, its n, and the trials not in it (stopped, failed, ...) beside it."""

    value: str
    n: int
    notes: list[str]
    best: bool


def cell(c: FactorCell, best: bool) -> Cell:
    if c.mean is None or c.std is None:
        value = "–"
    elif c.n == 1:  # one trial has no spread: "± 0.00" would claim one was measured
        value = f"{c.mean:.2f}"
    else:
        value = f"{c.mean:.2f} ± {c.std:.2f}"
    words = (("stopped", c.stopped), ("failed", c.failed), ("running", c.running), ("cancelled", c.cancelled),
             ("no metric", c.missing))  # fmt: skip
    return Cell(value, c.n, [f"{count} {word}" for word, count in words if count], best and c.mean is not None)


@dataclass(frozen=True)
class Row:
    label: str
    cells: list[Cell]
    # Against the baseline row, per column: "+1.20 [0.40, 2.00] worse" (empty for the baseline itself).
    differences: list[str] = field(default_factory=list)
    baseline: bool = False


@dataclass(frozen=True)
class Table:
    """The paper's Table 5: rows method / layer, columns weight decay."""

    columns: list[str]
    rows: list[Row]
    baseline: str | None
    note: str | None


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def difference_text(c: Comparison) -> str:
    if c.difference is None:
        return "–"
    if c.ci_low is None or c.ci_high is None:
        return f"{_signed(c.difference)} ({c.verdict})"
    return f"{_signed(c.difference)} [{_signed(c.ci_low)}, {_signed(c.ci_high)}] {c.verdict}"


def table(report: StudyReport) -> Table | None:
    factor: FactorTable | None = report.factor_table
    if factor is None:
        return None
    comparisons = report.comparisons
    by_cell = {(c.row, c.weight_decay): c for c in comparisons.comparisons} if comparisons else {}
    baseline = comparisons.baseline if comparisons else None
    rows = []
    for row in factor.rows:
        cells = [cell(c, column.best_row == row.label) for c, column in zip(row.cells, factor.columns, strict=True)]
        found = [by_cell.get((row.label, column.weight_decay)) for column in factor.columns]
        differences = [difference_text(c) if c is not None else "" for c in found] if by_cell else []
        rows.append(Row(row.label, cells, differences, row.label == baseline))
    note = comparisons.note if comparisons else None
    return Table([c.label for c in factor.columns], rows, baseline, note)


@dataclass(frozen=True)
class TrialRow:
    trial_id: str
    params: str
    status: str
    epochs: int
    metric: float | None
    test_error: float | None
    error: str | None
    run_url: str | None


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def trial_rows(trials: list[schemas.Trial], metric: str, experiment_url: str | None) -> list[TrialRow]:
    """The trial table, each row linked to its MLflow run (the runs view's URL + ``/<run id>``)."""
    return [
        TrialRow(
            trial_id=t.trial_id,
            params=_params_text(t.params),
            status=t.status,
            epochs=t.epochs,
            metric=t.metrics.get(metric),
            test_error=t.metrics.get("test_error"),
            error=t.error,
            run_url=f"{experiment_url}/{t.run_id}" if experiment_url and t.run_id else None,
        )
        for t in trials
    ]


def version(detail: schemas.StudySummary, progress_at: datetime | None) -> str:
    """Changes whenever what the results section shows may have changed (the live poll reloads it then)."""
    stamp = progress_at.isoformat() if progress_at is not None else "-"
    return f"{detail.status}|{stamp}|{detail.cancel_requested}"
