"""The suite's quick mode end to end: a real study through the engine (local Ray, a real MLflow store), its
JSON line checked against a hand computation from the trial records."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from studies.progress import read_progress
from studies.reproduce import get, run_experiment
from studies.settings import StudySettings

pytestmark = pytest.mark.slow
T1 = 12.7062  # t(0.975, 1): two seeds, one degree of freedom (NIST/SEMATECH e-Handbook, 1.3.6.7.2)


def test_the_label_noise_experiment_runs_quick_and_records_its_claims(
    local_ray: None, settings: StudySettings, tmp_path: Path
) -> None:
    experiment = get("table2-label-noise")
    results = tmp_path / "results.jsonl"
    printed: list[str] = []
    line = run_experiment(experiment, quick=True, settings=settings, results=results, echo=printed.append)

    assert line["status"] == "succeeded", line
    assert json.loads(results.read_text()) == line == json.loads(printed[0])  # one line, the same everywhere
    assert line["quick"] is True and line["experiment"] == "table2-label-noise"
    assert line["trials"]["finished"] == line["trials"]["total"] == 8  # 4 α × 2 seeds
    assert line["machine"]["cores"] and len(line["machine"]["load_before"]) == 3
    assert line["settings"]["seeds"] == [0, 1] and line["settings"]["seed_data"] is True
    assert len(line["claims"]) == len(experiment.claims)

    # The trials as MLflow recorded them: each claim's numbers by hand, paired by seed.
    progress = read_progress(settings.resolved_tracking_uri, line["study_id"])
    assert progress is not None and progress.status == "succeeded"
    values: dict[tuple[str, float, int], float] = {}
    for trial in progress.trials:
        alpha, seed = float(trial.params["alpha"]), int(trial.params["seed"])
        for metric, value in trial.metrics.items():
            values[metric, alpha, seed] = value
    for claim in line["claims"]:
        alpha, metric = claim["row"]["alpha"], claim["metric"]
        diffs = [values[metric, alpha, s] - values[metric, 0.0, s] for s in (0, 1)]
        half = T1 * statistics.stdev(diffs) / math.sqrt(2)
        assert claim["difference"] == pytest.approx(statistics.fmean(diffs), abs=1e-9), claim
        assert claim["ci_low"] == pytest.approx(statistics.fmean(diffs) - half, abs=1e-3), claim
        assert claim["ci_high"] == pytest.approx(statistics.fmean(diffs) + half, abs=1e-3), claim
        assert claim["ours_baseline"] == pytest.approx(statistics.fmean(values[metric, 0.0, s] for s in (0, 1)))
        assert claim["ours_row"] == pytest.approx(statistics.fmean(values[metric, alpha, s] for s in (0, 1)))
        assert (claim["n"], claim["paired"]) == (2, True)
        holds_zero = claim["ci_low"] <= 0 <= claim["ci_high"]
        assert (claim["verdict"] == "not resolved (CI includes 0)") == holds_zero, claim
    # FGSM only after the last epoch; ECE every epoch.
    client = MlflowClient(settings.resolved_tracking_uri)
    run = next(t.run_id for t in progress.trials)
    assert [m.step for m in client.get_metric_history(run, "fgsm_test_error")] == [2]
    assert len(client.get_metric_history(run, "test_ece")) == 2
