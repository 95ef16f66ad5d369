"""The MLflow store is created exactly once, whoever opens it first and however many open it at once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from mlflow.store.db.utils import _get_latest_schema_revision

from studies.store import prepare_store, store_ready
from tests.support.processes import wait_until

REPO = Path(__file__).resolve().parents[2]

# One opener: imports MLflow (seconds), says it is ready, waits for the starting line, then does what a
# driver does (prepare the store, then use it through MLflow's client) and says whether it created it.
OPENER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mlflow.tracking import MlflowClient
    from studies.store import prepare_store

    uri, go, ready, name = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    ready.touch()
    while not go.exists():
        time.sleep(0.002)
    created = prepare_store(uri, Path(sys.argv[5]))
    MlflowClient(uri).create_experiment(name)
    print("created" if created else "found", flush=True)
    """
)


def test_processes_opening_one_fresh_store_at_once_all_succeed_and_it_is_created_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    go, n = tmp_path / "go", 4
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, uri, str(go), str(tmp_path / f"ready{i}"), f"p{i}", str(tmp_path / "art")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(n)
    ]
    try:
        wait_until(lambda: all((tmp_path / f"ready{i}").exists() for i in range(n)), 120, 0.05, "openers ready")
        go.touch()  # all four open the fresh store at the same moment
        results = [opener.communicate(timeout=120) for opener in openers]
    finally:
        for opener in openers:
            if opener.poll() is None:
                opener.kill()
    assert [o.returncode for o in openers] == [0] * n, [err[-2000:] for _, err in results]
    assert sorted(out.strip() for out, _ in results) == ["created"] + ["found"] * (n - 1)
    with sqlite3.connect(tmp_path / "mlflow.db") as store:
        assert store.execute("SELECT version_num FROM alembic_version").fetchall() == [(_get_latest_schema_revision(),)]
        names = sorted(name for (name,) in store.execute("SELECT name FROM experiments"))
        assert store.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert names == ["Default", "p0", "p1", "p2", "p3"]


def test_a_complete_store_is_found_not_created_again(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'sub' / 'mlflow.db'}"
    assert not store_ready(uri)
    assert prepare_store(uri, tmp_path / "art") is True
    assert store_ready(uri)
    assert prepare_store(uri, tmp_path / "art") is False
    assert prepare_store("http://127.0.0.1:1", tmp_path / "art") is False  # a server keeps its own store
    assert store_ready("http://127.0.0.1:1")


def test_a_driver_that_cannot_open_its_store_exits_4_saying_why(tmp_path: Path) -> None:
    # Not "every trial failed" (exit 1, which Python also uses for any uncaught exception): the driver broke.
    env = {**os.environ, "PYTHONPATH": str(REPO), "MIXUP_STUDIES_HOME": str(tmp_path / "home")}
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "studies.cli", "run", "smoke", "--quiet", "--study-id", "s1",
         "--tracking-uri", f"sqlite:///{blocker / 'mlflow.db'}"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 4, (done.stdout, done.stderr)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("driver error: FileExistsError") or last.startswith("driver error: NotADirectoryError"), last
    assert "Traceback (most recent call last)" in done.stderr  # the whole story stays in the driver's log


def test_reading_a_study_from_a_store_not_created_yet_creates_nothing(tmp_path: Path) -> None:
    # `mixup-studies report` (or any reader) on a fresh store would otherwise create it, racing a driver.
    from studies.progress import read_progress

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert read_progress(uri, "some-study") is None
    assert not (tmp_path / "mlflow.db").exists()
    prepare_store(uri, tmp_path / "art")
    assert read_progress(uri, "some-study") is None  # a complete store without the study: still None
