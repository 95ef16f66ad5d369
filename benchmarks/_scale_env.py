"""What ``study_scale.py`` runs the service against: a loopback Ray cluster of K nodes and the MLflow store's meter.

Imported as ``_scale_env``. The Ray nodes are ``ray start --block`` processes started here, each in its own
process group, and stopped by those PIDs (never ``ray stop``: other people's Rays run on this machine).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _scale_probes import cmdline, descendants

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.processes import Proc, free_port, start_process, stop_process, wait_until  # noqa: E402
from tests.support.ray_cluster import _node_ports  # noqa: E402

#: MLflow's tables a trial's record lands in.
MLFLOW_TABLES = ("runs", "params", "metrics", "latest_metrics", "tags")
#: Added niceness of the Ray nodes (and so of every trial): the drivers get serve's default of 10.
RAY_NICE = 9


@dataclass
class RayNodes:
    """A head and more nodes on 127.0.0.1, each its own ``ray start --block``; ``address`` is the GCS's."""

    address: str
    temp_dir: Path
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    def _find(self, proc: Proc, program: str) -> int | None:
        for pid in descendants(proc.pid):
            line = cmdline(pid).split(" ", 1)[0]
            if line.endswith(f"/{program}") or line == program:
                return pid
        return None

    def gcs_pid(self) -> int | None:
        return self._find(self.procs[0], "gcs_server")

    def raylet_pids(self) -> dict[str, int]:
        """node0 (the head), node1, ... → its raylet's PID."""
        found = {f"node{i}": self._find(proc, "raylet") for i, proc in enumerate(self.procs)}
        return {name: pid for name, pid in found.items() if pid is not None}

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc, grace_s=10.0)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        for log in self.temp_dir.parent.glob(f"{self.temp_dir.name}.node*.log"):
            log.unlink(missing_ok=True)


def start_ray_nodes(shapes: list[tuple[int, int]], timeout_s: float = 400.0) -> RayNodes:
    """Start one node per ``(cpus, gpus)`` (the first is the head); return once every raylet runs.

    The resources are logical: Ray schedules by them, the machine's two cores run whatever they admit. Idle
    worker prestarting is off: Ray would start one idle Python worker per logical CPU (64 of them).
    """
    ray = str(Path(sys.executable).parent / "ray")
    temp_dir = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Token auth as tests/support/ray_cluster.py: Ray 2.60 asks a client for a token where a
        # ~/.ray/auth_token exists, and the drivers inherit these from serve's environment.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_enable_worker_prestart": "0",
        "RAY_prestart_worker_first_driver": "0",
    }
    port = free_port()
    nodes = RayNodes(f"127.0.0.1:{port}", temp_dir, env)
    common = ["--node-ip-address", "127.0.0.1", "--block", "--disable-usage-stats"]
    try:
        for index, (cpus, gpus) in enumerate(shapes):
            size = ["--num-cpus", str(cpus), "--num-gpus", str(gpus)]
            if index == 0:
                role = ["--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", str(temp_dir),
                        "--ray-client-server-port", str(free_port())]  # fmt: skip
            else:
                role = ["--address", nodes.address]
            # Niced below the service: on a cluster the trials run on other machines than the API and the
            # dispatcher; here they share the cores, and the API's latencies should not be the trials' queue.
            args = ["nice", "-n", str(RAY_NICE), ray, "start", *role, *size, *common, *_node_ports()]
            log = temp_dir.with_suffix(f".node{index}.log")
            if index == 0:
                nodes.procs.append(start_process(args, log, env=env, cwd=REPO, name="ray-node0"))
                wait_until(lambda: nodes.gcs_pid() and nodes.raylet_pids(), timeout_s, 0.5, "the Ray head")
            else:
                nodes.procs.append(_join_node(args, log, env, f"ray-node{index}", timeout_s))
        wait_until(lambda: len(nodes.raylet_pids()) == len(shapes), timeout_s, 0.5, "every raylet")
        wait_until(lambda: _registered(nodes, len(shapes)), timeout_s, 1.0, "every node to join the cluster")
        _lower_sessions(nodes)
    except BaseException:
        nodes.stop()
        raise
    return nodes


def _join_node(args: list[str], log: Path, env: dict[str, str], name: str, timeout_s: float) -> Proc:
    """Start one more node and wait until ``ray start`` says it runs, one node at a time.

    ``ray start`` gives its raylet 30 s to register with the GCS (not configurable); two nodes joining a head
    on these 2 busy cores at once both missed it. A node that misses it is started once more.
    """
    for _ in range(2):
        proc = start_process(args, log, env=env, cwd=REPO, name=name)
        up = lambda p=proc: not p.alive() or "Ray runtime started." in p.log_text()  # noqa: E731
        wait_until(up, timeout_s, 0.5, name)
        if proc.alive():
            return proc
    raise RuntimeError(f"{name} did not join the cluster:\n{proc.log_text(2000)}")


