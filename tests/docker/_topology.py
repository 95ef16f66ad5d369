"""The compose topology as real processes on loopback: PostgreSQL, MLflow, a two-node Ray cluster, the API.

Mirrors docker/compose.yaml service by service (MinIO aside: both Ray nodes share this machine's disk,
so a local results folder plays the bucket). Every process is stopped by PID. ``ray start`` daemonises
its processes, and the raylet starts workers in sessions of their own, so a node's processes are found
by a marker variable in their environment (inherited by everything the node starts: GCS, raylet,
dashboard, agents, workers, job supervisors and study drivers) — never by name, so other Ray clusters on
this machine are left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.postgres import PostgresServer, postgres_server
from tests.support.processes import (
    Proc,
    free_port,
    start_process,
    stop_process,
    wait_for_http,
    wait_until,
    worker_port_range,
)

BIN = Path(sys.executable).parent
MARKER = "MIXUP_TOPOLOGY_NODE"
ENV_DROP = ("MIXUP_STUDIES_", "RAY_", "MLFLOW_", "AWS_")


def base_env(home: Path) -> dict[str, str]:
    """This process's environment without anything that could point a child at another cluster or store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_DROP) and k != "PYTHONPATH"}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    # As in the images (PATH=/opt/venv/bin:...): job entrypoints run `python`, which must be this venv's.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    return env


def marked_pids(marker: str) -> list[int]:
    """PIDs whose environment carries ``MARKER=marker``."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def kill_marked(marker: str, sig: int = signal.SIGTERM, grace_s: float = 10.0) -> list[int]:
    """Signal every process of a node, then SIGKILL what is left after ``grace_s``; returns the PIDs hit."""
    hit = marked_pids(marker)
    for pid in hit:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + grace_s
    while sig != signal.SIGKILL and marked_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in marked_pids(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not marked_pids(marker), 15, 0.2, "the node's processes to exit")
    return hit


@dataclass
class RayNode:
    """One ``ray start`` node: its marker, temp dir and node manager port (how the state API names it)."""

    marker: str
    temp_dir: Path
    log: Path
    env: dict[str, str]
    node_id: str = ""

    def stop(self, sig: int = signal.SIGTERM) -> list[int]:
        return kill_marked(self.marker, sig)


@dataclass
class Topology:
    root: Path
    pg: PostgresServer
    studies_db: str
    mlflow_url: str
    dashboard_url: str
    gcs_address: str
    api_url: str
    admin_token: str
    ray_token: str
    head: RayNode
    worker: RayNode
    procs: dict[str, Proc] = field(default_factory=dict)

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=30.0)

    def ray_get(self, path: str) -> Any:
        """GET from the Ray dashboard (state API, jobs) with the cluster token."""
        headers = {"Authorization": f"Bearer {self.ray_token}"}
        response = httpx.get(f"{self.dashboard_url}{path}", headers=headers, timeout=30.0)
        response.raise_for_status()
        return response.json()

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.ray_get("/api/v0/nodes?limit=100&detail=true")["data"]["result"]["result"])

    def actors(self) -> list[dict[str, Any]]:
        return list(self.ray_get("/api/v0/actors?limit=10000&detail=true")["data"]["result"]["result"])

    def logs(self) -> str:
        parts = [f"--- {name} ({p.log_path})\n{p.log_text(6000)}" for name, p in self.procs.items()]
        for node in (self.head, self.worker):
            with contextlib.suppress(OSError):
                parts.append(f"--- {node.log}\n{node.log.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)


def _ray_ports() -> list[str]:
    """Ports of one node that would otherwise default to values shared with other clusters here."""
    low, high = worker_port_range()
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--min-worker-port={low}",
        f"--max-worker-port={high}",
    ]


def _ray_start(args: list[str], node: RayNode) -> None:
    """Run ``ray start`` (it daemonises the node and exits) and fail with its output if it does."""
    with open(node.log, "ab") as log:
        result = subprocess.run(
            [str(BIN / "ray"), "start", *args], stdout=log, stderr=subprocess.STDOUT, env=node.env, timeout=180
        )
    if result.returncode != 0:
        raise RuntimeError(f"ray start failed:\n{node.log.read_text(errors='replace')[-6000:]}")


def make_nodes(root: Path, env: dict[str, str], ray_token: str) -> tuple[RayNode, RayNode]:
    """The head's and the worker's identities (marker, temp dir, environment), before anything starts."""
    run_id = uuid.uuid4().hex[:10]
    nodes = []
    for role in ("head", "worker"):
        node_env = dict(env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=ray_token, **{MARKER: f"{run_id}-{role}"})
        temp = root / f"ray-{role}"
        temp.mkdir()
        nodes.append(RayNode(f"{run_id}-{role}", temp, root / f"ray-{role}.log", node_env))
    return nodes[0], nodes[1]


def start_ray(head: RayNode, worker: RayNode, ray_token: str) -> tuple[str, str]:
    """A head (job server, 1 CPU) and one worker (1 CPU) with token auth; returns the GCS address and dashboard."""
    gcs_port, dashboard_port = free_port(), free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats"]
    _ray_start(
        [
            "--head",
            f"--port={gcs_port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}",
            f"--ray-client-server-port={free_port()}",
            f"--temp-dir={head.temp_dir}",
            "--include-dashboard=true",
            *common,
            *_ray_ports(),
        ],
        head,
    )
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    auth = {"Authorization": f"Bearer {ray_token}"}
    wait_until(lambda: _answers(f"{dashboard}/api/version", auth), 120, 0.5, "the Ray job server")
    _ray_start([f"--address=127.0.0.1:{gcs_port}", f"--temp-dir={worker.temp_dir}", *common, *_ray_ports()], worker)
    return f"127.0.0.1:{gcs_port}", dashboard


def _answers(url: str, headers: dict[str, str]) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=3.0).status_code == 200
    except httpx.HTTPError:
        return False


def _alive_nodes(topology: Topology) -> list[dict[str, Any]]:
    return [n for n in topology.nodes() if n["state"] == "ALIVE"]


def identify_nodes(topology: Topology) -> None:
    """Wait for both raylets and tell which node id is the head's."""

    def both_alive() -> list[dict[str, Any]]:
        alive = _alive_nodes(topology)
        return alive if len(alive) == 2 else []

    nodes = wait_until(both_alive, 120, 0.5, "two raylets")
    topology.head.node_id = next(n["node_id"] for n in nodes if n["is_head_node"])
    topology.worker.node_id = next(n["node_id"] for n in nodes if not n["is_head_node"])


