"""Service configuration from ``MIXUP_STUDIES_*`` environment variables.

:class:`ServiceSettings` extends :class:`studies.settings.StudySettings`, so the
service and the study drivers it launches read the same home, tracking URI,
results URI and data dir. Built where needed (``ServiceSettings()``), never at
import time, so tests pass their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from studies.settings import StudySettings


class ServiceSettings(StudySettings):
    """Everything ``mixup-studies serve`` needs."""

    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite (WAL) under the home.")
    launcher: Literal["local", "ray_jobs"] = Field("local", description="Where study drivers run.")
    ray_jobs_url: str | None = Field(None, description="Ray job server (ray_jobs launcher), e.g. http://head:8265.")
    max_running_studies: int = Field(1, ge=1, description="Studies running at once.")
    max_queued_per_user: int = Field(20, ge=1, description="Queued studies one user may have.")
    admin_token: SecretStr | None = Field(None, description="Bootstrap admin token (deployments).")
    mlflow_ui_url: str | None = Field(None, description="MLflow UI base URL, for links in responses.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest accepted request body.")
    validation_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="Longest a submitted spec may take to parse and validate (then 503)."
    )
    spec_workers: int = Field(
        1, ge=1, le=64, description="Worker processes that parse, validate and admit submitted specs (not the API's)."
    )
    spec_worker_nice: int = Field(
        10, ge=0, le=19, description="Niceness of the spec workers (the API's event loop keeps its core)."
    )
    mlflow_ui_port: int = Field(5000, ge=0, le=65535, description="Port of the MLflow UI serve starts (0: none).")
    web_session_s: float = Field(
        8 * 3600.0, gt=0, description="A page login lasts this long after its last use (sessions live in memory)."
    )
    web_refresh_s: float = Field(3.0, gt=0, le=600, description="How often a running study's page polls for progress.")
    poll_interval_s: float = Field(1.0, gt=0, description="Dispatcher loop period.")
    progress_interval_s: float = Field(2.0, gt=0, description="How often running studies' progress is read.")
    max_attempts: int = Field(3, ge=1, description="Driver launches of one study (the first plus resumes).")
    token_cache_s: float = Field(
        5.0,
        ge=0,
        description="How long a token's owner is remembered; a revoked or deleted token works at most this long.",
    )
    token_last_used_s: float = Field(
        60.0, gt=0, description="Least seconds between two writes of a token's last-used time (one per request else)."
    )
    driver_nice: int = Field(
        10, ge=0, le=19, description="Niceness of local study drivers and their Ray workers (the API stays responsive)."
    )
    driver_module: str = Field("studies.cli", description="Module run as `python -m MODULE run ...` (tests).")

    # -- what one study may ask for (checked at submit by service.admission; a refusal names the setting) --
    max_epochs: int = Field(1000, ge=1, description="Most training.epochs (the paper's recipes: 200).")
    max_batch_size: int = Field(8192, ge=1, description="Most training.batch_size and evaluation.batch_size.")
    max_samples: int = Field(
        1_000_000, ge=1, description="Most dataset.train_subset and synthetic num_train / num_test."
    )
    max_classes: int = Field(1000, ge=2, description="Most synthetic num_classes.")
    max_sample_values: int = Field(196_608, ge=1, description="Most values in one synthetic sample (3x256x256).")
    max_dataset_values: int = Field(
        200_000_000, ge=1, description="Most values in a synthetic dataset: (num_train + num_test) x sample values."
    )
    max_seeds: int = Field(100, ge=1, description="Most search.seeds.")
    max_variants: int = Field(100, ge=1, description="Most search.variants.")
    max_concurrent_trials: int = Field(64, ge=1, description="Most max_concurrent_trials a spec may ask for.")
    max_time_budget_s: float = Field(
        30 * 24 * 3600.0, gt=0, allow_inf_nan=False, description="Most time_budget_s (30 days)."
    )
    max_trial_cpus: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Most resources.cpu: the CPUs of the largest node. Default: the local Ray's "
        "(MIXUP_STUDIES_RAY_NUM_CPUS or the machine's cores) with the local launcher and no Ray address; "
        "else unchecked at submit (the driver still fails a study no node can hold).",
    )
    max_trial_gpus: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Most resources.gpu: the GPUs of the largest node. Default: the GPUs this machine's "
        "local Ray would see, under the same conditions as max_trial_cpus.",
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'service.db'}"

    @property
    def logs_dir(self) -> Path:
        return self.home_dir / "logs"

    @property
    def specs_dir(self) -> Path:
        return self.home_dir / "specs"
