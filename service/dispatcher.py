"""The dispatcher: starts queued studies in submission order, watches running ones, resumes the lost.

One pass (:meth:`Dispatcher.tick`) does, in order:

1. for every running study: poll its driver; forward a requested cancel (once);
   refresh its progress from MLflow (at most every ``progress_interval_s``) through its follower,
   writing only the trials that changed (:mod:`service.trial_store`);
   record the outcome when the driver ended; relaunch with ``--resume`` when it
   died without one (at most ``max_attempts`` launches in all);
2. start queued studies, oldest first, while fewer than ``max_running_studies`` run.

A launch is claimed in the database (``running``, attempt n, no handle) *before*
the driver starts, and launchers can find a started attempt again
(:meth:`~service.launchers.Launcher.find`), so a crash at any point neither
loses a study nor starts one twice. On service start the first pass re-attaches
to drivers that are still alive: that is all restart safety needs.

``serve`` runs the dispatcher in its own process (:func:`start_process`, ``python -m service.dispatcher``):
reading progress from MLflow costs far more CPU than serving a status poll, and in the API's process it
took that CPU (and the GIL) from the requests. The process lives exactly as long as ``serve``: it ends
after its current pass when ``serve`` stops, and is killed with ``serve`` when that is killed, so a
restarted service never meets an older dispatcher still at work.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session, object_session, sessionmaker

from service import repository, trial_store
from service.db import make_engine, session_factory
from service.errors import LaunchError
from service.launchers import make_launcher
from service.launchers.base import (
    DRIVER_ERROR,
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    DriverState,
    Launch,
    Launcher,
)
from service.models import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Study
from service.settings import ServiceSettings
from studies.records import TrialRecord
from studies.spec import admitted_spec
from studies.store import store_ready

log = logging.getLogger("service.dispatcher")  # also when run as __main__
ProgressReader = Callable[[str, str, Any], Any]
Settler = Callable[[str, str, str, Any], Any]  # (tracking URI, study id, outcome, spec) → progress or None


def mlflow_store_ready(tracking_uri: str) -> bool:
    """Whether MLflow's local SQLite store is complete (other stores: always); see :func:`studies.store.store_ready`.

    ``serve`` creates the store before this process starts; the check stays for a store removed or
    replaced while the service runs: a reader must never be the one that creates it.
    """
    return store_ready(tracking_uri)


class Follower(Protocol):
    """Reads a study's progress again and again (studies.progress.ProgressFollower's face)."""

    def read(self, full: bool = False) -> Any:
        """A StudyProgress (``complete`` False: only the trials that changed since the last read) or None."""


FollowerFactory = Callable[[str, str, Any], Follower]  # (tracking URI, study id, spec) → its follower


class MlflowFollower:
    """A :class:`studies.progress.ProgressFollower`, made on the first read that finds MLflow's store complete."""

    def __init__(self, tracking_uri: str, study_id: str, spec: Any) -> None:
        self.tracking_uri, self.study_id, self.spec = tracking_uri, study_id, spec
        self._follower: Any = None

    def read(self, full: bool = False) -> Any:
        if not mlflow_store_ready(self.tracking_uri):  # checked before MLflow's import (seconds) too
            return None
        if self._follower is None:
            from studies.progress import ProgressFollower

            self._follower = ProgressFollower(self.tracking_uri, self.study_id, self.spec)
        return self._follower.read(full=full)


@dataclass
class _FullReads:
    read_progress: ProgressReader
    args: tuple[str, str, Any]

    def read(self, full: bool = False) -> Any:
        del full  # every read is a full one
        return self.read_progress(*self.args)


def full_reads(read_progress: ProgressReader) -> FollowerFactory:
    """Followers whose every read is ``read_progress(uri, study_id, spec)``, complete (tests' fake MLflow)."""
    return lambda *args: _FullReads(read_progress, args)


def _settle(tracking_uri: str, study_id: str, outcome: str, spec: Any) -> Any:
    if not mlflow_store_ready(tracking_uri):  # no driver ever opened MLflow: nothing to close
        return None
    from studies.settle import settle_study

    return settle_study(tracking_uri, study_id, outcome, spec)


