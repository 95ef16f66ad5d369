"""Fixtures of the service tests: a real database (SQLite and PostgreSQL), a live API on loopback, tokens."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine

from service import auth
from service.api import create_app
from service.api.spec_body import close_pool
from service.db import make_engine, migrate, session_factory
from service.settings import ServiceSettings
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.processes import free_port, wait_until

TINY_SPEC: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "uci:iris"},
    "model": {"name": "mlp"},
    "training": {"epochs": 2, "batch_size": 16, "optimizer": "adam", "lr": 0.01},
    "search": {"space": {"alpha": [0.0, 1.0]}},
    "resources": {"cpu": 1},
}


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    server: PostgresServer = request.getfixturevalue("pg")
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> ServiceSettings:
    return ServiceSettings(
        home=tmp_path / "home",
        database_url=database_url,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        max_queued_per_user=5,
        max_body_bytes=64_000,
        mlflow_ui_url="http://127.0.0.1:5000",
        token_cache_s=1.0,
    )


@pytest.fixture
def engine(settings: ServiceSettings) -> Iterator[Engine]:
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def make_token(engine: Engine, name: str, admin: bool = False) -> str:
    with session_factory(engine)() as session:
        token = auth.create_token(session, name, admin)
        session.commit()
    return token


@dataclass
class Api:
    """A live API on loopback, with tokens for alice, bob and an admin."""

    url: str
    engine: Engine
    settings: ServiceSettings
    tokens: dict[str, str]

    def client(self, user: str | None = "alice") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)


@pytest.fixture
def api(settings: ServiceSettings, engine: Engine) -> Iterator[Api]:
    app = create_app(settings, engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, 0.05, "uvicorn to start")
    tokens = {name: make_token(engine, name, admin=name == "admin") for name in ("alice", "bob", "admin")}
    yield Api(f"http://127.0.0.1:{port}", engine, settings, tokens)
    server.should_exit = True
    thread.join(timeout=10)
    close_pool(app)  # lifespan off: the app's shutdown does not run
