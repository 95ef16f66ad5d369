"""Process configuration from ``MIXUP_STUDIES_*`` environment variables.

Built where it is needed (``StudySettings()``), never at import time, so tests
and the service can pass their own. The service's settings extend this class.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StudySettings(BaseSettings):
    """Where a study driver keeps things and which cluster it uses."""

    model_config = SettingsConfigDict(env_prefix="MIXUP_STUDIES_", extra="ignore")

    home: Path = Field(Path("~/.mixup-studies"), description="Data home: database, MLflow store, Ray results.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default: sqlite under the home.")
    ray_address: str | None = Field(None, description="An existing Ray cluster; default: a local Ray.")
    data_dir: Path | None = Field(None, description="Dataset root; default: <home>/data.")
    results_uri: str | None = Field(
        None, description="Ray Tune storage (a path or s3://...); default: <home>/ray_results."
    )
    mlflow_direct_writes: bool = Field(
        True,
        description="Insert a short trial's whole MLflow record in one transaction where the store is a database "
        "on a checked schema (studies.direct_record); false: always through MLflow's client.",
    )
    max_trials: int = Field(1000, ge=1, description="Most trials one study may expand to.")
    checkpoint_interval_s: float = Field(
        10.0,
        ge=0,
        allow_inf_nan=False,
        description="Least time between a trial's intermediate checkpoints (the last epoch is always saved). "
        "A stopped study loses at most this much of each running trial; on many GPUs, checkpoints of large models "
        "are the results storage's load (docs/SCALING.md: 64 GPUs of preact_resnet18 at 10 s write ~0.6 GB/s).",
    )
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray; default: all.")
    ray_temp_dir: Path | None = Field(None, description="Temp dir of a local Ray (tests use their own).")
    node_wait_s: float = Field(
        60.0,
        ge=0,
        allow_inf_nan=False,
        description="On a Ray cluster the driver joins: how long it waits (and asks an autoscaler) for a node "
        "that can hold one trial before it fails the study (above a new node's start time where the cluster scales "
        "from zero workers). A local Ray cannot grow: it is checked at once.",
    )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        """Artifacts of the default local store (a remote server keeps its own)."""
        return self.home_dir / "mlartifacts"

    @property
    def resolved_data_dir(self) -> Path:
        """The data root, absolute: trials run in other working directories (a Ray trial's session folder)."""
        return (self.data_dir or self.home_dir / "data").expanduser().absolute()

    @property
    def resolved_results_uri(self) -> str:
        return self.results_uri or str(self.home_dir / "ray_results")

    def experiment_path(self, study_id: str) -> str:
        """Where Ray Tune keeps a study's experiment state and checkpoints (what a resume restores)."""
        return f"{self.resolved_results_uri.rstrip('/')}/{study_id}"
