"""Trial states and histories after a stop, a retry and a resume, in a real MLflow (SQLite) store.

A study that has ended has no running trial (the driver closes what a graceful stop cut short; a driver
gone for good is settled by :func:`studies.settle.settle_study`), and a trial's history has one value per
(key, step) however often its epochs were replayed from a checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from studies.cli import app
from studies.engine import _outcome
from studies.progress import read_progress
from studies.records import TrialRecord
from studies.settle import close_open_trials, settle_study
from studies.specfile import parse_spec
from studies.tracking import open_study, use_wal
from studies.trial_log import TrialLogWriter

SPEC = parse_spec(
    {
        "name": "states",
        "dataset": {"name": "synthetic"},
        "model": {"name": "mlp"},
        "training": {"epochs": 4, "device": "cpu"},
        "search": {"space": {"alpha": [0.0, 0.4, 1.0]}},
    }
)
PARAMS = {"t0": {"alpha": 0.0}, "t1": {"alpha": 0.4}, "t2": {"alpha": 1.0}}


def store(tmp_path: Path) -> tuple[str, MlflowClient]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    use_wal(uri)
    return uri, MlflowClient(uri)


def epochs(writer: TrialLogWriter, trial_id: str, steps: range) -> None:
    for step in steps:
        # A replayed epoch trains again from an earlier state: its value differs from the first time.
        writer.log_metrics(trial_id, {"test_error": 50.0 - step + 0.1 * len(steps), "epoch": float(step)}, step=step)


def metric_rows(uri: str) -> dict[tuple[str, str, int], int]:
    """(run, key, step) → how many values the store holds for it."""
    path = uri.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT run_uuid, key, step, COUNT(*) FROM metrics GROUP BY run_uuid, key, step").fetchall()
    return {(run, key, step): count for run, key, step, count in rows}


def record(trial_id: str, status: str, epochs_done: int = 0) -> TrialRecord:
    return TrialRecord(trial_id, PARAMS[trial_id], status, epochs_done, {"epoch": float(epochs_done)})  # type: ignore[arg-type]


@pytest.mark.parametrize("direct_writes", [True, False])
def test_replayed_epochs_are_recorded_once_per_step(tmp_path: Path, direct_writes: bool) -> None:
    uri, client = store(tmp_path)
    study = open_study(client, SPEC, "replays", None, tmp_path / "art")
    # A worker died after epoch 3 of t0 (already written), the retry restored epoch 1's checkpoint; t1
    # replayed within one hold window (nothing written yet: a whole trial in one go).
    writer = TrialLogWriter(client, study, hold_s=60.0, tick_s=60.0, direct_writes=direct_writes)
    writer.start_trial("t0", PARAMS["t0"], "t0")
    epochs(writer, "t0", range(1, 4))
    assert writer._flush(everything=True)
    epochs(writer, "t0", range(2, 4))
    writer.start_trial("t1", PARAMS["t1"], "t1")
    epochs(writer, "t1", range(1, 3))
    epochs(writer, "t1", range(1, 5))
    writer.end_trial("t1", "FINISHED", "finished")
    assert writer.close(timeout_s=30)
    # The driver was killed; the resumed driver's t0 restores epoch 2 and runs to the end, and settle()
    # writes the final epoch of t1 again (it ended out of the new driver's sight).
    resumed = TrialLogWriter(client, open_study(client, SPEC, "replays", None, None), direct_writes=direct_writes)
    resumed.start_trial("t0", PARAMS["t0"], "t0")
    epochs(resumed, "t0", range(3, 5))
    resumed.end_trial("t0", "FINISHED", "finished")
    resumed.settle([record("t1", "finished", 4)])
    assert resumed.close(timeout_s=30)

    rows = metric_rows(uri)
    assert set(rows.values()) == {1}, {k: v for k, v in rows.items() if v > 1}
    progress = read_progress(uri, "replays")
    assert progress is not None
    for trial in progress.trials:
        assert trial.status == "finished"
        history = client.get_metric_history(trial.run_id or "", "test_error")
        assert sorted(m.step for m in history) == [1, 2, 3, 4]
    t0 = next(t for t in progress.trials if t.trial_id == "t0")
    first_epoch_3 = 50.0 - 3 + 0.1 * 3  # the value written first is the one kept
    assert [m.value for m in client.get_metric_history(t0.run_id or "", "test_error") if m.step == 3] == [
        pytest.approx(first_epoch_3)
    ]


def test_a_graceful_stop_closes_interrupted_trials_and_a_resume_reopens_them(tmp_path: Path) -> None:
    uri, client = store(tmp_path)
    study = open_study(client, SPEC, "stopped", None, tmp_path / "art")
    writer = TrialLogWriter(client, study, tick_s=0.05)
    for trial_id in ("t0", "t1"):
        writer.start_trial(trial_id, PARAMS[trial_id], trial_id)
        epochs(writer, trial_id, range(1, 3))
    writer.end_trial("t1", "FINISHED", "finished")
    assert writer.close(timeout_s=30)
    # The stop interrupted t0 (Tune calls nothing back for it); t2 was created by the searcher, never started.
    assert close_open_trials(client, study) == 1
    assert close_open_trials(client, study) == 0

    progress = read_progress(uri, "stopped")
    assert progress is not None
    by_id = {t.trial_id: t for t in progress.trials}
    assert set(by_id) == {"t0", "t1"}  # a trial that never started gets no run
    assert (by_id["t0"].status, by_id["t1"].status) == ("cancelled", "finished")
    assert client.get_run(by_id["t0"].run_id or "").info.status == "KILLED"
    assert client.get_run(by_id["t1"].run_id or "").info.status == "FINISHED"

    resumed = TrialLogWriter(client, open_study(client, SPEC, "stopped", None, None), tick_s=0.05)
    resumed.start_trial("t0", PARAMS["t0"], "t0")
    epochs(resumed, "t0", range(3, 5))
    resumed.end_trial("t0", "FINISHED", "finished")
    assert resumed.close(timeout_s=30)
    t0 = next(t for t in (read_progress(uri, "stopped") or progress).trials if t.trial_id == "t0")
    assert (t0.run_id, t0.status, t0.epochs) == (by_id["t0"].run_id, "finished", 4)
    assert client.get_run(t0.run_id or "").info.status == "FINISHED"


def test_settle_study_closes_what_a_driver_gone_for_good_left_open(tmp_path: Path) -> None:
    uri, client = store(tmp_path)
    study = open_study(client, SPEC, "killed", None, tmp_path / "art")
    writer = TrialLogWriter(client, study, tick_s=0.05)
    for trial_id in ("t0", "t1"):
        writer.start_trial(trial_id, PARAMS[trial_id], trial_id)
        epochs(writer, trial_id, range(1, 3))
    writer.end_trial("t1", "FINISHED", "finished")
    assert writer.close(timeout_s=30)  # then the driver was killed: t0 and the parent run stay open
    before = read_progress(uri, "killed")
    assert before is not None and before.status == "running"
    assert sorted(t.status for t in before.trials) == ["finished", "running"]

    settled = settle_study(uri, "killed", "failed", SPEC)
    assert settled is not None
    assert settled.status == "failed"
    assert sorted(t.status for t in settled.trials) == ["cancelled", "finished"]
    after = read_progress(uri, "killed")
    assert after is not None and after.status == "failed"
    by_id = {t.trial_id: t for t in after.trials}
    assert (by_id["t0"].status, by_id["t1"].status) == ("cancelled", "finished")
    assert client.get_run(by_id["t0"].run_id or "").info.status == "KILLED"
    assert client.get_run(study.parent_run_id).info.status == "FAILED"
    # Idempotent; a closed parent keeps the outcome its driver gave it.
    again = settle_study(uri, "killed", "cancelled", SPEC)
    assert again is not None and again.status == "failed"
    assert settle_study(uri, "no-such-study", "failed") is None
    with pytest.raises(ValueError, match="outcome"):
        settle_study(uri, "killed", "running")


def test_settle_study_leaves_a_study_its_driver_closed_as_it_is(tmp_path: Path) -> None:
    uri, client = store(tmp_path)
    study = open_study(client, SPEC, "closed", None, tmp_path / "art")
    writer = TrialLogWriter(client, study, tick_s=0.05)
    writer.start_trial("t0", PARAMS["t0"], "t0")
    writer.end_trial("t0", "FINISHED", "finished")
    assert writer.close(timeout_s=30)
    client.set_tag(study.parent_run_id, "mixup_studies.status", "succeeded")
    client.set_terminated(study.parent_run_id, "FINISHED")
    settled = settle_study(uri, "closed", "succeeded", SPEC)
    assert settled is not None and [t.status for t in settled.trials] == ["finished"]
    assert client.get_run(study.parent_run_id).info.status == "FINISHED"


def test_a_stop_after_every_trial_ended_is_too_late_to_cancel_the_study() -> None:
    finished = [record(t, "finished", 4) for t in ("t0", "t1", "t2")]
    assert _outcome(finished, interrupted=True, total=3) == "succeeded"  # the stop cut nothing short
    assert _outcome(finished[:2], interrupted=True, total=3) == "cancelled"  # t2 never ran
    assert _outcome([*finished[:2], record("t2", "cancelled", 1)], interrupted=True, total=3) == "cancelled"
    assert _outcome([*finished[:2], record("t2", "running", 1)], interrupted=False, total=3) == "cancelled"
    assert _outcome(finished[:2], interrupted=False, total=3) == "succeeded"  # e.g. a time budget ran out


def test_the_report_command_of_an_ended_study_shows_no_running_trial(tmp_path: Path) -> None:
    uri, client = store(tmp_path)
    study = open_study(client, SPEC, "reported", None, tmp_path / "art")
    writer = TrialLogWriter(client, study, tick_s=0.05)
    writer.start_trial("t0", PARAMS["t0"], "t0")
    epochs(writer, "t0", range(1, 3))
    assert writer.close(timeout_s=30)
    # The parent run closed as cancelled, a trial's run still open (a store written before trials were closed).
    client.set_tag(study.parent_run_id, "mixup_studies.status", "cancelled")
    env = {"MIXUP_STUDIES_TRACKING_URI": uri}
    report = json.loads(CliRunner().invoke(app, ["report", "reported", "--format", "json"], env=env).output)
    assert (report["study_status"], report["counts"]["running"], report["counts"]["cancelled"]) == ("cancelled", 0, 1)
    markdown = CliRunner().invoke(app, ["report", "reported"], env=env).output
    assert "1 trial: 1 cancelled (cancelled)." in markdown
