"""The compose stack in real containers: engine detection, bring-up one service at a time, teardown.

Drives ``docker/compose.yaml`` + ``compose.cpu.yaml`` + ``compose.test.yaml`` with ``docker compose`` where a
Docker daemon answers, else with ``podman-compose`` (podman settings from ``docker/podman/containers.conf``).
Services come up one at a time, each after its dependencies are healthy, because podman < 4.6 (Debian
bookworm has 4.3) cannot wait on ``service_healthy`` and runs no healthcheck timers without systemd: this
module runs the images' own healthchecks (``podman healthcheck run``) until they pass. Everything made
here (containers, network, volumes, the test's image tags, the shared folder) is removed by name at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "docker"
COMPOSE_FILES = [DOCKER_DIR / "compose.yaml", DOCKER_DIR / "compose.cpu.yaml", DOCKER_DIR / "compose.test.yaml"]
PODMAN_CONF = DOCKER_DIR / "podman" / "containers.conf"
# Where docker/README.md installs podman-compose (pip, in a venv of its own); PODMAN_COMPOSE overrides.
PODMAN_COMPOSE_VENV = "/opt/podman-compose/bin/podman-compose"
MIN_PODMAN_COMPOSE = (1, 1)
# Images `make images` builds (IMAGE_TAG=latest, RAY_IMAGE_FLAVOR=cpu); the test tags them for itself.
IMAGES = {
    "api": "mixup-studies/api:{tag}",
    "ray": "mixup-studies/ray:cpu-{tag}",
    "mlflow": "mixup-studies/mlflow:{tag}",
    "postgres": "mixup-studies/postgres:15-{tag}",
}
# Bring-up order: compose.yaml's depends_on (service_healthy) chain, minus MinIO (compose.test.yaml).
ORDER = ["postgres", "mlflow", "ray-head", "ray-worker", "api"]
WORKERS = 2
IMAGE_UID = "1000"  # every project image runs as this UID (docker/*.Dockerfile)


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, check=False)


@dataclass(frozen=True)
class Engine:
    """A container engine and the compose front end that goes with it."""

    name: str  # docker | podman
    compose: list[str]
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return _run([self.name, *args], env=self.env, timeout=timeout)


def _podman_compose() -> str | None:
    """podman-compose new enough for compose.test.yaml's ``!override`` (Debian bookworm's 1.0.3 is not)."""
    candidates = [os.environ.get("PODMAN_COMPOSE"), shutil.which("podman-compose"), PODMAN_COMPOSE_VENV]
    for candidate in filter(None, candidates):
        if not Path(candidate).exists():
            continue
        out = _run([candidate, "--version"], timeout=300)
        match = re.search(r"podman-compose version (\d+)\.(\d+)", out.stdout)
        if match and (int(match[1]), int(match[2])) >= MIN_PODMAN_COMPOSE:
            return candidate
    return None


def find_engine() -> tuple[Engine | None, str]:
    """The engine to use, or None and why none can run containers here."""
    env = dict(os.environ)
    docker = shutil.which("docker")
    if docker and _run([docker, "info"], timeout=300).returncode == 0:
        if _run([docker, "compose", "version"], timeout=300).returncode == 0:
            return Engine("docker", [docker, "compose"], env), ""
        return None, "docker runs but has no compose v2 plugin"
    podman = shutil.which("podman")
    if podman is None:
        return None, "no container engine: neither a running docker daemon nor podman (docker/README.md)"
    compose = _podman_compose()
    if compose is None:
        return None, f"podman is here but no podman-compose >= {MIN_PODMAN_COMPOSE} (docker/README.md)"
    env["CONTAINERS_CONF"] = env.get("CONTAINERS_CONF", str(PODMAN_CONF))
    info = _run([podman, "info"], env=env, timeout=120)
    if info.returncode != 0:
        return None, f"podman cannot run here: {info.stderr.strip()[-300:]}"
    # As docker does, a read-only container gets only the tmpfs mounts compose names: podman's own
    # (/run, /tmp, /var/tmp) would be mounted over them and hide /run/postgresql's. (podman 4.3 reads
    # no containers.conf key for it.)
    return Engine("podman", [compose, "--podman-run-args=--read-only-tmpfs=false"], env), ""


def missing_images(engine: Engine) -> list[str]:
    names = [pattern.format(tag="latest") for pattern in IMAGES.values()]
    return [n for n in names if engine("image", "inspect", n, timeout=300).returncode != 0]


@dataclass
class Stack:
    """One running stack: its compose project, published ports and secrets."""

    engine: Engine
    project: str
    tag: str
    workdir: Path
    env_file: Path
    variables: dict[str, str]
    healthy_after_s: dict[str, float] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.variables['API_PORT']}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.variables['MLFLOW_PORT']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.variables['RAY_DASHBOARD_PORT']}"

    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        files = [arg for path in COMPOSE_FILES for arg in ("-f", str(path))]
        command = [*self.engine.compose, "-p", self.project, "--env-file", str(self.env_file), *files, *args]
        return _run(
            command, env=self.engine.env | {"SHARED_STORE_DIR": self.variables["SHARED_STORE_DIR"]}, timeout=timeout
        )

    def containers(self, service: str, all_states: bool = False) -> list[str]:
        """Names of a service's containers (compose labels them with project and service)."""
        args = ["ps", "--format", "{{.Names}}", "--filter", f"label=com.docker.compose.project={self.project}"]
        args += ["--filter", f"label=com.docker.compose.service={service}"]
        out = self.engine(*args, *(["-a"] if all_states else []), timeout=300)
        return sorted(line for line in out.stdout.split() if line)

    def container(self, service: str) -> str:
        names = self.containers(service)
        assert len(names) == 1, f"{service}: {names}"
        return names[0]

    def inspect(self, name: str) -> dict[str, Any]:
        out = self.engine("inspect", name, timeout=300)
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout)[0]
        return data

    def ip(self, name: str) -> str:
        networks = self.inspect(name)["NetworkSettings"]["Networks"]
        return str(next(iter(networks.values()))["IPAddress"])

    def exec(self, service: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.engine("exec", self.container(service), *args, timeout=300)

    def logs(self, tail: int = 60) -> str:
        parts = []
        for service in ORDER:
            for name in self.containers(service, all_states=True):
                out = self.engine("logs", "--tail", str(tail), name, timeout=300)
                parts.append(f"--- {name}\n{out.stdout[-4000:]}{out.stderr[-4000:]}")
        return "\n".join(parts)

    def healthy(self, name: str) -> bool:
        """Run the container's own healthcheck (podman has no timer for it here) or read docker's verdict."""
        if self.engine.name == "podman":
            try:
                return self.engine("healthcheck", "run", name, timeout=300).returncode == 0
            except subprocess.TimeoutExpired:  # podman waits for its storage lock (a build committing)
                return False
        health = self.inspect(name)["State"].get("Health") or {}
        return health.get("Status") == "healthy"

    def wait_healthy(self, service: str, timeout_s: float = 600) -> float:
        """Seconds until every container of ``service`` passed its healthcheck; fails with the logs if not."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            names = self.containers(service, all_states=True)
            states = {n: self.inspect(n)["State"] for n in names}
            if names and all(s.get("Running") for s in states.values()) and all(self.healthy(n) for n in names):
                return time.monotonic() - start
            time.sleep(3)
        raise AssertionError(f"{service} not healthy within {timeout_s:.0f}s\n{self.logs()}")

    def up(self, service: str, *extra: str) -> float:
        """``up -d --no-deps`` one service, then wait for its healthchecks; seconds from start to healthy."""
        start = time.monotonic()
        out = self.compose("up", "-d", "--no-deps", *extra, service)
        assert out.returncode == 0, f"up {service} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        self.wait_healthy(service)
        self.healthy_after_s[service] = round(time.monotonic() - start, 1)
        return self.healthy_after_s[service]

    def ray_get(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {self.variables['RAY_AUTH_TOKEN']}"}
        response = httpx.get(f"{self.dashboard_url}{path}", headers=headers, timeout=30.0)
        response.raise_for_status()
        return response.json()

    def teardown(self) -> None:
        """Remove everything this stack made, by its project label and names, whatever state it is in."""
        self.compose("down", "-v", "--remove-orphans", "-t", "10", timeout=600)
        label = f"label=com.docker.compose.project={self.project}"
        leftover = self.engine("ps", "-a", "-q", "--filter", label, timeout=300).stdout.split()
        if leftover:
            self.engine("rm", "-f", *leftover, timeout=300)
        for volume in self.engine("volume", "ls", "-q", "--filter", label, timeout=300).stdout.split():
            self.engine("volume", "rm", "-f", volume, timeout=120)
        for network in self.engine("network", "ls", "-q", "--filter", label, timeout=300).stdout.split():
            self.engine("network", "rm", "-f", network, timeout=120)
        for pattern in IMAGES.values():
            self.engine("rmi", pattern.format(tag=self.tag), timeout=120)  # only the test's tag: an untag


def _variables(workdir: Path) -> dict[str, str]:
    """The stack's .env: fresh secrets, free loopback ports, and a shared folder owned by the images' user."""
    shared = workdir / "shared"
    for sub in ("mlflow-artifacts", "ray-results"):
        (shared / sub).mkdir(parents=True)
    for path in (shared, shared / "mlflow-artifacts", shared / "ray-results"):
        with contextlib.suppress(PermissionError):  # rootless: the user namespace maps it instead
            os.chown(path, int(IMAGE_UID), int(IMAGE_UID))
    return {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "MINIO_ROOT_USER": "unused-minio",
        "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(24),
        "RAY_AUTH_TOKEN": secrets.token_urlsafe(24),
        "MIXUP_STUDIES_ADMIN_TOKEN": secrets.token_urlsafe(24),
        "MIXUP_STUDIES_MAX_RUNNING_STUDIES": "1",
        "API_BIND": "127.0.0.1",
        "API_PORT": str(free_port()),
        "MLFLOW_PORT": str(free_port()),
        "RAY_DASHBOARD_PORT": str(free_port()),
        # The head keeps no CPU for trials, so every trial must run on a worker container.
        "RAY_HEAD_NUM_CPUS": "0",
        "RAY_WORKER_NUM_CPUS": "2",
        "RAY_SHM_SIZE": "1gb",
        "SHARED_STORE_DIR": str(shared),
    }


@contextlib.contextmanager
def stack(engine: Engine) -> Iterator[Stack]:
    """Tag the images for this run, bring the stack up service by service, yield it, tear it all down."""
    run = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="mxct-", dir="/var/tmp"))
    workdir.chmod(0o755)
    variables = _variables(workdir)
    tag = f"ctest-{run}"
    variables["IMAGE_TAG"] = tag
    env_file = workdir / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in variables.items()))
    env_file.chmod(0o600)
    running = Stack(engine, f"mxct{run}", tag, workdir, env_file, variables)
    try:
        for pattern in IMAGES.values():
            out = engine("tag", pattern.format(tag="latest"), pattern.format(tag=tag), timeout=120)
            assert out.returncode == 0, out.stderr
        for service in ORDER:
            running.up(service, *(["--scale", f"ray-worker={WORKERS}"] if service == "ray-worker" else []))
        yield running
    finally:
        running.teardown()
        shutil.rmtree(workdir, ignore_errors=True)
