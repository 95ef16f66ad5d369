"""The benchmark scripts run end to end (``--quick``) and print their one JSON line.

Only the shape of the output is checked: the performance goals are the
benchmarks' business (benchmarks/RESULTS.md), not the test suite's.
"""

from __future__ import annotations

import pytest

from tests.support.benchmarks import assert_positive_numbers, run_quick


@pytest.mark.parametrize(
    ("script", "keys"),
    [
        (
            "mixup_op.py",
            [
                "ours_vs_timm",
                "ours_vs_reference",
                *(f"{arm}_us_b{b}" for arm in ("ours", "reference", "timm") for b in (128, 1024)),
                *(f"ours_vs_{other}_b{b}" for other in ("timm", "reference") for b in (128, 1024)),
            ],
        ),
        (
            "train_throughput.py",
            [
                "ours_vs_plain",
                "ours_vs_reference",
                "ours_noaug_vs_reference",
                "ours_aug_vs_plain",
                "ours_img_per_s",
                "ours_aug_img_per_s",
                "plain_img_per_s",
                "reference_img_per_s",
            ],
        ),
    ],
)
def test_quick_run_prints_one_json_line_of_positive_figures(script: str, keys: list[str]) -> None:
    result = run_quick(script)
    assert_positive_numbers(result, keys)
    machine = result["machine"]
    assert machine["device"] == "cpu"
    assert machine["cpu_count"] >= 1
    assert machine["torch"]


def test_train_throughput_times_every_arm_on_the_same_steps() -> None:
    result = run_quick("train_throughput.py")
    rounds = result["rounds_img_per_s"]
    assert set(rounds) == {"plain", "ours", "ours_aug", "reference"}
    assert all(len(values) == result["rounds"] for values in rounds.values())
    # Each headline ratio is the median of per-round ratios: with one round, the ratio of that round.
    (plain,), (ours,), (ours_aug,), (reference,) = (rounds[k] for k in ("plain", "ours", "ours_aug", "reference"))
    assert result["ours_vs_plain"] == pytest.approx(ours / plain, rel=0.01)
    assert result["ours_vs_reference"] == pytest.approx(ours_aug / reference, rel=0.01)


def test_model_cost_quick() -> None:
    result = run_quick("model_cost.py")
    assert (result["model"], result["width"], result["params"]) == ("lenet_fc", 0.5, 206_922)
    assert_positive_numbers(result, ["step_s", "epoch_10k_s", "epoch_60k_s"])
