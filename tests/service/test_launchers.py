"""One contract test suite, run against both launchers: local processes and Ray Jobs on a real cluster.

The driver is :mod:`tests.support.fake_driver` (the real driver's command line and exit codes, no
training), so the suite tests the launchers themselves; the end-to-end test runs the real one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.launchers import Launch, Launcher, make_launcher
from service.processes import MARKER_ENV, group_members
from service.settings import ServiceSettings
from tests.support.processes import wait_until
from tests.support.ray_cluster import REPO, RayCluster, ray_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    with ray_cluster(num_cpus=2, workers=1) as running:
        yield running


@pytest.fixture(params=["local", "ray_jobs"])
def launcher(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Launcher:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    fields = {
        "home": tmp_path / "home",
        "results_uri": str(tmp_path / "results"),
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "driver_module": "tests.support.fake_driver",
    }
    if request.param == "ray_jobs":
        running: RayCluster = request.getfixturevalue("cluster")
        monkeypatch.setenv("RAY_AUTH_TOKEN", running.token)
        fields.update(launcher="ray_jobs", ray_jobs_url=running.dashboard_url)
    return make_launcher(ServiceSettings(**fields))


def a_launch(name: str, description: str, attempt: int = 1) -> Launch:
    spec = {"name": name, "description": description, "dataset": {"name": "uci:iris"}, "model": {"name": "mlp"}}
    return Launch(study_id=f"{name}-{attempt}", spec=spec, user="alice", attempt=attempt)


def wait_ended(launcher: Launcher, handle: str, timeout_s: float = 90.0):  # type: ignore[no-untyped-def]
    return wait_until(lambda: (s := launcher.poll(handle)).state != "running" and s, timeout_s, 0.3, "driver end")


def starts(launcher: Launcher, launch: Launch) -> list[str]:
    path = Path(launcher.settings.experiment_path(launch.study_id)) / "starts.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_a_driver_runs_to_success(launcher: Launcher) -> None:
    launch = a_launch("ok", "sleep=1 exit=0")
    handle = launcher.launch(launch)
    assert launcher.poll(handle).state == "running"
    assert launcher.find(launch) == handle
    state = wait_ended(launcher, handle)
    assert (state.state, state.exit_code) == ("exited", 0)
    (line,) = starts(launcher, launch)
    assert "resume=True user=alice" in line  # always resume-or-start, with the owner recorded
    assert "done with exit code 0" in launcher.logs(launch.study_id, handle)


def test_a_failed_study_reports_its_exit_code(launcher: Launcher) -> None:
    launch = a_launch("bad", "sleep=0.2 exit=1")
    state = wait_ended(launcher, launcher.launch(launch))
    assert (state.state, state.exit_code) == ("exited", 1)


def test_stop_is_graceful_and_ends_cancelled(launcher: Launcher) -> None:
    launch = a_launch("stop", "sleep=120")
    handle = launcher.launch(launch)
    wait_until(lambda: starts(launcher, launch), 60, 0.2, "driver start")
    launcher.stop(handle)
    state = wait_ended(launcher, handle, 60)
    assert (state.state, state.exit_code) == ("exited", 3)
    assert "stopped by SIGINT" in launcher.logs(launch.study_id, handle)
    progress = json.loads((Path(launcher.settings.experiment_path(launch.study_id)) / "progress.json").read_text())
    assert progress["status"] == "cancelled"


def test_a_restarted_service_finds_and_watches_a_running_driver(launcher: Launcher) -> None:
    launch = a_launch("reattach", "sleep=3 exit=0")
    handle = launcher.launch(launch)
    again = make_launcher(launcher.settings)  # a new service process knows only what the database has
    assert again.find(launch) == handle
    assert again.poll(handle).state == "running"
    state = wait_ended(again, handle)
    # A local process that is not our child ends without a known exit code; the dispatcher then asks MLflow.
    assert state.state in ("exited", "lost")
    if state.state == "exited":
        assert state.exit_code == 0


def test_a_killed_driver_is_lost_not_succeeded(launcher: Launcher) -> None:
    launch = a_launch("killed", "die_first=1 die_after=0.5 sleep=60")
    state = wait_ended(launcher, launcher.launch(launch))
    assert state.state == "lost" or (state.state == "exited" and state.exit_code not in (0, 1, 2, 3))


def test_an_unlaunched_attempt_is_not_found(launcher: Launcher) -> None:
    assert launcher.find(a_launch("never", "", attempt=7)) is None


def test_local_drivers_run_niced_so_the_api_keeps_its_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    settings = ServiceSettings(
        home=tmp_path / "home", results_uri=str(tmp_path / "results"), driver_module="tests.support.fake_driver",
        driver_nice=7,
    )  # fmt: skip
    launcher = make_launcher(settings)
    launch = a_launch("niced", "sleep=2 exit=0")
    handle = launcher.launch(launch)
    pid = int(handle.split(":")[0])
    # Field 19 of /proc/PID/stat is the niceness; fields[0] after the command name is field 3.
    nice = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    assert nice >= 7  # at least ours (more if the test runner itself is niced)
    # Niceness only counts within a scheduler autogroup, one per session: the driver shares the service's
    # session (here the test runner's) but has a process group of its own, which the service's stop misses.
    assert os.getsid(pid) == os.getsid(0)
    assert os.getpgid(pid) == pid != os.getpgid(0)
    assert wait_ended(launcher, handle).exit_code == 0


def ray_session_of(driver_pid: int) -> list[tuple[int, str]]:
    """``(pid, command line)`` of the live processes in a driver's process group (where its local Ray runs)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if stat[0] not in ("Z", "X") and int(stat[2]) == driver_pid:
            found.append((int(entry.name), cmdline))
    return found


