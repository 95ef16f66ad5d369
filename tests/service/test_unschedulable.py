"""A study no node can hold ends `failed` within seconds and frees its slot: the real driver on a local Ray.

Submitted through the repository, as a study the service could not check at submit (a cluster it does not
see) reaches the dispatcher; the driver finds that no node of its Ray (2 CPUs) can hold one trial.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import Engine

from service import auth, repository
from service.db import session_factory
from service.dispatcher import Dispatcher
from service.launchers import LocalLauncher
from service.settings import ServiceSettings
from studies.spec import StudySpec
from tests.service.conftest import TINY_SPEC
from tests.service.test_dispatcher import row, run_until
from tests.support.ray_cluster import REPO

pytestmark = pytest.mark.slow


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'service.db'}"  # the driver's side is under test, not the database


@pytest.fixture
def driver_settings(settings: ServiceSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fields = {
        "ray_num_cpus": 2,
        "ray_temp_dir": Path(tempfile.mkdtemp(prefix="msu", dir="/tmp")),  # Ray's socket paths must stay short
        "results_uri": str(tmp_path / "results"),
        "max_running_studies": 1,
        "max_attempts": 1,
        "poll_interval_s": 0.2,
    }
    return settings.model_copy(update=fields)


def submit(engine: Engine, resources: dict[str, float]) -> str:
    spec = copy.deepcopy(TINY_SPEC)
    spec["resources"] = resources
    with session_factory(engine)() as session:
        study = repository.submit(session, auth.ensure_user(session, "alice"), StudySpec.model_validate(spec), 10)
        session.commit()
        return study.id


def test_studies_no_node_can_hold_fail_with_the_reason_and_free_the_slot(
    driver_settings: ServiceSettings, engine: Engine
) -> None:
    too_many_cpus = submit(engine, {"cpu": 4})
    too_many_gpus = submit(engine, {"cpu": 1, "gpu": 64})
    dispatcher = Dispatcher(driver_settings, session_factory(engine), LocalLauncher(driver_settings))
    dispatcher.tick()
    assert (row(engine, too_many_cpus).status, row(engine, too_many_gpus).status) == ("running", "queued")
    run_until(dispatcher, lambda: row(engine, too_many_gpus).status not in ("queued", "running"), timeout_s=240)
    first, second = row(engine, too_many_cpus), row(engine, too_many_gpus)
    assert (first.status, first.exit_code, second.status, second.exit_code) == ("failed", 2, "failed", 2)
    for study, asked in ((first, "4 CPU and 0 GPU"), (second, "1 CPU and 64 GPU")):
        error = " ".join((study.error or "").split())  # the driver's console wraps long lines
        assert error.startswith("invalid study spec; driver output ends with:"), error
        assert f"a trial asks for {asked} (resources.cpu, resources.gpu), but no node of the Ray cluster" in error
        assert "its nodes: 1 x (2 CPU," in error
        assert study.attempts == 1
        assert study.started_at is not None and study.finished_at is not None
        # Bounded by the driver's start (Python, Ray), not by a wait for a trial that never comes.
        assert (study.finished_at - study.started_at).total_seconds() < 90
    # The first one's slot went to the second as soon as it ended.
    assert second.started_at is not None and first.finished_at is not None
    assert second.started_at >= first.finished_at
