"""What the service shows of a study that ended: no trial pending or running, and what a cancel did.

Over real HTTP against real databases; the dispatcher case runs a real (fake) driver process and a real
MLflow store that a killed driver left open.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, select

from service import auth, repository, trial_store
from service.db import session_factory
from service.dispatcher import MlflowFollower
from service.models import CANCELLED, SUCCEEDED, Study
from service.settings import ServiceSettings
from studies.progress import read_progress
from studies.records import TrialRecord
from studies.spec import StudySpec
from studies.tracking import open_study, use_wal
from studies.trial_log import TrialLogWriter
from tests.service.conftest import TINY_SPEC, Api
from tests.service.test_dispatcher import fake_settings, make_dispatcher, row, run_until, starts, submit
from tests.support.ray_cluster import REPO

__all__ = ["fake_settings"]  # the fixture, used by the dispatcher test below
STUDIES = "/api/v1/studies"
EMPTY = {"pending": 0, "running": 0, "finished": 0, "stopped": 0, "failed": 0, "cancelled": 0}


def post(api: Api, spec: dict = TINY_SPEC) -> str:
    with api.client() as client:
        response = client.post(STUDIES, json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def set_state(api: Api, study_id: str, *, running: bool, trials: list[TrialRecord] | None = None,
              cancel: bool = False, final: str | None = None) -> None:  # fmt: skip
    with session_factory(api.engine)() as session:
        study = session.scalar(select(Study).where(Study.id == study_id))
        assert study is not None
        if running:
            repository.mark_running(study, "local", "1:1")
        if trials is not None:
            trial_store.store_progress(session, study, "7", "parent", trials)
        study.cancel_requested = cancel
        if final is not None:
            repository.finish(study, final, 0)
        session.commit()


def test_a_queued_study_cancelled_has_cancelled_trials_and_says_so(api: Api) -> None:
    study_id = post(api)
    with api.client() as client:
        cancelled = client.post(f"{STUDIES}/{study_id}/cancel").json()
        detail = client.get(f"{STUDIES}/{study_id}").json()
        report = client.get(f"{STUDIES}/{study_id}/report", params={"format": "md"}).text
        as_json = client.get(f"{STUDIES}/{study_id}/report").json()
    for body in (cancelled, detail):
        assert body["status"] == "cancelled"
        assert body["trial_counts"] == EMPTY | {"cancelled": 2}  # not 2 pending: they will never run
        assert body["cancel_outcome"] == "cancelled"
    assert "0 trials (cancelled)." in report
    assert "in progress" not in report
    assert as_json["study_status"] == "cancelled"


def test_trials_of_an_ended_study_are_never_running(api: Api) -> None:
    # A snapshot stored while the driver ran; the driver then went away for good (no later snapshot).
    trials = [
        TrialRecord("t1", {"alpha": 0.0}, "finished", 2, {"median_test_error": 12.5}, run_id="r1"),
        TrialRecord("t2", {"alpha": 1.0}, "running", 1, {"test_error": 9.0}, run_id="r2"),
    ]
    study_id = post(api)
    set_state(api, study_id, running=True, trials=trials, cancel=True)
    with api.client() as client:
        running = client.get(f"{STUDIES}/{study_id}").json()
    assert running["trial_counts"] == EMPTY | {"finished": 1, "running": 1}
    assert running["cancel_outcome"] == "stopping"
    set_state(api, study_id, running=False, cancel=True, final=CANCELLED)
    with api.client() as client:
        detail = client.get(f"{STUDIES}/{study_id}").json()
        listed = client.get(f"{STUDIES}/{study_id}/trials").json()
        report = client.get(f"{STUDIES}/{study_id}/report").json()
    assert detail["trial_counts"] == EMPTY | {"finished": 1, "cancelled": 1}
    assert [t["status"] for t in listed["trials"]] == ["finished", "cancelled"]
    assert (report["counts"]["running"], report["counts"]["cancelled"]) == (0, 1)


def test_a_cancel_after_every_trial_ended_is_too_late_in_the_api_and_the_cli(api: Api) -> None:
    study_id = post(api)
    trials = [TrialRecord(f"t{i}", {"alpha": float(i)}, "finished", 2, {"median_test_error": 5.0}) for i in (0, 1)]
    set_state(api, study_id, running=True, trials=trials, cancel=True, final=SUCCEEDED)
    with api.client() as client:
        detail = client.get(f"{STUDIES}/{study_id}").json()
        again = client.post(f"{STUDIES}/{study_id}/cancel")
    assert (detail["status"], detail["cancel_requested"], detail["cancel_outcome"]) == ("succeeded", True, "too_late")
    assert again.status_code == 409
    env = dict(os.environ, MIXUP_STUDIES_URL=api.url, MIXUP_STUDIES_TOKEN=api.tokens["alice"], COLUMNS="200")
    shown = subprocess.run([sys.executable, "-m", "service.cli", "status", study_id], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "succeeded (cancel came too late: every trial had ended" in shown.stdout


@pytest.mark.slow
def test_the_dispatcher_settles_the_trials_a_stopped_driver_left_running(
    fake_settings: ServiceSettings, engine: Engine, tmp_path: Path
) -> None:
    study_id = submit(engine, "sleep=120")
    # What a driver killed mid-study leaves in MLflow: its parent run and two trial runs open.
    uri = fake_settings.resolved_tracking_uri
    use_wal(uri)
    client = MlflowClient(uri)
    spec = StudySpec.model_validate(row(engine, study_id).spec)
    writer = TrialLogWriter(client, open_study(client, spec, study_id, "alice", tmp_path / "artifacts"), tick_s=0.05)
    for trial_id, alpha in (("t0", 0.0), ("t1", 1.0)):
        writer.start_trial(trial_id, {"alpha": alpha}, trial_id)
        writer.log_metrics(trial_id, {"test_error": 10.0, "epoch": 1.0}, step=1)
    writer.end_trial("t1", "FINISHED", "finished")
    assert writer.close(timeout_s=30)

    dispatcher = make_dispatcher(fake_settings, engine)
    dispatcher.follow = MlflowFollower  # the real MLflow
    run_until(dispatcher, lambda: starts(fake_settings, study_id))
    with session_factory(engine)() as session:
        repository.request_cancel(session, auth.ensure_user(session, "alice"), study_id)
        session.commit()
    run_until(dispatcher, lambda: row(engine, study_id).status == "cancelled", 30)

    with engine.connect() as db:
        stored = {t.trial_id: t.status for t in trial_store.records(db, row(engine, study_id).seq)}
    assert stored == {"t0": "cancelled", "t1": "finished"}
    progress = read_progress(uri, study_id)
    assert progress is not None and progress.status == "cancelled"
    assert {t.trial_id: t.status for t in progress.trials} == stored
    runs = {t.trial_id: client.get_run(t.run_id or "").info.status for t in progress.trials}
    assert runs == {"t0": "KILLED", "t1": "FINISHED"}
    assert client.get_run(progress.parent_run_id).info.status == "KILLED"
