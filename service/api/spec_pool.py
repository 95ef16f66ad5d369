"""The worker processes that prepare submitted specs (service.spec_work), replaced when one dies or hangs.

A ``concurrent.futures.ProcessPoolExecutor`` on the "forkserver" start method (never a fork of the API
process, which has threads): the fork server imports the project once, and each worker (and each
replacement) is a fork of it, ready at once. Created on first use, or by :meth:`SpecPool.start` (``serve``
warms it before the first request), and shut down with the app.

A worker that dies breaks the executor (``BrokenProcessPool``): the requests it held get a ``503`` and the
next submission gets a new pool. A request past its time limit whose work could not be cancelled (it is
running, or handed to a worker already) gets its pool killed and replaced, so a stuck worker cannot hold
the pool; the other requests in that pool then get a ``503`` too ("try again").
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from service import spec_work
from service.processes import process_start_time

T = TypeVar("T")


def _this_process() -> tuple[int, str | None]:
    return os.getpid(), process_start_time(os.getpid())


class SpecPool:
    """``size`` worker processes; :meth:`submit` runs a picklable call in one of them."""

    def __init__(self, size: int, niceness: int = 0) -> None:
        self.size = size
        # On a busy machine a worker's long calls must not take the API process's core: with 4 clients
        # submitting 1 MB specs on 2 loaded cores, /healthz p99 was 332 ms with workers at niceness 0, 28 ms at 10.
        self.niceness = niceness
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        #: Calls submitted and not yet answered (queued or at work).
        self.in_flight = 0

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the spec pool is shut down")
            executor = self._executor
            if executor is None or getattr(executor, "_broken", False):
                if executor is not None:
                    executor.shutdown(wait=False, cancel_futures=True)
                context = multiprocessing.get_context("forkserver")
                # What every worker needs, imported once by the fork server (a replacement starts at once).
                context.set_forkserver_preload(["service.spec_work"])
                executor = self._executor = ProcessPoolExecutor(
                    self.size,
                    mp_context=context,
                    initializer=spec_work.start_worker,
                    initargs=(self.niceness, *_this_process()),
                )
            return executor

    def submit(self, work: Callable[..., T], *args: Any) -> tuple[ProcessPoolExecutor, Future[T]]:
        """Queue ``work(*args)`` and say in which pool; may block while a pool (and, the first time, the fork
        server) starts."""
        executor = self._current()
        future = executor.submit(work, *args)
        with self._lock:
            self.in_flight += 1
        future.add_done_callback(self._answered)
        return executor, future

    def _answered(self, _future: Future[Any]) -> None:
        with self._lock:
            self.in_flight -= 1

    def start(self) -> None:
        """Start the workers now (the fork server imports the project: seconds), not at the first request."""
        for _, future in [self.submit(spec_work.warm) for _ in range(self.size)]:
            future.result()

    def pids(self) -> list[int]:
        """The live workers' process ids."""
        executor = self._executor
        processes = getattr(executor, "_processes", None) or {}
        return [pid for pid, process in list(processes.items()) if process.is_alive()]

    def replace(self, executor: ProcessPoolExecutor) -> None:
        """Kill ``executor``'s workers (one is stuck past a time limit); the next submission starts new ones."""
        with self._lock:
            if self._executor is executor:
                self._executor = None
        self._kill(executor)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            self._kill(executor)

    @staticmethod
    def _kill(executor: ProcessPoolExecutor) -> None:
        # Python 3.11 has no terminate_workers(): its processes, then a shutdown that waits for nothing.
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()
        for process in processes:
            process.join(timeout=5)
