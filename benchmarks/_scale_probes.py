"""What ``study_scale.py`` measures with, beside the service: /proc samplers, paced HTTP samplers, the /trials poller.

Imported as ``_scale_probes`` (the scripts run as ``python benchmarks/<name>.py``). Every probe is a thread that
runs until :meth:`stop`; figures are read after it stopped.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

FINAL = frozenset({"finished", "stopped", "failed", "cancelled"})
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- /proc ------------------------------------------------------------------------------------------------


def proc_cpu(pid: int) -> tuple[float, float] | None:
    """(own utime+stime, reaped children's cutime+cstime) in seconds, or None when the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, (int(fields[13]) + int(fields[14])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` field of /proc/PID/status (VmHWM: peak RSS, VmRSS: RSS now)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


@dataclass
class Tracked:
    """One process as the sampler last saw it."""

    pid: int
    name: str
    first_cpu: float
    last_cpu: float = 0.0
    peak_rss_kb: int = 0
    first_seen: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)
    gone: bool = False


class ProcSampler(threading.Thread):
    """Samples named processes' CPU and peak RSS every ``interval_s``, and finds new drivers as they start.

    ``fixed``: name → pid to follow from now on (dispatcher, gcs_server, raylets); ``driver_parent``: whose
    children running ``driver_marker`` are study drivers (each tracked from its first sample to its last:
    the driver's CPU before the first sample, ≤ one interval of start-up, counts too since CPU is cumulative).
    ``actor_parents``: raylet name → pid; the trial actors (``ray::`` processes that ran a trainable) each
    raylet started are counted, to show which nodes ran trials.
    """

    def __init__(self, fixed: dict[str, int], driver_parent: int, driver_marker: str, interval_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self.driver_parent, self.driver_marker = driver_parent, driver_marker
        self.tracked: dict[int, Tracked] = {}
        self.actor_parents: dict[str, int] = {}
        self.actors: dict[str, set[int]] = {}
        self._stop_event = threading.Event()
        for name, pid in fixed.items():
            self.follow(name, pid)

    def follow(self, name: str, pid: int) -> None:
        cpu = proc_cpu(pid)
        if cpu is not None:
            self.tracked[pid] = Tracked(pid, name, first_cpu=0.0 if name.startswith("driver") else cpu[0])

    def sample(self) -> None:
        for pid in children(self.driver_parent):
            if pid not in self.tracked and self.driver_marker in cmdline(pid):
                self.follow(f"driver:{pid}", pid)
        for item in self.tracked.values():
            if item.gone:
                continue
            cpu, rss = proc_cpu(item.pid), proc_status_kb(item.pid, "VmHWM")
            if cpu is None or rss is None:  # exited (a zombie has no VmHWM): the last sample is its total
                item.gone = True
                continue
            item.last_cpu, item.peak_rss_kb, item.last_seen = cpu[0], max(item.peak_rss_kb, rss), time.monotonic()
        for node, raylet in self.actor_parents.items():
            for pid in children(raylet):
                if "ImplicitFunc" in cmdline(pid) or "run_trial" in cmdline(pid):
                    self.actors.setdefault(node, set()).add(pid)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)
        self.sample()

    def cpu_s(self, name: str) -> float:
        return sum(t.last_cpu - t.first_cpu for t in self.tracked.values() if t.name == name)

    def named(self, prefix: str) -> list[Tracked]:
        return [t for t in self.tracked.values() if t.name.startswith(prefix)]


# -- HTTP --------------------------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50 / p99 / max in ms of latencies in seconds, and how many."""
    ordered = sorted(values)

    def at(q: float) -> float | None:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else None

    return {"n": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}


