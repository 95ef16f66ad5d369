"""The report's differences from the baseline: 95 % CIs over seeds, checked against hand computations."""

from __future__ import annotations

import io
from typing import Any

import matplotlib.image
import pytest

from studies.comparison import paired_interval, t_quantile, welch_interval
from studies.errors import InvalidStudySpec
from studies.records import TrialRecord
from studies.report import build_report, render_markdown, render_plot_png
from studies.spec import StudySpec
from studies.specfile import parse_spec

METRIC = "median_test_error"
# Two-sided 95 % Student-t quantiles t(0.975, df) from a printed table (NIST/SEMATECH e-Handbook of Statistical
# Methods, 1.3.6.7.2 "Critical values of the Student's t distribution"), to three decimals; the hand
# computations below use df 4 to four: 2.7764 (Abramowitz & Stegun, Table 26.10: 2.776445).
T_TABLE = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 29: 2.045}

# ERM vs mixup, 5 seeds, the data paired by seed (the label-noise figures, made up per seed).
ERM = [17.0, 17.6, 17.2, 17.9, 17.3]
MIXUP = [13.2, 13.9, 13.1, 14.0, 13.5]
# By hand: d = MIXUP - ERM = -3.8, -3.7, -4.1, -3.9, -3.8; mean -19.3 / 5 = -3.86; deviations 0.06, 0.16, -0.24,
# -0.04, 0.06, squares sum 0.092, sd = sqrt(0.092 / 4) = 0.151658; se = sd / sqrt(5) = 0.067823;
# half width = 2.7764 × 0.067823 = 0.18831 -> [-4.04831, -3.67169], df 4.
PAIRED = (-3.86, -4.04831, -3.67169, 4.0)


def spec(**extra: Any) -> StudySpec:
    data = {
        "name": "ci",
        "dataset": {"name": "synthetic"},
        "model": {"name": "mlp"},
        "training": {"epochs": 3, "device": "cpu"},
        "search": {"space": {"alpha": [0.0, 1.0]}, "seeds": [0, 1, 2, 3, 4]},
        **extra,
    }
    return parse_spec(data)


def trials(values: dict[float, list[float]], seeds: dict[float, list[int]] | None = None) -> list[TrialRecord]:
    return [
        TrialRecord(
            trial_id=f"a{alpha}-s{seed}",
            params={"alpha": alpha, "seed": seed},
            status="finished",
            epochs=3,
            metrics={METRIC: value},
        )
        for alpha, column in values.items()
        for seed, value in zip((seeds or {}).get(alpha, range(len(column))), column, strict=True)
    ]


@pytest.mark.parametrize(("df", "expected"), T_TABLE.items())
def test_t_quantile_matches_the_printed_table(df: int, expected: float) -> None:
    assert t_quantile(df) == pytest.approx(expected, abs=5e-4)


def test_paired_interval_by_hand() -> None:
    mean, low, high, df = paired_interval(MIXUP, ERM)
    assert (mean, low, high, df) == pytest.approx(PAIRED, abs=1e-4)


def test_welch_interval_by_hand() -> None:
    # row 5, 6, 7 (mean 6, var 1), baseline 3, 4, 5 (mean 4, var 1): se = sqrt(1/3 + 1/3) = 0.816497,
    # Welch df = (2/3)^2 / ((1/3)^2 / 2 + (1/3)^2 / 2) = 4, half width 2.7764 × 0.816497 = 2.26692.
    diff, low, high, df = welch_interval([5.0, 6.0, 7.0], [3.0, 4.0, 5.0])
    assert (diff, low, high, df) == pytest.approx((2.0, -0.26692, 4.26692, 4.0), abs=1e-4)


