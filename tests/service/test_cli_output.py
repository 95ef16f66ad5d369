"""What the CLI and ``serve`` print stays whole when stdout/stderr is a pipe or a file, not a terminal.

Real processes: ``mixup-studies list`` / ``trials`` against a live API, ``mixup-studies serve`` started
as ``make serve`` starts it, their output read from a pipe (where rich assumes 80 columns).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import TINY_SPEC, Api
from tests.support.processes import free_port, start_process, stop_process, wait_for_http

REPO = Path(__file__).resolve().parents[2]
LONG_NAME = "an-ablation-whose-name-is-long-enough-to-pass-eighty-columns-on-its-own-" + "x" * 20


@pytest.fixture
def database_url(tmp_path: Path) -> str:  # SQLite only: what is printed does not depend on the database
    return f"sqlite:///{tmp_path / 'service.db'}"


def client_cli(api: Api, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MIXUP_STUDIES_URL": api.url,
           "MIXUP_STUDIES_TOKEN": api.tokens["alice"], "COLUMNS": "80"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_list_prints_whole_study_ids_into_a_pipe(api: Api) -> None:
    with api.client("alice") as client:
        response = client.post("/api/v1/studies", json={**TINY_SPEC, "name": LONG_NAME})
    assert response.status_code == 201, response.text
    study_id = response.json()["id"]
    assert len(study_id) > 80
    listed = client_cli(api, "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if study_id in line]
    assert len(rows) == 1, listed.stdout  # the whole id, on one line, once
    assert "queued" in rows[0] and "…" not in listed.stdout
    trials = client_cli(api, "trials", study_id)
    assert trials.returncode == 0, trials.stderr
    assert "…" not in trials.stdout


def test_serve_prints_the_export_hint_as_whole_lines(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    env = {**os.environ, "MIXUP_STUDIES_HOME": str(home), "MIXUP_STUDIES_MLFLOW_UI_PORT": "0",
           "MIXUP_STUDIES_DRIVER_MODULE": "tests.support.fake_driver", "PYTHONPATH": str(REPO)}  # fmt: skip
    env.pop("MIXUP_STUDIES_ADMIN_TOKEN", None)  # a token is printed only when serve creates one
    serve = start_process([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], home / "serve.log",
                          env=env, cwd=REPO, name="serve")  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", 120, serve)
        log = serve.log_text(tail=None)  # the hint is printed before the API listens
        token = re.search(r"admin token \(shown once\): (\S+)\n", log)
        assert token, log
        hint = re.search(r"^try: export MIXUP_STUDIES_URL=(\S+) MIXUP_STUDIES_TOKEN=(\S+)$", log, re.MULTILINE)
        assert hint, log  # one line, as pasted into a shell
        assert hint.groups() == (f"http://127.0.0.1:{port}", token.group(1))
        assert re.search(r"^     mixup-studies submit studies/presets/smoke.yaml --watch$", log, re.MULTILINE), log
        # and the pasted pair works: the API takes that token
        listed = httpx.get(f"{hint.group(1)}/api/v1/studies", headers={"Authorization": f"Bearer {hint.group(2)}"})
        assert listed.status_code == 200, listed.text
    finally:
        stop_process(serve, grace_s=15)
