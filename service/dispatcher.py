"""The dispatcher: starts queued studies in submission order, watches running ones, resumes the lost.

One pass (:meth:`Dispatcher.tick`) does, in order:

1. for every running study: poll its driver; forward a requested cancel (once);
   refresh its progress from MLflow (at most every ``progress_interval_s``);
   record the outcome when the driver ended; relaunch with ``--resume`` when it
   died without one (at most ``max_attempts`` launches in all);
2. start queued studies, oldest first, while fewer than ``max_running_studies`` run.

A launch is claimed in the database (``running``, attempt n, no handle) *before*
the driver starts, and launchers can find a started attempt again
(:meth:`~service.launchers.Launcher.find`), so a crash at any point neither
loses a study nor starts one twice. On service start the first pass re-attaches
to drivers that are still alive: that is all restart safety needs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service import repository
from service.errors import LaunchError
from service.launchers.base import EXIT_CANCELLED, EXIT_FAILED, EXIT_INVALID, EXIT_OK, DriverState, Launch, Launcher
from service.models import CANCELLED, FAILED, SUCCEEDED, Study
from service.settings import ServiceSettings

log = logging.getLogger(__name__)
ProgressReader = Callable[[str, str, Any], Any]


def _read_progress(tracking_uri: str, study_id: str, spec: Any) -> Any:
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        # The driver has not opened MLflow yet. Reading now would make MLflow create and migrate the store
        # here (seconds holding the GIL, stalling the API) and race the driver doing the same.
        return None
    from studies.progress import read_progress

    return read_progress(tracking_uri, study_id, spec)


class Dispatcher:
    """Runs :meth:`tick` every ``settings.poll_interval_s`` on a thread (or call it yourself in tests)."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessions: sessionmaker[Session],
        launcher: Launcher,
        read_progress: ProgressReader = _read_progress,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.launcher = launcher
        self.read_progress = read_progress
        self._progress_due: dict[str, float] = {}
        self._specs: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        # Import MLflow now, not when the first study starts: its import holds the GIL for seconds,
        # which would stall the API's event loop in the middle of serving.
        with suppress(Exception):
            import studies.progress  # noqa: F401
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a bad pass (database briefly away, ...) must not end the loop
                log.exception("dispatcher pass failed")
            self._stop.wait(self.settings.poll_interval_s)

    def tick(self) -> None:
        """One pass: watch the running studies, then start queued ones."""
        with self.sessions() as session:
            for study in repository.running(session):
                try:
                    self._watch(study)
                except LaunchError as error:
                    log.warning("study %s: %s", study.id, error)
                session.commit()
            slots = self.settings.max_running_studies - len(repository.running(session))
            for study in repository.queued_in_order(session, max(0, slots)):
                self._claim(study)
                session.commit()  # claimed before the driver starts: a crash now cannot start it twice
                try:
                    self._start(study)
                except LaunchError as error:
                    log.warning("study %s: %s; it will be retried", study.id, error)
                session.commit()

    # -- one study -----------------------------------------------------------------------

    def _launch_of(self, study: Study) -> Launch:
        return Launch(study_id=study.id, spec=study.spec, user=study.owner.name, attempt=study.attempts)

    def _claim(self, study: Study) -> None:
        repository.mark_running(study, self.launcher.name, handle="")
        study.stop_sent = False

    def _start(self, study: Study) -> None:
        launch = self._launch_of(study)
        study.handle = self.launcher.find(launch) or self.launcher.launch(launch)
        log.info("study %s: driver attempt %d started (%s)", study.id, study.attempts, study.handle)

    def _watch(self, study: Study) -> None:
        if not study.handle:  # claimed, but the service stopped before the driver was recorded
            self._start(study)
            return
        state = self.launcher.poll(study.handle)
        if state.state == "running":
            if study.cancel_requested and not study.stop_sent:
                self.launcher.stop(study.handle)
                study.stop_sent = True
            self._refresh(study)
            return
        progress = self._refresh(study, force=True)
        self._conclude(study, state, progress.status if progress is not None else None)

    def _conclude(self, study: Study, state: DriverState, driver_view: str | None) -> None:
        code = state.exit_code
        if state.state == "lost" and driver_view in ("succeeded", "failed", "cancelled"):
            # It ended while nobody was watching (the service was down): MLflow has its outcome.
            code = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}[driver_view]
        if code == EXIT_OK:
            repository.finish(study, SUCCEEDED, code)
        elif code in (EXIT_FAILED, EXIT_INVALID):
            tail = self.launcher.logs(study.id, study.handle or "", 2000).strip()
            repository.finish(study, FAILED, code, _failure(code, tail))
        elif study.cancel_requested:
            repository.finish(study, CANCELLED, code)
        else:
            # Died (or was stopped by someone other than a cancel): resume where Tune saved it.
            self._resume(study, state)
        self._forget(study.id) if study.status != "running" else None

    def _resume(self, study: Study, state: DriverState) -> None:
        why = state.message or (f"exit code {state.exit_code}" if state.exit_code is not None else "driver gone")
        if study.attempts >= self.settings.max_attempts:
            repository.finish(study, FAILED, state.exit_code, f"driver ended {study.attempts} times ({why})")
            return
        log.warning("study %s: driver ended without an outcome (%s); resuming", study.id, why)
        self._claim(study)
        self._start(study)

    def _refresh(self, study: Study, force: bool = False) -> Any:
        now = time.monotonic()
        if not force and now < self._progress_due.get(study.id, 0.0):
            return None
        self._progress_due[study.id] = now + self.settings.progress_interval_s
        try:
            progress = self.read_progress(self.settings.resolved_tracking_uri, study.id, self._spec(study))
        except Exception as error:  # MLflow away: keep the last snapshot
            log.warning("study %s: progress not readable (%s)", study.id, error)
            return None
        if progress is not None:
            repository.store_progress(study, progress.experiment_id, progress.parent_run_id, progress.trials)
        return progress

    def _spec(self, study: Study) -> Any:
        if study.id not in self._specs:
            from studies.spec import StudySpec

            self._specs[study.id] = StudySpec.model_validate(study.spec, context={"max_trials": 10**9})
        return self._specs[study.id]

    def _forget(self, study_id: str) -> None:
        self._progress_due.pop(study_id, None)
        self._specs.pop(study_id, None)


def _failure(code: int | None, tail: str) -> str:
    what = "invalid study spec" if code == EXIT_INVALID else "every trial failed"
    return f"{what}; driver output ends with:\n{tail[-1500:]}" if tail else what
