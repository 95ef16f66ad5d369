"""Ray Jobs launcher: each study driver is a Ray job on a cluster's job server (``JobSubmissionClient``).

* The entrypoint is :mod:`service.launchers.job_entry`, which writes the spec
  (passed in the job's environment) to a file and execs the driver, so nothing
  has to be shared between the service and the cluster but the tracking and
  results URIs.
* Stop: ``stop_job`` makes the job supervisor signal the driver with
  ``RAY_JOB_STOP_SIGNAL`` — set to SIGINT in the job's runtime env, so Tune
  saves the experiment — and SIGKILL it only after ``RAY_JOB_STOP_WAIT_TIME_S``
  (default 3 s there; raised here so the checkpoint can finish).
* Token auth: with ``RAY_AUTH_TOKEN`` set, every request carries
  ``Authorization: Bearer <token>`` (what Ray's own clients send to a cluster
  started with ``RAY_AUTH_MODE=token``).
* A handle is the job's submission id ``<study id>-a<attempt>``: deterministic, so
  a crash between submit and record finds the job instead of submitting twice.
"""

from __future__ import annotations

import json
import os
from typing import Any

from service.errors import LaunchError
from service.launchers.base import DriverState, Launch, Launcher
from service.settings import ServiceSettings

STOP_WAIT_S = 120
ENV_SPEC, ENV_STUDY, ENV_USER, ENV_MODULE = (
    "MIXUP_STUDIES_JOB_SPEC", "MIXUP_STUDIES_JOB_STUDY_ID", "MIXUP_STUDIES_JOB_USER", "MIXUP_STUDIES_DRIVER_MODULE",
)  # fmt: skip


def auth_headers() -> dict[str, str]:
    """The Ray dashboard's bearer header when ``RAY_AUTH_TOKEN`` is set."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


class RayJobsLauncher(Launcher):
    name = "ray_jobs"

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__(settings)
        if not self.settings.ray_jobs_url:
            raise LaunchError("the ray_jobs launcher needs MIXUP_STUDIES_RAY_JOBS_URL (e.g. http://head:8265)")
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            try:
                self._client = JobSubmissionClient(self.settings.ray_jobs_url, headers=auth_headers())
            except Exception as error:
                raise LaunchError(f"Ray job server {self.settings.ray_jobs_url} unreachable: {error}") from error
        return self._client

    @staticmethod
    def submission_id(launch: Launch) -> str:
        return f"{launch.study_id}-a{launch.attempt}"

    def _job_env(self, launch: Launch) -> dict[str, str]:
        env = self.driver_env()
        # The cluster has its own home, data and Ray; only where results go must be shared.
        for local_only in ("MIXUP_STUDIES_HOME", "MIXUP_STUDIES_RAY_NUM_CPUS", "MIXUP_STUDIES_RAY_TEMP_DIR"):
            env.pop(local_only, None)
        if self.settings.data_dir is None:
            env.pop("MIXUP_STUDIES_DATA_DIR", None)
        if self.settings.results_uri is None:
            env.pop("MIXUP_STUDIES_RESULTS_URI", None)
        env.update({
            ENV_SPEC: json.dumps(launch.spec),
            ENV_STUDY: launch.study_id,
            ENV_USER: launch.user,
            ENV_MODULE: self.settings.driver_module,
            "RAY_JOB_STOP_SIGNAL": "SIGINT",
            "RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S),
        })  # fmt: skip
        return env

    def launch(self, launch: Launch) -> str:
        sid = self.submission_id(launch)
        try:
            return str(
                self.client.submit_job(
                    entrypoint="python -m service.launchers.job_entry",
                    submission_id=sid,
                    runtime_env={"env_vars": self._job_env(launch)},
                    metadata={"study_id": launch.study_id, "attempt": str(launch.attempt)},
                )
            )
        except LaunchError:
            raise
        except Exception as error:
            if self.find(launch) is not None:
                return sid
            raise LaunchError(f"could not submit the study's Ray job: {error}") from error

    def find(self, launch: Launch) -> str | None:
        sid = self.submission_id(launch)
        try:
            self.client.get_job_info(sid)
        except Exception:
            return None
        return sid

    def poll(self, handle: str) -> DriverState:
        from ray.job_submission import JobStatus

        try:
            info = self.client.get_job_info(handle)
        except RuntimeError as error:
            if "404" in str(error) or "does not exist" in str(error):
                return DriverState("lost", None, f"job {handle} is unknown to the cluster")
            raise LaunchError(f"could not read Ray job {handle}: {error}") from error
        status = info.status
        if status in (JobStatus.PENDING, JobStatus.RUNNING):
            return DriverState("running")
        code = getattr(info, "driver_exit_code", None)
        if status == JobStatus.SUCCEEDED:
            return DriverState("exited", 0 if code is None else code)
        if status == JobStatus.STOPPED:
            return DriverState("exited", 3 if code is None or code < 0 else code, info.message)
        # FAILED: the driver's own exit code when it chose one; otherwise it was lost (node died, ...).
        if code is not None and code >= 0:
            return DriverState("exited", code, info.message)
        return DriverState("lost", None, info.message)

    def stop(self, handle: str) -> None:
        try:
            self.client.stop_job(handle)
        except Exception as error:
            raise LaunchError(f"could not stop Ray job {handle}: {error}") from error

    def logs(self, study_id: str, handle: str, tail: int = 4000) -> str:
        try:
            return str(self.client.get_job_logs(handle))[-tail:]
        except Exception:
            return ""

    def check(self) -> str:
        import httpx

        url = (self.settings.ray_jobs_url or "").rstrip("/")
        httpx.get(f"{url}/api/version", headers=auth_headers(), timeout=2.0).raise_for_status()
        return "ok"
