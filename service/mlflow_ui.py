"""The MLflow UI that ``serve`` starts beside the API (local launcher), and the one a killed ``serve`` left.

The UI runs in its own session (Ctrl-C in serve's terminal must not reach it before serve has stopped it),
so a ``serve`` killed with SIGKILL leaves it running and holding its port: the next ``serve`` then found the
port busy, started no UI and gave no MLflow links. So ``serve`` records the UI it starts in
``<home>/mlflow-ui.json`` (its PID, its port and a marker in its environment that every process of the UI
inherits), and on start ends what is left of a recorded UI, member by member of its process group and only
the processes that carry the marker, before it starts its own. It replaces rather than adopts the old UI:
the new ``serve`` may have another port or tracking store, and the UI it starts is one it will also stop.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import uuid
from contextlib import suppress
from pathlib import Path

from service.launchers.base import clean_environ
from service.processes import MARKER_ENV, end_members, group_members
from service.settings import ServiceSettings

log = logging.getLogger(__name__)
STOP_GRACE_S = 10.0
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"  # mlflow.environment_variables, MLflow >= 3.5


def record_path(settings: ServiceSettings) -> Path:
    return settings.home_dir / "mlflow-ui.json"


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def end_leftover(settings: ServiceSettings) -> list[int]:
    """End the processes of a UI an earlier ``serve`` recorded and did not stop; their PIDs."""
    path = record_path(settings)
    try:
        record = json.loads(path.read_text())
        pgid, marker = int(record["pid"]), str(record["marker"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return []
    members = group_members(pgid, marker)
    if members:
        log.warning("ending the MLflow UI a previous serve left running (processes %s)", members)
        end_members(members, STOP_GRACE_S)
    path.unlink(missing_ok=True)
    return members


def start(settings: ServiceSettings, host: str) -> subprocess.Popen[bytes] | None:
    """The MLflow UI over the local store, beside the API (local launcher only), recorded for the next serve."""
    port = settings.mlflow_ui_port
    remote_store = settings.resolved_tracking_uri.startswith(("http://", "https://"))
    if settings.launcher != "local" or port == 0 or remote_store:
        return None
    end_leftover(settings)
    if not port_free(host, port):
        log.warning("port %d is busy; not starting the MLflow UI", port)
        return None
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    marker = f"mlflow-ui.{uuid.uuid4().hex}"
    args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", settings.resolved_tracking_uri,
            "--host", host, "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {**clean_environ(), MARKER_ENV: marker}
    # MLflow 3's server also starts a job runner (huey consumers, ~280 MB each, polling while idle) for its
    # GenAI jobs (judges, prompt optimisation); browsing runs needs none of it. Set to true to have them.
    env.setdefault(JOB_EXECUTION_ENV, "false")
    with open(settings.logs_dir / "mlflow-ui.log", "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    record = {"pid": proc.pid, "marker": marker, "host": host, "port": port}
    record_path(settings).write_text(json.dumps(record))
    return proc


def stop(settings: ServiceSettings, proc: subprocess.Popen[bytes] | None) -> None:
    """End the UI this serve started: every process of its group (its server runs in a child)."""
    if proc is None:
        return
    end_leftover(settings)  # the record names this UI: the same member-by-member end
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_GRACE_S)
