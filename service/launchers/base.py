"""The launcher interface: start, watch and stop one study driver (``mixup-studies run`` semantics).

A driver is addressed by an opaque *handle* string that the dispatcher stores
in the database, so a restarted service can find it again. Every driver runs
with ``--resume``: it starts the study when nothing was saved, and continues
it (``Tuner.restore``) when an earlier driver of the same study died.
Exit codes are the driver's: 0 succeeded, 1 failed, 2 invalid, 3 cancelled, 4 the driver itself failed
(no outcome: the dispatcher resumes it, as it does a driver that was killed).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from service.settings import ServiceSettings

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_CANCELLED, EXIT_ERROR = 0, 1, 2, 3, 4  # as studies.cli defines them
DRIVER_ERROR = "driver error: "  # how studies.cli starts the last line of a driver that exits with EXIT_ERROR
#: Environment a driver must not inherit from the service (secrets, service-only settings).
PRIVATE_ENV = ("MIXUP_STUDIES_ADMIN_TOKEN", "MIXUP_STUDIES_DATABASE_URL", "MIXUP_STUDIES_TOKEN")


@dataclass(frozen=True)
class DriverState:
    """What a launcher knows about a driver.

    ``running``; ``exited`` with the driver's exit code (None when only "it ended" is known);
    ``lost``: gone without a known outcome (killed with the machine, or the service restarted meanwhile).
    """

    state: Literal["running", "exited", "lost"]
    exit_code: int | None = None
    message: str | None = None


@dataclass(frozen=True)
class Launch:
    """One driver to start: attempt 1 is the first launch, later ones resume."""

    study_id: str
    spec: dict[str, Any]
    user: str
    attempt: int


class Launcher(ABC):
    """Starts study drivers somewhere and reports on them by handle."""

    name: str

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings

    @abstractmethod
    def launch(self, launch: Launch) -> str:
        """Start a driver; return its handle. Raises :class:`~service.errors.LaunchError`."""

    @abstractmethod
    def find(self, launch: Launch) -> str | None:
        """The handle of this launch if it was started already (a crash between start and record), else None."""

    @abstractmethod
    def poll(self, handle: str) -> DriverState:
        """The driver's state now."""

    @abstractmethod
    def stop(self, handle: str) -> None:
        """Ask the driver to stop gracefully (SIGINT: Tune saves the experiment, exit code 3)."""

    @abstractmethod
    def logs(self, study_id: str, handle: str, tail: int = 4000) -> str:
        """The end of the study's driver output."""

    def check(self) -> str:
        """Raise when the place drivers run is unreachable; a short status otherwise."""
        return "ok"

    # -- shared helpers --------------------------------------------------------------------

    def driver_args(self, spec_path: str, launch: Launch) -> list[str]:
        return [
            "-m", self.settings.driver_module, "run", spec_path,
            "--study-id", launch.study_id, "--resume", "--quiet", "--user", launch.user,
        ]  # fmt: skip

    def driver_env(self) -> dict[str, str]:
        """``MIXUP_STUDIES_*`` the driver needs (the service's resolved locations), without secrets."""
        s = self.settings
        env = {
            "MIXUP_STUDIES_HOME": str(s.home_dir),
            "MIXUP_STUDIES_TRACKING_URI": s.resolved_tracking_uri,
            "MIXUP_STUDIES_RESULTS_URI": s.resolved_results_uri,
            "MIXUP_STUDIES_DATA_DIR": str(s.resolved_data_dir),
            # How long a driver joining a cluster waits for a node that can hold a trial (studies.placement).
            "MIXUP_STUDIES_NODE_WAIT_S": str(s.node_wait_s),
        }
        optional = {
            "MIXUP_STUDIES_RAY_ADDRESS": s.ray_address,
            "MIXUP_STUDIES_RAY_NUM_CPUS": s.ray_num_cpus,
            "MIXUP_STUDIES_RAY_TEMP_DIR": s.ray_temp_dir,
        }
        env.update({k: str(v) for k, v in optional.items() if v is not None})
        return env


def spec_text(spec: dict[str, Any]) -> str:
    # JSON is YAML: the driver's spec loader reads it as is.
    return json.dumps(spec, indent=2)


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
