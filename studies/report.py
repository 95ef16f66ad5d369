"""The paper-style study report: leaderboard, Table 5 factor table, failures, α curve.

:func:`build_report` is a pure function of a :class:`~studies.spec.StudySpec`
and its :class:`~studies.records.TrialRecord` list, so the REST API, the CLI and
the study driver all compute the same report from whatever store they read the
trials from. :class:`StudyReport` is a frozen pydantic model: the API returns
``report.model_dump(mode="json")`` and its schema shows up in OpenAPI.
Rendering (Markdown, PNG) lives in :mod:`studies.report_render`.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

from mixup_core import metrics
from studies.comparison import BaselineComparisons, Comparison, baseline_index, compare
from studies.records import FINAL_TRIAL_STATUSES, TRIAL_STATUSES, TrialRecord
from studies.report_models import (
    AlphaPoint,
    AlphaTrialPoint,
    FactorCell,
    FactorColumn,
    FactorRow,
    FactorTable,
    FailureRow,
    LeaderboardRow,
    StudyReport,
)
from studies.report_render import format_value, render_markdown, render_plot_png, weight_decay_label
from studies.spec import SEED, VARIANT, Range

if TYPE_CHECKING:
    from studies.spec import StudySpec

__all__ = [
    "ALL_LABEL",
    "AlphaPoint",
    "AlphaTrialPoint",
    "BaselineComparisons",
    "Comparison",
    "FactorCell",
    "FactorColumn",
    "FactorRow",
    "FactorTable",
    "FailureRow",
    "LeaderboardRow",
    "StudyReport",
    "build_report",
    "render_markdown",
    "render_plot_png",
]

ALPHA, WEIGHT_DECAY, LAYER = "alpha", "weight_decay", "layer"
#: Row (or α-curve series) label when nothing but weight decay, seed (and α, for a series) varies.
ALL_LABEL = "all"
STATUSES = TRIAL_STATUSES
# Params that are numbers: coerced to float so 1 and 1.0 (or MLflow's string "0.0001") group together.
_NUMERIC = frozenset({ALPHA, WEIGHT_DECAY, "lr", "label_smoothing", "input_noise"})
# Row-label factor order: the method first, then where it mixes, then how strongly; the rest as declared.
_LEADING_FACTORS = (VARIANT, LAYER, ALPHA)

Key = tuple[Hashable, ...]


def build_report(
    spec: StudySpec, trials: Sequence[TrialRecord], study_id: str | None = None, study_status: str | None = None
) -> StudyReport:
    """Summarise a study's trials the way the paper reports its ablation.

    Args:
        spec: the study's spec (what was varied, the metric and its mode).
        trials: every trial known so far, in any status.
        study_id: the id the service knows the study by.
        study_status: the study's state, when known (an ended study's report says how it ended).

    Returns:
        The report; safe on an empty or still running study.
    """
    leaderboard = _leaderboard(spec, trials)
    failed = [t for t in trials if t.status == "failed"]
    first_error = None
    if failed:
        first_error = failed[0].error or f"trial {failed[0].trial_id} failed without an error message"
    counts: dict[str, int] = {status: sum(t.status == status for t in trials) for status in STATUSES}
    counts["total"] = len(trials)
    table = _factor_table(spec, trials)
    alpha_curve, alpha_partial = _alpha_points(spec, trials)
    return StudyReport(
        study_id=study_id,
        study_status=study_status,
        name=spec.name,
        metric=spec.metric,
        mode=spec.resolved_mode,
        total_epochs=spec.training.epochs,
        counts=counts,
        complete=bool(trials) and all(t.status in FINAL_TRIAL_STATUSES for t in trials),
        leaderboard=leaderboard,
        best=leaderboard[0] if leaderboard else None,
        factor_table=table,
        failures=[FailureRow(trial_id=t.trial_id, params=_plain(t.params), error=t.error) for t in failed],
        first_error=first_error,
        alpha_curve=alpha_curve,
        alpha_partial=alpha_partial,
        seeds=list(spec.search.seeds),
        seed_data=spec.search.seed_data,
        split_seed=spec.dataset.split_seed,
        comparisons=_comparisons(spec, trials, table) if table is not None else None,
    )


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    # Ray may hand back numpy scalars (np.int64 seeds); JSON (the REST answer) takes only Python numbers.
    return {k: v.item() if hasattr(v, "item") and not isinstance(v, str | bytes) else v for k, v in params.items()}


def _metric(trial: TrialRecord, name: str) -> float | None:
    # NaN/inf (a diverged run) has no place in a ranking or a mean: treat it as missing.
    value = trial.metrics.get(name)
    return float(value) if value is not None and math.isfinite(value) else None


def _leaderboard(spec: StudySpec, trials: Sequence[TrialRecord]) -> list[LeaderboardRow]:
    scored = [(v, t) for t in trials if (v := _metric(t, spec.metric)) is not None]
    sign = 1.0 if spec.resolved_mode == "min" else -1.0
    scored.sort(key=lambda vt: (sign * vt[0], vt[1].trial_id))  # trial id: a stable order for ties
    return [
        LeaderboardRow(
            rank=rank,
            trial_id=t.trial_id,
            params=_plain(t.params),
            status=t.status,
            epochs=t.epochs,
            value=value,
            test_error=_metric(t, metrics.TEST_ERROR),
            best_test_error=_metric(t, metrics.BEST_TEST_ERROR),
        )
        for rank, (value, t) in enumerate(scored, start=1)
    ]


def _varied(spec: StudySpec) -> tuple[list[str], bool]:
    """The factors that tell trials apart (seed excluded) in label order, and whether any is a sampled range."""
    axes = spec.search.space.axes()
    varied = {name for name, axis in axes.items() if isinstance(axis, Range) or len(set(axis)) > 1}
    if spec.search.variants:
        varied.add(VARIANT)
    order = [f for f in _LEADING_FACTORS if f in varied] + [
        f for f in axes if f in varied and f not in _LEADING_FACTORS
    ]
    has_range = any(isinstance(axis, Range) for axis in axes.values())
    return order, has_range


def _param(spec: StudySpec, trial: TrialRecord, name: str) -> Hashable:
    value = trial.params.get(name)
    if value is None:
        # An axis that is not searched keeps the base config's value.
        fallback: dict[str, Hashable] = {WEIGHT_DECAY: spec.training.weight_decay, ALPHA: spec.mixup.alpha}
        return fallback.get(name)
    if name in _NUMERIC:
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)
    return value if isinstance(value, Hashable) else str(value)


def _weight_decay(spec: StudySpec, trial: TrialRecord, varied: bool) -> float:
    value = _param(spec, trial, WEIGHT_DECAY) if varied else spec.training.weight_decay
    return float(value) if isinstance(value, int | float) else spec.training.weight_decay


def _layer_key(layer: str) -> tuple[int, float, str]:
    # input < layer1..layer9 < feature_map < module:*: from the input up the network.
    if layer == "input":
        return (0, 0.0, "")
    if layer.startswith("layer") and layer[5:].isdigit():
        return (1, float(layer[5:]), "")
    if layer == "feature_map":
        return (2, 0.0, "")
    return (3 if layer.startswith("module:") else 4, 0.0, layer)


def _sort_key(spec: StudySpec, factors: list[str], key: Key) -> tuple[tuple[int, float, str], ...]:
    variant_index = {v.name: i for i, v in enumerate(spec.search.variants or [])}
    parts = []
    for factor, value in zip(factors, key, strict=True):
        if value is None:
            parts.append((9, 0.0, ""))
        elif factor == VARIANT:
            parts.append((0, float(variant_index.get(str(value), len(variant_index))), str(value)))
        elif factor == LAYER:
            parts.append(_layer_key(str(value)))
        elif isinstance(value, int | float):
            parts.append((0, float(value), ""))
        else:
            parts.append((1, 0.0, str(value)))
    return tuple(parts)


def _label(factors: list[str], key: Key) -> str:
    if not factors:
        return ALL_LABEL
    if len(factors) == 1 and factors[0] in (VARIANT, LAYER):
        return str(key[0])
    # A variant's name says what it is; other factors need their name to be read.
    return ", ".join(str(v) if f == VARIANT else f"{f}={format_value(v)}" for f, v in zip(factors, key, strict=True))


def _mean_std(values: list[float]) -> tuple[float, float]:
    # statistics.stdev needs two values; one value has no spread to report, not an unknown one.
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _cell(spec: StudySpec, trials: list[TrialRecord]) -> FactorCell:
    values: list[float] = []
    tally: dict[str, int] = defaultdict(int)
    for t in trials:
        if t.status == "finished":
            value = _metric(t, spec.metric)
            if value is None:
                tally["missing"] += 1
            else:
                values.append(value)
        else:
            tally["running" if t.status in ("pending", "running") else t.status] += 1
    mean, std = _mean_std(values) if values else (None, None)
    return FactorCell(mean=mean, std=std, n=len(values), **tally)


def _best_row(mode: str, rows: list[FactorRow], column: int) -> str | None:
    scored = [(mean, r.label) for r in rows if (mean := r.cells[column].mean) is not None]
    if not scored:
        return None
    pick = min if mode == "min" else max
    # the first row in table order wins a tie, as a reader scanning the column would pick it
    return pick(scored, key=lambda ml: ml[0])[1]


def _groups(
    spec: StudySpec, trials: Sequence[TrialRecord]
) -> tuple[list[str], dict[tuple[Key, float], list[TrialRecord]]]:
    """The row factors (weight decay and seed excluded) and the trials of each (row key, weight decay)."""
    order, _ = _varied(spec)
    wd_varied = WEIGHT_DECAY in order
    factors = [f for f in order if f != WEIGHT_DECAY]
    groups: dict[tuple[Key, float], list[TrialRecord]] = defaultdict(list)
    for t in trials:
        key = tuple(_param(spec, t, f) for f in factors)
        groups[key, _weight_decay(spec, t, wd_varied)].append(t)
    return factors, groups


def _factor_table(spec: StudySpec, trials: Sequence[TrialRecord]) -> FactorTable | None:
    _, has_range = _varied(spec)
    if not trials or has_range:
        return None
    factors, groups = _groups(spec, trials)
    keys = sorted({k for k, _ in groups}, key=lambda k: _sort_key(spec, factors, k))
    wds = sorted({wd for _, wd in groups})
    rows = [
        FactorRow(
            label=_label(factors, key),
            factors=dict(zip(factors, key, strict=True)),
            cells=[_cell(spec, groups.get((key, wd), [])) for wd in wds],
        )
        for key in keys
    ]
    columns = [
        FactorColumn(label=weight_decay_label(wd), weight_decay=wd, best_row=_best_row(spec.resolved_mode, rows, i))
        for i, wd in enumerate(wds)
    ]
    return FactorTable(factors=factors, columns=columns, rows=rows)


def _seed_values(spec: StudySpec, trials: Sequence[TrialRecord]) -> list[tuple[Any, float]]:
    # (seed, value) of the finished trials with the metric: what a factor cell's mean is made of.
    return [
        (_plain(t.params).get(SEED), value)
        for t in trials
        if t.status == "finished" and (value := _metric(t, spec.metric)) is not None
    ]


def _comparisons(spec: StudySpec, trials: Sequence[TrialRecord], table: FactorTable) -> BaselineComparisons:
    """Every row of the factor table against the baseline row, column by column."""
    base = baseline_index(spec, [row.factors for row in table.rows])
    if base is None:
        wanted = spec.baseline or {ALPHA: 0.0}
        named = ", ".join(f"{k}={format_value(v)}" for k, v in wanted.items())
        note = f"no row of the factor table has {named}; name the reference row with the spec's `baseline` field"
        return BaselineComparisons(baseline=None, note=note)
    factors, groups = _groups(spec, trials)
    base_key = tuple(table.rows[base].factors[f] for f in factors)
    comparisons = [
        compare(
            row.label,
            column.weight_decay,
            _seed_values(spec, groups.get((tuple(row.factors[f] for f in factors), column.weight_decay), [])),
            _seed_values(spec, groups.get((base_key, column.weight_decay), [])),
            spec.resolved_mode,
        )
        for i, row in enumerate(table.rows)
        if i != base
        for column in table.columns
    ]
    return BaselineComparisons(baseline=table.rows[base].label, comparisons=comparisons)


def _alpha_points(spec: StudySpec, trials: Sequence[TrialRecord]) -> tuple[list[AlphaPoint], list[AlphaTrialPoint]]:
    """The α curve (means over finished trials) and the unfinished trials with a value, one point each."""
    order, _ = _varied(spec)
    if ALPHA not in order:
        return [], []
    wd_varied = WEIGHT_DECAY in order
    series_factors = [f for f in order if f not in (ALPHA, WEIGHT_DECAY)]
    groups: dict[tuple[Key, float, float], list[float]] = defaultdict(list)
    partial: list[tuple[Key, AlphaTrialPoint]] = []
    for t in trials:
        value, alpha = _metric(t, spec.metric), _param(spec, t, ALPHA)
        if value is None or not isinstance(alpha, float) or t.status == "failed":
            continue  # a failed trial's last value says how it broke, not how α does
        series, wd = tuple(_param(spec, t, f) for f in series_factors), _weight_decay(spec, t, wd_varied)
        if t.status == "finished":
            groups[series, wd, alpha].append(value)
        else:
            label = _label(series_factors, series)
            point = AlphaTrialPoint(
                series=label,
                weight_decay=wd,
                alpha=alpha,
                value=value,
                status=t.status,
                epochs=t.epochs,
                trial_id=t.trial_id,
            )
            partial.append((series, point))
    points = []
    for series, wd, alpha in sorted(groups, key=lambda g: (_sort_key(spec, series_factors, g[0]), g[1], g[2])):
        mean, std = _mean_std(groups[series, wd, alpha])
        label = _label(series_factors, series)
        points.append(
            AlphaPoint(series=label, weight_decay=wd, alpha=alpha, mean=mean, std=std, n=len(groups[series, wd, alpha]))
        )
    partial.sort(key=lambda sp: (_sort_key(spec, series_factors, sp[0]), sp[1].weight_decay, sp[1].alpha))
    return points, [p for _, p in partial]
