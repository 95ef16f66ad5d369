"""The dispatcher with real processes (the fake driver), the local launcher and a real database."""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, select

from service import auth, repository
from service.db import session_factory
from service.dispatcher import Dispatcher, full_reads
from service.launchers import LocalLauncher
from service.models import Study
from service.settings import ServiceSettings
from studies.spec import StudySpec
from tests.service.conftest import TINY_SPEC
from tests.support.processes import wait_until
from tests.support.ray_cluster import REPO

pytestmark = pytest.mark.slow


def fake_progress(tracking_uri: str, study_id: str, spec: Any) -> Any:
    """What MLflow would say, from the fake driver's progress.json."""
    del tracking_uri, spec
    path = Path(SETTINGS["current"].experiment_path(study_id)) / "progress.json"
    if not path.exists():
        return None
    status = json.loads(path.read_text())["status"]
    return SimpleNamespace(experiment_id="1", parent_run_id="p", status=status, trials=[])


SETTINGS: dict[str, ServiceSettings] = {}


@pytest.fixture
def fake_settings(settings: ServiceSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    fields = {"driver_module": "tests.support.fake_driver", "results_uri": str(tmp_path / "results"), "max_attempts": 3}
    updated = settings.model_copy(update=fields)
    SETTINGS["current"] = updated
    return updated


def make_dispatcher(settings: ServiceSettings, engine: Engine) -> Dispatcher:
    return Dispatcher(settings, session_factory(engine), LocalLauncher(settings), follow=full_reads(fake_progress))


def submit(engine: Engine, description: str, user: str = "alice") -> str:
    spec = copy.deepcopy(TINY_SPEC)
    spec["description"] = description
    with session_factory(engine)() as session:
        owner = auth.ensure_user(session, user)
        study = repository.submit(session, owner, StudySpec.model_validate(spec), 100)
        session.commit()
        return study.id


def row(engine: Engine, study_id: str) -> Study:
    with session_factory(engine)() as session:
        study = session.scalar(select(Study).where(Study.id == study_id))
        assert study is not None
        return study


def run_until(dispatcher: Dispatcher, done: Any, timeout_s: float = 60) -> None:
    def step() -> bool:
        dispatcher.tick()
        return bool(done())

    wait_until(step, timeout_s, 0.2, "studies to end")


def starts(settings: ServiceSettings, study_id: str) -> list[str]:
    path = Path(settings.experiment_path(study_id)) / "starts.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_queued_studies_start_in_order_within_the_limit(fake_settings: ServiceSettings, engine: Engine) -> None:
    ids = [submit(engine, "sleep=0.5 exit=0") for _ in range(3)]
    dispatcher = make_dispatcher(fake_settings, engine)
    dispatcher.tick()
    assert [row(engine, i).status for i in ids] == ["running", "queued", "queued"]
    run_until(dispatcher, lambda: all(row(engine, i).status == "succeeded" for i in ids))
    started = [row(engine, i).started_at for i in ids]
    assert started == sorted(started)  # type: ignore[type-var]
    assert all(len(starts(fake_settings, i)) == 1 for i in ids)


def test_outcomes_map_from_exit_codes(fake_settings: ServiceSettings, engine: Engine) -> None:
    settings = fake_settings.model_copy(update={"max_running_studies": 3})
    ok, failed, invalid = (submit(engine, d) for d in ("exit=0", "exit=1", "exit=2"))
    dispatcher = make_dispatcher(settings, engine)
    run_until(
        dispatcher,
        lambda: all(
            row(engine, i).status != "running" and row(engine, i).status != "queued" for i in (ok, failed, invalid)
        ),
    )
    assert row(engine, ok).status == "succeeded"
    assert (row(engine, failed).status, row(engine, failed).exit_code) == ("failed", 1)
    assert row(engine, invalid).status == "failed"
    assert "invalid study spec" in (row(engine, invalid).error or "")
    assert "fake driver" in (row(engine, invalid).error or "")  # the driver's output tail


def test_cancel_stops_a_running_driver_gracefully(fake_settings: ServiceSettings, engine: Engine) -> None:
    study_id = submit(engine, "sleep=120")
    dispatcher = make_dispatcher(fake_settings, engine)
    run_until(dispatcher, lambda: starts(fake_settings, study_id))
    with session_factory(engine)() as session:
        user = auth.ensure_user(session, "alice")
        repository.request_cancel(session, user, study_id)
        session.commit()
    run_until(dispatcher, lambda: row(engine, study_id).status == "cancelled", 30)
    assert row(engine, study_id).exit_code == 3
    assert "stopped by SIGINT" in (Path(fake_settings.logs_dir) / f"{study_id}.log").read_text()


def test_a_driver_that_dies_is_resumed_once(fake_settings: ServiceSettings, engine: Engine) -> None:
    study_id = submit(engine, "die_first=1 die_after=0.3 sleep=0.5 exit=0")
    dispatcher = make_dispatcher(fake_settings, engine)
    run_until(dispatcher, lambda: row(engine, study_id).status == "succeeded")
    assert row(engine, study_id).attempts == 2
    assert len(starts(fake_settings, study_id)) == 2
    assert all("resume=True" in line for line in starts(fake_settings, study_id))


def test_a_restarted_service_reattaches_and_runs_nothing_twice(fake_settings: ServiceSettings, engine: Engine) -> None:
    running_id = submit(engine, "sleep=3 exit=0")
    queued_id = submit(engine, "sleep=0.2 exit=0")
    first = make_dispatcher(fake_settings, engine)
    first.tick()
    assert row(engine, running_id).status == "running"
    del first  # the service "dies": its Popen objects are gone; the driver keeps running
    second = make_dispatcher(fake_settings, engine)
    run_until(second, lambda: row(engine, queued_id).status == "succeeded", 60)
    assert row(engine, running_id).status == "succeeded"  # learnt from MLflow's view: it was not our child
    assert len(starts(fake_settings, running_id)) == 1
    assert len(starts(fake_settings, queued_id)) == 1
    assert row(engine, running_id).attempts == 1


def test_a_claim_without_a_driver_is_launched_after_a_crash(fake_settings: ServiceSettings, engine: Engine) -> None:
    study_id = submit(engine, "exit=0")
    with session_factory(engine)() as session:
        study = session.scalar(select(Study).where(Study.id == study_id))
        assert study is not None
        repository.mark_running(study, "local", handle="")  # claimed, then the service died before launching
        session.commit()
    dispatcher = make_dispatcher(fake_settings, engine)
    run_until(dispatcher, lambda: row(engine, study_id).status == "succeeded")
    assert len(starts(fake_settings, study_id)) == 1


def test_progress_is_not_read_from_an_mlflow_store_still_being_created(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from service.dispatcher import MlflowFollower, mlflow_store_ready
    from studies.tracking import use_wal

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert not mlflow_store_ready(uri)
    use_wal(uri)  # what a driver does first: the file exists, MLflow has not created its tables yet
    assert not mlflow_store_ready(uri)
    assert MlflowFollower(uri, "some-study", None).read() is None
    tables = sqlite3.connect(tmp_path / "mlflow.db").execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == []  # the reader created nothing: it would race the driver's own migration
    MlflowClient(uri).search_experiments()  # the driver's MLflow creates the store
    assert mlflow_store_ready(uri)
    assert MlflowFollower(uri, "some-study", None).read() is None  # a complete store, but no such study yet


def test_a_driver_that_breaks_before_an_outcome_is_resumed_not_failed(
    fake_settings: ServiceSettings, engine: Engine
) -> None:
    # Exit 4 is the driver's own failure (MLflow, Ray, ...); exit 1 with no outcome in MLflow is Python's
    # uncaught exception. Neither means "every trial failed": both are resumed, counting attempts.
    errored = submit(engine, "exit_first=4 sleep=0.2 exit=0")
    crashed = submit(engine, "raise_first=1 sleep=0.2 exit=0")
    dispatcher = make_dispatcher(fake_settings.model_copy(update={"max_running_studies": 2}), engine)
    run_until(dispatcher, lambda: all(row(engine, i).status not in ("queued", "running") for i in (errored, crashed)))
    for study_id in (errored, crashed):
        study = row(engine, study_id)
        assert (study.status, study.attempts, study.error) == ("succeeded", 2, None), study_id
        assert len(starts(fake_settings, study_id)) == 2


def test_a_driver_that_keeps_breaking_fails_saying_what_broke(fake_settings: ServiceSettings, engine: Engine) -> None:
    study_id = submit(engine, "sleep=0.1 exit=4")
    dispatcher = make_dispatcher(fake_settings, engine)
    run_until(dispatcher, lambda: row(engine, study_id).status == "failed")
    study = row(engine, study_id)
    assert (study.attempts, study.exit_code) == (3, 4)
    assert study.error == "driver ended 3 times (exit code 4; driver error: RuntimeError: fake driver attempt 3 broke)"
