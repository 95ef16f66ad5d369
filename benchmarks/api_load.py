"""REST API load: 200 concurrent submissions, then GET status at 50 concurrent clients while a study runs.

Starts `mixup-studies serve` (one uvicorn worker, SQLite, local launcher) on a free loopback port with a
throwaway home, submits the smoke preset plus 199 small studies all at once, checks every one was
persisted, then hammers ``GET /api/v1/studies/{id}`` from 50 concurrent clients for ``--seconds`` while
the first study runs. Prints one JSON line: submitted, persisted, errors_5xx, p99_ms, req_per_s (+ details).
Goal: p99 <= 50 ms and >= 500 req/s with one worker on 2 cores (the load generator shares those cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from studies.specfile import preset_path  # noqa: E402
from tests.support.processes import free_port, start_process, stop_process, wait_for_http, wait_until  # noqa: E402

TOKEN = "mxs_api-load-benchmark"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SMALL = {
    "name": "load",
    "dataset": {"name": "uci:iris"},
    "model": {"name": "mlp"},
    "training": {"epochs": 2, "batch_size": 16, "optimizer": "adam", "lr": 0.01},
    "search": {"space": {"alpha": [0.0, 1.0]}},
}


async def submit_all(url: str, n: int) -> tuple[list[str], int, int]:
    specs = [yaml.safe_load(preset_path("smoke").read_text())] + [SMALL] * (n - 1)
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, headers=AUTH, limits=limits, timeout=120) as client:
        responses = await asyncio.gather(
            *(client.post("/api/v1/studies", json=s) for s in specs), return_exceptions=True
        )
    ids = [r.json()["id"] for r in responses if isinstance(r, httpx.Response) and r.status_code == 201]
    errors_5xx = sum(1 for r in responses if isinstance(r, httpx.Response) and r.status_code >= 500)
    failed = sum(1 for r in responses if not isinstance(r, httpx.Response))
    return ids, errors_5xx, failed


async def hammer(url: str, study_id: str, clients: int, seconds: float) -> tuple[list[float], int, int]:
    latencies: list[float] = []
    errors = [0, 0]  # 5xx, transport
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=AUTH, limits=limits, timeout=30) as client:

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get(f"/api/v1/studies/{study_id}")
                except httpx.HTTPError:
                    errors[1] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                errors[0] += response.status_code >= 500

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies, errors[0], errors[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mixup-api-load-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MIXUP_STUDIES_HOME": str(home),
        "MIXUP_STUDIES_ADMIN_TOKEN": TOKEN,
        "MIXUP_STUDIES_MAX_QUEUED_PER_USER": "100000",
        "MIXUP_STUDIES_RAY_NUM_CPUS": "2",
        "MIXUP_STUDIES_RAY_TEMP_DIR": tempfile.mkdtemp(prefix="r", dir="/tmp"),
        "MIXUP_STUDIES_MLFLOW_UI_PORT": "0",
    }
    serve = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
    server = start_process(serve, home / "serve.log", env=env, cwd=REPO, name="serve")
    try:
        wait_for_http(f"{url}/healthz", 120, server)
        ids, submit_5xx, submit_failed = asyncio.run(submit_all(url, args.submissions))
        listed = httpx.get(f"{url}/api/v1/studies", params={"limit": 500}, headers=AUTH, timeout=60)
        persisted = len({s["id"] for s in listed.json()["items"]} & set(ids))

        def running() -> str | None:
            page = httpx.get(f"{url}/api/v1/studies", params={"status": "running"}, headers=AUTH, timeout=60).json()
            return str(page["items"][0]["id"]) if page["items"] else None

        first = wait_until(running, 120, 0.5, "a study to run")
        started = time.perf_counter()
        latencies, get_5xx, transport = asyncio.run(hammer(url, first, args.clients, args.seconds))
        elapsed = time.perf_counter() - started
        latencies.sort()

        def pct(q: float) -> float:
            return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

        print(
            json.dumps(
                {
                    "benchmark": "api_load",
                    "submitted": args.submissions,
                    "persisted": persisted,
                    "errors_5xx": submit_5xx + get_5xx,
                    "transport_errors": submit_failed + transport,
                    "p50_ms": pct(0.50),
                    "p99_ms": pct(0.99),
                    "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
                    "req_per_s": round(len(latencies) / elapsed, 1),
                    "requests": len(latencies),
                    "clients": args.clients,
                    "while_running": first,
                    "cores": os.cpu_count(),
                }
            )
        )
    finally:
        stop_process(server, grace_s=15)
        for pid_file in (home / "drivers").glob("*.pid"):
            stop_process(int(pid_file.read_text().split(":")[0]), grace_s=30, sig=signal.SIGINT)


if __name__ == "__main__":
    main()
