"""Handlers whose event-loop work could grow with a stored spec: a page of studies decodes no spec."""

from __future__ import annotations

import copy
import json
import threading

import pytest
from sqlalchemy import Text, cast, event, select

from service import repository, trial_store
from service.auth import Caller
from service.db import session_factory
from service.models import Study, User
from service.settings import ServiceSettings
from studies.records import TrialRecord
from studies.spec import StudySpec
from tests.service.conftest import TINY_SPEC, Api

STUDIES = "/api/v1/studies"


@pytest.fixture
def settings(settings: ServiceSettings) -> ServiceSettings:
    # bodies of the size a user may send, with more variants than the default limit allows
    return settings.model_copy(update={"max_body_bytes": 1_000_000, "max_variants": 100_000})


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
        trial_store.store_progress(session, row, "7", "parent", trials)
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


def test_a_large_spec_is_decoded_and_echoed_off_the_event_loop(api: Api) -> None:
    small = submit_spec(api, copy.deepcopy(TINY_SPEC))
    big = copy.deepcopy(TINY_SPEC)
    variants = [{"name": f"variant-{i}", "alpha": 0.5, "scope": "same_class"} for i in range(6000)]
    big["search"] = {"algorithm": "random", "variants": variants}  # 350 kB
    large = submit_spec(api, big)
    threads: list[str] = []

    def checkout(*_: object) -> None:
        threads.append(threading.current_thread().name)

    event.listen(api.engine, "checkout", checkout)  # which thread takes a connection: the loop's or a worker
    try:
        with api.client() as client:
            answers = {}
            for study_id in (small, large):
                threads.clear()
                answers[study_id] = (client.get(f"{STUDIES}/{study_id}").json(), list(threads))
    finally:
        event.remove(api.engine, "checkout", checkout)
    (small_body, small_threads), (large_body, large_threads) = answers[small], answers[large]
    assert "variants" not in small_body["spec"]["search"]  # unset: not stored
    assert len(large_body["spec"]["search"]["variants"]) == 6000
    if api.engine.dialect.name == "sqlite":  # inline reads on SQLite; always the threadpool elsewhere
        assert not any(t.startswith("AnyIO worker") for t in small_threads), small_threads
        assert large_threads[-1].startswith("AnyIO worker"), large_threads


def submit_spec(api: Api, spec: dict) -> str:
    with api.client() as client:
        created = client.post(STUDIES, json=spec)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_a_spec_is_stored_without_its_unset_fields_and_reads_back_the_same(api: Api) -> None:
    spec = copy.deepcopy(TINY_SPEC)
    spec["search"] = {"algorithm": "random", "variants": [{"name": f"v{i}", "alpha": 0.5} for i in range(500)]}
    study_id = submit_spec(api, spec)
    with session_factory(api.engine)() as session:
        stored = session.scalar(select(Study.spec).where(Study.id == study_id))
    assert stored is not None
    assert stored["search"]["variants"][7] == {"name": "v7", "alpha": 0.5}  # no nine nulls beside
    assert "mode" not in stored
    assert StudySpec.model_validate(stored) == StudySpec.model_validate(spec)


def test_the_prepared_spec_text_is_stored_and_echoed_as_it_is_and_reads_back_the_same(api: Api) -> None:
    spec = copy.deepcopy(TINY_SPEC)
    spec["description"] = 'ünïcode, "quotes" and a \\ backslash'
    spec["search"] = {"algorithm": "random", "variants": [{"name": f"v{i}", "alpha": 0.25} for i in range(300)]}
    with api.client() as client:
        created = client.post(STUDIES, json=spec)
        assert created.status_code == 201, created.text
        got = client.get(f"{STUDIES}/{created.json()['id']}").json()
    expected = StudySpec.model_validate(spec).model_dump_json(exclude_none=True)
    with session_factory(api.engine)() as session:
        text = session.scalar(select(cast(Study.spec, Text)).where(Study.id == got["id"]))
    assert text == expected  # the worker's JSON text, not decoded and encoded again by the API
    assert created.json()["spec"] == got["spec"] == json.loads(expected)
    assert created.json() == got  # the spliced answer is the study as GET shows it
