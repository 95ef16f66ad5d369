"""The per-user queue limit holds under concurrent submissions, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select, update

from service.models import CANCELLED, QUEUED, Study
from service.settings import ServiceSettings
from tests.service.conftest import TINY_SPEC, Api

STUDIES = "/api/v1/studies"
LIMIT = 20  # the default limit: what the review ran into
CONCURRENT = 60
ROUNDS = 3  # the race does not show every time (about one burst in three on SQLite without the lock)


@pytest.fixture
def settings(settings: ServiceSettings) -> ServiceSettings:
    return settings.model_copy(update={"max_queued_per_user": LIMIT})


def _post(api: Api, token: str, start: threading.Barrier) -> int:
    # One connection per client, opened (and the token checked) before the barrier: then all POSTs go at once.
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=120.0) as client:
        assert client.get(STUDIES, params={"limit": 1}).status_code == 200
        start.wait()
        return client.post(STUDIES, json=TINY_SPEC).status_code


def _burst(api: Api) -> list[int]:
    token = api.tokens["alice"]
    start = threading.Barrier(CONCURRENT)
    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(lambda _: _post(api, token, start), range(CONCURRENT)))


def test_concurrent_submissions_never_pass_the_queue_limit(api: Api) -> None:
    for _ in range(ROUNDS):
        codes = _burst(api)
        assert sorted(set(codes)) == [201, 429], codes
        assert (codes.count(201), codes.count(429)) == (LIMIT, CONCURRENT - LIMIT)
        with api.engine.begin() as connection:
            queued = connection.scalar(select(func.count()).select_from(Study).where(Study.status == QUEUED))
            assert queued == LIMIT
            # Empty the queue for the next burst (as if they had all started or been cancelled).
            connection.execute(update(Study).where(Study.status == QUEUED).values(status=CANCELLED))