class Dispatcher:
    """:meth:`run` calls :meth:`tick` every ``settings.poll_interval_s`` until :meth:`stop` (tests call tick)."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessions: sessionmaker[Session],
        launcher: Launcher,
        follow: FollowerFactory = MlflowFollower,
        settle: Settler = _settle,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.launcher = launcher
        self.follow = follow
        self.settle = settle
        self._progress_due: dict[str, float] = {}
        self._specs: dict[str, Any] = {}
        self._followers: dict[str, Follower] = {}
        # Per running study, its trials as stored (trial id → record): a read writes only what differs.
        self._stored: dict[str, dict[str, TrialRecord]] = {}
        # A plain flag, not a threading.Event: stop() runs in a signal handler, where taking the Event's
        # lock could deadlock against the interrupted wait that holds it.
        self._stopping = False

    # -- the loop ------------------------------------------------------------------------

    def stop(self) -> None:
        """End :meth:`run` after the current pass (safe to call from a signal handler)."""
        self._stopping = True

    def run(self) -> None:
        while not self._stopping:
            try:
                self.tick()
            except Exception:  # a bad pass (database briefly away, ...) must not end the loop
                log.exception("dispatcher pass failed")
            until = time.monotonic() + self.settings.poll_interval_s
            while not self._stopping and time.monotonic() < until:
                time.sleep(0.05)

    def tick(self) -> None:
        """One pass: watch the running studies, then start queued ones."""
        try:
            self._pass()
        except BaseException:
            # What is in memory may now be ahead of the database (a write rolled back): start over from
            # the stored rows and with full reads.
            self._followers.clear()
            self._stored.clear()
            raise

    def _pass(self) -> None:
        with self.sessions() as session:
            for study in repository.running(session):
                try:
                    self._watch(study)
                except LaunchError as error:
                    log.warning("study %s: %s", study.id, error)
                session.commit()
            slots = self.settings.max_running_studies - len(repository.running(session))
            for study in repository.queued_in_order(session, max(0, slots)):
                # queued -> running only if still queued: a cancel may have ended it since the read above
                if not repository.set_if_status(session, study, QUEUED, {"status": RUNNING}):
                    session.commit()
                    continue
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
        elif code == EXIT_INVALID or (code == EXIT_FAILED and driver_view == "failed"):
            # Exit code 1 is also Python's for any uncaught exception: "every trial failed" only when the
            # driver recorded that outcome in MLflow; otherwise it died without one and is resumed below.
            tail = self.launcher.logs(study.id, study.handle or "", 2000).strip()
            repository.finish(study, FAILED, code, _failure(code, tail))
        elif study.cancel_requested:
            repository.finish(study, CANCELLED, code)
        else:
            # Died (or was stopped by someone other than a cancel): resume where Tune saved it.
            self._resume(study, state)
        if study.status != "running":
            self._settle(study)
            self._forget(study.id)

    def _resume(self, study: Study, state: DriverState) -> None:
        why = self._why_ended(study, state)
        if study.attempts >= self.settings.max_attempts:
            repository.finish(study, FAILED, state.exit_code, f"driver ended {study.attempts} times ({why})")
            return
        log.warning("study %s: driver ended without an outcome (%s); resuming", study.id, why)
        self._claim(study)
        self._start(study)

    def _why_ended(self, study: Study, state: DriverState) -> str:
        """Why a driver ended without an outcome: the launcher's word, else its exit code and last error line."""
        if state.message:
            return state.message
        if state.exit_code is None:
            return "driver gone"
        tail = self.launcher.logs(study.id, study.handle or "", 4000)
        errors = [line.strip() for line in tail.splitlines() if line.startswith(DRIVER_ERROR)]
        return f"exit code {state.exit_code}" + (f"; {errors[-1]}" if errors else "")

    def _settle(self, study: Study) -> None:
        """An ended study has no running trial: close what its driver left open in MLflow, and store that."""
        try:
            progress = self.settle(self.settings.resolved_tracking_uri, study.id, study.status, self._spec(study))
        except Exception as error:  # MLflow away: the API still shows the study's trials settled (schemas)
            log.warning("study %s: its trials could not be settled in MLflow (%s)", study.id, error)
            return
        if progress is not None:
            self._store(study, progress)

    def _refresh(self, study: Study, force: bool = False) -> Any:
        now = time.monotonic()
        if not force and now < self._progress_due.get(study.id, 0.0):
            return None
        self._progress_due[study.id] = now + self.settings.progress_interval_s
        try:
            progress = self._follower(study).read(full=force)
        except Exception as error:  # MLflow away: keep the last snapshot
            log.warning("study %s: progress not readable (%s)", study.id, error)
            return None
        if progress is not None:
            self._store(study, progress)
        return progress

    def _follower(self, study: Study) -> Follower:
        if study.id not in self._followers:
            uri = self.settings.resolved_tracking_uri
            self._followers[study.id] = self.follow(uri, study.id, self._spec(study))
        return self._followers[study.id]

    def _store(self, study: Study, progress: Any) -> None:
        """Write the trials that changed; the study's counts, best trial and ``progress_at`` only then."""
        session = object_session(study)
        assert session is not None, "a watched study belongs to the pass's session"
        if study.id not in self._stored:  # first read since the dispatcher started: what the table holds
            self._stored[study.id] = trial_store.load_records(session, study.seq)
        complete = getattr(progress, "complete", True)  # a plain full reader's progress has no such field
        trial_store.store_progress(session, study, progress.experiment_id, progress.parent_run_id, progress.trials,
                                   complete, self._stored[study.id])  # fmt: skip

    def _spec(self, study: Study) -> Any:
        if study.id not in self._specs:
            self._specs[study.id] = admitted_spec(study.spec)
        return self._specs[study.id]

    def _forget(self, study_id: str) -> None:
        self._progress_due.pop(study_id, None)
        self._specs.pop(study_id, None)
        self._followers.pop(study_id, None)
        self._stored.pop(study_id, None)


