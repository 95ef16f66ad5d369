"""Study scale: what one trial costs the driver, MLflow, the dispatcher and the API as studies grow.

Everything is real: ``mixup-studies serve`` (its dispatcher, the local launcher, SQLite service database) on a
free loopback port with a throwaway home, whose study drivers join a Ray cluster this script starts on loopback
(``ray start --head --num-cpus 64 --num-gpus 16``, its own temp dir, stopped by PID). Ray's resources are
logical: it schedules 16 trials at once as on a 64-CPU/16-GPU cluster while the machine's cores run them.

The trial: the project's trainable (``studies.trainable``, through Tune and MLflow as any study) on
mixup_core's ``synthetic`` dataset (64 training and 32 test samples of 8 features, 2 classes), an ``mlp`` at
width 0.25, one epoch (``device: auto``: the CPU where there is no GPU, whatever Ray assigned); a grid over
α × ``search.seeds`` giving exactly N trials (seeds: the largest divisor of N up to 100), FIFO,
``resources: {cpu: 1, gpu: 0.25}`` (one torch thread per trial: with 4 CPUs each, 16 trials' 64 spinning
threads on 2 real cores made a 100-trial study take minutes) and ``max_concurrent_trials: 16`` (a quarter of
the head's CPUs: 16 trial actors, so at most 16 worker processes importing torch; ``--concurrency C`` asks for
fewer). ``--sizes`` (default 100,1000,5000) runs
one study per size, each with a fresh service and home (the Ray cluster is shared); one JSON line per size,
then a summary. The Ray nodes run 9
steps nicer than the script (the drivers get serve's ``driver_nice``): on a cluster the trials run on other
machines than the API and the dispatcher, whose latencies should not be the trials' run queue here.

Per study (from submit until the study's GET first says it ended):

* ``driver_cpu_s_per_trial``: the driver's user+system CPU ÷ N. The driver is the dispatcher's child running
  ``studies.cli run``; its CPU is sampled from /proc every 0.5 s, and, exactly, taken from the dispatcher's
  reaped-children CPU (``cutime+cstime``, which grows by the driver's total when the dispatcher reaps it);
  ``driver_peak_rss_mb`` is its VmHWM. ``dispatcher_cpu_s`` / ``dispatcher_peak_rss_mb`` the same for the
  dispatcher process (its own CPU over the study; VmHWM over its life, one study). ``ray_cpu_s``: CPU of
  the head's ``gcs_server`` and of each raylet over the study.
* ``mlflow_bytes_per_trial``: growth of the store ÷ N (SQLite: ``mlflow.db`` + ``-wal``; PostgreSQL:
  ``pg_database_size``). ``mlflow_rows_per_trial``: rows the study added to runs, params, metrics,
  latest_metrics and tags ÷ N. PostgreSQL also: ``pg_commits_per_trial`` (``pg_stat_database.xact_commit``
  delta: every transaction, the dispatcher's progress reads included) and tuples written per trial.
  The driver does not print its MLflow call count (``studies.cli run``), so that figure is not here
  (``benchmarks/study_overhead.py`` has it per trial).
* ``wall_over_ideal``: wall = submit → the study's GET first says ``succeeded`` (polled every 0.5 s);
  ideal = Σ over trials of (MLflow run end − start) ÷ concurrency (16). ``first_trial_s``: submit → the
  first trial run's start (driver start-up, joining Ray, the first trial actors' imports: a cost per study,
  not per trial); ``wall_after_first_over_ideal`` leaves it out.
* ``visible_s``: a poller reads ``/trials?updated_after=<last change seen − 1 s>&limit=1000`` (paging while
  ``offset < total``) every second; where the API does not page yet (no ``total`` in the body) it reads every
  trial each time. A trial's latency = when the poller first saw it final − its MLflow run's ``end_time``
  (all runs read with ``MlflowClient.search_runs`` at the end); p50/p99/max over the trials.
* ``study_get`` and ``trials_page``: latencies of ``GET /api/v1/studies/ID`` and ``/trials?limit=100``, 5 req/s
  each for the whole study, open loop (a latency counts from when its request was due).
* ``report_get_s``: ``GET .../report`` (JSON) once the study ended; ``report_build_s``:
  ``studies.report.build_report`` in this process on the study's N trials (read from MLflow first, untimed;
  after an untimed build of 10 of them, which imports what the report's statistics need, ~1 s in a fresh
  process).
* ``accounted``: at the end ``/trials`` lists N trials (its ``total`` where it pages), every one final.

Modes: ``--store postgres`` puts the MLflow store on a throwaway PostgreSQL (tests/support/postgres.py), its
session at the lowest CPU weight as the Ray nodes' (a cluster's tracking database is another machine).
``--many-studies``: 20 studies × 50 trials from 5 users (4 each; tokens made as the tests make them),
``MIXUP_STUDIES_MAX_RUNNING_STUDIES=4``, each study ``max_concurrent_trials: 4`` (16 at once in all): the same
figures over all 1000 trials (samplers cycle over the studies; wall = first submit → last study ended) and
every study's end. ``--train-samples N`` (default 64) gives each trial N training samples: at 64 a trial
computes for ~7 ms and its ~0.35 s are the engine's own per-trial costs, which is what the cost figures are
about; at 8,192 (~0.36 CPU-s each) wall ÷ ideal says what the engine adds to trials of seconds.
``--nodes K``: K Ray nodes on loopback (head 16 CPUs/4 GPUs, K−1 more of 16/4; one study of the first size at
4K at once); each raylet's and the GCS's CPU share and RSS while idle (10 s before the study)
and over the study, and the trial actors each raylet started (its ``ray::`` worker children): trials ran on
every node when each has one. ``--quick``: one study of 20 trials, 4 at once (a smoke run, ≈ 2–6 min); with
``--many-studies``, 4 studies × 10 trials from 2 users, 2 running, 2 trials at once each.

Usage: ``python benchmarks/study_scale.py [--sizes 100,1000,5000] [--store sqlite|postgres] [--many-studies]
[--nodes K] [--train-samples N] [--quick]``. Prints one JSON line per study size and a summary line (the last
on stdout).
Goals (issue 15): driver CPU per trial at 1,000 ≤ 1.2 × at 100, at 5,000 ≤ 1.5 ×; /trials p99 at 1,000 ≤ 100 ms
with a page of 100; study GET p99 ≤ 50 ms; report build at 5,000 ≤ 5 s; visible within 10 s; wall ÷ ideal at
1,000 ≤ 1.3.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import machine_line
from _scale_env import REPO, RayNodes, lower_session, start_ray_nodes  # (puts the repository on sys.path)
from _scale_run import Service, measure_studies

from tests.support.processes import free_port, start_process, stop_process, wait_for_http

TOKEN = "mxs_study-scale-benchmark"
SYNTHETIC = {"num_train": 64, "num_test": 32, "num_classes": 2, "shape": [8]}


def study_spec(name: str, trials: int, concurrency: int, train_samples: int = 64) -> dict[str, Any]:
    """A grid of exactly ``trials`` minimal trials: α × seeds (the largest divisor of ``trials`` up to 100)."""
    seeds = max(d for d in range(1, min(100, trials) + 1) if trials % d == 0)
    alphas = [round(0.05 * i, 2) for i in range(trials // seeds)]
    return {
        "name": name,
        "dataset": {"name": "synthetic", "synthetic": {**SYNTHETIC, "num_train": train_samples}},
        "model": {"name": "mlp", "width": 0.25},
        "training": {"epochs": 1, "batch_size": 32, "optimizer": "adam", "lr": 0.01},
        "search": {"algorithm": "grid", "space": {"alpha": alphas}, "seeds": list(range(seeds))},
        "scheduler": {"name": "fifo"},
        # One CPU: the trial's torch runs one thread (it takes as many as its CPUs, and 16 trials × 4 threads
        # spinning on 2 real cores made a 100-trial study take minutes); a quarter GPU, as packed trials ask.
        "resources": {"cpu": 1, "gpu": 0.25},
        "max_concurrent_trials": concurrency,
    }


@contextlib.contextmanager
def serving(nodes: RayNodes, tracking_uri: str | None, running: int) -> Iterator[Service]:
    """``mixup-studies serve`` with a fresh home, its drivers joining ``nodes``; stopped (and its drivers) at exit."""
    home = Path(tempfile.mkdtemp(prefix="mxscale-"))
    port = free_port()
    env = {
        **os.environ,
        "MIXUP_STUDIES_HOME": str(home),
        "MIXUP_STUDIES_ADMIN_TOKEN": TOKEN,
        "MIXUP_STUDIES_MAX_QUEUED_PER_USER": "1000",
        "MIXUP_STUDIES_MAX_TRIALS": "100000",
        "MIXUP_STUDIES_MAX_RUNNING_STUDIES": str(running),
        "MIXUP_STUDIES_RAY_ADDRESS": nodes.address,
        "MIXUP_STUDIES_MLFLOW_UI_PORT": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    env.update({k: v for k, v in nodes.env.items() if k.startswith("RAY_AUTH_")})  # the drivers join with it
    if tracking_uri:
        env["MIXUP_STUDIES_TRACKING_URI"] = tracking_uri
    server = start_process([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], home / "serve.log",
                           env=env, cwd=REPO, name="serve")  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", 180, server)
        uri = tracking_uri or f"sqlite:///{home / 'mlflow.db'}"
        yield Service(url, {"Authorization": f"Bearer {TOKEN}"}, server, home, uri, nodes, env)
    finally:
        stop_process(server, grace_s=20)
        for pid_file in (home / "drivers").glob("*.pid"):
            stop_process(int(pid_file.read_text().split(":")[0]), grace_s=30)
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def mlflow_stores(kind: str) -> Iterator[Any]:
    """A function giving a fresh MLflow tracking URI per study size (None: the service's SQLite default)."""
    if kind == "sqlite":
        yield lambda name: None
        return
    from tests.support.postgres import postgres_server

    with postgres_server() as pg:
        # The tracking database, like the trials, is another machine's work on a cluster (see the Ray nodes).
        lower_session(pg.proc.pid)
        yield lambda name: pg.create_database(name)


def user_tokens(service: Service, users: int) -> list[str]:
    """One token per user, made in the service's database as the tests make them (service.auth.create_token)."""
    from service.auth import create_token
    from service.db import make_engine, session_factory

    engine = make_engine(f"sqlite:///{service.home / 'service.db'}")
    try:
        with session_factory(engine)() as session:
            tokens = [create_token(session, f"user{i}", False) for i in range(users)]
            session.commit()
    finally:
        engine.dispose()
    return tokens


def run_single(args: argparse.Namespace, nodes: RayNodes, stores: Any, size: int, concurrency: int) -> dict[str, Any]:
    with serving(nodes, stores(f"mlflow_{size}"), running=1) as service:
        spec = study_spec(f"scale-{size}", size, concurrency, args.train_samples)
        return measure_studies(service, [(service.headers, spec)], concurrency, idle_s=args.idle_s)


def run_many(args: argparse.Namespace, nodes: RayNodes, stores: Any) -> dict[str, Any]:
    # (studies, trials each, users, running at once, trials at once per study); quick: 4 trial actors in all.
    studies, per_study, users, running, each = (4, 10, 2, 2, 2) if args.quick else (20, 50, 5, 4, 4)
    with serving(nodes, stores("mlflow_many"), running=running) as service:
        tokens = user_tokens(service, users)
        submissions = [
            (
                {"Authorization": f"Bearer {tokens[i % users]}"},
                study_spec(f"many-{i}", per_study, each, args.train_samples),
            )
            for i in range(studies)
        ]
        return measure_studies(service, submissions, running * each, idle_s=args.idle_s)


def summary(lines: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The goals' ratios across sizes (driver CPU per trial against the smallest size) and the worst figures."""
    base = lines[0]["driver_cpu_s_per_trial"] or float("nan")
    return {
        "benchmark": "study_scale",
        "summary": True,
        "quick": args.quick,
        "mode": lines[0]["mode"],
        "store": args.store,
        "sizes": [line["trials"] for line in lines],
        "driver_cpu_per_trial_ratio": [round(line["driver_cpu_s_per_trial"] / base, 3) for line in lines],
        "wall_over_ideal": [line["wall_over_ideal"] for line in lines],
        "trials_page_p99_ms": [line["trials_page"]["p99_ms"] for line in lines],
        "study_get_p99_ms": [line["study_get"]["p99_ms"] for line in lines],
        "visible_max_s": [line["visible_s"]["max"] for line in lines],
        "report_build_s": [line["report_build_s"] for line in lines],
        "all_accounted": all(line["accounted"] for line in lines),
        "runs": lines,
        "machine": machine_line(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="Trials per study, comma-separated.")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite", help="The MLflow store.")
    parser.add_argument("--many-studies", action="store_true", help="20 studies × 50 trials from 5 users, 4 at once.")
    parser.add_argument("--nodes", type=int, default=1, help="Ray nodes on loopback (1: one 64-CPU/16-GPU head).")
    parser.add_argument("--idle-s", type=float, default=10.0, help="Idle measurement of the Ray nodes before a study.")
    parser.add_argument("--concurrency", type=int, default=0, help="Fewer trials at once than the nodes hold.")
    parser.add_argument("--train-samples", type=int, default=64, help="Training samples per trial (longer trials).")
    parser.add_argument("--quick", action="store_true", help="One study of 20 trials (a smoke run).")
    args = parser.parse_args()
    # A kill (timeout, Ctrl-C from another shell) must still stop the service and the Ray nodes: the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [20] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.quick:
        args.idle_s = 2.0
    shapes = [(64, 16)] if args.nodes <= 1 else [(16, 4)] * args.nodes
    # 16 trials at once on 64 CPUs (one per 4). Quick: 4 at once (trial actors' start-up is most of it).
    concurrency = 4 if args.quick else sum(cpus // 4 for cpus, _ in shapes)
    if args.concurrency:  # fewer trial actors (each a worker process importing torch) on a small machine
        concurrency = min(concurrency, args.concurrency)
    nodes = start_ray_nodes(shapes)
    lines: list[dict[str, Any]] = []
    try:
        with mlflow_stores(args.store) as stores:
            runs = (
                [lambda: run_many(args, nodes, stores)]
                if args.many_studies
                else [lambda size=size: run_single(args, nodes, stores, size, concurrency) for size in sizes]
            )
            for one in runs:
                lines.append(one())
                lines[-1].update({"store": args.store, "nodes": len(shapes), "quick": args.quick})
                lines[-1]["train_samples"] = args.train_samples
                lines[-1]["machine"] = machine_line()
                print(json.dumps(lines[-1]), flush=True)
    finally:
        nodes.stop()
    print(json.dumps(summary(lines, args)), flush=True)


if __name__ == "__main__":
    main()
