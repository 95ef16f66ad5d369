"""Settle a study whose driver will not come back: in MLflow, an ended study has no running trial.

A driver stopped gracefully closes its own trials (``TrialLogWriter.cancel_open``). One killed for good, or
given up on after its last attempt, leaves its trials' runs ``RUNNING`` (tag ``running``) and its parent run
open. Whoever decides that the study has ended (the service's dispatcher) closes them through
:func:`settle_study`, the public face of this, without knowing MLflow's layout.
"""

from __future__ import annotations

from dataclasses import replace

from mlflow.tracking import MlflowClient

from studies.progress import StudyProgress, read_progress
from studies.records import OPEN_TRIAL_STATUSES, settled
from studies.spec import StudySpec
from studies.tracking import STATUS_TAG, StudyRun, finish_study

#: The study outcomes MLflow's parent run can close with (see ``studies.tracking.finish_study``).
OUTCOMES = frozenset({"succeeded", "failed", "cancelled"})


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
            client.set_tag(trial.run_id, STATUS_TAG, "cancelled")
            client.set_terminated(trial.run_id, status="KILLED")
    status = progress.status
    if status not in OUTCOMES:  # the driver never closed the study
        finish_study(client, StudyRun(progress.experiment_id, progress.parent_run_id), outcome)
        status = outcome
    return replace(progress, status=status, trials=settled(progress.trials))
