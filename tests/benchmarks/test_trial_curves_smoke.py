"""benchmarks/trial_curves.py runs end to end (``--quick``) and prints its JSON line (shape only)."""

from __future__ import annotations

from tests.support.benchmarks import assert_positive_numbers, run_quick


def test_trial_curves_quick() -> None:
    result = run_quick("trial_curves.py")
    # 5 trials × 3 epochs, every third stopped after 3 // 3 = 1 epoch: 4 × 3 + 1 points
    assert (result["trials"], result["epochs"], result["points"]) == (5, 3, 13)
    keys = [
        "trial_curves_s",
        "per_run_history_s",
        "curves_for_s",
        "learning_curves_svg_s",
        "alpha_curve_svg_s",
        "report_png_s",
    ]
    assert_positive_numbers(result, [*keys, "learning_curves_svg_bytes", "alpha_curve_svg_bytes", "report_png_bytes"])
