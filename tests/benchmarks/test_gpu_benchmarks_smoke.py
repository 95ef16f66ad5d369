"""The GPU benchmarks (issue 6) run end to end with ``--quick`` and print one JSON line.

On a machine without CUDA they run on the CPU and say ``"gpu": null``; the
figures are then meaningless, so only their shape is checked, never a goal.
"""

from __future__ import annotations

import pytest
import torch

from tests.support.benchmarks import positive, run_quick

pytestmark = pytest.mark.slow  # each script imports torch in fresh processes: about a minute on 2 busy cores


def test_gpu_throughput_reports_every_arm_and_the_derived_figures() -> None:
    result = run_quick("gpu_throughput.py")
    assert result["benchmark"] == "gpu_throughput"
    assert result["gpu"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    for key in ("best_img_per_s", "ours_vs_reference", "paper_run_minutes", "paper_run_minutes_with_eval"):
        assert positive(result[key]), (key, result[key])
    assert 0 < result["mixing_share"] < 1
    arms = {"reference", "ours_fp32", "ours_bf16_cl", "ours_compile", "ours_graph"}
    batches = [str(b) for b in result["batch_sizes"]]
    assert sorted(result["img_per_s"]) == sorted(batches)
    for batch in batches:
        rates = result["img_per_s"][batch]
        assert set(rates) == arms
        compiled = rates.pop("ours_compile")
        assert all(positive(v) for v in rates.values()), rates
        assert (compiled is None) == ("ours_compile" in result["skipped"])
        assert all(0 < share < 1 for share in result["mixing_share_by"][batch].values())
        # The headline ratio: the fastest of our arms over the reference loop, at the same batch size.
        best = max(v for arm, v in rates.items() if arm != "reference")
        want = best / rates["reference"]
        assert result["ours_vs_reference_by_batch"][batch] == pytest.approx(want, rel=0.01)
    # 200 epochs × 50 000 images at the best rate, in minutes.
    assert result["paper_run_minutes"] == pytest.approx(200 * 50_000 / result["best_img_per_s"] / 60, rel=0.01)
    assert result["best_img_per_s"] == max(
        v for rates in result["img_per_s"].values() for arm, v in rates.items() if arm != "reference" and v
    )


def test_gpu_packing_reports_the_gain_of_concurrent_trials() -> None:
    result = run_quick("gpu_packing.py")
    assert result["benchmark"] == "gpu_packing"
    assert result["gpu"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    assert positive(result["packing_gain"])
    assert positive(result["best_packing_gain"])
    levels = result["levels"]
    assert set(levels) == {"1", "2"}
    for processes, level in levels.items():
        assert level["processes"] == int(processes)
        assert level["trials"] == result["trials"]  # every level trains all the trials
        assert positive(level["img_per_s"]) and positive(level["trials_per_hour"])
        # The trainer inside each worker resolved "auto" itself: CUDA where there is one, else the CPU.
        assert level["devices"] == (["cuda:0"] if torch.cuda.is_available() else ["cpu"])
    gain = levels[str(result["packing_gain_at"])]["img_per_s"] / levels["1"]["img_per_s"]
    assert result["packing_gain"] == pytest.approx(gain, rel=0.01)