class PacedSampler(threading.Thread):
    """GETs ``paths()`` (cycled) at ``rate`` req/s, open loop: a latency counts from when the request was due,
    so a stalled server cannot hide its backlog (a missed slot is sent late, not skipped)."""

    def __init__(self, url: str, headers: dict[str, str], paths: Any, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.paths, self.period = url, headers, paths, 1.0 / rate
        self.latencies: list[float] = []
        self.sent_at: list[float] = []  # when each latency's request was due, from the sampler's start
        self.statuses: dict[int, int] = {}
        self.items_seen: list[int] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as client:
            due, turn = time.perf_counter(), 0
            first = due
            while not self._stop_event.is_set():
                paths = self.paths()
                path = paths[turn % len(paths)] if paths else None
                turn += 1
                if path is not None:
                    try:
                        response = client.get(path)
                        self.latencies.append(time.perf_counter() - due)
                        self.sent_at.append(due - first)
                        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                        if "trials" in path and response.status_code == 200:
                            # Counted, not parsed: decoding 5,000 trials 5 times a second would take this
                            # process's GIL from the other probes' clocks.
                            self.items_seen.append(response.content.count(b'"trial_id"'))
                    except httpx.HTTPError:
                        self.statuses[0] = self.statuses.get(0, 0) + 1
                due += self.period
                self._stop_event.wait(max(0.0, due - time.perf_counter()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(120)

    def figures(self) -> dict[str, Any]:
        out = percentiles(self.latencies)
        out["statuses"] = {str(k): v for k, v in sorted(self.statuses.items())}
        # When the slowest 1 % were sent (s from the study's submit): a tail bunched in time is one event.
        slowest = sorted(range(len(self.latencies)), key=self.latencies.__getitem__)[
            -max(1, len(self.latencies) // 100) :
        ]
        out["slowest_sent_at_s"] = sorted(round(self.sent_at[i], 1) for i in slowest)
        if self.items_seen:
            out["trials_per_answer_max"] = max(self.items_seen)
        return out


def read_trials(client: httpx.Client, study_id: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """Every trial /trials has for ``params``: paged while ``offset < total`` where the API pages (it then
    says ``total``), one read where it does not (it ignores the paging parameters). (trials, paged?)"""
    trials: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = client.get(f"/api/v1/studies/{study_id}/trials", params={**params, "limit": 1000, "offset": offset})
        response.raise_for_status()
        body = response.json()
        page = body["trials"]
        if "total" not in body:
            return page, False
        trials += page
        offset += len(page)
        if not page or offset >= body["total"]:
            return trials, True


def _key(trial: dict[str, Any]) -> str:
    return str(trial.get("run_id") or trial["trial_id"])


class TrialsPoller(threading.Thread):
    """Every ``interval_s``, reads what changed in each study's /trials (``updated_after`` the last change seen,
    where the API has it; all of it where not) and notes when each trial (by run id) was first seen final."""

    def __init__(self, url: str, headers: dict[str, str], study_ids: Any, interval_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.study_ids, self.interval_s = url, headers, study_ids, interval_s
        self.first_final: dict[str, float] = {}  # run id (or trial id) → time.time() first seen final
        self.read_s: list[float] = []
        self.paged: bool | None = None
        self._since: dict[str, str] = {}
        self._stop_event = threading.Event()

    def poll_once(self, client: httpx.Client, study_id: str) -> None:
        params: dict[str, Any] = {}
        if study_id in self._since:
            params["updated_after"] = self._since[study_id]
        began = time.perf_counter()
        trials, self.paged = read_trials(client, study_id, params)
        self.read_s.append(time.perf_counter() - began)
        now = time.time()
        for trial in trials:
            if trial["status"] in FINAL:
                self.first_final.setdefault(_key(trial), now)
        stamps = [t["updated_at"] for t in trials if t.get("updated_at")]
        if self.paged and stamps:
            # Back off a second from the newest change seen: rows stamped in the same instant are read again
            # (and ignored: first sighting wins) rather than missed.
            newest = max(datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps)
            self._since[study_id] = datetime.fromtimestamp(newest.timestamp() - 1.0, newest.tzinfo).isoformat()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=120) as client:
            while not self._stop_event.is_set():
                began = time.monotonic()
                for study_id in list(self.study_ids()):
                    with contextlib.suppress(httpx.HTTPError):  # a slow or failed read: the next pass retries
                        self.poll_once(client, study_id)
                self._stop_event.wait(max(0.0, self.interval_s - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(300)
