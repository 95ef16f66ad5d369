"""Errors users see from the API: an unexpected exception is a JSON 500 on a connection that stays usable."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from service.api import create_app
from service.settings import ServiceSettings
from tests.service.conftest import make_token
from tests.support.processes import free_port, wait_until


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # Nothing here depends on the database: the API tests run both.
    return f"sqlite:///{tmp_path / 'service.db'}"


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn on loopback, on httptools as ``serve`` runs it."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off", http="httptools")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, 0.05, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _client_addr(response: httpx.Response) -> object:
    """The client's end of the connection that carried ``response``."""
    return response.extensions["network_stream"].get_extra_info("client_addr")


def test_an_unexpected_exception_is_a_json_500_and_the_connection_stays_usable(
    settings: ServiceSettings, engine: Engine
) -> None:
    app = create_app(settings, engine)

    @app.get("/api/v1/fault")
    def fault() -> None:  # a fault injected for real: the handler raises what nothing maps to a status
        raise RuntimeError("injected fault")

    token = make_token(engine, "alice")
    with served(app) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        broken = client.get("/api/v1/fault")
        connection = _client_addr(broken)
        assert broken.status_code == 500
        assert broken.headers["content-type"] == "application/json"
        assert broken.json() == {"detail": "internal error; see the service log"}
        assert broken.headers.get("connection", "keep-alive").lower() != "close"
        after = client.get("/api/v1/studies")
        assert after.status_code == 200
        assert after.json()["total"] == 0
        assert _client_addr(after) == connection  # the same keep-alive connection served both
