"""``make serve PORT=… MLFLOW_PORT=…``: the API and the MLflow UI on the ports given, the UI without MLflow's
job runner (its huey consumers cost ~280 MB each and poll while idle; browsing runs needs none of them).

A real ``make serve`` (the Makefile's own recipe), with ``VENV`` pointed at a folder whose ``mixup-studies``
is this environment's and whose install stamp is fresh, so make installs nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, start_process, stop_process, wait_for_http

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TOKEN = "mxs_make-serve-test-admin-token"


def tree(root: int) -> list[str]:
    """Command lines of ``root`` and every process below it (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    found, frontier = {root}, [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, parent in parents.items() if parent == current and pid not in found]
        found.update(children)
        frontier += children
    lines = []
    for pid in found:
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except FileNotFoundError:
            continue
    return lines


def fake_venv(tmp_path: Path) -> Path:
    """A VENV for the Makefile: bin/mixup-studies runs this interpreter's; the stamp says it is installed."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    script = venv / "bin" / "mixup-studies"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m service.cli "$@"\n')
    script.chmod(0o755)
    (venv / ".installed-stamp").touch()  # newer than pyproject.toml: make installs nothing
    return venv


def test_make_serve_takes_ports_and_starts_the_ui_without_job_workers(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    home, port, ui_port = tmp_path / "home", free_port(), free_port()
    env = {**os.environ, "MIXUP_STUDIES_HOME": str(home), "MIXUP_STUDIES_ADMIN_TOKEN": TOKEN, "PYTHONPATH": str(REPO)}
    env.pop("MIXUP_STUDIES_MLFLOW_UI_PORT", None)
    env.pop("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", None)
    args = [make, "-C", str(REPO), "serve", f"VENV={fake_venv(tmp_path)}", f"PORT={port}", f"MLFLOW_PORT={ui_port}"]
    served = start_process(args, home / "make-serve.log", env=env, cwd=REPO, name="make serve")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", 180, served)
        wait_for_http(f"http://127.0.0.1:{ui_port}/health", 180, served)
        logged = served.log_text(tail=None)
        assert f"MLflow UI: http://127.0.0.1:{ui_port}" in logged
        # The pages' address on a line of its own (a terminal makes it a link), never wrapped.
        assert f"\nStudy pages: http://127.0.0.1:{port}/studies (log in with an API token)\n" in logged
        processes = tree(served.pid)
        servers = [line for line in processes if " mlflow server " in f" {line} " or "-m mlflow server" in line]
        assert servers, processes
        # MLflow's job runner: a huey consumer process (and its workers) beside the UI's server
        assert not [line for line in processes if "huey" in line], processes
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            assert client.get(f"http://127.0.0.1:{port}/api/v1/studies").status_code == 200
    finally:
        stop_process(served, grace_s=30)
