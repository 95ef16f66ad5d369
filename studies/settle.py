"""Settle an ended study in MLflow: it has no running trial.

A graceful stop ends Tune's ``fit`` with no callback for the trials it interrupted, so their runs would stay
``RUNNING`` (tag ``running``); so would the run of a trial a hard-killed driver had started and its restored
state no longer has. The driver closes them all as it ends (:func:`close_open_trials`). A driver killed for
good, or given up on after its last attempt, cannot: whoever decides that the study has ended (the
service's dispatcher) closes its trials and its parent run through :func:`settle_study`, the public face of
this, without knowing MLflow's layout.
"""

from __future__ import annotations

from dataclasses import replace

from mlflow.tracking import MlflowClient

from studies.progress import StudyProgress, read_progress, trial_from_run
from studies.records import OPEN_TRIAL_STATUSES, settled
from studies.spec import StudySpec
from studies.tracking import PARENT_TAG, STATUS_TAG, StudyRun, finish_study

#: The study outcomes MLflow's parent run can close with (see ``studies.tracking.finish_study``).
OUTCOMES = frozenset({"succeeded", "failed", "cancelled"})


def _close(client: MlflowClient, run_id: str) -> None:
    client.set_tag(run_id, STATUS_TAG, "cancelled")
    client.set_terminated(run_id, status="KILLED")


def close_open_trials(client: MlflowClient, study: StudyRun) -> int:
    """Close every trial run of the study still pending or running: ``KILLED``, status ``cancelled``.

    Returns:
        How many were closed. A resume reopens a cancelled trial's run when the trial runs again.
    """
    runs = client.search_runs(
        [study.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{study.parent_run_id}'", max_results=50_000
    )
    open_runs = [run.info.run_id for run in runs if trial_from_run(run).status in OPEN_TRIAL_STATUSES]
    for run_id in open_runs:
        _close(client, run_id)
    return len(open_runs)


def settle_study(tracking_uri: str, study_id: str, outcome: str, spec: StudySpec | None = None) -> StudyProgress | None:
    """Close the open records of an ended study: its pending/running trials, and its parent run if still open.

    Trial runs still open become ``KILLED`` with status ``cancelled`` (a later resume would reopen them); a
    parent run still ``running`` closes with ``outcome``. Closed runs are left as they are, so this is
    idempotent and harmless after a driver that settled its own trials.

    Args:
        tracking_uri: the MLflow store the study's driver logged to.
        study_id: the study.
        outcome: how the study ended: succeeded, failed or cancelled.
        spec: the study's spec, when the caller has it (finds the experiment directly).

    Returns:
        The study's progress afterwards, or None when MLflow has no such study.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome=}")
    progress = read_progress(tracking_uri, study_id, spec)
    if progress is None:
        return None
    client = MlflowClient(tracking_uri)
    for trial in progress.trials:
        if trial.status in OPEN_TRIAL_STATUSES and trial.run_id is not None:
            _close(client, trial.run_id)
    status = progress.status
    if status not in OUTCOMES:  # the driver never closed the study
        finish_study(client, StudyRun(progress.experiment_id, progress.parent_run_id), outcome)
        status = outcome
    return replace(progress, status=status, trials=settled(progress.trials))
