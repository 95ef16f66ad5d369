"""`mixup-studies serve` as a real process: the API in one process, the dispatcher in a child beside it.

The dispatcher lives exactly as long as `serve` (the restart-safety contract assumes one dispatcher at a
time): it stops with a graceful stop and dies when `serve` is killed, while study drivers outlive both.
Uses the fake driver (no Ray), so these tests take seconds.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.dispatcher import DISPATCHER_NICE
from tests.service.conftest import TINY_SPEC
from tests.support.processes import (
    Proc,
    child_processes,
    free_port,
    pid_alive,
    start_process,
    stop_process,
    wait_for_http,
    wait_until,
)

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TOKEN = "mxs_server-test-admin-token"


def drivers(home: Path) -> list[int]:
    """The study drivers started under ``home`` (the local launcher's pid files)."""
    return [int(pid_file.read_text().split(":")[0]) for pid_file in (home / "drivers").glob("*.pid")]


def dispatcher_of(serve: Proc) -> int:
    children = child_processes(serve.pid)
    found = [pid for pid, cmdline in children if "-m service.dispatcher" in cmdline]
    assert len(found) == 1, children
    return found[0]


@dataclass
class Served:
    proc: Proc
    client: httpx.Client
    home: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    home = tmp_path / "home"
    env = {
        **os.environ,
        "MIXUP_STUDIES_HOME": str(home),
        "MIXUP_STUDIES_ADMIN_TOKEN": TOKEN,
        "MIXUP_STUDIES_MLFLOW_UI_PORT": "0",
        "MIXUP_STUDIES_POLL_INTERVAL_S": "0.2",
        "MIXUP_STUDIES_DRIVER_MODULE": "tests.support.fake_driver",
        "PYTHONPATH": str(REPO),
    }
    url = f"http://127.0.0.1:{free_port()}"
    serve = start_process([sys.executable, "-m", "service.cli", "serve", "--port", url.rsplit(":", 1)[1]],
                          home / "serve.log", env=env, cwd=REPO, name="serve")  # fmt: skip
    try:
        wait_for_http(f"{url}/healthz", 120, serve)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            yield Served(serve, client, home)
    finally:
        stop_process(serve, grace_s=15)
        for pid in drivers(home):  # drivers outlive serve by design
            stop_process(pid, grace_s=15, sig=signal.SIGINT)


def submit(client: httpx.Client, directives: str) -> str:
    created = client.post("/api/v1/studies", json={**TINY_SPEC, "description": directives})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def status_of(client: httpx.Client, study_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/api/v1/studies/{study_id}").json()
    return body


def test_the_dispatcher_runs_studies_from_its_own_process(served: Served) -> None:
    serve, client = served.proc, served.client
    dispatcher = dispatcher_of(serve)
    study_id = submit(client, "sleep=1")
    wait_until(lambda: status_of(client, study_id)["status"] == "succeeded", 60, 0.2, "the study to succeed")
    assert status_of(client, study_id)["attempts"] == 1
    assert dispatcher_of(serve) == dispatcher  # the same process did it all
    assert f"dispatcher process {dispatcher} started" in serve.log_text()
    # Below the API: its full progress reads are seconds of CPU, which requests waited behind.
    expected = min(19, os.getpriority(os.PRIO_PROCESS, serve.pid) + DISPATCHER_NICE)  # 19: the niceness ceiling
    assert os.getpriority(os.PRIO_PROCESS, dispatcher) == expected


def test_a_graceful_stop_ends_the_dispatcher_and_leaves_the_driver(served: Served) -> None:
    serve, client = served.proc, served.client
    dispatcher = dispatcher_of(serve)
    study_id = submit(client, "sleep=600")
    wait_until(lambda: status_of(client, study_id)["status"] == "running", 60, 0.2, "the study to run")
    serve.popen.send_signal(signal.SIGTERM)  # serve only: it stops its dispatcher itself
    assert serve.popen.wait(30) == 0
    assert not pid_alive(dispatcher)
    assert [pid_alive(pid) for pid in drivers(served.home)] == [True]  # the study goes on; a new serve re-attaches


def test_killing_serve_kills_its_dispatcher_and_spec_workers(served: Served) -> None:
    serve = served.proc
    dispatcher = dispatcher_of(serve)
    # serve starts its spec worker: a child of the fork server, itself a child of serve
    [forkserver] = [pid for pid, cmdline in child_processes(serve.pid) if "multiprocessing.forkserver" in cmdline]
    [worker] = [pid for pid, _ in child_processes(forkserver)]
    serve.popen.send_signal(signal.SIGKILL)  # serve only, not its group: nothing else stops the dispatcher
    serve.popen.wait(10)
    wait_until(lambda: not pid_alive(dispatcher), 10, 0.1, "the orphaned dispatcher to die")
    # The worker held its queue and the fork server open: both ran on, orphaned, for good.
    wait_until(lambda: not pid_alive(worker) and not pid_alive(forkserver), 10, 0.1, "the spec worker to end")


def ui_groups(home: Path) -> set[int]:
    """Process groups of live MLflow UIs over this home's store (``mlflow server`` and its uvicorn child)."""
    groups = set()
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if "mlflow server" in cmdline and str(home) in cmdline and stat[0] not in ("Z", "X"):
            groups.add(int(stat[2]))
    return groups


def end_groups(groups: set[int]) -> None:
    for group in groups:  # each UI leads its own session: its group id is the PID serve started it with
        stop_process(group, grace_s=10)


def test_a_restarted_serve_replaces_the_mlflow_ui_a_killed_serve_left(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from studies.spec import StudySpec
    from studies.tracking import open_study

    home, ui_port, port = tmp_path / "home", free_port(), free_port()
    env = {
        **os.environ, "MIXUP_STUDIES_HOME": str(home), "MIXUP_STUDIES_ADMIN_TOKEN": TOKEN,
        "MIXUP_STUDIES_MLFLOW_UI_PORT": str(ui_port), "MIXUP_STUDIES_POLL_INTERVAL_S": "0.2",
        "MIXUP_STUDIES_DRIVER_MODULE": "tests.support.fake_driver", "PYTHONPATH": str(REPO),
    }  # fmt: skip
    env.pop("MIXUP_STUDIES_MLFLOW_UI_URL", None)
    url, ui = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}"

    def start() -> Proc:
        serve = start_process([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], home / "serve.log",
                              env=env, cwd=REPO, name="serve")  # fmt: skip
        wait_for_http(f"{url}/healthz", 120, serve)
        wait_for_http(f"{ui}/health", 180, serve, ok=lambda r: r.status_code == 200)
        return serve

    first_groups: set[int] = set()
    serve: Proc | None = None
    try:
        serve = start()
        first_groups = ui_groups(home)
        assert len(first_groups) == 1
        serve.popen.send_signal(signal.SIGKILL)  # serve only: its UI runs in a session of its own
        serve.popen.wait(10)
        assert ui_groups(home) == first_groups  # what the next serve meets: the old UI, holding the port
        serve = start()
        groups = ui_groups(home)
        assert len(groups) == 1 and groups != first_groups, (groups, first_groups)  # replaced, not doubled
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            study_id = submit(client, "sleep=600")
            spec = StudySpec.model_validate({**TINY_SPEC, "description": "sleep=600"})
            # What a real driver does first; the dispatcher then reads the study's MLflow ids for the links.
            open_study(MlflowClient(f"sqlite:///{home / 'mlflow.db'}"), spec, study_id, "admin", home / "mlartifacts")
            shown = wait_until(
                lambda: (s := status_of(client, study_id))["mlflow"]["experiment_url"] and s, 60, 0.2, "MLflow links"
            )
        assert shown["mlflow"]["experiment_url"] == f"{ui}/#/experiments/{shown['mlflow']['experiment_id']}/runs"
        assert shown["mlflow"]["run_url"].startswith(f"{ui}/#/experiments/")
        assert httpx.get(f"{ui}/health", timeout=5).status_code == 200
        serve.popen.send_signal(signal.SIGTERM)  # a graceful stop takes its UI with it
        assert serve.popen.wait(60) == 0
        wait_until(lambda: not ui_groups(home), 15, 0.2, "the UI to stop with serve")
    finally:
        if serve is not None:
            stop_process(serve, grace_s=15)
        end_groups(ui_groups(home) | first_groups)
        for pid in drivers(home):
            stop_process(pid, grace_s=15, sig=signal.SIGINT)
