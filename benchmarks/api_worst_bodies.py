"""The API under the worst study specs a body can hold: /healthz latency while several clients submit them.

Starts `mixup-studies serve` (one uvicorn worker, SQLite, the stand-in driver of tests.support.fake_driver,
so no training competes for the cores) with a throwaway home, then for ``--seconds``:

- ``--clients`` keep-alive connections submit, back to back, the worst bodies under the 1 MB body limit
  (below: many list axes, 40,000 variants, 100,000+ seeds, deep nesting, 80,000 unknown keys, 250,000 bad
  list items, a synthetic shape of 10**30, duplicate names, the 910-byte four-axis search that once took
  22 s), each kind in turn;
- one connection sends ``GET /healthz`` at ``--health-rate`` per second (open loop: a latency counts from
  the moment its request was due, so a stalled event loop cannot hide its backlog).

Prints one JSON line: ``healthz_p99_ms`` (goal: <= 50 ms throughout), ``errors_5xx`` (goal: 0), the
submissions' statuses and latencies per kind, the server's CPU time and the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from api_load import TOKEN, cpu_seconds, figures, hammer  # noqa: E402

from tests.support.processes import free_port, kill_processes_mentioning, start_process, stop_process, wait_for_http  # noqa: E402

LIMIT = 1_000_000  # MIXUP_STUDIES_MAX_BODY_BYTES's default
BASE: dict[str, Any] = {
    "name": "worst",
    "description": "sleep=3600",  # the stand-in driver of the one study that starts sleeps: no CPU taken
    "dataset": {"name": "synthetic"},
    "model": {"name": "mlp"},
    "training": {"epochs": 1, "batch_size": 16, "device": "cpu"},
}


def random_search(**search: Any) -> dict[str, Any]:
    return {**BASE, "search": {"algorithm": "random", "num_samples": 4, **search}}


def fill(make: Any, budget: int = LIMIT - 2_000) -> Any:
    """``make(n)`` for the largest n (found by doubling, then bisection) whose JSON fits ``budget`` bytes."""
    low, high = 1, 2
    while len(json.dumps(make(high))) <= budget:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if len(json.dumps(make(middle))) <= budget else (low, middle)
    return make(low)


def worst_bodies() -> dict[str, bytes]:
    """Each kind of costly body, as large as the body limit allows."""
    wide = [0.0, *(0.05 * i for i in range(1, 22))]
    bodies: dict[str, Any] = {
        # 910 bytes: 234,256 grid combinations were validated one by one (22 s)
        "four_axes_910_bytes": random_search(
            space={"alpha": wide, "weight_decay": wide, "lr": [*wide[1:], 1.2], "label_smoothing": wide[:20]}
        ),
        # valid: every numeric axis a long list (random search draws from them)
        "five_long_axes": fill(
            lambda n: random_search(
                space={
                    a: [round(0.1 + i * 1e-6, 6) for i in range(n)]
                    for a in ("alpha", "weight_decay", "lr", "label_smoothing", "input_noise")
                }
            )
        ),
        # valid: as many variants as fit (the duplicate-name check was quadratic: 40,000 took 46 s)
        "many_variants": fill(
            lambda n: random_search(variants=[{"name": f"v{i}", "label_smoothing": 0.01} for i in range(n)])
        ),
        "duplicate_variant_names": fill(
            lambda n: random_search(variants=[{"name": f"v{i % max(1, n - 1)}"} for i in range(n)])
        ),
        "many_seeds": fill(lambda n: {**BASE, "search": {"algorithm": "optuna", "seeds": list(range(n))}}),
        "many_unknown_keys": fill(lambda n: {**BASE, **{f"k{i}": 0 for i in range(n)}}),
        "many_bad_items": fill(lambda n: random_search(space={"alpha": ["x"] * n})),
        "huge_shape_hidden_layer": {
            **BASE,
            "dataset": {"name": "synthetic", "synthetic": {"shape": [10**30]}},
            "mixup": {"layer": "feature_map"},
        },
    }
    encoded = {kind: json.dumps(body).encode() for kind, body in bodies.items()}
    depth = (LIMIT - 100) // 2
    encoded["deep_nesting"] = b'{"name": "deep", "description": ' + b"[" * depth + b"]" * depth + b"}"
    assert all(len(body) <= LIMIT for body in encoded.values()), {k: len(v) for k, v in encoded.items()}
    return encoded


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes) -> int:
    writer.write(head + body)
    lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines[1:] if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def submitter(port: int, bodies: dict[str, bytes], offset: int, deadline: float, out: dict[str, Any]) -> None:
    """One keep-alive connection submitting every kind of body in turn until ``deadline``."""
    kinds = list(bodies)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < deadline:
            kind = kinds[i % len(kinds)]
            head = (
                f"POST /api/v1/studies HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(bodies[kind])}\r\n\r\n"
            ).encode()
            began = time.perf_counter()
            try:
                status = await post(reader, writer, head, bodies[kind])
            except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
                out["transport_errors"] += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            entry = out["kinds"].setdefault(kind, {"statuses": {}, "latencies": []})
            entry["statuses"][str(status)] = entry["statuses"].get(str(status), 0) + 1
            entry["latencies"].append(time.perf_counter() - began)
            i += 1
    finally:
        writer.close()


async def load(port: int, bodies: dict[str, bytes], args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    out: dict[str, Any] = {"kinds": {}, "transport_errors": 0}
    deadline = time.perf_counter() + 0.2 + args.seconds
    health = hammer(f"http://127.0.0.1:{port}", "/healthz", 1, args.seconds, args.health_rate)
    submitters = [submitter(port, bodies, i, deadline, out) for i in range(args.clients)]
    (tally, elapsed), *_ = await asyncio.gather(health, *submitters)
    return figures(tally, elapsed), out


def summary(out: dict[str, Any]) -> dict[str, Any]:
    kinds = {}
    for kind, entry in sorted(out["kinds"].items()):
        lat = sorted(entry["latencies"])
        kinds[kind] = {
            "statuses": entry["statuses"],
            "p50_ms": round(lat[len(lat) // 2] * 1000, 1),
            "max_ms": round(lat[-1] * 1000, 1),
        }
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help="Connections submitting worst bodies.")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--health-rate", type=float, default=100.0, help="GET /healthz per second.")
    parser.add_argument("--only", default="", help="Comma-separated kinds of body (default: all).")
    parser.add_argument("--quick", action="store_true", help="2 clients for 4 s (tests).")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = 2, 4.0
    bodies = worst_bodies()
    if args.only:
        bodies = {kind: bodies[kind] for kind in args.only.split(",")}
    home = Path(tempfile.mkdtemp(prefix="mixup-worst-bodies-"))
    port = free_port()
    env = {
        **os.environ,
        "MIXUP_STUDIES_HOME": str(home),
        "MIXUP_STUDIES_ADMIN_TOKEN": TOKEN,
        "MIXUP_STUDIES_MLFLOW_UI_PORT": "0",
        "MIXUP_STUDIES_DRIVER_MODULE": "tests.support.fake_driver",  # accepted studies only sleep
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    server = start_process(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)], home / "serve.log", env=env, cwd=REPO
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", 120, server)
        cpu_before = cpu_seconds(server.pid)
        health, out = asyncio.run(load(port, bodies, args))
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        stop_process(server, grace_s=15)
        kill_processes_mentioning(str(home))  # the stand-in drivers (sleep=3600) outlive the service by design
    kinds = summary(out)
    errors_5xx = sum(n for k in kinds.values() for code, n in k["statuses"].items() if int(code) >= 500)
    errors_5xx += sum(n for code, n in health["statuses"].items() if int(code) >= 500)
    print(
        json.dumps(
            {
                "benchmark": "api_worst_bodies",
                "quick": args.quick,
                "healthz_p99_ms": health["p99_ms"],
                "healthz_max_ms": health["max_ms"],
                "healthz_p50_ms": health["p50_ms"],
                "healthz_requests": health["requests"],
                "errors_5xx": errors_5xx,
                "submissions": sum(sum(k["statuses"].values()) for k in kinds.values()),
                "submit_transport_errors": out["transport_errors"],
                "server_cpu_s": round(cpu, 2),
                "kinds": kinds,
                "body_bytes": {kind: len(body) for kind, body in bodies.items()},
                "clients": args.clients,
                "seconds": args.seconds,
                "health_rate": args.health_rate,
                "cores": os.cpu_count(),
                "loadavg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
