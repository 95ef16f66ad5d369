"""ProgressFollower: after a first full read, a read fetches only the trial runs that may have changed.

Against a real local MLflow store (SQLite), with the runs written the way the driver writes them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from studies.progress import ProgressFollower
from studies.specfile import parse_spec
from studies.tracking import PARENT_TAG, STATUS_TAG, TRIAL_ID_TAG, StudyRun, open_study

SPEC = parse_spec(
    {
        "name": "followed",
        "dataset": {"name": "synthetic"},
        "model": {"name": "mlp"},
        "training": {"epochs": 1, "device": "cpu"},
        "search": {"space": {"alpha": [0.0, 0.4]}, "seeds": list(range(50))},
    }
)


def start(client: MlflowClient, study: StudyRun, trial_id: str) -> str:
    tags = {PARENT_TAG: study.parent_run_id, TRIAL_ID_TAG: trial_id, STATUS_TAG: "running"}
    return client.create_run(study.experiment_id, tags=tags, run_name=trial_id).info.run_id


def end(client: MlflowClient, run_id: str, error: float, end_ms: int | None = None) -> None:
    client.log_metric(run_id, "test_error", error, step=1)
    client.set_tag(run_id, STATUS_TAG, "finished")
    client.set_terminated(run_id, "FINISHED", end_time=end_ms)


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, MlflowClient, StudyRun]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    return uri, client, open_study(client, SPEC, "followed-1", "ada", tmp_path / "art")


def ids(progress: object) -> set[str]:
    return {t.trial_id for t in progress.trials}  # type: ignore[attr-defined]


def test_incremental_reads_fetch_only_open_and_newly_ended_runs(store: tuple[str, MlflowClient, StudyRun]) -> None:
    uri, client, study = store
    runs = {f"t{i}": start(client, study, f"t{i}") for i in range(40)}
    for i in range(36):  # 36 ended, 4 running
        end(client, runs[f"t{i}"], float(i))
    follower = ProgressFollower(uri, "followed-1", SPEC)

    first = follower.read()
    assert first is not None and first.complete and len(first.trials) == 40
    ended = next(t for t in first.trials if t.trial_id == "t0")
    assert ended.status == "finished" and ended.started_ms and ended.ended_ms and ended.ended_ms >= ended.started_ms

    again = follower.read()  # nothing changed: only the 4 open runs
    assert again is not None and not again.complete
    assert ids(again) == {"t36", "t37", "t38", "t39"}

    end(client, runs["t36"], 1.5)
    runs["t40"] = start(client, study, "t40")
    later = follower.read()  # t36 ended (read once more, now final), t40 new, the other open ones
    assert later is not None and not later.complete
    assert ids(later) == {"t36", "t37", "t38", "t39", "t40"}
    assert next(t for t in later.trials if t.trial_id == "t36").status == "finished"
    assert next(t for t in later.trials if t.trial_id == "t36").metrics["test_error"] == 1.5

    quiet = follower.read()  # t36 was read ended: it is not read again
    assert quiet is not None and ids(quiet) == {"t37", "t38", "t39", "t40"}


def test_a_reopened_run_is_read_again_and_a_late_record_waits_for_a_full_read(
    store: tuple[str, MlflowClient, StudyRun],
) -> None:
    uri, client, study = store
    runs = {f"t{i}": start(client, study, f"t{i}") for i in range(3)}
    end(client, runs["t0"], 5.0)
    follower = ProgressFollower(uri, "followed-1", SPEC, lag_s=1.0)
    assert follower.read() is not None

    client.update_run(runs["t0"], status="RUNNING")  # a resume reopens a cancelled trial's run
    client.set_tag(runs["t0"], STATUS_TAG, "running")
    reopened = follower.read()
    assert reopened is not None and "t0" in ids(reopened)
    assert next(t for t in reopened.trials if t.trial_id == "t0").status == "running"

    # A record that reaches MLflow long after its trial ended (the writer held back by an outage): outside
    # the window, so an incremental read misses it; a full read has it.
    end(client, runs["t1"], 7.0, end_ms=int(time.time() * 1000) - 3_600_000)
    missed = follower.read()
    assert missed is not None and next(t for t in missed.trials if t.trial_id == "t0").status == "running"
    assert "t1" not in ids(missed)
    full = follower.read(full=True)
    assert full is not None and full.complete
    assert {t.trial_id: t.status for t in full.trials} == {"t0": "running", "t1": "finished", "t2": "running"}


def test_no_study_yet_reads_none(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    assert ProgressFollower(uri, "nobody", SPEC).read() is None
    assert not (tmp_path / "absent.db").exists()  # a reader never creates the store
