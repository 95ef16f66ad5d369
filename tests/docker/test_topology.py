"""Proof that the compose topology works, with real processes on loopback (no Docker engine needed).

PostgreSQL (the study DB and MLflow's backend), an ``mlflow server`` on it, a Ray head (job server,
token auth) plus one ``ray start --address`` worker node, and ``mixup-studies serve`` with the Ray Jobs
launcher: ``studies/presets/smoke.yaml`` goes in over HTTP and must come out succeeded, with trials on
both raylets (Ray's state API: which node each trial actor lived on), nested runs on the MLflow server
and the study's row in PostgreSQL. Then a second study loses the worker node mid-run and still finishes
(Tune retries the trials that died with it on the head).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from tests.docker._topology import BIN, Topology, topology
from tests.support.postgres import skip_reason
from tests.support.processes import wait_until

SMOKE = Path(__file__).resolve().parents[2] / "studies" / "presets" / "smoke.yaml"
FINAL = {"succeeded", "failed", "cancelled"}
STUDY_TIMEOUT_S = 600
# Ray Tune runs a function trainable (studies.trainable.run_trial) in actors of this class.
TRIAL_ACTOR = "ImplicitFunc"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def service_missing() -> str | None:
    """Why the API cannot be started here, or None: the topology test needs `mixup-studies serve`."""
    exe = BIN / "mixup-studies"
    if not exe.exists():
        return "the mixup-studies command is not installed (pip install -e .)"
    probe = subprocess.run([str(exe), "serve", "--help"], capture_output=True, text=True, timeout=120, check=False)
    if probe.returncode != 0:
        return f"`mixup-studies serve --help` failed: the service is not there yet ({probe.stderr.strip()[-300:]})"
    return None


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    for reason in (service_missing(), skip_reason()):
        if reason:
            pytest.skip(reason)
    for tool in ("runuser",):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing")
    # Short path: Ray's unix sockets live under its temp dir and must stay under 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="mxt-", dir="/tmp"))
    root.chmod(0o755)  # the postgres user must reach its data dir inside
    try:
        with topology(root) as running:
            yield running
    finally:
        shutil.rmtree(root, ignore_errors=True)


def submit_smoke(topo: Topology) -> dict[str, Any]:
    spec = yaml.safe_load(SMOKE.read_text())
    with topo.api() as api:
        response = api.post("/api/v1/studies", json=spec)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["status"] == "queued"
    return created


def study(topo: Topology, study_id: str) -> dict[str, Any]:
    with topo.api() as api:
        response = api.get(f"/api/v1/studies/{study_id}")
    assert response.status_code == 200, response.text
    detail: dict[str, Any] = response.json()
    return detail


def wait_final(topo: Topology, study_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while time.monotonic() < deadline:
        detail = study(topo, study_id)
        if detail["status"] in FINAL:
            return detail
        if not topo.procs["api"].alive():
            pytest.fail(f"the API died:\n{topo.logs()}")
        time.sleep(2)
    pytest.fail(f"study {study_id} not final within {STUDY_TIMEOUT_S}s: {study(topo, study_id)}\n{topo.logs()}")


def job_logs(topo: Topology, handle: str | None) -> str:
    if not handle:
        return "(no Ray job)"
    try:
        return str(topo.ray_get(f"/api/jobs/{handle}/logs").get("logs", ""))[-8000:]
    except Exception as error:  # only for the failure message
        return f"(no logs: {error})"


def db_row(topo: Topology, study_id: str) -> tuple[Any, ...] | None:
    conninfo = topo.studies_db.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT status, launcher, handle, attempts, experiment_id, parent_run_id FROM studies WHERE id = %s",
            (study_id,),
        ).fetchone()


def trial_actors(topo: Topology, job_id: str | None = None) -> list[dict[str, Any]]:
    """Tune's trial actors (function trainables run as ``ImplicitFunc``), optionally of one Ray job.

    Ray names the class by its qualified name when it knows it (``wrap_function.<locals>.ImplicitFunc``).
    """
    return [
        a
        for a in topo.actors()
        if str(a.get("class_name")).rsplit(".", 1)[-1] == TRIAL_ACTOR and (job_id is None or a.get("job_id") == job_id)
    ]


def driver_job_id(topo: Topology, handle: str) -> str | None:
    """The Ray job id of the study driver (trial actors carry it)."""
    info = topo.ray_get(f"/api/jobs/{handle}")
    return info.get("job_id")


def nested_runs(topo: Topology, detail: dict[str, Any]) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=topo.mlflow_url)
    experiment_id, parent = detail["mlflow"]["experiment_id"], detail["mlflow"]["parent_run_id"]
    assert experiment_id and parent, detail
    assert client.get_run(parent).info.status in ("RUNNING", "FINISHED")
    return list(client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'"))


def assert_succeeded(topo: Topology, detail: dict[str, Any]) -> tuple[Any, ...]:
    row = db_row(topo, detail["id"])
    assert detail["status"] == "succeeded", (
        f"{detail}\nRay job logs:\n{job_logs(topo, row[2] if row else None)}\n{topo.logs()}"
    )
    assert row is not None, "the study's row is missing from PostgreSQL"
    status, launcher, handle, *_ = row
    assert (status, launcher) == ("succeeded", "ray_jobs")
    assert topo.ray_get(f"/api/jobs/{handle}")["status"] == "SUCCEEDED"
    return row


def test_smoke_study_runs_across_both_raylets(topo: Topology) -> None:
    created = submit_smoke(topo)
    detail = assert_succeeded_after_wait(topo, created["id"])
    row = db_row(topo, created["id"])
    assert row is not None
    _, _, handle, attempts, experiment_id, parent_run_id = row
    assert attempts == 1
    assert (experiment_id, parent_run_id) == (detail["mlflow"]["experiment_id"], detail["mlflow"]["parent_run_id"])
    assert detail["trials_total"] == 6
    assert detail["trial_counts"]["finished"] + detail["trial_counts"]["stopped"] == 6, detail["trial_counts"]

    # Trials ran on both raylets.
    actors = trial_actors(topo, driver_job_id(topo, handle))
    nodes = {a["node_id"] for a in actors}
    assert nodes == {topo.head.node_id, topo.worker.node_id}, [(a["class_name"], a["node_id"]) for a in actors]

    # One nested MLflow run per trial, on the MLflow server (PostgreSQL-backed), with metrics.
    runs = nested_runs(topo, detail)
    assert len(runs) == 6
    assert all(run.data.metrics for run in runs)
    assert {run.info.status for run in runs} <= {"FINISHED", "KILLED"}


def assert_succeeded_after_wait(topo: Topology, study_id: str) -> dict[str, Any]:
    detail = wait_final(topo, study_id)
    assert_succeeded(topo, detail)
    return detail


def test_ray_auth_and_the_compose_healthcheck(topo: Topology) -> None:
    # Token auth is on: the job server refuses a client without the token...
    assert httpx.get(f"{topo.dashboard_url}/api/version", timeout=10).status_code == 401
    # ...and the ray-head healthcheck of compose.yaml passes with the token in the environment, as there.
    check = subprocess.run(
        [str(BIN / "ray"), "health-check", "--address", topo.gcs_address],
        env=topo.head.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_study_survives_losing_the_worker_node(topo: Topology) -> None:
    created = submit_smoke(topo)
    study_id = created["id"]

    def trial_on_worker() -> bool:
        row = db_row(topo, study_id)
        if row is None or not row[2]:
            return False
        job_id = driver_job_id(topo, row[2])
        alive = [a for a in trial_actors(topo, job_id) if a["state"] == "ALIVE"]
        return any(a["node_id"] == topo.worker.node_id for a in alive)

    wait_until(trial_on_worker, 300, 0.3, "a trial running on the worker node")
    killed = topo.worker.stop(signal.SIGKILL)  # the node dies: raylet, workers, agents, all at once
    assert killed, "no process of the worker node was found"

    detail = wait_final(topo, study_id)
    row = assert_succeeded(topo, detail)

    # The GCS marks a node dead only after its health checks fail (seconds to tens of seconds), which can be
    # after a short study has already ended on the head: wait for it, bounded.
    def worker_dead() -> bool:
        return next(n for n in topo.nodes() if n["node_id"] == topo.worker.node_id)["state"] == "DEAD"

    wait_until(worker_dead, 120, 1.0, "the GCS marking the killed worker node dead")
    # The trial that died with the node was retried (max_failures) on the head: every trial ended.
    actors = trial_actors(topo, driver_job_id(topo, row[2]))
    assert any(a["node_id"] == topo.worker.node_id for a in actors), "a trial had run on the worker"
    with topo.api() as api:
        trials = api.get(f"/api/v1/studies/{study_id}/trials")
    assert trials.status_code == 200, trials.text
    states = [t["status"] for t in trials.json()["trials"]]
    assert len(states) == 6 and set(states) <= {"finished", "stopped"}, states
    runs = nested_runs(topo, detail)
    assert len(runs) == 6
    assert all(run.data.metrics for run in runs)
    assert {run.info.status for run in runs} <= {"FINISHED", "KILLED"}
