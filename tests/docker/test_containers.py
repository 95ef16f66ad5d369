"""The whole stack in real containers: compose.yaml + compose.cpu.yaml + compose.test.yaml (``make test-containers``).

postgres (the local stand-in where the official image cannot be pulled), MLflow on it, a Ray head, two Ray
worker containers and the API come up one after another, each only after its healthcheck passed. Then, all
through the published ports: a token made with the API image's CLI, the smoke study submitted and
succeeded, its parent and trial runs on the MLflow server, its trials on the worker containers (never the
head); the API restarted mid-study (nothing lost or duplicated); a worker killed mid-study (the study still
succeeds). Marked ``containers``: not part of ``make test`` (it needs built images and takes many minutes).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.docker._containers import IMAGE_UID, IMAGES, WORKERS, Engine, Stack, find_engine, missing_images, stack
from tests.support.processes import wait_until

SMOKE = Path(__file__).resolve().parents[2] / "studies" / "presets" / "smoke.yaml"
FINAL = {"succeeded", "failed", "cancelled"}
STUDY_TIMEOUT_S = 900
TRIAL_ACTOR = "ImplicitFunc"  # Ray Tune's function trainables run in actors of this class
SMOKE_TRIALS = 6

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def engine() -> Engine:
    found, reason = find_engine()
    if found is None:
        pytest.skip(f"no container engine can run here: {reason}")
    missing = missing_images(found)
    if missing:
        pytest.fail(f"images missing: {missing}; build them first (`make images`, docker/README.md)")
    return found


@pytest.fixture(scope="module")
def running(engine: Engine) -> Iterator[Stack]:
    started = time.monotonic()
    with stack(engine) as up:
        print(f"\nstack healthy after {time.monotonic() - started:.0f}s: {up.healthy_after_s}")
        yield up


@pytest.fixture(scope="module")
def token(running: Stack) -> str:
    """A per-user token made with the API image's own CLI, as docker/README.md tells operators to."""
    out = running.exec("api", "mixup-studies", "token", "create", "--user", "alice")
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip().splitlines()[-1]
    assert len(secret) >= 20, out.stdout
    return secret


