"""What an idle ``mixup-studies serve`` costs: CPU and memory of its whole process tree, MLflow UI included.

Starts ``serve`` (API + dispatcher + the MLflow UI it starts, as ``make serve`` does) on free loopback ports
with a throwaway home, waits until the API and the UI answer, lets it settle, then reads ``/proc`` for every
process in the tree: CPU time used over ``--seconds`` (as a share of one core) and the RSS summed at the end.
Each arm sets ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION`` for the UI: ``off`` (what ``serve`` does now) and ``on``
(MLflow's default, what ``serve`` did before: a huey job runner beside the UI's server). Arms alternate over
``--rounds``. RSS counts pages shared between processes (forked workers) once per process: a process tree's
summed RSS, as ``ps`` would add it up.

Prints one JSON line: per arm, cpu_share (cores used while idle), rss_mb, processes, job_runner_processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.processes import free_port, start_process, stop_process, wait_for_http  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, CPU ticks user + system, RSS in kB) of ``pid``; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21]) * PAGE_KB


def tree(root: int) -> dict[int, tuple[int, int]]:
    """pid → (CPU ticks, RSS kB) for ``root`` and every process below it."""
    stats = {int(p.name): s for p in Path("/proc").iterdir() if p.name.isdigit() and (s := _stat(int(p.name)))}
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, s in stats.items() if s[0] == parent and pid not in found]
        found.update(children)
        frontier += children
    return {pid: stats[pid][1:] for pid in found if pid in stats}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def measure(jobs: bool, settle_s: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="serve-idle-") as tmp:
        home, port, ui_port = Path(tmp) / "home", free_port(), free_port()
        env = {**os.environ, "MIXUP_STUDIES_HOME": str(home), "MIXUP_STUDIES_ADMIN_TOKEN": "mxs_serve-idle-bench",
               "MIXUP_STUDIES_MLFLOW_UI_PORT": str(ui_port), "PYTHONPATH": str(REPO),
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if jobs else "false"}  # fmt: skip
        args = [sys.executable, "-m", "service.cli", "serve", "--port", str(port)]
        serve = start_process(args, home / "serve.log", env=env, cwd=REPO, name="serve")
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", 180, serve)
            wait_for_http(f"http://127.0.0.1:{ui_port}/health", 180, serve)
            time.sleep(settle_s)  # imports, migrations and the job runner's start-up are not idle cost
            before, start = tree(serve.pid), time.monotonic()
            time.sleep(seconds)
            after, elapsed = tree(serve.pid), time.monotonic() - start
            ticks = sum(cpu - before.get(pid, (0, 0))[0] for pid, (cpu, _rss) in after.items())
            return {
                "cpu_share": round(ticks / TICKS / elapsed, 3),
                "rss_mb": round(sum(rss for _cpu, rss in after.values()) / 1024, 1),
                "processes": len(after),
                "job_runner_processes": sum("huey" in _cmdline(pid) for pid in after),
            }
        finally:
            stop_process(serve, grace_s=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after both answer, before measuring")
    parser.add_argument("--seconds", type=float, default=30.0, help="measuring window")
    parser.add_argument("--quick", action="store_true", help="one round, 5 s settle, 5 s window (tests)")
    opts = parser.parse_args()
    if opts.quick:
        opts.rounds, opts.settle, opts.seconds = 1, 5.0, 5.0
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for _ in range(opts.rounds):
        for arm in runs:
            runs[arm].append(measure(arm == "on", opts.settle, opts.seconds))
    result: dict[str, Any] = {"benchmark": "serve_idle", "quick": opts.quick, "rounds": opts.rounds,
                              "seconds": opts.seconds, "load_average": os.getloadavg(),
                              "cpu_count": os.cpu_count()}  # fmt: skip
    for arm, measured in runs.items():
        for key in ("cpu_share", "rss_mb", "processes", "job_runner_processes"):
            result[f"jobs_{arm}_{key}"] = statistics.median(m[key] for m in measured)
    result["runs"] = runs
    print(json.dumps(result))


if __name__ == "__main__":
    main()
