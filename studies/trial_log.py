"""The trials' MLflow records, written from a background thread: batched per run, retried, never blocking Tune.

The study's parent run and the MLflow helpers are in :mod:`studies.tracking`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from studies.direct_record import DirectTrialRecords, WholeTrial
from studies.records import TrialRecord
from studies.tracking import (
    ERROR_TAG,
    MAX_PARAM_CHARS,
    PARENT_TAG,
    STATUS_TAG,
    TRIAL_ID_TAG,
    StudyRun,
    existing_trial_runs,
)

log = logging.getLogger(__name__)

MAX_BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch
_ENDED = frozenset({"FINISHED", "FAILED", "KILLED"})  # MLflow's final run statuses


def _now_ms() -> int:
    """Wall-clock time as MLflow stores it (milliseconds since the epoch)."""
    return int(time.time() * 1000)


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
    most of that again. Where the store is a database on a schema revision this project has
    checked, a trial that ended before its first write goes in as one transaction instead
    (:mod:`studies.direct_record`, about 15× cheaper than the three calls).

    Args:
        client: the MLflow client.
        study: the parent run.
        hold_s: how long a running trial's writes may wait (how far MLflow may lag behind it).
        tick_s: how often the thread looks for writes that are due.
        direct_writes: allow whole trials to be inserted in one transaction (False: always the client).
    """

    def __init__(
        self,
        client: MlflowClient,
        study: StudyRun,
        hold_s: float = 5.0,
        tick_s: float = 1.0,
        direct_writes: bool = True,
    ) -> None:
        self.client = client
        self.study = study
        self._direct = _open_direct(client, study) if direct_writes else None
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
        # trial id → metric key → the highest step its run has. A trial restored from a checkpoint (a retry
        # after a worker died, a resumed study) replays epochs its run already has: only later steps are new.
        # Absent: not known yet (a run from before this writer, or after a failed write): read from the store.
        self._steps: dict[str, dict[str, int]] = {}
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
                    start_ms=_now_ms(),
                    params={k: str(v)[:MAX_PARAM_CHARS] for k, v in params.items()},
                    tags={STATUS_TAG: "running"},
                    status="RUNNING",
                ),
            )
        )

    def log_metrics(self, trial_id: str, values: dict[str, float], step: int) -> None:
        now = _now_ms()
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
        self._queue.put((trial_id, _Pending(metrics=metrics)))

    def end_trial(self, trial_id: str, status: str, trial_status: str, error: str | None = None) -> None:
        self._ended.add(trial_id)
        tags = {STATUS_TAG: trial_status}
        if error:
            tags[ERROR_TAG] = error[:5000]
        self._queue.put((trial_id, _Pending(tags=tags, status=status, end_ms=_now_ms())))

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
        self._steps[trial_id] = {}  # the new run starts empty
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
        pending.metrics = self._unrecorded(trial_id, run_id, pending.metrics)
        if run_id is None and pending.ended and self._direct is not None:
            self._write_whole(trial_id, pending)
            return
        if run_id is None:
            self._create_failed.add(trial_id)  # until the reply arrives, a retry must look before creating
            # The queued tags go in with the run: one commit fewer than in log_batch (which commits them apart).
            run = self.client.create_run(
                self.study.experiment_id,
                start_time=pending.start_ms,
                tags=self._run_tags(trial_id, pending),
                run_name=pending.run_name,
            )
            self.calls += 1
            run_id, pending.tags = run.info.run_id, {}
            self._steps[trial_id] = {}
        elif pending.status == "RUNNING":  # a resumed trial's run (a new run starts RUNNING)
            self.client.update_run(run_id, status="RUNNING")
            self.calls += 1
        self._create_failed.discard(trial_id)
        self.run_ids[trial_id] = run_id
        params = [Param(k, v) for k, v in pending.params.items()]
        tags = [RunTag(k, v) for k, v in pending.tags.items()]
        metrics = pending.metrics
        for lo in range(0, len(metrics) if metrics else int(bool(params or tags)), MAX_BATCH):  # none: no call
            self.client.log_batch(run_id, metrics=metrics[lo : lo + MAX_BATCH], params=params, tags=tags)
            self.calls += 1
            self._recorded(trial_id, metrics[lo : lo + MAX_BATCH])
            params, tags = [], []
        if pending.ended:
            self.client.set_terminated(run_id, status=pending.status, end_time=pending.end_ms)
            self.calls += 1

    def _run_tags(self, trial_id: str, pending: _Pending) -> dict[str, str]:
        """The tags a new trial run is created with: the queued ones, its parent and its trial id."""
        return pending.tags | {PARENT_TAG: self.study.parent_run_id, TRIAL_ID_TAG: trial_id}

    def _write_whole(self, trial_id: str, pending: _Pending) -> None:
        """A trial that ended before its first write: its whole run in one transaction."""
        assert self._direct is not None and pending.status is not None and pending.end_ms is not None
        self._create_failed.add(trial_id)  # should the commit land and still raise, the retry finds the run
        trial = WholeTrial(
            run_name=pending.run_name,
            start_ms=pending.start_ms or pending.end_ms,  # a trial settled after a resume has no start of its own
            end_ms=pending.end_ms,
            status=pending.status,
            tags=self._run_tags(trial_id, pending),
            params=pending.params,
            metrics=pending.metrics,
        )
        try:
            run_id = self._direct.write(trial)
        except Exception:
            self._drop_direct()  # the retry, and every record after it, goes through the client
            raise
        finally:
            self.calls += 1
        self._create_failed.discard(trial_id)
        self.run_ids[trial_id] = run_id
        self._steps[trial_id] = {}
        self._recorded(trial_id, trial.metrics)

    def _unrecorded(self, trial_id: str, run_id: str | None, metrics: list[Metric]) -> list[Metric]:
        """``metrics`` less the (key, step)s the run has, or that come again in the list: one value per step.

        The first value of a step is kept: MLflow cannot drop a metric row, and a replayed epoch is the same
        epoch trained again from an earlier state.
        """
        if not metrics:
            return metrics
        highest = dict(self._recorded_steps(trial_id, run_id))
        fresh = []
        for metric in metrics:
            if metric.step > highest.get(metric.key, -1):
                fresh.append(metric)
                highest[metric.key] = metric.step
        return fresh

    def _recorded_steps(self, trial_id: str, run_id: str | None) -> dict[str, int]:
        if trial_id not in self._steps:
            steps: dict[str, int] = {}
            if run_id is not None:
                # A run's latest value of each metric is the one at its highest step (MLflow's latest_metrics).
                steps = {m.key: m.step for m in self.client.get_run(run_id).data.to_proto().metrics}
                self.calls += 1
            self._steps[trial_id] = steps
        return self._steps[trial_id]

    def _recorded(self, trial_id: str, metrics: list[Metric]) -> None:
        steps = self._steps.setdefault(trial_id, {})
        for metric in metrics:
            steps[metric.key] = max(metric.step, steps.get(metric.key, -1))

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
                self._steps.pop(trial_id, None)  # what reached the store is read back before the retry
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
        try:
            while not self._flush(everything=True):
                if time.monotonic() > deadline:
                    log.error("MLflow writes for %d trials could not be delivered", len(self._backlog))
                    return False
                time.sleep(1.0)
            return True
        finally:
            self._drop_direct()

    def _drop_direct(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None


def _open_direct(client: MlflowClient, study: StudyRun) -> DirectTrialRecords | None:
    try:
        return DirectTrialRecords.open(client, study.experiment_id)
    except Exception as error:  # the client's path still works, and is what the study falls back to
        log.warning("whole-trial MLflow writes are off for this study (%s)", error)
        return None
