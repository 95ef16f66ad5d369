"""Local launcher: each study driver is its own OS process (with its own local Ray) on this machine.

The driver runs in its own process group, so stopping or killing the service (or
Ctrl-C in its terminal) does not touch it, and a restarted service re-attaches to
it by PID. A handle is
``"<pid>:<start time>"``; the start time (from ``/proc``) guards against a
recycled PID. The handle is also written to a pid file before the launch is
recorded, so a crash in between cannot start the study twice.

A driver's local Ray starts its processes in the driver's process group; when the driver is killed, most
of them die with it (Ray ties them to it), but Ray's dashboard and runtime-env agents lingered for about
70 s. So each driver is started with a marker in its environment (``MIXUP_STUDIES_LAUNCH=<study>.attempt<n>``,
inherited by every process of its Ray) and, when :meth:`LocalLauncher.poll` finds the driver gone, what is
left of its group that carries the marker is killed by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from service.errors import LaunchError
from service.launchers.base import DriverState, Launch, Launcher, clean_environ, spec_text
from service.processes import MARKER_ENV, end_members, group_members, process_start_time
from service.settings import ServiceSettings

#: How long the leftovers of a dead driver are swept again while new ones still appear.
LEFTOVER_SWEEP_S = 3.0

__all__ = ["LocalLauncher", "process_start_time"]


class LocalLauncher(Launcher):
    name = "local"

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def _paths(self, launch: Launch) -> tuple[Path, Path, Path]:
        run_dir = self.settings.home_dir / "drivers"
        return (
            self.settings.specs_dir / f"{launch.study_id}.json",
            self.settings.logs_dir / f"{launch.study_id}.log",
            run_dir / f"{launch.study_id}.attempt{launch.attempt}.pid",
        )

    def launch(self, launch: Launch) -> str:
        spec_path, log_path, pid_path = self._paths(launch)
        for folder in (spec_path.parent, log_path.parent, pid_path.parent):
            folder.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(spec_text(launch.spec))
        env = {**clean_environ(), **self.driver_env(), MARKER_ENV: pid_path.stem}
        try:
            with open(log_path, "ab") as log:
                log.write(f"=== attempt {launch.attempt}\n".encode())
                log.flush()
                popen = subprocess.Popen(
                    [sys.executable, *self.driver_args(str(spec_path), launch)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, cwd=self.settings.home_dir, process_group=0,
                )  # fmt: skip
        except OSError as error:
            raise LaunchError(f"could not start the study driver: {error}") from error
        self._deprioritise(popen.pid)
        self._children[popen.pid] = popen
        handle = f"{popen.pid}:{process_start_time(popen.pid) or '?'}"
        pid_path.write_text(handle)
        return handle

    def _deprioritise(self, pid: int) -> None:
        # Training would otherwise take the cores from the API (a status poll then waits behind Ray's
        # workers). Niceness is inherited, so the driver's local Ray and its trial workers, all started
        # later by the driver, get it too; an idle API leaves them every cycle anyway. It counts only
        # within one scheduler autogroup (one per session where autogroup scheduling is on), which is
        # why the driver gets its own process group (signals from the terminal and stop-by-group miss
        # it, so it outlives the service) but stays in the service's session.
        # Set even at 0: the dispatcher that starts it runs nicer than serve (service.dispatcher.DISPATCHER_NICE),
        # and a driver would inherit that; going below it takes privileges, without them it stays there.
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, self.settings.driver_nice)

    def find(self, launch: Launch) -> str | None:
        pid_path = self._paths(launch)[2]
        return pid_path.read_text().strip() if pid_path.exists() else None

    @staticmethod
    def _parse(handle: str) -> tuple[int, str]:
        pid, _, started = handle.partition(":")
        return int(pid), started

    def _alive(self, handle: str) -> bool:
        pid, started = self._parse(handle)
        now = process_start_time(pid)
        return now is not None and (started in ("", "?") or now == started)

    def poll(self, handle: str) -> DriverState:
        pid, _ = self._parse(handle)
        child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return DriverState("running")
            del self._children[pid]
            self._end_leftovers(handle)
            # A negative code is death by a signal: not an outcome the driver chose.
            return DriverState("exited", code) if code >= 0 else DriverState("lost", None, f"killed by signal {-code}")
        if self._alive(handle):
            return DriverState("running")
        self._end_leftovers(handle)
        return DriverState("lost")

    def _end_leftovers(self, handle: str) -> list[int]:
        """Kill what is left of a driver that has ended (its Ray's agents, after a SIGKILL); their PIDs.

        Only processes of the driver's group that carry its launch's marker: the group id alone could by
        now name a later group. The marker is the name of the pid file that holds this handle.
        """
        pid, _ = self._parse(handle)
        marker = next((f.stem for f in (self.settings.home_dir / "drivers").glob("*.pid") if _holds(f, handle)), None)
        if marker is None:
            return []
        ended: list[int] = []
        # Again until none is left: a dying raylet may still start a process after the first sweep.
        deadline = time.monotonic() + LEFTOVER_SWEEP_S
        # Our session as well as the marker: Ray's retitled agents may no longer show the marker (group_members).
        while left := group_members(pid, marker, session=os.getsid(0)):
            end_members(left, grace_s=0)  # the driver is gone: nothing left of its session has work to save
            ended += left
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return ended

    def stop(self, handle: str) -> None:
        pid, _ = self._parse(handle)
        if self._alive(handle):
            # The driver only, not its group: its local Ray's processes are Tune's to shut down.
            os.kill(pid, signal.SIGINT)

    def logs(self, study_id: str, handle: str, tail: int = 4000) -> str:
        del handle  # every attempt of a study appends to one file
        path = self.settings.logs_dir / f"{study_id}.log"
        try:
            return path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""


def _holds(pid_file: Path, handle: str) -> bool:
    with suppress(OSError):
        return pid_file.read_text().strip() == handle
    return False
