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


def test_a_graceful_stop_ends_the_dispatcher_and_leaves_the_driver(served: Served) -> None:
    serve, client = served.proc, served.client
    dispatcher = dispatcher_of(serve)
    study_id = submit(client, "sleep=600")
    wait_until(lambda: status_of(client, study_id)["status"] == "running", 60, 0.2, "the study to run")
    serve.popen.send_signal(signal.SIGTERM)  # serve only: it stops its dispatcher itself
    assert serve.popen.wait(30) == 0
    assert not pid_alive(dispatcher)
    assert [pid_alive(pid) for pid in drivers(served.home)] == [True]  # the study goes on; a new serve re-attaches


def test_killing_serve_kills_its_dispatcher(served: Served) -> None:
    serve = served.proc
    dispatcher = dispatcher_of(serve)
    serve.popen.send_signal(signal.SIGKILL)  # serve only, not its group: nothing else stops the dispatcher
    serve.popen.wait(10)
    wait_until(lambda: not pid_alive(dispatcher), 10, 0.1, "the orphaned dispatcher to die")
