"""What a study knows about its trials, independent of where it was read from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

TrialStatus = Literal["pending", "running", "finished", "stopped", "failed", "cancelled"]
#: Every trial status, in the order reports list them.
TRIAL_STATUSES: tuple[TrialStatus, ...] = ("pending", "running", "finished", "stopped", "failed", "cancelled")
#: "stopped" = ended early by the scheduler (ASHA); it did not fail.
FINAL_TRIAL_STATUSES: frozenset[str] = frozenset({"finished", "stopped", "failed"})
#: "cancelled" = cut short (or never started) because the whole study ended first: a cancel, a driver lost
#: for good, a time budget. A study that has ended has no pending or running trial; a resume of a cancelled
#: study reopens its cancelled trials (they run again and finish). Not final: the trial did not reach an end
#: of its own.
OPEN_TRIAL_STATUSES: frozenset[str] = frozenset({"pending", "running"})


@dataclass(frozen=True)
class TrialRecord:
    """One trial: its parameters (short names, see ``studies.space``), state and metrics.

    Attributes:
        trial_id: Ray Tune's trial id (stable across a resume).
        params: ``alpha``, ``weight_decay``, ``layer``, ``variant``, ``seed``, ... as varied.
        status: see :data:`TrialStatus`.
        epochs: epochs completed.
        metrics: the latest value of every metric (``mixup_core.metrics`` names).
        error: the failure message of a failed trial.
        run_id: its MLflow run.
    """

    trial_id: str
    params: dict[str, Any]
    status: TrialStatus
    epochs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None
    started_ms: int | None = None  # its MLflow run's start_time (ms since the epoch), when read from MLflow
    ended_ms: int | None = None  # its MLflow run's end_time, once ended


def settled(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    """The trials of a study that has ended: every pending or running one is cancelled."""
    return [replace(r, status="cancelled") if r.status in OPEN_TRIAL_STATUSES else r for r in records]
