"""Request and response bodies of the REST API (their JSON Schema is the OpenAPI schema at /docs)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from mixup_core import metrics
from service.repository import StudyView
from studies.records import TRIAL_STATUSES, TrialRecord, TrialStatus, settled

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
    trials: list[Trial]


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


def trial_counts(trials: list[TrialRecord], total: int, status: str = "running") -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(TRIAL_STATUSES, 0)
    trials = study_trials(status, trials)
    for trial in trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    # Trials Tune has not created yet are pending, or cancelled once the study ended without them.
    counts["cancelled" if ended(status) else "pending"] += max(0, total - len(trials))
    return counts


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


class TrialStatsCache:
    """(study seq, progress_at, status) → trial counts and best trial: a status poll decodes no trials JSON.

    The dispatcher stamps ``progress_at`` whenever it stores trials, so a changed snapshot is a new key
    (as is the study's end: its trials count as settled then); stale keys simply age out of the LRU.
    Thread-safe (sync handlers run on a threadpool).
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, datetime, str], TrialStats] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, study: StudyView, load: Callable[[], list[TrialRecord]]) -> TrialStats:
        if study.progress_at is None:  # nothing stored yet: every trial is pending (cancelled, once ended)
            return trial_counts([], study.trials_total, study.status), None
        key = (study.seq, study.progress_at, study.status)
        with self._lock:
            if (hit := self._entries.get(key)) is not None:
                self._entries.move_to_end(key)
                return hit
        trials = load()
        stats = (trial_counts(trials, study.trials_total, study.status), best_trial(study.spec, trials))
        with self._lock:
            self._entries[key] = stats
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return stats


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


def trial_list(study: StudyView, trials: list[TrialRecord]) -> TrialList:
    trials = study_trials(study.status, trials)
    return TrialList(study_id=study.id, status=study.status, trials=[Trial(**t.__dict__) for t in trials])
