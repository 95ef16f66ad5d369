"""Is a difference real? Each factor-table row against the study's baseline, with a 95 % CI over seeds.

For every row of the report's factor table and every weight-decay column, the
difference in the study's metric (row minus baseline) with a Student-t 95 %
confidence interval over the seeds:

* **paired** when both sides ran each of their seeds once and share at least two
  seeds: the differences ``d_s = row_s - baseline_s`` over the shared seeds,
  ``d̄ ± t(0.975, n-1) · sd(d) / √n``. A seed fixes the initialisation and batch
  order (and with ``search.seed_data`` the data too) on both sides, so pairing
  removes what the two runs of a seed share;
* **unpaired** (Welch) otherwise, when each side has two values or more:
  ``x̄ - ȳ ± t(0.975, ν) · √(s_x²/n_x + s_y²/n_y)`` with Welch-Satterthwaite ``ν``.

The baseline is the row the spec names (``baseline: {variant: ERM}`` or
``{alpha: 0.0, layer: input}``: the first row in table order whose factors
match), else the first row with α = 0 (ERM). Only finished trials count, as in
the factor table's cells.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from studies.spec import AXIS_PATHS, VARIANT, Range

if TYPE_CHECKING:
    from studies.spec import StudySpec

CONFIDENCE = 0.95
Verdict = Literal["better", "worse", "no clear difference", "too few seeds"]


class Comparison(BaseModel):
    """One factor-table cell against the baseline's cell in the same weight-decay column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    row: str = Field(description="The factor-table row's label.")
    weight_decay: float
    difference: float | None = Field(None, description="Row minus baseline, in the metric's units; None: no data.")
    ci_low: float | None = Field(None, description="Lower end of the 95 % CI; None below two seeds per side.")
    ci_high: float | None = None
    paired: bool = Field(description="Paired by seed (the same seeds on both sides) or Welch's unpaired interval.")
    n: int = Field(description="Seed pairs when paired; else the row's finished trials.")
    n_baseline: int = Field(description="The baseline's finished trials in this column.")
    df: float | None = Field(None, description="Degrees of freedom of the t quantile.")
    verdict: Verdict = Field(description="better / worse: the CI excludes 0 (by the study's mode).")


class BaselineComparisons(BaseModel):
    """The comparisons of a report, or why there are none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline: str | None = Field(description="The baseline row's label; None when no row is one.")
    confidence: float = CONFIDENCE
    note: str | None = Field(None, description="Why there are no comparisons, when there are none.")
    comparisons: list[Comparison] = Field(default_factory=list)


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t quantile ``t((1 + confidence) / 2, df)`` (2.776 for df 4 at 95 %)."""
    from scipy import stats  # imported here: seconds of import that only a report with seeds needs

    return float(stats.t.ppf((1 + confidence) / 2, df))


def paired_interval(row: Sequence[float], base: Sequence[float]) -> tuple[float, float, float, float]:
    """Mean paired difference and its CI: ``(d̄, low, high, df)`` for ``row[i] - base[i]``, n >= 2."""
    diffs = [r - b for r, b in zip(row, base, strict=True)]
    n = len(diffs)
    assert n >= 2, "a paired interval needs two pairs"
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, float(n - 1)


def welch_interval(row: Sequence[float], base: Sequence[float]) -> tuple[float, float, float, float]:
    """Difference of means and Welch's CI: ``(x̄ - ȳ, low, high, ν)``, each side n >= 2."""
    nx, ny = len(row), len(base)
    assert nx >= 2 and ny >= 2, "an unpaired interval needs two values per side"
    vx, vy = statistics.variance(row) / nx, statistics.variance(base) / ny
    diff = statistics.fmean(row) - statistics.fmean(base)
    if vx + vy == 0:
        return diff, diff, diff, float(nx + ny - 2)  # no spread on either side: the interval is the point
    df = (vx + vy) ** 2 / (vx**2 / (nx - 1) + vy**2 / (ny - 1))
    half = t_quantile(df) * math.sqrt(vx + vy)
    return diff, diff - half, diff + half, df


