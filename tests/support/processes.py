"""Real processes for tests: free ports, logged subprocesses, HTTP readiness, stopping by PID.

Stable API (the service and docker suites both use it):

* :func:`free_port` → an unused TCP port on 127.0.0.1.
* :func:`worker_port_range` → a free block of ports for Ray's workers, below the kernel's ephemeral range.
* :func:`start_process` → a :class:`Proc` (``popen``, ``log_path``, ``log_text()``), its output in its own file.
* :func:`wait_for_http` → poll a URL until it answers (any status < 500 by default), bounded in time.
* :func:`stop_process` → SIGTERM its process group, then SIGKILL after a grace period; only that PID's group.
* :func:`wait_until` → poll a predicate with a deadline.
* :func:`child_processes` → ``(pid, command line)`` of a process's children, from ``/proc``.

Nothing here kills by name: every process is stopped by the PID it was started with.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def free_port() -> int:
    """A TCP port nobody listens on at the moment (on 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def worker_port_range(size: int = 200) -> tuple[int, int]:
    """``(low, high)`` of ``size`` free ports for ``ray start --min/--max-worker-port``.

    Why below the ephemeral range: :func:`free_port` (and every port Ray picks itself) comes from
    that range, so a worker block there can swallow a port another component of the same node
    was given, and ``ray start`` refuses to start ("used by other components"). Starting at 20000
    also stays clear of Ray's fixed defaults (dashboard 8265, client server 10001) and of its default
    worker range (10002-19999) that any local ``ray.init`` on this machine uses.
    """
    top = _ephemeral_low() - size
    for _ in range(50):
        low = random.randrange(20_000, top)
        if all(_is_free(port) for port in range(low, low + size)):
            return low, low + size - 1
    raise RuntimeError(f"no block of {size} free ports below {top + size}")


@dataclass
class Proc:
    """A started process: its Popen and the file its stdout and stderr go to."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    name: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self, tail: int | None = 8000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text[-tail:] if tail else text


def start_process(
    args: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    name: str | None = None,
    user: str | None = None,
) -> Proc:
    """Start ``args`` in its own session (so a stop reaches its children), output appended to ``log_path``.

    Args:
        args: the command line.
        log_path: the process's stdout + stderr; the folder is created.
        env: the full environment (default: this process's).
        cwd: its working directory.
        name: a label for messages (default: the program).
        user: run as this user (needs root), e.g. ``postgres``.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            list(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            user=user,
        )
    return Proc(popen, log_path, name or Path(args[0]).name)


def wait_until(predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.2, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout_s:.0f}s")
        time.sleep(interval_s)


def wait_for_http(
    url: str,
    timeout_s: float = 60.0,
    proc: Proc | None = None,
    ok: Callable[[httpx.Response], bool] = lambda r: r.status_code < 500,
) -> httpx.Response:
    """Poll ``url`` until ``ok(response)``; fail early (with its log) when ``proc`` exits first."""
    deadline = time.monotonic() + timeout_s
    last: str = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode} before {url} answered:\n{proc.log_text()}"
            )
        try:
            response = httpx.get(url, timeout=2.0)
            if ok(response):
                return response
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            last = type(error).__name__
        time.sleep(0.25)
    log = f"\n{proc.log_text()}" if proc is not None else ""
    raise TimeoutError(f"{url} did not become ready within {timeout_s:.0f}s (last: {last}){log}")


def child_processes(pid: int) -> list[tuple[int, str]]:
    """``(pid, command line)`` of each child of ``pid`` (from ``/proc``; children gone meanwhile are left out)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            found.append((int(child), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found


def kill_processes_mentioning(marker: str) -> list[int]:
    """SIGKILL every process whose command line holds ``marker`` (a unique temp dir of ours), returning their PIDs.

    For what a test or benchmark started indirectly and that outlives it by design: a driver the service
    launched in its own session (drivers survive the service), or a Ray started by a killed driver.
    """
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def stop_process(proc: Proc | int, grace_s: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
    """Stop a process started by :func:`start_process` (or a PID of one): ``sig`` to its group, then SIGKILL.

    Returns the exit code when it was our child, else None.
    """
    pid = proc.pid if isinstance(proc, Proc) else proc
    popen = proc.popen if isinstance(proc, Proc) else None

    def gone() -> bool:
        return popen.poll() is not None if popen is not None else not pid_alive(pid)

    if not gone():
        _signal_group(pid, sig)
        deadline = time.monotonic() + grace_s
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not gone():
            _signal_group(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                if popen is not None:
                    popen.wait(timeout=10)
    return popen.returncode if popen is not None else None


def _signal_group(pid: int, sig: int) -> None:
    # Started with start_new_session=True, so the process leads its own group: reach its children too.
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
