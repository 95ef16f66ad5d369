"""trial_curves: every trial's per-epoch metric, read back from a real MLflow store."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from studies.curves import curves_for, trial_curves
from studies.records import TrialRecord
from studies.store import prepare_store
from studies.tracking import PARENT_TAG, STATUS_TAG, TRIAL_ID_TAG

# trial id → (status, test_error per epoch 1, 2, ...)
TRIALS = {
    "t0": ("finished", [50.0, 30.0, 20.0, 15.0]),
    "t1": ("stopped", [55.0, 40.0]),
    "t2": ("failed", [60.0, math.nan]),
    "t3": ("running", []),
}


def write_study(client: MlflowClient, name: str) -> tuple[str, str, dict[str, str]]:
    """A study as the driver writes it: a parent run and one child run per trial, metrics per epoch."""
    experiment_id = client.create_experiment(name)
    parent = client.create_run(experiment_id, run_name=name).info.run_id
    run_ids = {}
    for i, (trial_id, (status, values)) in enumerate(TRIALS.items()):
        tags = {PARENT_TAG: parent, TRIAL_ID_TAG: trial_id, STATUS_TAG: status}
        run = client.create_run(
            experiment_id, tags=tags, run_name=f"alpha={0.2 * (i + 1):g}, seed={i}", start_time=1000 + i
        )
        run_ids[trial_id] = run.info.run_id
        metrics = [Metric("test_error", v, 1000 + e, e) for e, v in enumerate(values, start=1)]
        metrics += [Metric("train_loss", 1.0 / e, 1000 + e, e) for e in range(1, len(values) + 1)]
        # a replayed epoch (a trial restored from a checkpoint) logs a later value at a step it has: the first counts
        metrics += [Metric("test_error", 99.0, 2000, 1)] if values else []
        client.log_batch(run.info.run_id, metrics=metrics, params=[])
        client.log_param(run.info.run_id, "alpha", str(0.2 * (i + 1)))
    return experiment_id, parent, run_ids


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_trial_curves_read_every_trials_history(tmp_path: Path, store: str, request: pytest.FixtureRequest) -> None:
    if store == "sqlite":  # a database store: every history in one query
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        prepare_store(uri, tmp_path / "artifacts")
    else:  # an `mlflow server`: MLflow's client has no bulk read over REST, so run by run
        uri = request.getfixturevalue("mlflow_server")
    client = MlflowClient(uri)
    experiment_id, parent, run_ids = write_study(client, "curves")
    write_study(client, "other")  # another study's runs are not this one's

    curves = trial_curves(uri, parent)
    assert [c.trial_id for c in curves] == ["t0", "t1", "t2", "t3"]
    assert [c.run_id for c in curves] == [run_ids[t] for t in TRIALS]
    assert [c.status for c in curves] == ["finished", "stopped", "failed", "running"]
    assert curves[0].points == [(1, 50.0), (2, 30.0), (3, 20.0), (4, 15.0)]
    assert curves[1].points == [(1, 55.0), (2, 40.0)]
    assert curves[2].points == [(1, 60.0)]  # the NaN of the epoch it broke at is left out
    assert curves[3].points == []
    assert (curves[1].label, curves[1].params) == ("alpha=0.4, seed=1", {"alpha": pytest.approx(0.4)})

    assert trial_curves(uri, parent, metric="train_loss", experiment_id=experiment_id)[0].points[1] == (2, 0.5)

    # the same from records the caller has read already (read_progress): histories only
    records = [TrialRecord("t1", {"alpha": 0.4}, "stopped", run_id=run_ids["t1"]), TrialRecord("t9", {}, "pending")]
    assert [(c.trial_id, c.label, c.status, c.points) for c in curves_for(uri, records)] == [
        ("t1", "alpha=0.4", "stopped", [(1, 55.0), (2, 40.0)]),
        ("t9", "t9", "pending", []),
    ]


def test_no_store_yet_is_no_curve(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    assert trial_curves(uri, "0" * 32) == []
    assert not (tmp_path / "absent.db").exists()  # a reader never creates the store
