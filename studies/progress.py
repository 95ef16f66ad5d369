"""Read a study back from MLflow: its parent run, its trials and their latest metrics.

This is how anything outside the driver process (the CLI's ``report``, the
REST service) sees a study, running or finished: MLflow is the record, so no
side channel to the driver is needed and a restarted reader loses nothing.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mixup_core import metrics as M
from studies.errors import StudyNotFound
from studies.records import OPEN_TRIAL_STATUSES, TRIAL_STATUSES, TrialRecord
from studies.spec import SEED, StudySpec, admitted_spec
from studies.store import store_ready
from studies.tracking import ERROR_TAG, PARENT_TAG, STATUS_TAG, STUDY_ID_TAG, TRIAL_ID_TAG, default_experiment_name

_NUMERIC_PARAMS = frozenset({"alpha", "weight_decay", "lr", "label_smoothing", "input_noise"})


@dataclass(frozen=True)
class StudyProgress:
    """A study as MLflow has it.

    Attributes:
        experiment_id: its MLflow experiment.
        parent_run_id: its parent run.
        status: the driver's view: running | succeeded | failed | cancelled.
        trials: every trial that has started, in start order.
        spec: the spec the driver ran (from the parent run's ``spec.yaml``), when readable.
        complete: whether ``trials`` holds every trial; False for a :class:`ProgressFollower`'s incremental
            read, which holds only the trials whose run may have changed since its previous read.
    """

    experiment_id: str
    parent_run_id: str
    status: str
    trials: list[TrialRecord]
    spec: StudySpec | None = None
    complete: bool = True


def _param_value(name: str, text: str) -> Any:
    """MLflow keeps params as text; give the report back the types it groups by."""
    try:
        if name == SEED:
            return int(text)
        if name in _NUMERIC_PARAMS:
            return float(text)
    except ValueError:
        pass
    return text


def trial_from_run(run: Run) -> TrialRecord:
    """One nested run as a trial record."""
    tags = run.data.tags
    status = tags.get(STATUS_TAG, "running")
    metrics = {k: float(v) for k, v in run.data.metrics.items()}
    return TrialRecord(
        trial_id=tags.get(TRIAL_ID_TAG, run.info.run_id),
        params={k: _param_value(k, v) for k, v in run.data.params.items()},
        status=status if status in TRIAL_STATUSES else "running",
        epochs=int(metrics.get(M.EPOCH, 0)),
        metrics=metrics,
        error=tags.get(ERROR_TAG),
        run_id=run.info.run_id,
        started_ms=run.info.start_time,
        ended_ms=run.info.end_time,
    )


def _experiment_ids(client: MlflowClient, study_id: str, spec: StudySpec | None) -> list[str]:
    if spec is not None:
        experiment = client.get_experiment_by_name(default_experiment_name(spec, study_id))
        return [experiment.experiment_id] if experiment is not None else []
    return [e.experiment_id for e in client.search_experiments(max_results=50_000)]


def _load_spec(client: MlflowClient, run_id: str) -> StudySpec | None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = client.download_artifacts(run_id, "spec.yaml", folder)
            data = yaml.safe_load(Path(path).read_text())
        return admitted_spec(data)
    except Exception:  # an unreadable artifact store must not hide the study's progress
        return None


def read_progress(tracking_uri: str, study_id: str, spec: StudySpec | None = None) -> StudyProgress | None:
    """The study's progress, or None when the driver has not opened it in MLflow yet.

    Args:
        tracking_uri: the MLflow tracking URI the driver logs to.
        study_id: the study.
        spec: the study's spec when the caller has it (finds the experiment directly and skips loading it).
    """
    if not store_ready(tracking_uri):
        # A reader must not be what creates a local store (MLflow does on first open): it would race a
        # driver creating it. Not there yet, or still being created: no driver has opened the study.
        return None
    client = MlflowClient(tracking_uri)
    experiment_ids = _experiment_ids(client, study_id, spec)
    if not experiment_ids:
        return None
    runs = client.search_runs(
        experiment_ids, filter_string=f"tags.`{STUDY_ID_TAG}` = '{study_id}'", max_results=10, order_by=["start_time"]
    )
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    if not parents:
        return None
    parent = parents[0]
    experiment_id = parent.info.experiment_id
    children = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'",
        max_results=50_000,
        order_by=["start_time ASC"],
    )
    return StudyProgress(
        experiment_id=experiment_id,
        parent_run_id=parent.info.run_id,
        status=parent.data.tags.get(STATUS_TAG, "running"),
        trials=[trial_from_run(run) for run in children],
        spec=spec or _load_spec(client, parent.info.run_id),
    )


def require_progress(tracking_uri: str, study_id: str, spec: StudySpec | None = None) -> StudyProgress:
    """Like :func:`read_progress`, raising :class:`StudyNotFound` when MLflow has no such study."""
    progress = read_progress(tracking_uri, study_id, spec)
    if progress is None:
        raise StudyNotFound(f"no study {study_id!r} in the MLflow store at {tracking_uri}")
    return progress


def _children_filter(parent_run_id: str) -> str:
    return f"tags.`{PARENT_TAG}` = '{parent_run_id}'"


def _now_ms() -> int:
    return int(time.time() * 1000)


class ProgressFollower:
    """Follows one study in MLflow: after a first full read, each read fetches only the trial runs that may
    have changed, so a read costs what the trials running and ending cost, not what the whole study has.

    MLflow keeps no update time on a run, but a trial's run changes only while it is open (status
    ``RUNNING``) and when it ends (``end_time`` set; the writer logs a trial's last metrics before it closes
    the run, ``studies.trial_log``). An incremental read therefore asks for the open runs (at most the trials
    running at once) and for the runs that ended since the previous read began, less ``lag_s`` (a trial's
    record reaches MLflow up to the writer's hold, 5 s, after its end), leaving out the ended runs it has
    already read within that window. Re-reading the whole study every 2 s made the reading cost of a study
    grow with the square of its trials.

    What the window cannot see — a record held back longer than ``lag_s`` (MLflow away for minutes), a run
    deleted (a resumed study prunes orphans) — a full read catches: every ``full_every_s``, and whenever the
    caller asks (``full=True``: the dispatcher does when the driver ends). An incremental read's ``status``
    (the driver's view of the study, on its parent run) is the last full read's: only the driver's end changes
    it, and the dispatcher reads in full then. A full read costs what the study
    has, so they are spaced at least 50 times their own duration apart: at most 2 % of the reader's time.
    """

    def __init__(
        self,
        tracking_uri: str,
        study_id: str,
        spec: StudySpec | None = None,
        lag_s: float = 30.0,
        full_every_s: float = 300.0,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.study_id = study_id
        self.spec = spec
        self.lag_ms = int(lag_s * 1000)
        self.full_every_s = full_every_s
        self._study: tuple[str, str] | None = None  # (experiment id, parent run id) once found
        self._since_ms = 0  # wall-clock start of the previous read
        self._seen_ended: dict[str, int] = {}  # run id → end time, of ended runs read within the window
        self._status = "running"  # the driver's view of the study (its parent run's tag), as of the last full read
        self._next_full = 0.0

    def read(self, full: bool = False) -> StudyProgress | None:
        """The study's trials (all of them on a full read), or None when MLflow has no such study yet."""
        if not store_ready(self.tracking_uri):
            return None
        started_ms = _now_ms()
        if full or self._study is None or time.monotonic() >= self._next_full:
            return self._full_read(started_ms)
        return self._incremental_read(started_ms, *self._study)

    def _full_read(self, started_ms: int) -> StudyProgress | None:
        began = time.monotonic()
        progress = read_progress(self.tracking_uri, self.study_id, self.spec)
        if progress is None:
            return None
        self.spec = self.spec or progress.spec
        self._study = (progress.experiment_id, progress.parent_run_id)
        self._status = progress.status
        took = time.monotonic() - began
        self._next_full = began + took + max(self.full_every_s, 50 * took)
        self._advance(started_ms, progress.trials)
        return progress

    def _incremental_read(self, started_ms: int, experiment_id: str, parent_run_id: str) -> StudyProgress:
        client = MlflowClient(self.tracking_uri)
        children = _children_filter(parent_run_id)
        open_runs = client.search_runs(
            [experiment_id], filter_string=f"{children} and attributes.status = 'RUNNING'", max_results=50_000
        )
        window = f"{children} and attributes.end_time >= {self._since_ms - self.lag_ms}"
        if self._seen_ended:
            window += " and attributes.run_id NOT IN (" + ",".join(f"'{r}'" for r in self._seen_ended) + ")"
        ended = client.search_runs([experiment_id], filter_string=window, max_results=50_000)
        runs = {run.info.run_id: run for run in [*ended, *open_runs]}  # a run that ended in between: its newest
        trials = sorted((trial_from_run(run) for run in runs.values()), key=lambda t: (t.started_ms or 0, t.trial_id))
        self._advance(started_ms, trials)
        return StudyProgress(
            experiment_id=experiment_id,
            parent_run_id=parent_run_id,
            status=self._status,  # as of the last full read: the driver's outcome is read in full when it ends
            trials=trials,
            spec=self.spec,
            complete=False,
        )

    def _advance(self, started_ms: int, trials: list[TrialRecord]) -> None:
        """The next window starts where this read started; ended runs read in it are not read again."""
        self._since_ms = started_ms
        horizon = started_ms - self.lag_ms
        for trial in trials:
            if trial.run_id is None:
                continue
            if trial.ended_ms is not None and trial.status not in OPEN_TRIAL_STATUSES:
                self._seen_ended[trial.run_id] = trial.ended_ms
            else:  # reopened (a resume): its next end is news
                self._seen_ended.pop(trial.run_id, None)
        self._seen_ended = {run: end for run, end in self._seen_ended.items() if end >= horizon}