def _verdict(low: float | None, high: float | None, mode: str) -> Verdict:
    if low is None or high is None:
        return "too few seeds"
    if low <= 0 <= high:
        return "no clear difference"
    lower = high < 0
    return "better" if lower == (mode == "min") else "worse"


def compare(
    row_label: str, weight_decay: float, row: Sequence[tuple[Any, float]], base: Sequence[tuple[Any, float]], mode: str
) -> Comparison:
    """One cell against the baseline's: ``row`` and ``base`` are ``(seed, value)`` of finished trials."""
    row_seeds, base_seeds = [s for s, _ in row], [s for s, _ in base]
    by_seed = (
        None not in row_seeds + base_seeds and len(set(row_seeds)) == len(row) and len(set(base_seeds)) == len(base)
    )
    shared = sorted(set(row_seeds) & set(base_seeds), key=str) if by_seed else []
    row_values, base_values = [v for _, v in row], [v for _, v in base]
    low = high = df = None
    diff = statistics.fmean(row_values) - statistics.fmean(base_values) if row and base else None
    paired = len(shared) >= 2
    if paired:
        row_map, base_map = dict(row), dict(base)
        diff, low, high, df = paired_interval([row_map[s] for s in shared], [base_map[s] for s in shared])
    elif len(row) >= 2 and len(base) >= 2:
        diff, low, high, df = welch_interval(row_values, base_values)
    return Comparison(
        row=row_label,
        weight_decay=weight_decay,
        difference=diff,
        ci_low=low,
        ci_high=high,
        paired=paired,
        n=len(shared) if paired else len(row),
        n_baseline=len(base),
        df=df,
        verdict=_verdict(low, high, mode),
    )


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _row_alpha(spec: StudySpec, factors: Mapping[str, Any]) -> float:
    if "alpha" in factors:
        return float(factors["alpha"])
    if VARIANT in factors:
        variant = {v.name: v for v in spec.search.variants or []}.get(str(factors[VARIANT]))
        if variant is not None and variant.alpha is not None:
            return variant.alpha
    axis = spec.search.space.alpha
    return float(axis[0]) if isinstance(axis, list) else spec.mixup.alpha


def baseline_index(spec: StudySpec, rows: Sequence[Mapping[str, Any]]) -> int | None:
    """Index of the baseline among the rows' factor dicts (table order), or None.

    The spec's ``baseline`` when it names one (factors the rows do not vary are
    ignored: every row has that value), else the first row with α = 0.
    """
    wanted = spec.baseline
    for i, factors in enumerate(rows):
        if wanted is None:
            if _row_alpha(spec, factors) == 0:
                return i
        elif all(_same(factors[k], v) for k, v in wanted.items() if k in factors):
            return i
    return None


def check_baseline(spec: StudySpec) -> list[str]:
    """Errors of ``spec.baseline``: each key a list axis of the search (or ``variant``), each value one of its."""
    errors: list[str] = []
    axes: dict[str, list[Hashable]] = {
        name: list(axis) for name, axis in spec.search.space.axes().items() if not isinstance(axis, Range)
    }
    if spec.search.variants:
        axes[VARIANT] = [v.name for v in spec.search.variants]
    for key, value in (spec.baseline or {}).items():
        if key not in axes:
            known = ", ".join(axes) or "none (the search varies nothing the report can compare)"
            hint = " (a sampled range has no rows)" if key in AXIS_PATHS else ""
            errors.append(f"baseline: {key!r} is not a list axis of search.space or 'variant'{hint}; known: {known}")
        elif not any(_same(value, v) for v in axes[key]):
            errors.append(f"baseline.{key}: {value!r} is not one of its values {axes[key]}")
    return errors
