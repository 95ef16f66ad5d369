"""MLflow: one experiment and one parent run per study, one nested run per trial.

Ray Tune's own MLflow integration makes flat runs, so nesting is built here
explicitly (the ``mlflow.parentRunId`` tag) and nothing relies on the
``MLFLOW_RUN_ID`` environment variable. Trial writes go through
:class:`TrialLogWriter`: a background thread that batches them per run and
retries while the tracking server is slow or away, so the Tune event loop (and
therefore no trial) ever waits on, or dies of, MLflow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from sqlalchemy import event
from sqlalchemy.pool import Pool

if TYPE_CHECKING:
    from studies.records import TrialRecord
    from studies.spec import StudySpec

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
STUDY_ID_TAG = "mixup_studies.study_id"
TRIAL_ID_TAG = "mixup_studies.trial_id"
USER_TAG = "mixup_studies.user"
SPEC_HASH_TAG = "mixup_studies.spec_hash"
STATUS_TAG = "mixup_studies.status"  # finished | stopped | failed | running, and the study's outcome
ERROR_TAG = "mixup_studies.error"
MAX_BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch


def spec_hash(spec: StudySpec) -> str:
    """A stable fingerprint of the spec's content."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def default_experiment_name(spec: StudySpec, study_id: str) -> str:
    return spec.tracking.experiment or f"mixup-studies/{spec.name}/{study_id}"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def retrying(action: Callable[[], Any], what: str, deadline_s: float) -> Any:
    """Run ``action`` until it succeeds or ``deadline_s`` passes (then re-raise)."""
    delay, started = 0.25, time.monotonic()
    while True:
        try:
            return action()
        except Exception as error:  # the tracking server may be briefly unreachable
            if time.monotonic() - started + delay > deadline_s:
                raise
            log.warning("MLflow %s failed (%s); retrying in %.1fs", what, error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)


@dataclass
class StudyRun:
    """Where a study's records live in MLflow."""

    experiment_id: str
    parent_run_id: str


def use_wal(tracking_uri: str) -> None:
    """Put a local SQLite store in WAL mode (persistent in the file), with ``synchronous=NORMAL`` commits.

    WAL alone turns a commit's several fsyncs into one; ``synchronous=NORMAL`` (per connection, so it is
    set as this process's pool hands each connection out) drops that one too: WAL then syncs only at
    checkpoints. A commit still survives the driver being killed (it is in the OS's cache); only a power
    loss or OS crash could undo the last few, and the database stays consistent either way. A trial's
    record is several commits (MLflow commits params, metrics and tags of one ``log_batch`` separately).
    """
    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    _RELAXED_SYNC_FILES.add(os.path.realpath(path))
    if not event.contains(Pool, "checkout", _relax_sync):
        event.listen(Pool, "checkout", _relax_sync)


_RELAXED_SYNC_FILES: set[str] = set()
_RELAXED_KEY = "mixup_studies.relaxed_sync"


