"""Real parts for the studies tests: a local Ray (2 CPUs, its own temp dir) and an `mlflow server` on loopback."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from studies.settings import StudySettings
from tests.support.processes import Proc, free_port, start_process, stop_process, wait_for_http


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray for in-process study drivers; a short temp path (Ray's socket paths have a length limit)."""
    temp_dir = tempfile.mkdtemp(prefix="msr", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> StudySettings:
    return StudySettings(home=tmp_path / "home", ray_num_cpus=2)


def start_mlflow_server(folder: Path, port: int | None = None) -> tuple[Proc, str]:
    """`mlflow server` on 127.0.0.1 with a SQLite backend and proxied artifacts, ready to answer."""
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    args += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "art")]
    proc = start_process(args, folder / f"server-{port}.log", name="mlflow server")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", timeout_s=180, proc=proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc, url


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    yield url
    stop_process(proc)