def test_report_compares_each_row_with_erm_paired_by_seed() -> None:
    report = build_report(spec(), trials({0.0: ERM, 1.0: MIXUP}))
    result = report.comparisons
    assert result is not None
    assert result.baseline == "alpha=0"
    [cell] = result.comparisons
    assert (cell.row, cell.paired, cell.n, cell.n_baseline, cell.verdict) == ("alpha=1", True, 5, 5, "better")
    assert (cell.difference, cell.ci_low, cell.ci_high, cell.df) == pytest.approx(PAIRED, abs=1e-4)
    text = render_markdown(report)
    assert "## Difference from the baseline (alpha=0)" in text
    assert "| alpha=1 | −3.86 [−4.05, −3.67] (n=5 paired) **better** |" in text
    assert "Seeds 0, 1, 2, 3, 4: initialisation and batch order only" in text
    # The same values without the pairing (the seeds differ): Welch's wider interval, here still below 0.
    unpaired = build_report(spec(), trials({0.0: ERM, 1.0: MIXUP}, {1.0: [5, 6, 7, 8, 9]}))
    assert unpaired.comparisons is not None
    [cell] = unpaired.comparisons.comparisons
    assert (cell.paired, cell.n, cell.difference) == (False, 5, pytest.approx(-3.86))
    assert cell.ci_high is not None and cell.ci_low is not None
    assert cell.ci_high - cell.ci_low > 2 * (PAIRED[2] - PAIRED[1])


def test_a_named_baseline_and_too_few_seeds() -> None:
    report = build_report(spec(baseline={"alpha": 1.0}), trials({0.0: ERM, 1.0: MIXUP}))
    assert report.comparisons is not None
    [cell] = report.comparisons.comparisons
    assert (report.comparisons.baseline, cell.row, cell.verdict) == ("alpha=1", "alpha=0", "worse")
    assert (cell.difference, cell.ci_low, cell.ci_high) == pytest.approx((3.86, 3.67169, 4.04831), abs=1e-4)
    one_seed = build_report(spec(), trials({0.0: ERM[:1], 1.0: MIXUP[:1]}))
    assert one_seed.comparisons is not None
    [cell] = one_seed.comparisons.comparisons
    assert (cell.difference, cell.ci_low, cell.verdict) == (pytest.approx(-3.8), None, "too few seeds")
    assert "−3.80 (n=1 vs 1; too few seeds)" in render_markdown(one_seed)


def test_no_erm_row_says_so() -> None:
    only_mixup = spec(search={"space": {"alpha": [0.2, 1.0]}, "seeds": [0, 1]})
    report = build_report(only_mixup, trials({0.2: [1.0, 2.0], 1.0: [2.0, 3.0]}))
    assert report.comparisons is not None
    assert report.comparisons.baseline is None
    assert report.comparisons.note is not None and "alpha=0" in report.comparisons.note
    assert "No comparison: no row of the factor table has alpha=0" in render_markdown(report)


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        ({"alpha": 0.5}, "baseline.alpha: 0.5 is not one of its values [0.0, 1.0]"),
        ({"layer": "input"}, "baseline: 'layer' is not a list axis of search.space or 'variant'"),
    ],
)
def test_invalid_baseline_names_field_and_value(baseline: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidStudySpec, match=message.replace("[", r"\[").replace("]", r"\]")):
        spec(baseline=baseline)


def test_variants_baseline_and_the_forest_plot() -> None:
    variants = [{"name": "ERM", "alpha": 0.0}, {"name": "mixup", "alpha": 1.0}]
    study = spec(search={"variants": variants, "seeds": [0, 1, 2, 3, 4]})
    records = [
        TrialRecord(
            trial_id=f"{name}-{seed}",
            params={"variant": name, "seed": seed},
            status="finished",
            epochs=3,
            metrics={METRIC: value},
        )
        for name, column in (("ERM", ERM), ("mixup", MIXUP))
        for seed, value in enumerate(column)
    ]
    report = build_report(study, records)
    assert report.comparisons is not None
    assert report.comparisons.baseline == "ERM"  # found by the variant's alpha 0
    assert report.comparisons.comparisons[0].ci_low == pytest.approx(PAIRED[1], abs=1e-4)
    assert report.alpha_curve == []
    png = render_plot_png(report)  # no α curve, but an interval to draw
    assert png is not None
    image = matplotlib.image.imread(io.BytesIO(png))
    assert image.shape[0] > 100 and image.std() > 0.01
    dumped = report.model_dump(mode="json")  # what the API returns
    assert dumped["comparisons"]["comparisons"][0]["verdict"] == "better"
    assert dumped["seed_data"] is False


def test_a_table_of_only_the_baseline_has_no_comparison_section() -> None:
    erm_only = spec(search={"space": {"alpha": [0.0]}, "seeds": [0, 1]})
    report = build_report(erm_only, trials({0.0: [1.0, 2.0]}))
    assert report.comparisons is not None
    assert (report.comparisons.baseline, report.comparisons.comparisons) == ("all", [])
    assert "Difference from the baseline" not in render_markdown(report)
