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
    mlflow_ui_port: int = Field(5000, ge=0, le=65535, description="Port of the MLflow UI serve starts (0: none).")
    poll_interval_s: float = Field(1.0, gt=0, description="Dispatcher loop period.")
    progress_interval_s: float = Field(2.0, gt=0, description="How often running studies' progress is read.")
    max_attempts: int = Field(3, ge=1, description="Driver launches of one study (the first plus resumes).")
    token_cache_s: float = Field(
        5.0, ge=0, description="How long a token's owner is remembered; a deleted token works at most this long."
    )
    driver_nice: int = Field(
        10, ge=0, le=19, description="Niceness of local study drivers and their Ray workers (the API stays responsive)."
    )
    driver_module: str = Field("studies.cli", description="Module run as `python -m MODULE run ...` (tests).")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'service.db'}"

    @property
    def logs_dir(self) -> Path:
        return self.home_dir / "logs"

    @property
    def specs_dir(self) -> Path:
        return self.home_dir / "specs"
