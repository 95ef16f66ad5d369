"""``benchmarks/study_scale.py --quick`` runs end to end against the real service and a loopback Ray cluster.

One study of 20 minimal trials through ``mixup-studies serve`` (its dispatcher and local launcher), whose driver
joins a ``ray start --head`` the script starts with 64 logical CPUs and 16 GPUs. Only the output's shape and its
internal consistency are checked here; the goals (driver CPU per trial flat in N, /trials p99, visibility within
10 s, ...) are the benchmark's business (benchmarks/RESULTS.md), not the test suite's.
"""

from __future__ import annotations

import pytest

from tests.support.benchmarks import assert_positive_numbers, run_quick

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_study_scale_quick() -> None:
    summary = run_quick("study_scale.py", timeout_s=840, only_line=False)
    assert summary["benchmark"] == "study_scale" and summary["summary"] is True
    assert summary["sizes"] == [20] and summary["all_accounted"] is True
    (line,) = summary["runs"]
    assert line["mode"] == "single" and line["trials"] == 20 and line["studies"] == 1
    assert line["accounted"] is True
    assert_positive_numbers(
        line,
        ["wall_s", "ideal_s", "wall_over_ideal", "driver_cpu_s_per_trial", "driver_peak_rss_mb",
         "dispatcher_peak_rss_mb", "mlflow_bytes_per_trial", "mlflow_rows_per_trial", "report_get_s"],
    )  # fmt: skip
    assert line["wall_over_ideal"] == pytest.approx(line["wall_s"] / line["ideal_s"], rel=2e-2)
    assert line["drivers"] == 1  # the one study's driver, found as the dispatcher's child
    # A trial's record is one run with its params, metrics and tags: at least one run row per trial.
    assert line["mlflow_rows_per_trial_by_table"]["runs"] >= 1
    assert line["mlflow_rows_per_trial_by_table"]["params"] >= 1
    # Every trial's end was seen in /trials, after MLflow recorded it (a lag can't be negative beyond clock jitter).
    assert line["visible_s"]["seen"] == line["visible_s"]["of"] == 20
    assert line["visible_s"]["p50"] > -0.5
    for sampled in (line["study_get"], line["trials_page"]):
        assert sampled["n"] > 0 and set(sampled["statuses"]) == {"200"}
    assert line["ray_cpu_s"].keys() == {"gcs", "node0"}
    assert sum(line["trial_actors_per_node"].values()) >= 1  # trials ran in the cluster's workers
    assert summary["driver_cpu_per_trial_ratio"] == [1.0]
    assert isinstance(summary["machine"], str) and summary["machine"]
