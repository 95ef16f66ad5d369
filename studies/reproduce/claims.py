"""Judging a claim: the study's row against its baseline on the claim's metric, with the report's 95 % CI.

The numbers come from :func:`studies.report.build_report` (the same factor table and baseline comparisons a
user sees), rebuilt with the claim's metric when it is not the study's own. The verdict:

* ``reproduces`` — the CI excludes 0 on the paper's side (the row lower than the baseline for ``lower``);
* ``opposite`` — the CI excludes 0 on the other side;
* ``not resolved (CI includes 0)`` — the interval holds 0: these seeds cannot tell the two apart;
* ``not resolved (too few seeds)`` / ``no data`` — no interval could be computed, or a side has no value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from studies.comparison import Comparison, baseline_index
from studies.records import TrialRecord
from studies.report import StudyReport, build_report
from studies.report_models import FactorTable
from studies.reproduce.experiments import Claim
from studies.spec import StudySpec

REPRODUCES = "reproduces"
OPPOSITE = "opposite"
UNRESOLVED = "not resolved (CI includes 0)"
TOO_FEW = "not resolved (too few seeds)"
NO_DATA = "no data"
VERDICTS = (REPRODUCES, OPPOSITE, UNRESOLVED, TOO_FEW, NO_DATA)


@dataclass(frozen=True)
class ClaimResult:
    """A claim and what the study found (errors in percent, differences row minus baseline)."""

    label: str
    row: dict[str, Any]
    metric: str
    direction: str
    source: str
    weight_decay: float | None
    paper_baseline: float | None
    paper_row: float | None
    paper_difference: float | None
    baseline_label: str | None
    ours_baseline: float | None
    ours_row: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    n_baseline: int
    paired: bool
    verdict: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def verdict(direction: str, low: float | None, high: float | None, difference: float | None) -> str:
    """The claim's verdict from the difference's 95 % CI (row minus baseline) and the paper's direction."""
    if difference is None:
        return NO_DATA
    if low is None or high is None:
        return TOO_FEW
    if low <= 0 <= high:
        return UNRESOLVED
    below = high < 0
    return REPRODUCES if below == (direction == "lower") else OPPOSITE


def _matches(factors: dict[str, Any], wanted: dict[str, Any]) -> bool:
    def same(a: Any, b: Any) -> bool:
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return str(a) == str(b)

    return all(same(factors[k], v) for k, v in wanted.items() if k in factors)


def _column(table: FactorTable, claim: Claim) -> int:
    if claim.weight_decay is None:
        if len(table.columns) != 1:
            wds = [c.weight_decay for c in table.columns]
            raise ValueError(f"claim {claim.title!r}: the study has weight decays {wds}; name the claim's weight_decay")
        return 0
    for i, column in enumerate(table.columns):
        if column.weight_decay == claim.weight_decay:
            return i
    raise ValueError(f"claim {claim.title!r}: no column with weight_decay={claim.weight_decay}")


def report_for(spec: StudySpec, trials: Sequence[TrialRecord], metric: str) -> StudyReport:
    """The study's report on ``metric`` (the same trials; only the metric and its mode change)."""
    return build_report(spec.model_copy(update={"metric": metric, "mode": None}), trials)


def judge(spec: StudySpec, trials: Sequence[TrialRecord], claim: Claim) -> ClaimResult:
    """What the study's trials say about ``claim`` (a row or column the study lacks is a ``ValueError``)."""
    report = report_for(spec, trials, claim.metric)
    table, comparisons = report.factor_table, report.comparisons
    if table is None or comparisons is None or comparisons.baseline is None:
        why = comparisons.note if comparisons is not None else "the study has no factor table"
        raise ValueError(f"claim {claim.title!r}: no baseline comparison ({why})")
    rows = [i for i, r in enumerate(table.rows) if _matches(r.factors, dict(claim.row))]
    if not rows:
        raise ValueError(f"claim {claim.title!r}: no factor-table row has {dict(claim.row)}")
    row, column = table.rows[rows[0]], _column(table, claim)
    base = baseline_index(spec, [r.factors for r in table.rows])
    assert base is not None, "comparisons has a baseline, so the table has its row"
    if rows[0] == base:
        raise ValueError(f"claim {claim.title!r}: the row {dict(claim.row)} is the baseline itself")
    wd = table.columns[column].weight_decay
    found: Comparison = next(c for c in comparisons.comparisons if c.row == row.label and c.weight_decay == wd)
    paper_diff = None
    if claim.paper_row is not None and claim.paper_baseline is not None:
        paper_diff = claim.paper_row - claim.paper_baseline
    return ClaimResult(
        label=claim.title,
        row=dict(claim.row),
        metric=claim.metric,
        direction=claim.direction,
        source=claim.source,
        weight_decay=wd,
        paper_baseline=claim.paper_baseline,
        paper_row=claim.paper_row,
        paper_difference=paper_diff,
        baseline_label=comparisons.baseline,
        ours_baseline=table.rows[base].cells[column].mean,
        ours_row=row.cells[column].mean,
        difference=found.difference,
        ci_low=found.ci_low,
        ci_high=found.ci_high,
        n=found.n,
        n_baseline=found.n_baseline,
        paired=found.paired,
        verdict=verdict(claim.direction, found.ci_low, found.ci_high, found.difference),
    )