@contextlib.contextmanager
def topology(root: Path) -> Iterator[Topology]:
    """Start everything compose starts (as processes), yield it, stop all of it by PID."""
    home = root / "home"
    home.mkdir()
    env = base_env(home)
    ray_token, admin_token = uuid.uuid4().hex, uuid.uuid4().hex
    procs: dict[str, Proc] = {}
    mlflow_port = free_port()
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    # compose: every Ray node sees the tracking and results URIs (study drivers and trials run there).
    shared = {
        "MIXUP_STUDIES_TRACKING_URI": mlflow_url,
        "MIXUP_STUDIES_RESULTS_URI": str(root / "ray-results"),
        "MIXUP_STUDIES_DATA_DIR": str(root / "data"),
    }
    head, worker = make_nodes(root, env | shared, ray_token)
    with postgres_server(root) as pg:
        try:
            studies_db, mlflow_db = pg.create_database("mixup_studies"), pg.create_database("mlflow")
            procs["mlflow"] = start_process(
                [
                    str(BIN / "mlflow"),
                    "server",
                    "--host=127.0.0.1",
                    f"--port={mlflow_port}",
                    f"--backend-store-uri={mlflow_db}",
                    "--serve-artifacts",
                    f"--artifacts-destination={root / 'mlartifacts'}",
                    "--workers=1",
                ],
                root / "mlflow.log",
                env=env,
                cwd=root,
                name="mlflow",
            )
            gcs, dashboard = start_ray(head, worker, ray_token)
            wait_for_http(f"{mlflow_url}/health", 240, procs["mlflow"], ok=lambda r: r.status_code == 200)
            api_port = free_port()
            api_env = env | shared
            api_env.update(
                MIXUP_STUDIES_HOME=str(root / "api-home"),
                MIXUP_STUDIES_DATABASE_URL=studies_db,
                MIXUP_STUDIES_LAUNCHER="ray_jobs",
                MIXUP_STUDIES_RAY_JOBS_URL=dashboard,
                MIXUP_STUDIES_ADMIN_TOKEN=admin_token,
                MIXUP_STUDIES_MAX_RUNNING_STUDIES="1",
                MIXUP_STUDIES_MLFLOW_UI_PORT="0",
                MIXUP_STUDIES_MLFLOW_UI_URL=mlflow_url,
                RAY_AUTH_MODE="token",
                RAY_AUTH_TOKEN=ray_token,
            )
            procs["api"] = start_process(
                [str(BIN / "mixup-studies"), "serve", "--host", "127.0.0.1", "--port", str(api_port)],
                root / "api.log",
                env=api_env,
                cwd=root,
                name="api",
            )
            api_url = f"http://127.0.0.1:{api_port}"
            topo = Topology(
                root, pg, studies_db, mlflow_url, dashboard, gcs, api_url, admin_token, ray_token, head, worker, procs
            )
            wait_for_http(f"{api_url}/healthz", 180, procs["api"], ok=lambda r: r.status_code == 200)
            wait_for_http(f"{api_url}/readyz", 120, procs["api"], ok=lambda r: r.status_code == 200)
            identify_nodes(topo)
            yield topo
        finally:
            if "api" in procs:
                stop_process(procs["api"], grace_s=20)
            for node in (worker, head):
                node.stop()
            if "mlflow" in procs:
                stop_process(procs["mlflow"], grace_s=15)