def _lower_sessions(nodes: RayNodes) -> None:
    """Put the Ray nodes' scheduler groups at the lowest CPU weight (Linux autogroups; where there are none,
    nothing changes).

    ``ray start`` runs its daemons in sessions of their own, and Linux shares CPU between sessions before it
    looks at niceness: 16 trials at nice 19 still took the serve session's fair share, and serve's main thread
    waited longer for a core than it ran (2.1 s queued, 1.6 s running in 20 s), so the API's p99 measured the
    2-core machine's run queue. On a cluster the trials run on other machines than the API and the dispatcher.
    """
    for pid in [nodes.gcs_pid(), *nodes.raylet_pids().values()]:
        lower_session(pid)


def lower_session(pid: int | None) -> None:
    """Give the session of ``pid`` the lowest CPU weight (where Linux has autogroups; else nothing changes)."""
    with contextlib.suppress(OSError, TypeError):
        Path(f"/proc/{pid}/autogroup").write_text("19")


def _registered(nodes: RayNodes, count: int) -> bool:
    """Whether the GCS lists ``count`` live nodes (asked in a subprocess: this process stays out of Ray)."""
    import subprocess

    probe = (
        f"import ray; ray.init(address='{nodes.address}', logging_level='ERROR'); "
        "print(len([n for n in ray.nodes() if n['Alive']]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=nodes.env, capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    return bool(lines) and lines[-1].strip() == str(count)


class StoreMeter:
    """The MLflow store's size, rows and (PostgreSQL) transactions, read before and after a study."""

    def __init__(self, tracking_uri: str) -> None:
        self.uri = tracking_uri
        self.sqlite_path = Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite") else None

    def read(self) -> dict[str, int]:
        if self.sqlite_path is not None:
            return self._read_sqlite(self.sqlite_path)
        return self._read_postgres()

    @staticmethod
    def _read_sqlite(path: Path) -> dict[str, int]:
        sizes = sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
        out = {"bytes": sizes}
        if not path.exists():
            return {**out, **dict.fromkeys(MLFLOW_TABLES, 0)}
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)) as db:
            for table in MLFLOW_TABLES:
                out[table] = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        return out

    def _read_postgres(self) -> dict[str, int]:
        import psycopg

        time.sleep(1.0)  # the server publishes its transaction counters at most about once a second
        conninfo = self.uri.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo) as db:
            db.execute("SELECT pg_stat_clear_snapshot()")
            row = db.execute(
                "SELECT pg_database_size(current_database()), xact_commit, tup_inserted, tup_updated, tup_deleted "
                "FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
            assert row is not None
            out = dict(
                zip(("bytes", "xact_commit", "tup_inserted", "tup_updated", "tup_deleted"), map(int, row), strict=True)
            )
            for table in MLFLOW_TABLES:  # before the first driver, MLflow has not created its tables yet
                exists = db.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
                counted = db.execute(f"SELECT count(*) FROM {table}").fetchone() if exists and exists[0] else None
                out[table] = int(counted[0]) if counted else 0
        return out


def store_figures(before: dict[str, int], after: dict[str, int], trials: int) -> dict[str, Any]:
    """Per trial: bytes, rows added per table and in all, and (PostgreSQL) commits and tuples written."""
    delta = {key: after[key] - before.get(key, 0) for key in after}
    out: dict[str, Any] = {
        "mlflow_bytes_per_trial": round(delta["bytes"] / trials),
        "mlflow_rows_per_trial": round(sum(delta[t] for t in MLFLOW_TABLES) / trials, 2),
        "mlflow_rows_per_trial_by_table": {t: round(delta[t] / trials, 2) for t in MLFLOW_TABLES},
    }
    if "xact_commit" in delta:
        # Every transaction on the database, the dispatcher's progress reads included (a read commits too).
        out["pg_commits_per_trial"] = round(delta["xact_commit"] / trials, 2)
        tuples = delta["tup_inserted"] + delta["tup_updated"] + delta["tup_deleted"]
        out["pg_tuples_written_per_trial"] = round(tuples / trials, 2)
    return out


def mlflow_trial_runs(tracking_uri: str, experiment_id: str, parent_run_id: str) -> list[dict[str, Any]]:
    """Every trial run of a study: run id, start and end (ms)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
            max_results=5000,
            page_token=token,
        )
        runs += [{"run_id": r.info.run_id, "start": r.info.start_time, "end": r.info.end_time} for r in page]
        token = page.token
        if not token:
            return runs
