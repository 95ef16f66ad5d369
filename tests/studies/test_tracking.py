"""MLflow records of a study (parent run, nested trial runs, batching, retries) read back as progress.

Against the local SQLite store and a real `mlflow server` on loopback.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient

from studies.progress import read_progress
from studies.specfile import parse_spec
from studies.tracking import (
    PARENT_TAG,
    SPEC_HASH_TAG,
    STUDY_ID_TAG,
    USER_TAG,
    existing_trial_runs,
    finish_study,
    open_study,
    prune_orphan_trials,
    spec_hash,
    use_wal,
)
from studies.trial_log import TrialLogWriter
from tests.studies.conftest import start_mlflow_server
from tests.support.processes import stop_process, wait_until

SPEC = parse_spec(
    {
        "name": "tracked",
        "dataset": {"name": "synthetic"},
        "model": {"name": "mlp"},
        "training": {"epochs": 3, "device": "cpu"},
        "search": {"space": {"alpha": [0.0, 0.4], "layer": ["input", "feature_map"]}},
    }
)


def write_two_trials(client: MlflowClient, study_id: str, artifact_root: Path | None) -> TrialLogWriter:
    study = open_study(client, SPEC, study_id, "ada", artifact_root)
    writer = TrialLogWriter(client, study, tick_s=0.05)
    writer.start_trial("t0", {"alpha": 0.4, "layer": "input", "seed": 0}, "t0")
    writer.start_trial("t1", {"alpha": 0.0, "layer": "feature_map", "seed": 0}, "t1")
    for epoch in (1, 2, 3):
        writer.log_metrics("t0", {"test_error": 10.0 - epoch, "epoch": float(epoch)}, step=epoch)
    writer.log_metrics("t1", {"test_error": 20.0, "epoch": 1.0}, step=1)
    writer.end_trial("t0", "FINISHED", "finished")
    writer.end_trial("t1", "FAILED", "failed", error="TrainingDiverged: loss is nan at epoch 1")
    assert writer.close(timeout_s=30)
    return writer


def check_records(uri: str, study_id: str) -> None:
    client = MlflowClient(uri)
    progress = read_progress(uri, study_id)
    assert progress is not None
    parent = client.get_run(progress.parent_run_id)
    assert parent.data.tags[STUDY_ID_TAG] == study_id
    assert parent.data.tags[USER_TAG] == "ada"
    assert parent.data.tags[SPEC_HASH_TAG] == spec_hash(SPEC)
    assert parent.data.params["training.epochs"] == "3"
    assert progress.spec == SPEC  # read back from the parent's spec.yaml artifact
    by_id = {t.trial_id: t for t in progress.trials}
    assert set(by_id) == {"t0", "t1"}
    t0, t1 = by_id["t0"], by_id["t1"]
    assert t0.params == {"alpha": 0.4, "layer": "input", "seed": 0}  # typed back from MLflow's text params
    assert (t0.status, t0.epochs, t0.metrics["test_error"]) == ("finished", 3, 7.0)
    assert (t1.status, t1.error) == ("failed", "TrainingDiverged: loss is nan at epoch 1")
    history = client.get_metric_history(t0.run_id, "test_error")
    assert [(m.step, m.value) for m in history] == [(1, 9.0), (2, 8.0), (3, 7.0)]
    for trial in (t0, t1):
        run = client.get_run(trial.run_id)
        assert run.data.tags[PARENT_TAG] == progress.parent_run_id
    assert client.get_run(t1.run_id).info.status == "FAILED"


def test_local_store_records_and_progress(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    write_two_trials(client, "study-a", tmp_path / "artifacts")
    check_records(uri, "study-a")
    assert read_progress(uri, "no-such-study") is None


def test_a_prepared_local_store_commits_in_wal_mode_without_a_sync_per_commit(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    use_wal(uri)
    with contextlib.closing(sqlite3.connect(tmp_path / "other.db")) as plain:
        default = plain.execute("PRAGMA synchronous").fetchone()[0]
    assert default != 1
    # MLflow's store builds its engine like this; the setting rides on the pool's connections.
    with sqlalchemy.create_engine(uri).connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    with sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'other.db'}").connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == default  # other databases untouched
    write_two_trials(MlflowClient(uri), "study-w", tmp_path / "artifacts")
    check_records(uri, "study-w")


def test_a_running_trial_is_held_until_it_ends_or_its_writes_are_due(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    study = open_study(client, SPEC, "study-h", None, tmp_path / "artifacts")
    writer = TrialLogWriter(client, study, hold_s=60, tick_s=0.02, direct_writes=False)  # the client's calls
    writer.start_trial("short", {"alpha": 0.4}, "short")
    for epoch in (1, 2, 3):
        writer.log_metrics("short", {"test_error": 10.0 - epoch}, step=epoch)
    time.sleep(0.5)  # many ticks, all inside the hold: nothing written yet
    assert existing_trial_runs(client, study) == {} and writer.calls == 0
    writer.end_trial("short", "FINISHED", "finished")  # ended: due at once, well inside the hold
    wait_until(lambda: "short" in existing_trial_runs(client, study), 20, 0.05, "the ended trial's run")
    run = client.get_run(writer.run_ids["short"])
    wait_until(lambda: client.get_run(writer.run_ids["short"]).info.status == "FINISHED", 20, 0.05, "its end")
    # create (with the tags), one batch (params and all three epochs), terminate
    assert writer.calls == 3
    assert [m.value for m in client.get_metric_history(run.info.run_id, "test_error")] == [9.0, 8.0, 7.0]
    finished = client.get_run(run.info.run_id).info
    assert finished.end_time - finished.start_time >= 500  # the trial's own start and end, not the write's
    assert writer.close(timeout_s=30)
    # CPU time of the calls is part of their wall time, and not nothing
    assert 0 < writer.busy_cpu_seconds <= writer.busy_seconds + 0.05

    lagging = TrialLogWriter(client, study, hold_s=0.3, tick_s=0.02)
    lagging.start_trial("long", {"alpha": 0.0}, "long")
    lagging.log_metrics("long", {"test_error": 30.0}, step=1)
    # still running, but its writes have waited hold_s: written, and the run stays RUNNING
    wait_until(lambda: "long" in lagging.run_ids, 20, 0.05, "the running trial's run")

    def logged() -> list[float]:
        return [m.value for m in client.get_metric_history(lagging.run_ids["long"], "test_error")]

    wait_until(lambda: logged() == [30.0], 20, 0.05, "its first epoch")
    assert client.get_run(lagging.run_ids["long"]).info.status == "RUNNING"
    assert lagging.close(timeout_s=30)


def test_reopening_a_study_reuses_its_runs_and_finishing_attaches_the_report(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    first = open_study(client, SPEC, "study-b", None, tmp_path / "artifacts")
    writer = TrialLogWriter(client, first, tick_s=0.05)
    writer.start_trial("t0", {"alpha": 0.4}, "t0")
    writer.start_trial("t9", {"alpha": 0.0}, "t9")
    assert writer.close(timeout_s=30)
    again = open_study(client, SPEC, "study-b", None, tmp_path / "artifacts")
    assert again == first
    resumed = TrialLogWriter(client, again, tick_s=0.05)
    assert set(resumed.run_ids) == {"t0", "t9"}
    resumed.start_trial("t0", {"alpha": 0.4}, "t0")  # same config: same run
    resumed.start_trial("t9", {"alpha": 1.0}, "t9")  # the id now means another config: a new run
    assert resumed.close(timeout_s=30)
    assert resumed.run_ids["t0"] == writer.run_ids["t0"]
    assert resumed.run_ids["t9"] != writer.run_ids["t9"]
    assert client.get_run(writer.run_ids["t9"]).info.lifecycle_stage == "deleted"
    assert prune_orphan_trials(client, again, {"t0"}) == 1
    finish_study(client, again, "succeeded", [("report.md", "# hello"), ("plot.png", b"\x89PNG")])
    progress = read_progress(uri, "study-b")
    assert progress is not None
    assert progress.status == "succeeded"
    assert [t.trial_id for t in progress.trials] == ["t0"]
    names = {f.path for f in client.list_artifacts(first.parent_run_id)}
    assert {"spec.yaml", "report.md", "plot.png"} <= names
    assert client.get_run(first.parent_run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_mlflow_server_records_and_progress(mlflow_server: str) -> None:
    write_two_trials(MlflowClient(mlflow_server), "study-c", None)
    check_records(mlflow_server, "study-c")


@pytest.mark.slow
def test_a_briefly_unreachable_server_delays_writes_but_loses_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    server, url = start_mlflow_server(tmp_path / "server")
    port = int(url.rsplit(":", 1)[1])
    client = MlflowClient(url)
    study = open_study(client, SPEC, "study-d", None, None)
    writer = TrialLogWriter(client, study, tick_s=0.05)
    stop_process(server)
    try:
        # The server is gone: the producer side must not block or raise.
        writer.start_trial("t0", {"alpha": 0.4}, "t0")
        for epoch in (1, 2):
            writer.log_metrics("t0", {"test_error": 5.0 * epoch}, step=epoch)
        writer.end_trial("t0", "FINISHED", "finished")
        assert writer._thread.is_alive()
        server, _ = start_mlflow_server(tmp_path / "server", port=port)
        assert writer.close(timeout_s=120)
        progress = read_progress(url, "study-d")
        assert progress is not None
        [trial] = progress.trials
        assert (trial.status, trial.metrics["test_error"]) == ("finished", 10.0)
        assert [m.value for m in client.get_metric_history(trial.run_id, "test_error")] == [5.0, 10.0]
    finally:
        stop_process(server)


def test_a_long_param_is_cut_to_mlflows_limit_and_a_resume_still_finds_its_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    study = open_study(client, SPEC, "study-l", None, tmp_path / "artifacts")
    long_value = "x" * 7000
    writer = TrialLogWriter(client, study, tick_s=0.02)
    writer.start_trial("t0", {"note": long_value}, "t0")
    assert writer.close(timeout_s=30)
    assert client.get_run(writer.run_ids["t0"]).data.params["note"] == "x" * 6000
    resumed = TrialLogWriter(client, study, tick_s=0.02)
    resumed.start_trial("t0", {"note": long_value}, "t0")  # the same configuration: the same run
    assert resumed.close(timeout_s=30)
    assert resumed.run_ids["t0"] == writer.run_ids["t0"]
