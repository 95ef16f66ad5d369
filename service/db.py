"""Database engine, sessions and migrations.

SQLite (WAL, a busy timeout, foreign keys on) by default; PostgreSQL by URL.
The schema is owned by the Alembic migrations in ``service/migrations``;
:func:`migrate` brings a database to the newest revision and is run by
``serve`` on start (and by tests on their throwaway databases).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


class RawJSON(str):
    """JSON text already serialised (a spec prepared in a worker process): stored as it is, not re-encoded.

    A JSON column's value is otherwise ``json.dumps``-ed on the way in: for a 1 MB spec, one long hold of
    the GIL in the API process. Read back, a column gives the decoded value as for any other.
    """


def to_json(value: Any) -> str:
    """The engines' JSON serializer: :class:`RawJSON` as it is, anything else through ``json.dumps``."""
    return value if isinstance(value, RawJSON) else json.dumps(value)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL and a busy timeout, and their directory is created."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=30, json_serializer=to_json)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # Sized for the threadpool that runs sync endpoints (40 threads) plus the dispatcher.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=48,
        max_overflow=16,
        pool_timeout=60,
        json_serializer=to_json,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``."""
    command.upgrade(alembic_config(engine), revision)
