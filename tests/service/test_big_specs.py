"""Handlers whose event-loop work could grow with a stored spec: a page of studies decodes no spec."""

from __future__ import annotations

import copy

from sqlalchemy import select

from service import repository
from service.auth import Caller
from service.db import session_factory
from service.models import Study, User
from studies.records import TrialRecord
from tests.service.conftest import TINY_SPEC, Api

STUDIES = "/api/v1/studies"


def test_a_page_reads_only_the_ranking_settings_of_each_spec_and_ranks_as_the_spec_says(api: Api) -> None:
    spec = copy.deepcopy(TINY_SPEC)
    spec.update(metric="test_error", mode="max")
    spec["search"] = {"algorithm": "random", "variants": [{"name": f"v{i}"} for i in range(1500)]}  # a large spec
    with api.client() as client:
        created = client.post(STUDIES, json=spec)
        assert created.status_code == 201, created.text
        study_id = created.json()["id"]
    trials = [
        TrialRecord("t1", {"alpha": 0.0}, "finished", 2, {"test_error": 12.0}, run_id="r1"),
        TrialRecord("t2", {"alpha": 1.0}, "finished", 2, {"test_error": 8.0}, run_id="r2"),
    ]
    with session_factory(api.engine)() as session:
        row = session.scalar(select(Study).where(Study.id == study_id))
        assert row is not None
        repository.mark_running(row, "local", "1:1")
        repository.store_progress(row, "7", "parent", trials)
        session.commit()
        alice = session.scalar(select(User).where(User.name == "alice"))
        assert alice is not None
        principal = Caller(alice.id, alice.name, alice.is_admin)
    with api.engine.connect() as connection:
        (view,), total = repository.view_page(connection, principal)
    assert total == 1
    assert view.spec == {"metric": "test_error", "mode": "max"}  # not the spec (1500 variants)
    with api.client() as client:
        page = client.get(STUDIES).json()  # fills the trial-stats cache from the page's view
        detail = client.get(f"{STUDIES}/{study_id}").json()
    assert page["items"][0]["trial_counts"]["finished"] == 2
    assert detail["best_trial"]["trial_id"] == "t1"  # mode max: 12.0 ranks first
    assert len(detail["spec"]["search"]["variants"]) == 1500