def api(running: Stack, token: str) -> httpx.Client:
    return httpx.Client(base_url=running.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def submit(running: Stack, token: str) -> str:
    with api(running, token) as client:
        response = client.post("/api/v1/studies", json=yaml.safe_load(SMOKE.read_text()))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def detail(running: Stack, token: str, study_id: str) -> dict[str, Any]:
    with api(running, token) as client:
        response = client.get(f"/api/v1/studies/{study_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_final(running: Stack, token: str, study_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            current = detail(running, token, study_id)
        except httpx.TransportError:  # the API is restarting
            time.sleep(2)
            continue
        if current["status"] in FINAL:
            return current
        time.sleep(3)
    pytest.fail(f"study {study_id} not final within {STUDY_TIMEOUT_S}s\n{running.logs()}")


def trial_actors(running: Stack, study: dict[str, Any]) -> list[dict[str, Any]]:
    """Tune's trial actors of this study's Ray job(s)."""
    jobs = [j for j in running.ray_get("/api/jobs/") if str(j.get("submission_id", "")).find(study["id"]) >= 0]
    job_ids = {j.get("job_id") for j in jobs}
    actors = running.ray_get("/api/v0/actors?limit=10000&detail=true")["data"]["result"]["result"]
    return [
        a for a in actors if str(a.get("class_name")).rsplit(".", 1)[-1] == TRIAL_ACTOR and a.get("job_id") in job_ids
    ]


def node_ips(running: Stack) -> dict[str, str]:
    """Ray node id -> the IP of the container it runs in."""
    nodes = running.ray_get("/api/v0/nodes?limit=100&detail=true")["data"]["result"]["result"]
    return {n["node_id"]: n["node_ip"] for n in nodes}


def assert_study_complete(running: Stack, token: str, study: dict[str, Any]) -> None:
    """Succeeded, every trial ended once, one MLflow run per trial under the parent, nothing extra."""
    from mlflow.tracking import MlflowClient

    assert study["status"] == "succeeded", f"{study}\n{running.logs()}"
    with api(running, token) as client:
        trials = client.get(f"/api/v1/studies/{study['id']}/trials").json()["trials"]
    states = [t["status"] for t in trials]
    assert len(states) == SMOKE_TRIALS and set(states) <= {"finished", "stopped"}, states
    mlflow = MlflowClient(tracking_uri=running.mlflow_url)
    experiment_id, parent = study["mlflow"]["experiment_id"], study["mlflow"]["parent_run_id"]
    assert mlflow.get_run(parent).info.status == "FINISHED"
    runs = mlflow.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(runs) == SMOKE_TRIALS, [r.info.run_name for r in runs]
    assert len({r.info.run_name for r in runs}) == SMOKE_TRIALS, "a trial was logged twice"
    assert all(r.data.metrics for r in runs)


SECRET = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY)[A-Z_]*=", re.IGNORECASE)


def test_no_secret_in_any_image(engine: Engine) -> None:
    """No layer's command and no baked-in environment variable carries a credential (issue 14)."""
    for pattern in IMAGES.values():
        image = pattern.format(tag="latest")
        history = engine("history", "--no-trunc", "--format", "{{.CreatedBy}}", image, timeout=300)
        assert history.returncode == 0, history.stderr
        assert not SECRET.search(history.stdout), f"{image}: {SECRET.findall(history.stdout)}"
        env = engine("image", "inspect", "--format", "{{json .Config.Env}}", image, timeout=300)
        assert not SECRET.search(env.stdout), f"{image}: {env.stdout}"
        user = engine("image", "inspect", "--format", "{{.Config.User}}", image, timeout=300).stdout.strip()
        assert user not in ("", "0", "root", "0:0"), f"{image} runs as root"


def test_every_service_is_healthy_non_root_and_read_only(running: Stack) -> None:
    assert set(running.healthy_after_s) == {"postgres", "mlflow", "ray-head", "ray-worker", "api"}
    assert len(running.containers("ray-worker")) == WORKERS
    for service in running.healthy_after_s:
        for name in running.containers(service):
            config = running.inspect(name)
            assert config["HostConfig"]["ReadonlyRootfs"] is True, name
            uid = running.engine("exec", name, "id", "-u", timeout=60).stdout.strip()
            assert uid != "0", f"{name} runs as root"
            if service != "postgres":
                assert uid == IMAGE_UID, (name, uid)
            write = running.engine("exec", name, "touch", "/opt/probe", timeout=60)
            assert write.returncode != 0 and "Read-only file system" in write.stderr, (name, write.stderr)
    response = httpx.get(f"{running.api_url}/readyz", timeout=30)
    assert response.status_code == 200, response.text


def test_smoke_study_runs_on_the_worker_containers(running: Stack, token: str) -> None:
    study_id = submit(running, token)
    study = wait_final(running, token, study_id)
    assert_study_complete(running, token, study)
    assert study["attempts"] == 1
    ips = node_ips(running)
    worker_ips = {running.ip(name) for name in running.containers("ray-worker")}
    head_ip = running.ip(running.container("ray-head"))
    used = {ips[a["node_id"]] for a in trial_actors(running, study)}
    assert used and used <= worker_ips and head_ip not in used, (used, worker_ips, head_ip)


def _launched(running: Stack, token: str, study_id: str) -> dict[str, Any] | None:
    """The study once its driver runs on the cluster (a smoke study then lasts about a minute)."""
    current = detail(running, token, study_id)
    return current if current["status"] != "queued" else None


def test_api_restart_mid_study_loses_and_duplicates_nothing(running: Stack, token: str) -> None:
    study_id = submit(running, token)
    before = wait_until(lambda: _launched(running, token, study_id), 600, 0.5, "the study launched")
    assert before["status"] == "running", f"the study ended before the API could be restarted: {before}"
    out = running.engine("restart", "-t", "20", running.container("api"), timeout=300)
    assert out.returncode == 0, out.stderr
    running.wait_healthy("api")
    study = wait_final(running, token, study_id)
    assert_study_complete(running, token, study)
    assert study["attempts"] == 1, "the restarted API re-attached to the running Ray job, not a second launch"
    with api(running, token) as client:
        listed = [s["id"] for s in client.get("/api/v1/studies", params={"limit": 500}).json()["items"]]
    assert listed.count(study_id) == 1


def test_study_survives_a_killed_worker_container(running: Stack, token: str) -> None:
    study_id = submit(running, token)
    ips = {running.ip(name): name for name in running.containers("ray-worker")}

    def worker_with_a_trial() -> str | None:
        study = detail(running, token, study_id)
        by_node = node_ips(running)
        alive = [a for a in trial_actors(running, study) if a.get("state") == "ALIVE"]
        return next((ips[by_node[a["node_id"]]] for a in alive if by_node.get(a["node_id"]) in ips), None)

    victim = wait_until(worker_with_a_trial, 600, 1.0, "a trial running on a worker container")
    out = running.engine("kill", victim, timeout=120)
    assert out.returncode == 0, out.stderr
    study = wait_final(running, token, study_id)
    assert_study_complete(running, token, study)
