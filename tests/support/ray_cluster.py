"""A throwaway Ray cluster on loopback: ``ray start --head`` plus a second node, token auth on.

Every port is a free one, the cluster has its own ``--temp-dir``, and it is stopped by the PIDs
of the ``ray start --block`` processes this module started (their process groups), never ``ray stop``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import Proc, free_port, start_process, stop_process, wait_for_http, worker_port_range

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RayCluster:
    address: str  # GCS, for `ray start --address` / ray.init
    dashboard_url: str  # the job server
    token: str
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)


def _node_ports() -> list[str]:
    low, high = worker_port_range()
    return [
        "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
        "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port()),
        "--min-worker-port", str(low), "--max-worker-port", str(high),
    ]  # fmt: skip


@contextmanager
def ray_cluster(num_cpus: int = 2, workers: int = 1, timeout_s: float = 120.0) -> Iterator[RayCluster]:
    """Start a head node (job server on a free port) and ``workers`` more nodes; yield; stop them."""
    ray = str(Path(sys.executable).parent / "ray")
    temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths have a length limit
    token = secrets.token_hex(32)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    port, dashboard = free_port(), free_port()
    cluster = RayCluster(f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}", token, env)
    common = ["--num-cpus", str(num_cpus), "--node-ip-address", "127.0.0.1", "--block", "--disable-usage-stats"]
    try:
        head = [ray, "start", "--head", "--port", str(port), "--dashboard-host", "127.0.0.1",
                "--dashboard-port", str(dashboard), "--include-dashboard", "true",
                "--ray-client-server-port", str(free_port()), "--temp-dir", str(temp_dir),
                *common, *_node_ports()]  # fmt: skip
        cluster.procs.append(start_process(head, temp_dir.with_suffix(".head.log"), env=env, cwd=REPO, name="ray-head"))
        wait_for_http(f"{cluster.dashboard_url}/api/version", timeout_s, cluster.procs[0])
        for index in range(workers):
            worker = [ray, "start", "--address", cluster.address, *common, *_node_ports()]
            log = temp_dir.with_suffix(f".worker{index}.log")
            cluster.procs.append(start_process(worker, log, env=env, cwd=REPO, name=f"ray-worker{index}"))
        yield cluster
    finally:
        for proc in reversed(cluster.procs):
            stop_process(proc, grace_s=8.0)
        shutil.rmtree(temp_dir, ignore_errors=True)
