"""The REST API over real HTTP against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import func, select

from service import auth, repository, trial_store
from service.db import session_factory
from service.models import Study, Token
from studies.records import TrialRecord
from tests.service.conftest import TINY_SPEC, Api
from tests.support.processes import wait_until

STUDIES = "/api/v1/studies"


def study_rows(api: Api) -> int:
    with session_factory(api.engine)() as session:
        return session.scalar(select(func.count()).select_from(Study)) or 0


def submit(api: Api, user: str = "alice", spec: dict | None = None) -> dict:
    with api.client(user) as client:
        response = client.post(STUDIES, json=spec or TINY_SPEC)
    assert response.status_code == 201, response.text
    return response.json()


def test_submit_then_read_back(api: Api) -> None:
    created = submit(api)
    assert created["status"] == "queued"
    assert created["id"].startswith("tiny-")
    assert created["owner"] == "alice"
    assert created["trials_total"] == 2
    assert created["trial_counts"] == {
        "pending": 2,
        "running": 0,
        "finished": 0,
        "stopped": 0,
        "failed": 0,
        "cancelled": 0,
    }
    with api.client() as client:
        detail = client.get(f"{STUDIES}/{created['id']}").json()
        listing = client.get(STUDIES, params={"status": "queued"}).json()
        none_running = client.get(STUDIES, params={"status": "running"}).json()
    assert detail["spec"]["dataset"]["name"] == "uci:iris"
    assert detail["spec"]["training"]["epochs"] == 2
    assert detail["best_trial"] is None
    assert [s["id"] for s in listing["items"]] == [created["id"]]
    assert listing["total"] == 1
    assert none_running["total"] == 0


def test_list_is_paginated_newest_first(api: Api) -> None:
    ids = [submit(api)["id"] for _ in range(3)]
    with api.client() as client:
        first = client.get(STUDIES, params={"limit": 2}).json()
        second = client.get(STUDIES, params={"limit": 2, "offset": 2}).json()
    assert [s["id"] for s in first["items"]] == ids[::-1][:2]
    assert [s["id"] for s in second["items"]] == ids[:1]
    assert first["total"] == second["total"] == 3


def test_invalid_spec_names_every_field_and_writes_nothing(api: Api) -> None:
    spec = copy.deepcopy(TINY_SPEC)
    spec["dataset"]["name"] = "imagenet-from-my-laptop"
    spec["training"]["epochs"] = 0
    spec["colour"] = "blue"
    with api.client() as client:
        response = client.post(STUDIES, json=spec)
    assert response.status_code == 422
    body = response.json()
    assert "dataset.name" in body["detail"]
    assert "training.epochs" in body["detail"]
    assert "colour" in body["detail"]
    locs = {".".join(e["loc"]) for e in body["errors"]}
    assert {"body.dataset.name", "body.training.epochs", "body.colour"} <= locs
    assert study_rows(api) == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"name": "x", ', "not valid JSON"),
        (json.dumps({**TINY_SPEC, "training": {"epochs": "many"}}).encode(), "training.epochs"),
        (json.dumps([1, 2]).encode(), "body"),
    ],
)
def test_malformed_bodies_are_422_with_a_message(api: Api, content: bytes, expected: str) -> None:
    with api.client() as client:
        response = client.post(STUDIES, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert expected in response.json()["detail"]
    assert study_rows(api) == 0


def test_huge_body_is_413(api: Api) -> None:
    spec = {**TINY_SPEC, "description": "x" * 100_000}
    with api.client() as client:
        response = client.post(STUDIES, json=spec)
        chunked = client.post(
            STUDIES,
            content=iter([b"{" + b" " * 40_000, b" " * 40_000 + b"}"]),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert "64000 bytes" in response.json()["detail"]
    assert chunked.status_code == 413
    assert study_rows(api) == 0


def test_paths_outside_the_data_root_are_rejected(api: Api) -> None:
    spec = copy.deepcopy(TINY_SPEC)
    spec["dataset"]["data_dir"] = "../../etc"
    with api.client() as client:
        response = client.post(STUDIES, json=spec)
    assert response.status_code == 422
    assert "dataset.data_dir" in response.json()["detail"]
    assert study_rows(api) == 0


def test_unknown_model_is_rejected(api: Api) -> None:
    spec = {**TINY_SPEC, "model": {"name": "os.system"}}
    with api.client() as client:
        response = client.post(STUDIES, json=spec)
    assert response.status_code == 422
    assert "model.name" in response.json()["detail"]


def test_every_endpoint_but_health_needs_a_token(api: Api) -> None:
    study = submit(api)
    paths = [
        ("GET", STUDIES),
        ("POST", STUDIES),
        ("GET", f"{STUDIES}/{study['id']}"),
        ("GET", f"{STUDIES}/{study['id']}/trials"),
        ("GET", f"{STUDIES}/{study['id']}/report"),
        ("POST", f"{STUDIES}/{study['id']}/cancel"),
        ("DELETE", f"{STUDIES}/{study['id']}"),
    ]
    with api.client(None) as anonymous:
        for method, path in paths:
            missing = anonymous.request(method, path)
            invalid = anonymous.request(method, path, headers={"Authorization": "Bearer mxs_not-a-token"})
            assert missing.status_code == 401, (method, path)
            assert missing.headers["www-authenticate"] == "Bearer"
            assert "missing token" in missing.json()["detail"]
            assert invalid.status_code == 401
            assert invalid.json()["detail"] == "invalid token"
        assert anonymous.get("/healthz").json() == {"status": "ok"}
    assert study_rows(api) == 1


def test_users_see_only_their_own_studies_admins_all(api: Api) -> None:
    mine = submit(api, "alice")
    theirs = submit(api, "bob")
    with api.client("alice") as alice, api.client("admin") as admin:
        assert alice.get(f"{STUDIES}/{theirs['id']}").status_code == 404
        assert alice.post(f"{STUDIES}/{theirs['id']}/cancel").status_code == 404
        assert alice.delete(f"{STUDIES}/{theirs['id']}").status_code == 404
        assert [s["id"] for s in alice.get(STUDIES).json()["items"]] == [mine["id"]]
        assert {s["id"] for s in admin.get(STUDIES).json()["items"]} == {mine["id"], theirs["id"]}
        assert admin.get(f"{STUDIES}/{theirs['id']}").json()["owner"] == "bob"


def test_cancel_and_delete_follow_the_lifecycle(api: Api) -> None:
    study = submit(api)
    url = f"{STUDIES}/{study['id']}"
    with api.client() as client:
        assert client.delete(url).status_code == 409  # queued: not finished
        cancelled = client.post(f"{url}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["finished_at"] is not None
        again = client.post(f"{url}/cancel")
        assert again.status_code == 409
        assert "already ended" in again.json()["detail"]
        assert client.delete(url).status_code == 204
        assert client.get(url).status_code == 404
        assert client.post(f"{STUDIES}/no-such-study/cancel").status_code == 404
    assert study_rows(api) == 0


def test_cancelling_a_running_study_asks_the_dispatcher(api: Api) -> None:
    study = submit(api)
    with session_factory(api.engine)() as session:
        row = session.scalar(select(Study).where(Study.id == study["id"]))
        assert row is not None
        repository.mark_running(row, "local", "123:456")
        session.commit()
    with api.client() as client:
        assert client.delete(f"{STUDIES}/{study['id']}").status_code == 409
        response = client.post(f"{STUDIES}/{study['id']}/cancel").json()
    assert response["status"] == "running"
    assert response["cancel_requested"] is True


def test_queued_studies_per_user_are_limited(api: Api) -> None:
    for _ in range(api.settings.max_queued_per_user):
        submit(api, "alice")
    with api.client("alice") as alice:
        response = alice.post(STUDIES, json=TINY_SPEC)
    assert response.status_code == 429
    assert "limit 5" in response.json()["detail"]
    submit(api, "bob")  # others are not affected
    assert study_rows(api) == 6


def _store_trials(api: Api, study_id: str) -> None:
    trials = [
        TrialRecord("t1", {"alpha": 0.0}, "finished", 2, {"median_test_error": 12.5, "test_error": 12.0}, run_id="r1"),
        TrialRecord("t2", {"alpha": 1.0}, "running", 1, {"test_error": 9.0}, run_id="r2"),
        TrialRecord("t3", {"alpha": 1.0}, "finished", 2, {"median_test_error": 8.0, "test_error": 8.0}, run_id="r3"),
    ]
    with session_factory(api.engine)() as session:
        row = session.scalar(select(Study).where(Study.id == study_id))
        assert row is not None
        repository.mark_running(row, "local", "1:1")
        trial_store.store_progress(session, row, "7", "parent", trials)
        session.commit()


def test_status_trials_and_report_show_progress(api: Api) -> None:
    study = submit(api)
    _store_trials(api, study["id"])
    url = f"{STUDIES}/{study['id']}"
    with api.client() as client:
        detail = client.get(url).json()
        trials = client.get(f"{url}/trials").json()
        report = client.get(f"{url}/report").json()
        markdown = client.get(f"{url}/report", params={"format": "md"})
        png = client.get(f"{url}/report", params={"format": "png"})
        bad = client.get(f"{url}/report", params={"format": "pdf"})
    assert detail["status"] == "running"
    assert detail["trial_counts"] == {
        "pending": 0,
        "running": 1,
        "finished": 2,
        "stopped": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert detail["best_trial"]["trial_id"] == "t3"
    assert detail["best_trial"]["value"] == 8.0
    assert detail["mlflow"]["experiment_id"] == "7"
    assert detail["mlflow"]["run_url"] == "http://127.0.0.1:5000/#/experiments/7/runs/parent"
    # MLflow 3's runs table (its route /experiments/:experimentId/runs), not the experiment's GenAI overview
    assert detail["mlflow"]["experiment_url"] == "http://127.0.0.1:5000/#/experiments/7/runs"
    assert [t["trial_id"] for t in trials["trials"]] == ["t1", "t2", "t3"]
    assert trials["trials"][1]["metrics"] == {"test_error": 9.0}
    assert report["leaderboard"][0]["trial_id"] == "t3"
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "t3" in markdown.text
    assert png.status_code in (200, 404)
    if png.status_code == 200:
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert bad.status_code == 422


def test_openapi_schema_documents_the_api(api: Api) -> None:
    with api.client(None) as client:
        schema = client.get("/openapi.json").json()
    assert {
        "/api/v1/studies",
        "/api/v1/studies/{study_id}",
        "/api/v1/studies/{study_id}/trials",
        "/api/v1/studies/{study_id}/report",
        "/api/v1/studies/{study_id}/cancel",
        "/healthz",
        "/readyz",
    } <= set(schema["paths"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_readyz_reports_each_part(api: Api) -> None:
    with api.client(None) as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["mlflow"] == "ok"


def test_a_deleted_token_stops_working_within_the_cache_time(api: Api) -> None:
    with api.client("bob") as bob:
        assert bob.get(STUDIES).status_code == 200  # now cached
        with session_factory(api.engine)() as session:
            session.execute(Token.__table__.delete().where(Token.token_hash == auth.hash_token(api.tokens["bob"])))
            session.commit()
        refused = wait_until(lambda: bob.get(STUDIES).status_code == 401, api.settings.token_cache_s + 5, 0.2, "401")
    assert refused


def test_token_cache_remembers_callers_and_unknown_tokens_for_ttl_only() -> None:
    now = [100.0]
    cache = auth.TokenCache(ttl_s=5.0, max_entries=2, clock=lambda: now[0])
    alice = auth.Caller(1, "alice", False)
    assert cache.get("a") == (False, None)
    cache.put("a", alice)
    cache.put("nobody", None)
    assert cache.get("a") == (True, alice)
    assert cache.get("nobody") == (True, None)  # known to be invalid: no database lookup
    now[0] += 5.1
    assert cache.get("a") == (False, None)  # expired: asked again
    cache.put("a", alice)
    cache.put("b", alice)
    cache.put("c", alice)  # bounded: the least recently used entries go, fresh or not
    assert cache.get("a") == (False, None)
    assert cache.get("c") == (True, alice)
    assert auth.TokenCache(ttl_s=0).get("a") == (False, None)
