"""The MLflow tracking store: created exactly once, before anything uses it.

MLflow creates a database store's tables (and migrates them) the first time any process opens it. Two
processes doing that at once on a fresh SQLite file fail each other in many ways (``duplicate column
name: run_link``, ``table scorers already exists``, Alembic's "expected to match one row"): on a fresh
home, two study drivers started together lost one of the two studies. So every process that opens a
local store first goes through :func:`prepare_store`: under an exclusive lock on a file beside the
store (``<store>.lock``, ``flock``: released by the kernel when a holder dies), the first one creates
the store and the others find it complete. ``mixup-studies serve`` prepares the store at its start,
before the MLflow UI and the dispatcher (which reads progress) ever open it; drivers prepare it too,
because ``mixup-studies run`` drivers may start together with no service at all.

MLflow is imported only when a store has to be created, so a process that finds it complete (the
API's, on every start but the first) does not pay for that import.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterator
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file of a local SQLite store, or None for any other store."""
    return Path(tracking_uri.removeprefix(SQLITE_PREFIX)) if tracking_uri.startswith(SQLITE_PREFIX) else None


def store_ready(tracking_uri: str) -> bool:
    """Whether a local SQLite store is complete (other stores: always; they are not created here).

    The file alone proves nothing (WAL mode is set on it first), nor do the tables: MLflow's last step
    is inserting the default experiment, so that row marks a complete store. Read-only: a reader that
    finds the store incomplete must not create anything.
    """
    path = sqlite_path(tracking_uri)
    if path is None:
        return True
    path = path.resolve()
    if not path.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as store:
            return store.execute("SELECT 1 FROM experiments WHERE experiment_id = 0").fetchone() is not None
    except sqlite3.Error:  # no such table yet, or locked by a migration
        return False


def prepare_store(tracking_uri: str, artifact_root: Path) -> bool:
    """Create a local SQLite store (in WAL mode) unless it is complete; True when this call created it.

    ``artifact_root`` is where the default experiment's artifacts would go (studies name their own).
    Any other store is left alone: a tracking server keeps its own database.
    """
    path = sqlite_path(tracking_uri)
    if path is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if store_ready(tracking_uri):
            return False
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")  # persistent in the file: set before any table
        _create(tracking_uri, artifact_root)
        return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock beside ``path`` (blocks until the holder is done or dead)."""
    with open(path.with_name(f"{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _create(tracking_uri: str, artifact_root: Path) -> None:
    # MLflow's own store constructor: it creates every table, migrates to its head revision and inserts
    # the default experiment, exactly as it would on the first client call.
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(tracking_uri, artifact_root.resolve().as_uri())
    store.engine.dispose()  # this process may never use the store again (serve): keep no connection open
