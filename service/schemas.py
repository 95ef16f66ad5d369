"""Request and response bodies of the REST API (their JSON Schema is the OpenAPI schema at /docs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from mixup_core import metrics
from service.repository import StudyView
from studies.records import OPEN_TRIAL_STATUSES, TRIAL_STATUSES, TrialRecord, TrialStatus, settled

if TYPE_CHECKING:  # service.trial_store uses best_trial from here
    from service.trial_store import StoredTrial

StudyStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
CancelOutcome = Literal["stopping", "cancelled", "too_late"]
_ENDED = frozenset({"succeeded", "failed", "cancelled"})


class Trial(BaseModel):
    """One trial: configuration, state, latest metrics (final ones once it ended)."""

    trial_id: str
    params: dict[str, Any]
    status: TrialStatus = Field(
        description="pending | running | finished | stopped (early, by the scheduler) | failed | cancelled "
        "(cut short, or never started, because the study ended first)."
    )
    epochs: int = Field(description="Epochs completed.")
    metrics: dict[str, float] = Field(description="Latest value of every metric (final ones once it ended).")
    error: str | None = None
    run_id: str | None = Field(None, description="The trial's nested MLflow run.")
    started_at: datetime | None = Field(None, description="When its MLflow run started (the order of the list).")
    ended_at: datetime | None = Field(None, description="When its MLflow run ended; None while it runs.")
    updated_at: datetime | None = Field(
        None, description="When the service last stored a change of it: pass the largest as updated_after."
    )


class BestTrial(BaseModel):
    trial_id: str
    metric: str
    value: float
    params: dict[str, Any]
    status: str


class MlflowInfo(BaseModel):
    experiment_id: str | None = None
    parent_run_id: str | None = None
    experiment_url: str | None = None
    run_url: str | None = None


class StudySummary(BaseModel):
    id: str
    name: str
    owner: str
    status: StudyStatus
    cancel_requested: bool
    cancel_outcome: CancelOutcome | None = Field(
        None,
        description="What a cancel did: stopping (the driver is stopping), cancelled, or too_late (every trial "
        "had ended before the stop took effect: the study ran to completion and keeps its outcome). "
        "None without a cancel.",
    )
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    trials_total: int = Field(description="Trials the spec expands to.")
    trial_counts: dict[str, int] = Field(
        description="Trials by state: pending, running, finished, stopped, failed, cancelled. "
        "An ended study has none pending or running."
    )


class StudyDetail(StudySummary):
    spec: dict[str, Any]
    attempts: int = Field(description="Driver launches (the first plus resumes).")
    error: str | None = None
    best_trial: BestTrial | None = None
    mlflow: MlflowInfo


class StudyPage(BaseModel):
    items: list[StudySummary]
    total: int
    limit: int
    offset: int


class TrialList(BaseModel):
    study_id: str
    status: StudyStatus
    trials: list[Trial] = Field(description="One page, in start order.")
    total: int = Field(description="Trials matching the filters (status, updated_after), over every page.")
    limit: int
    offset: int


class Problem(BaseModel):
    """Every 4xx/5xx body."""

    detail: str
    errors: list[dict[str, Any]] | None = Field(None, description="Per field: loc, msg, type (422 only).")


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def ended(status: str) -> bool:
    return status in _ENDED


def study_trials(status: str, trials: list[TrialRecord]) -> list[TrialRecord]:
    """The trials as the study's state has them: once it ended, none is pending or running.

    The dispatcher stores them settled; this also covers snapshots stored before it did.
    """
    return settled(trials) if ended(status) else trials


def cancel_outcome(status: str, cancel_requested: bool) -> CancelOutcome | None:
    if not cancel_requested:
        return None
    if status == "cancelled":
        return "cancelled"
    return "too_late" if ended(status) else "stopping"


def best_trial(spec: dict[str, Any], trials: list[TrialRecord]) -> BestTrial | None:
    metric = spec.get("metric") or metrics.MEDIAN_TEST_ERROR
    mode = spec.get("mode") or ("min" if metric in metrics.LOWER_IS_BETTER else "max")
    scored = [t for t in trials if t.status != "failed" and isinstance(t.metrics.get(metric), int | float)]
    if not scored:
        return None
    sign = 1.0 if mode == "min" else -1.0
    best = min(scored, key=lambda t: sign * t.metrics[metric])
    return BestTrial(
        trial_id=best.trial_id, metric=metric, value=best.metrics[metric], params=best.params, status=best.status
    )


TrialStats = tuple[dict[str, int], BestTrial | None]


def stats(study: StudyView) -> TrialStats:
    """Trial counts and best trial from the study row alone (the dispatcher keeps them there)."""
    return stored_counts(study.trial_counts or {}, study.trials_total, study.status), stored_best(study)


def stored_counts(known: dict[str, int], total: int, status: str) -> dict[str, int]:
    """:func:`trial_counts` from the counts by stored status of the known trials."""
    counts: dict[str, int] = dict.fromkeys(TRIAL_STATUSES, 0)
    for state, n in known.items():
        # Once the study ended none is pending or running (the dispatcher stores them settled; this also
        # covers an end whose trials could not be settled in MLflow).
        state = "cancelled" if ended(status) and state in OPEN_TRIAL_STATUSES else state
        counts[state] = counts.get(state, 0) + n
    counts["cancelled" if ended(status) else "pending"] += max(0, total - sum(known.values()))
    return counts


def stored_best(study: StudyView) -> BestTrial | None:
    if study.best_trial is None:
        return None
    best = BestTrial.model_validate(study.best_trial)
    if ended(study.status) and best.status in OPEN_TRIAL_STATUSES:
        best.status = "cancelled"
    return best


def _summary_fields(study: StudyView, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": study.id,
        "name": study.name,
        "owner": study.owner,
        "status": study.status,
        "cancel_requested": study.cancel_requested,
        "cancel_outcome": cancel_outcome(study.status, study.cancel_requested),
        "created_at": _aware(study.created_at),
        "started_at": _aware(study.started_at),
        "finished_at": _aware(study.finished_at),
        "trials_total": study.trials_total,
        "trial_counts": counts,
    }


def summary(study: StudyView, stats: TrialStats) -> StudySummary:
    return StudySummary(**_summary_fields(study, stats[0]))


def detail(study: StudyView, stats: TrialStats, mlflow_ui_url: str | None) -> StudyDetail:
    info = MlflowInfo(experiment_id=study.experiment_id, parent_run_id=study.parent_run_id)
    if mlflow_ui_url and study.experiment_id:
        base = mlflow_ui_url.rstrip("/")
        # The runs table: MLflow 3's bare experiment route opens its GenAI overview (traces), not the runs.
        info.experiment_url = f"{base}/#/experiments/{study.experiment_id}/runs"
        if study.parent_run_id:
            info.run_url = f"{base}/#/experiments/{study.experiment_id}/runs/{study.parent_run_id}"
    return StudyDetail(
        **_summary_fields(study, stats[0]),
        spec=study.spec,
        attempts=study.attempts,
        error=study.error,
        best_trial=stats[1],
        mlflow=info,
    )


def trial(record: TrialRecord, updated_at: datetime | None = None) -> Trial:
    return Trial(
        **{name: getattr(record, name) for name in _TRIAL_FIELDS},
        started_at=_from_ms(record.started_ms),
        ended_at=_from_ms(record.ended_ms),
        updated_at=updated_at,
    )


_TRIAL_FIELDS = ("trial_id", "params", "status", "epochs", "metrics", "error", "run_id")


def _from_ms(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


def trial_list(study: StudyView, page: list[StoredTrial], total: int, limit: int, offset: int) -> TrialList:
    """One page of trials, as the study's state has them (settled once it ended)."""
    records = study_trials(study.status, [t.record for t in page])
    trials = [trial(r, t.updated_at) for r, t in zip(records, page, strict=True)]
    return TrialList(study_id=study.id, status=study.status, trials=trials, total=total, limit=limit, offset=offset)
