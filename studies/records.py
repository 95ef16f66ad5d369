"""What a study knows about its trials, independent of where it was read from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TrialStatus = Literal["pending", "running", "finished", "stopped", "failed"]
#: "stopped" = ended early by the scheduler (ASHA); it did not fail.
FINAL_TRIAL_STATUSES: frozenset[str] = frozenset({"finished", "stopped", "failed"})


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