def _relax_sync(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool checkout hook: ``synchronous=NORMAL`` on connections to a store :func:`use_wal` prepared (once each)."""
    if _RELAXED_KEY in record.info:
        return
    record.info[_RELAXED_KEY] = False
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    main = dbapi_connection.execute("PRAGMA database_list").fetchone()  # (seq, "main", file path)
    if main and main[2] and os.path.realpath(main[2]) in _RELAXED_SYNC_FILES:
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        record.info[_RELAXED_KEY] = True


def open_study(
    client: MlflowClient,
    spec: StudySpec,
    study_id: str,
    user: str | None,
    artifact_root: Path | None,
    deadline_s: float = 60.0,
) -> StudyRun:
    """Find or create the study's experiment and parent run (idempotent, so a resume reuses them)."""

    def run() -> StudyRun:
        name = default_experiment_name(spec, study_id)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = (artifact_root / study_id).as_uri() if artifact_root is not None else None
            experiment_id = client.create_experiment(name, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        found = client.search_runs(
            [experiment_id], filter_string=f"tags.`{STUDY_ID_TAG}` = '{study_id}'", max_results=10
        )
        parents = [r for r in found if PARENT_TAG not in r.data.tags]
        if parents:
            client.update_run(parents[0].info.run_id, status="RUNNING")
            client.set_tag(parents[0].info.run_id, STATUS_TAG, "running")
            return StudyRun(experiment_id, parents[0].info.run_id)
        tags = {STUDY_ID_TAG: study_id, SPEC_HASH_TAG: spec_hash(spec), STATUS_TAG: "running"}
        if user:
            tags[USER_TAG] = user
        parent = client.create_run(experiment_id, tags=tags, run_name=spec.name)
        params = [Param(k, str(v)[:6000]) for k, v in flatten(spec.model_dump(mode="json")).items()]
        for lo in range(0, len(params), 100):
            client.log_batch(parent.info.run_id, params=params[lo : lo + 100])
        client.log_dict(parent.info.run_id, spec.model_dump(mode="json"), "spec.yaml")
        return StudyRun(experiment_id, parent.info.run_id)

    return retrying(run, "opening the study", deadline_s)


def existing_trial_runs(client: MlflowClient, study: StudyRun) -> dict[str, str]:
    """trial id → run id of the nested runs already there (after a resume)."""
    runs = client.search_runs(
        [study.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{study.parent_run_id}'", max_results=50_000
    )
    return {r.data.tags[TRIAL_ID_TAG]: r.info.run_id for r in runs if TRIAL_ID_TAG in r.data.tags}


_ENDED = frozenset({"FINISHED", "FAILED", "KILLED"})  # MLflow's final run statuses


@dataclass
class _Pending:
    """Writes queued for one trial's run, in order."""

    since: float = field(default_factory=time.monotonic)  # when the oldest of them was queued
    run_name: str | None = None
    start_ms: int | None = None  # when the trial started / ended (epoch ms): the run's times, not the write's
    end_ms: int | None = None
    metrics: list[Metric] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    status: str | None = None  # RUNNING / FINISHED / FAILED / KILLED

    @property
    def ended(self) -> bool:
        return self.status in _ENDED


class TrialLogWriter:
    """Batches and retries MLflow writes for the trials of one study on a background thread.

    A trial's writes are held until the trial ends or the oldest of them has waited ``hold_s``:
    a trial shorter than that is recorded in three calls (create with its tags, one batch of its
    params and every epoch's metrics, terminate), a longer one gets a batch every ``hold_s``.
    Each MLflow call costs about as much as a whole batch of metrics (a SQLite store's ORM work
    is mostly per call), so splitting a short trial's record over several flushes would cost it
    most of that again.

    Args:
        client: the MLflow client.
        study: the parent run.
        hold_s: how long a running trial's writes may wait (how far MLflow may lag behind it).
        tick_s: how often the thread looks for writes that are due.
    """

    def __init__(self, client: MlflowClient, study: StudyRun, hold_s: float = 5.0, tick_s: float = 1.0) -> None:
        self.client = client
        self.study = study
        self.hold_s = hold_s
        self.tick_s = tick_s
        self.busy_seconds = 0.0  # wall time spent inside MLflow calls
        # CPU time of those calls: what logging takes from the trials and Tune's loop. The wall time
        # also counts the writer waiting for the GIL and for a core while others run.
        self.busy_cpu_seconds = 0.0
        self.calls = 0  # MLflow calls made for trial records
        self.run_ids = existing_trial_runs(client, study)
        self._resumed = set(self.run_ids)  # trials that already had a run when this writer started
        self._create_failed: set[str] = set()
        self._ended: set[str] = set()  # trials this writer saw end
        self._queue: queue.Queue[tuple[str, _Pending]] = queue.Queue()
        self._backlog: dict[str, _Pending] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlflow-trial-writer", daemon=True)
        self._thread.start()

    # -- producer side (the Tune driver's callbacks); never blocks ------------------

    def start_trial(self, trial_id: str, params: dict[str, Any], run_name: str) -> None:
        self._queue.put(
            (
                trial_id,
                _Pending(
                    run_name=run_name,
                    start_ms=int(time.time() * 1000),
                    params={k: str(v) for k, v in params.items()},
                    tags={STATUS_TAG: "running"},
                    status="RUNNING",
                ),
            )
        )

    def log_metrics(self, trial_id: str, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
        self._queue.put((trial_id, _Pending(metrics=metrics)))

    def end_trial(self, trial_id: str, status: str, trial_status: str, error: str | None = None) -> None:
        self._ended.add(trial_id)
        tags = {STATUS_TAG: trial_status}
        if error:
            tags[ERROR_TAG] = error[:5000]
        self._queue.put((trial_id, _Pending(tags=tags, status=status, end_ms=int(time.time() * 1000))))

    def settle(self, records: Iterable[TrialRecord]) -> None:
        """Record the end of trials that ended out of this writer's sight.

        A driver killed hard loses its last unflushed writes; Tune restores those trials
        as ended and calls nothing back for them. Their final metrics (at their last epoch)
        and status are written again here, which is harmless for a run that has them.
        """
        final = {"finished": "FINISHED", "stopped": "FINISHED", "failed": "FAILED"}
        for record in records:
            if record.status in final and record.trial_id not in self._ended:
                self.log_metrics(record.trial_id, record.metrics, step=record.epochs)
                self.end_trial(record.trial_id, final[record.status], record.status, record.error)

    # -- consumer side ---------------------------------------------------------------

    def _drain(self) -> None:
        while True:
            try:
                trial_id, item = self._queue.get_nowait()
            except queue.Empty:
                return
            pending = self._backlog.setdefault(trial_id, _Pending(since=item.since))
            pending.run_name = item.run_name or pending.run_name
            pending.start_ms = item.start_ms or pending.start_ms
            pending.end_ms = item.end_ms or pending.end_ms
            pending.metrics.extend(item.metrics)
            pending.params.update(item.params)
            pending.tags.update(item.tags)
            pending.status = item.status or pending.status

    def _reused_run(self, trial_id: str, params: dict[str, str]) -> str | None:
        """The run of a trial from before a resume, unless the trial id now means another configuration.

        After a hard kill, Tune restores its last snapshot and may hand a trial id it had
        already started to a new suggestion; that run then records work that no longer
        counts and is replaced (MLflow params are write-once).
        """
        run_id = self.run_ids.get(trial_id)
        if run_id is None or trial_id not in self._resumed or not params:
            return run_id
        self._resumed.discard(trial_id)
        logged = self.client.get_run(run_id).data.params
        if all(logged.get(k, v) == v for k, v in params.items()):
            return run_id
        self.client.delete_run(run_id)
        del self.run_ids[trial_id]
        return None

    def _created_run(self, trial_id: str) -> str | None:
        """The run an earlier, failed-looking create may have made anyway (the server got it, the reply was lost)."""
        mine = f"tags.`{PARENT_TAG}` = '{self.study.parent_run_id}' and tags.`{TRIAL_ID_TAG}` = '{trial_id}'"
        found = self.client.search_runs([self.study.experiment_id], filter_string=mine, max_results=1)
        return found[0].info.run_id if found else None

    def _write(self, trial_id: str, pending: _Pending) -> None:
        run_id = self._reused_run(trial_id, pending.params)
        if run_id is None and trial_id in self._create_failed:
            run_id = self._created_run(trial_id)
        if run_id is None:
            self._create_failed.add(trial_id)  # until the reply arrives, a retry must look before creating
            # The queued tags go in with the run: one commit fewer than in log_batch (which commits them apart).
            with_run = pending.tags | {PARENT_TAG: self.study.parent_run_id, TRIAL_ID_TAG: trial_id}
            run = self.client.create_run(
                self.study.experiment_id, start_time=pending.start_ms, tags=with_run, run_name=pending.run_name
            )
            self.calls += 1
            run_id, pending.tags = run.info.run_id, {}
        elif pending.status == "RUNNING":  # a resumed trial's run (a new run starts RUNNING)
            self.client.update_run(run_id, status="RUNNING")
            self.calls += 1
        self._create_failed.discard(trial_id)
        self.run_ids[trial_id] = run_id
        params = [Param(k, v[:6000]) for k, v in pending.params.items()]
        tags = [RunTag(k, v) for k, v in pending.tags.items()]
        metrics = pending.metrics
        for lo in range(0, len(metrics) if metrics else int(bool(params or tags)), MAX_BATCH):  # none: no call
            self.client.log_batch(run_id, metrics=metrics[lo : lo + MAX_BATCH], params=params, tags=tags)
            self.calls += 1
            params, tags = [], []
        if pending.ended:
            self.client.set_terminated(run_id, status=pending.status, end_time=pending.end_ms)
            self.calls += 1

    def _flush(self, everything: bool = False) -> bool:
        """Write what is due (``everything``: all that is queued); True when all of it went through."""
        self._drain()
        due_since = time.monotonic() - self.hold_s
        for trial_id in list(self._backlog):
            pending = self._backlog[trial_id]
            if not (everything or pending.ended or pending.since <= due_since):
                continue
            started, started_cpu = time.perf_counter(), time.thread_time()
            try:
                self._write(trial_id, pending)
            except Exception as error:
                log.warning("MLflow write for trial %s failed (%s); will retry", trial_id, error)
                return False
            finally:
                self.busy_seconds += time.perf_counter() - started
                self.busy_cpu_seconds += time.thread_time() - started_cpu
            del self._backlog[trial_id]
        return True

    def _loop(self) -> None:
        delay = self.tick_s
        while not self._stop.is_set():
            self._stop.wait(delay)
            delay = self.tick_s if self._flush() else min(max(delay * 2, 1.0), 8.0)

    def close(self, timeout_s: float = 60.0) -> bool:
        """Stop the thread after writing what is queued (retrying up to ``timeout_s``); True if all was written."""
        self._stop.set()
        self._thread.join()
        deadline = time.monotonic() + timeout_s
        while True:
            if self._flush(everything=True):
                return True
            if time.monotonic() > deadline:
                log.error("MLflow writes for %d trials could not be delivered", len(self._backlog))
                return False
            time.sleep(1.0)


def prune_orphan_trials(client: MlflowClient, study: StudyRun, trial_ids: set[str]) -> int:
    """Delete nested runs of trials the study no longer has (work a hard kill's restore discarded)."""
    orphans = [run_id for trial_id, run_id in existing_trial_runs(client, study).items() if trial_id not in trial_ids]
    for run_id in orphans:
        client.delete_run(run_id)
    return len(orphans)


def finish_study(
    client: MlflowClient,
    study: StudyRun,
    outcome: str,
    artifacts: Iterable[tuple[str, bytes | str]] = (),
    deadline_s: float = 60.0,
) -> None:
    """Attach the report artifacts to the parent run and close it with the study's outcome."""
    status = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}[outcome]

    def run() -> None:
        for name, content in artifacts:
            if isinstance(content, str):
                client.log_text(study.parent_run_id, content, name)
            else:
                _log_bytes(client, study.parent_run_id, name, content)
        client.set_tag(study.parent_run_id, STATUS_TAG, outcome)
        client.set_terminated(study.parent_run_id, status=status)

    retrying(run, "closing the study", deadline_s)


def _log_bytes(client: MlflowClient, run_id: str, name: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(content)
        client.log_artifact(run_id, str(path))
