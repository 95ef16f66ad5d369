"""Read a study back from MLflow: its parent run, its trials and their latest metrics.

This is how anything outside the driver process (the CLI's ``report``, the
REST service) sees a study, running or finished: MLflow is the record, so no
side channel to the driver is needed and a restarted reader loses nothing.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mixup_core import metrics as M
from studies.errors import StudyNotFound
from studies.records import TRIAL_STATUSES, TrialRecord
from studies.spec import SEED, StudySpec
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
    """

    experiment_id: str
    parent_run_id: str
    status: str
    trials: list[TrialRecord]
    spec: StudySpec | None = None
    complete: bool = True  # False: `trials` holds only the trials whose run changed since the follower's last read


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
        return StudySpec.model_validate(data, context={"max_trials": 10**9})
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


class ProgressFollower:
    """STAND-IN (store branch) until the lead's incremental follower lands: every read is a full one."""

    def __init__(self, tracking_uri: str, study_id: str, spec: StudySpec | None = None) -> None:
        self.tracking_uri, self.study_id, self.spec = tracking_uri, study_id, spec

    def read(self, full: bool = False) -> StudyProgress | None:
        del full
        return read_progress(self.tracking_uri, self.study_id, self.spec)


def require_progress(tracking_uri: str, study_id: str, spec: StudySpec | None = None) -> StudyProgress:
    """Like :func:`read_progress`, raising :class:`StudyNotFound` when MLflow has no such study."""
    progress = read_progress(tracking_uri, study_id, spec)
    if progress is None:
        raise StudyNotFound(f"no study {study_id!r} in the MLflow store at {tracking_uri}")
    return progress
