"""A throwaway PostgreSQL server for tests (Debian's ``postgresql`` package; skipped where absent).

Stable API::

    with postgres_server(tmp_path) as pg:        # or the session-wide fixture in a conftest
        url = pg.create_database("service")      # postgresql+psycopg://postgres@127.0.0.1:PORT/service
        ...

The cluster lives in a temp dir owned by the ``postgres`` user (when we are root, initdb and the
server run as that user: PostgreSQL refuses to run as root), listens on 127.0.0.1 on a free port
with trust authentication, and is stopped by its PID (SIGINT: fast shutdown, then SIGKILL).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import Proc, free_port, start_process, stop_process, wait_until

PG_GLOB = "/usr/lib/postgresql/*/bin"


def pg_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin dir (with initdb and postgres), or None."""
    found = sorted(glob.glob(PG_GLOB), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    for folder in reversed(found):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "postgres").exists():
            return Path(folder)
    return None


def skip_reason() -> str | None:
    """Why a PostgreSQL test cannot run here, or None."""
    if pg_bin_dir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no 'postgres' user"
    return None


@dataclass
class PostgresServer:
    """A running server: ``port``, ``proc`` and :meth:`create_database`."""

    port: int
    proc: Proc
    root: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL."""
        import psycopg

        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name must be letters, digits and '_', got {name!r}")
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _accepts_connections(port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def postgres_server(parent: Path | None = None, timeout_s: float = 60.0) -> Iterator[PostgresServer]:
    """Start a fresh cluster, yield it, stop it and remove its files."""
    reason = skip_reason()
    if reason is not None:
        import pytest

        pytest.skip(reason)
    bin_dir = pg_bin_dir()
    assert bin_dir is not None
    root = Path(tempfile.mkdtemp(prefix="pg-", dir=parent))
    root.chmod(0o755)
    user = None
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
        user = "postgres"
    data = root / "data"
    subprocess.run(
        _as_postgres(
            [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
        cwd=root,
    )
    port = free_port()
    args = [
        str(bin_dir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-k",
        str(root),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
    ]
    proc = start_process(args, root.parent / f"{root.name}.log", cwd=root, name="postgres", user=user)
    try:
        wait_until(lambda: _accepts_connections(port) or not proc.alive(), timeout_s, 0.2, "postgres to start")
        if not proc.alive():
            raise RuntimeError(f"postgres exited early:\n{proc.log_text()}")
        yield PostgresServer(port=port, proc=proc, root=root)
    finally:
        stop_process(proc, grace_s=15.0, sig=signal.SIGINT)  # SIGINT = fast shutdown
        shutil.rmtree(root, ignore_errors=True)
