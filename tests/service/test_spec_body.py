"""``POST /api/v1/studies`` prepares its body in a worker process, within a time limit.

Real HTTP to a live app (uvicorn on loopback, SQLite); the app object is at hand to look at its
spec workers (real processes: their pids and CPU times are read from /proc).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from service import auth
from service.api import create_app
from service.api.spec_body import close_pool, spec_pool
from service.db import make_engine, migrate, session_factory
from service.models import Study
from service.settings import ServiceSettings
from studies.spec import StudySpec
from tests.service.conftest import TINY_SPEC
from tests.support.processes import cpu_seconds, free_port, pid_alive, wait_until

STUDIES = "/api/v1/studies"


@dataclass
class Live:
    app: FastAPI
    url: str
    headers: dict[str, str]

    def rows(self) -> int:
        with session_factory(self.app.state.engine)() as session:
            return session.scalar(select(func.count()).select_from(Study)) or 0

    def post(self, body: Any = None, **kwargs: Any) -> httpx.Response:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as client:
            return client.post(STUDIES, json=body, **kwargs) if body is not None else client.post(STUDIES, **kwargs)


def start(tmp_path: Path, **overrides: Any) -> Iterator[Live]:
    settings = ServiceSettings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'service.db'}",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        max_queued_per_user=5,
        max_body_bytes=2_000_000,
        max_variants=100_000,  # the size limits are service.admission's (tests/service/test_admission.py)
        **overrides,
    )
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    app = create_app(settings, engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, 0.05, "uvicorn to start")
    with session_factory(engine)() as session:
        token = auth.create_token(session, "alice", False)
        session.commit()
    yield Live(app, f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"})
    server.should_exit = True
    thread.join(timeout=10)
    close_pool(app)
    engine.dispose()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    yield from start(tmp_path)


@pytest.fixture
def hasty(tmp_path: Path) -> Iterator[Live]:
    """An API that gives a spec 50 ms to validate (a 1 MB one takes longer), its worker started."""
    for live in start(tmp_path, validation_timeout_s=0.05):
        spec_pool(live.app).start()
        yield live


def big_spec(variants: int = 40_000) -> dict[str, Any]:
    """About 1 MB: a random search over 40,000 variants (parsing alone takes far more than 1 ms)."""
    spec = copy.deepcopy(TINY_SPEC)
    spec["search"] = {
        "algorithm": "random",
        "num_samples": 4,
        "space": {"alpha": [0.0, 1.0]},
        "variants": [{"name": f"v{i}", "label_smoothing": 0.01 * (i % 7)} for i in range(variants)],
    }
    return spec


def test_a_spec_over_the_time_limit_is_503_naming_it_and_its_worker_is_replaced(hasty: Live) -> None:
    pool = spec_pool(hasty.app)
    [worker] = pool.pids()
    response = hasty.post(big_spec())
    assert response.status_code == 503, response.text
    assert "limit of 0.05 s (MIXUP_STUDIES_VALIDATION_TIMEOUT_S)" in response.json()["detail"]
    assert response.headers["retry-after"] == "5"
    # The worker still busy with it is killed: a stuck one cannot hold the pool.
    wait_until(lambda: not pid_alive(worker), 30, 0.05, "the busy worker to be killed")
    with httpx.Client(base_url=hasty.url, timeout=60) as client:
        assert client.get("/healthz").status_code == 200
    assert hasty.rows() == 0
    hasty.app.state.settings.validation_timeout_s = 60.0
    assert hasty.post(TINY_SPEC).status_code == 201  # a new worker
    assert pool.pids() and worker not in pool.pids()
    assert hasty.rows() == 1


def test_a_spec_is_parsed_and_validated_in_a_worker_process_not_the_apis(live: Live) -> None:
    pool = spec_pool(live.app)
    pool.start()
    [worker] = pool.pids()
    assert worker != os.getpid()
    before = cpu_seconds(worker)
    bad = big_spec()
    bad["search"]["variants"][-1]["label_smoothing"] = 1.5  # refused after validating all of it
    refused = live.post(bad)
    assert refused.status_code == 422, refused.text[:500]
    assert [e["loc"] for e in refused.json()["errors"]] == [["body", "search", "variants", "39999", "label_smoothing"]]
    # Parsing and validating 1 MB took the worker's CPU (tens of ms at least, more on a loaded machine).
    assert cpu_seconds(worker) - before >= 0.02
    assert pool.pids() == [worker]  # the same worker serves the next one


def test_a_worker_that_dies_mid_validation_is_a_503_and_the_next_submission_works(live: Live) -> None:
    pool = spec_pool(live.app)
    pool.start()
    [worker] = pool.pids()
    os.kill(worker, signal.SIGSTOP)  # it takes the next call and holds it: killed while it has it
    answers: list[httpx.Response] = []
    posting = threading.Thread(target=lambda: answers.append(live.post(big_spec())))
    posting.start()
    wait_until(lambda: pool.in_flight == 1, 60, 0.01, "the spec to be handed to the worker")
    os.kill(worker, signal.SIGKILL)
    posting.join(60)
    [died] = answers
    assert died.status_code == 503, died.text[:500]
    assert "the worker preparing the spec stopped; try again" in died.json()["detail"]
    assert live.rows() == 0
    created = live.post(TINY_SPEC)
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["name"] == TINY_SPEC["name"]
    assert worker not in pool.pids()
    assert live.rows() == 1


def test_a_big_valid_spec_is_accepted_and_a_big_invalid_one_names_the_field(live: Live) -> None:
    accepted = live.post(big_spec())
    assert accepted.status_code == 201, accepted.text[:2000]
    bad = big_spec()
    bad["search"]["variants"][31_337]["label_smoothing"] = 1.5
    refused = live.post(bad)
    assert refused.status_code == 422
    errors = refused.json()["errors"]
    assert [e["loc"] for e in errors] == [["body", "search", "variants", "31337", "label_smoothing"]]
    assert "search.variants.31337.label_smoothing" in refused.json()["detail"]
    assert live.rows() == 1


@pytest.mark.parametrize(
    ("content", "headers", "expected"),
    [
        # json.loads raised RecursionError on this: a 500
        (b'{"name": "x", "description": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", {}, "body is not valid JSON"),
        (b"", {}, "body: Field required"),
        (json.dumps(TINY_SPEC).encode(), {"Content-Type": "text/plain"}, "body: Input should be"),
        (b"\xff\xfe not utf-8", {}, "body is not valid JSON"),
    ],
)
def test_bodies_that_are_no_spec_are_422_in_the_problem_format(
    live: Live, content: bytes, headers: dict[str, str], expected: str
) -> None:
    response = live.post(content=content, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 422, response.text[:500]
    assert expected in response.json()["detail"]
    assert response.json()["errors"][0]["loc"][0] == "body"
    assert live.rows() == 0


def test_a_huge_synthetic_shape_at_a_hidden_layer_is_422_naming_the_field(live: Live) -> None:
    spec = {**TINY_SPEC, "dataset": {"name": "synthetic", "synthetic": {"shape": [10**30]}}}
    spec["mixup"] = {"layer": "feature_map"}
    response = live.post(spec)
    assert response.status_code == 422, response.text
    assert "dataset.synthetic.shape" in response.json()["detail"]
    assert live.rows() == 0


def test_the_configured_trial_cap_applies_at_submit(tmp_path: Path) -> None:
    capped = start(tmp_path, max_trials=3)
    api = next(capped)
    try:
        response = api.post({**TINY_SPEC, "search": {"space": {"alpha": [0.0, 0.5, 1.0]}, "seeds": [0, 1]}})
        assert response.status_code == 422
        assert "6 trials is over the limit of 3 (MIXUP_STUDIES_MAX_TRIALS)" in response.json()["detail"]
    finally:
        next(capped, None)


def test_openapi_describes_the_body_as_a_study_spec_parameter_would(live: Live) -> None:
    reference = FastAPI()

    @reference.post("/x")
    def take(spec: StudySpec) -> None:
        """Only its schema is read."""

    expected = reference.openapi()
    with httpx.Client(base_url=live.url, timeout=60) as client:
        schema = client.get("/openapi.json").json()
    assert schema["paths"][STUDIES]["post"]["requestBody"] == expected["paths"]["/x"]["post"]["requestBody"]
    ours, theirs = schema["components"]["schemas"], expected["components"]["schemas"]
    for name in theirs.keys() - {"HTTPValidationError", "ValidationError"}:
        assert ours[name] == theirs[name], name