def _failure(code: int | None, tail: str) -> str:
    what = "invalid study spec" if code == EXIT_INVALID else "every trial failed"
    return f"{what}; driver output ends with:\n{tail[-1500:]}" if tail else what


# -- the dispatcher's own process ------------------------------------------------------------

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


#: How much nicer than serve its dispatcher process runs.
DISPATCHER_NICE = 5


def start_process(settings: ServiceSettings) -> subprocess.Popen[bytes]:
    """Start ``python -m service.dispatcher`` with ``settings`` (pickled on its stdin); see :func:`stop_process`."""
    proc = subprocess.Popen([sys.executable, "-m", "service.dispatcher", str(os.getpid())], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    with proc.stdin:
        proc.stdin.write(pickle.dumps(settings))
    return proc


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Let the dispatcher finish its current pass, then end; killed if that takes longer than ``timeout_s``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _die_with(parent_pid: int) -> None:
    # Killed along with serve, as the dispatcher thread inside it used to be: a serve started again must
    # not meet this one still launching drivers (the claim protocol assumes one dispatcher at a time).
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # serve was gone before the line above took effect
        os._exit(0)


def main() -> None:
    """``python -m service.dispatcher PARENT_PID``, pickled settings on stdin: run until SIGTERM/SIGINT."""
    _die_with(int(sys.argv[1]))
    # Below the API it works for: a full progress read of a study of thousands of trials is seconds of CPU,
    # and on a busy machine the API's requests waited behind it (drivers are nicer still, driver_nice).
    with suppress(OSError):
        os.nice(DISPATCHER_NICE)
    settings: ServiceSettings = pickle.loads(sys.stdin.buffer.read())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # MLflow's import takes seconds: before the first pass, not while a study waits for its first refresh.
    with suppress(Exception):
        import studies.progress  # noqa: F401
    engine = make_engine(settings.resolved_database_url)
    dispatcher = Dispatcher(settings, session_factory(engine), make_launcher(settings))
    for sig in (signal.SIGTERM, signal.SIGINT):  # Ctrl-C reaches the whole foreground group, this one too
        signal.signal(sig, lambda *_: dispatcher.stop())
    log.info("dispatcher process %d started", os.getpid())
    try:
        dispatcher.run()
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