def test_a_killed_drivers_ray_processes_end_within_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real driver with its local Ray; kill -9 it. Ray's dashboard and runtime-env agents used to stay ~70 s.
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    settings = ServiceSettings(
        home=tmp_path / "home", results_uri=str(tmp_path / "results"), tracking_uri=f"sqlite:///{tmp_path / 'ml.db'}",
        ray_num_cpus=2, ray_temp_dir=Path(tempfile.mkdtemp(prefix="r", dir="/tmp")),
    )  # fmt: skip
    launcher = make_launcher(settings)
    spec = {
        "name": "killed", "dataset": {"name": "uci:iris"}, "model": {"name": "mlp"},
        "training": {"epochs": 500, "batch_size": 16}, "search": {"space": {"alpha": [0.0, 1.0]}},
        "resources": {"cpu": 1},
    }  # fmt: skip
    handle = launcher.launch(Launch(study_id="killed-1", spec=spec, user="alice", attempt=1))
    pid = int(handle.split(":")[0])
    try:
        agents = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
        wait_until(lambda: all(any(a in c for _, c in ray_session_of(pid)) for a in agents), 180, 0.5, "Ray's agents")
        os.kill(pid, signal.SIGKILL)
        state = wait_until(lambda: (s := launcher.poll(handle)).state != "running" and s, 10, 0.1, "the driver's end")
        assert state.state == "lost"
        # The launcher's sweep ends them as it reports the loss; the agents alone took 70 s to notice.
        wait_until(lambda: not ray_session_of(pid), 5, 0.2, "no process of the driver's Ray left")
    finally:
        for left, _ in ray_session_of(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(left, signal.SIGKILL)


def test_a_retitled_process_of_the_drivers_group_is_found_without_its_marker() -> None:
    # Ray's Python processes retitle themselves; the title overwrites the start of the environment block,
    # where the launch's marker may sit. Such a process must still count as the driver's.
    retitle = "import ray._raylet as r, time; r.setproctitle('ray::Retitled'); print('ok', flush=True); time.sleep(60)"
    env = {MARKER_ENV: "launch-1", **{k: v for k, v in os.environ.items() if k != MARKER_ENV}}  # the marker first
    child = subprocess.Popen([sys.executable, "-c", retitle, "x" * 200], env=env, stdout=subprocess.PIPE,
                             process_group=0)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ok\n"
        environ = Path(f"/proc/{child.pid}/environ").read_bytes().split(b"\0")
        assert f"{MARKER_ENV}=launch-1".encode() not in environ  # what the marker alone misses
        assert group_members(child.pid, "launch-1") == []
        assert group_members(child.pid, "launch-1", session=os.getsid(0)) == [child.pid]
        assert group_members(child.pid, "launch-1", session=os.getsid(0) + 1) == []  # another session's group
    finally:
        child.kill()
        child.wait()
