"""Processes the service starts and must be able to end later by PID: identity and process groups (``/proc``).

A PID alone does not name a process for long (PIDs are recycled), so a process the service records is
``(pid, start time)``, and what is left of a process group is confirmed member by member before it is
signalled. Linux only, as the local launcher is.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import suppress
from pathlib import Path

#: Set in the environment of each process the service starts (a study driver, the MLflow UI) to a value
#: unique to that start; everything the process starts inherits it, which is how its leftovers are found.
MARKER_ENV = "MIXUP_STUDIES_LAUNCH"


def process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None when it is gone or a zombie."""
    fields = _stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return fields[19]  # field 22 of /proc/PID/stat; fields[0] is field 3


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (which may hold spaces and parentheses)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat.rsplit(")", 1)[1].split()


def group_members(pgid: int, marker: str | None = None, session: int | None = None) -> list[int]:
    """Live processes of process group ``pgid``; with ``marker``, only those with ``MARKER_ENV=marker``
    (and, with ``session`` too, also those of that session).

    The marker (set when the group's leader was started, and inherited by everything it starts) tells this
    group from a later one that happens to get the same id once the first is gone. It cannot always be read:
    a process that retitles itself (Ray's Python processes, with setproctitle) overwrites the start of its
    environment block with the title, and whether the marker was there depends on the variables' order.
    ``session`` (the caller's own) covers those: a group lives in one session, the id is not handed out
    again while the group has a member, and in the caller's session new groups are the caller's own.
    """
    entry_bytes = f"{MARKER_ENV}={marker}".encode() if marker is not None else None
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None or fields[0] in ("Z", "X") or int(fields[2]) != pgid:  # fields[2]: the group
            continue
        in_session = session is not None and int(fields[3]) == session  # fields[3]: the session
        if entry_bytes is not None and not in_session and not _has_env(int(entry.name), entry_bytes):
            continue
        members.append(int(entry.name))
    return members


def _has_env(pid: int, entry: bytes) -> bool:
    try:
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def end_members(pids: list[int], grace_s: float) -> None:
    """SIGTERM each of ``pids``, then SIGKILL those still there after ``grace_s`` (0: SIGKILL at once)."""
    first = signal.SIGTERM if grace_s > 0 else signal.SIGKILL
    for pid in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, first)
    deadline = time.monotonic() + grace_s
    while grace_s > 0 and time.monotonic() < deadline and any(process_start_time(pid) for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        if process_start_time(pid) is not None:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
