"""MLflow: one experiment and one parent run per study, one nested run per trial.

Ray Tune's own MLflow integration makes flat runs, so nesting is built here
explicitly (the ``mlflow.parentRunId`` tag) and nothing relies on the
``MLFLOW_RUN_ID`` environment variable. Trial writes go through
:class:`studies.trial_log.TrialLogWriter`: a background thread that batches them
per run and retries while the tracking server is slow or away, so the Tune event
loop (and therefore no trial) ever waits on, or dies of, MLflow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Param
from mlflow.tracking import MlflowClient
from sqlalchemy import event
from sqlalchemy.pool import Pool

if TYPE_CHECKING:
    from studies.spec import StudySpec

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
STUDY_ID_TAG = "mixup_studies.study_id"
TRIAL_ID_TAG = "mixup_studies.trial_id"
USER_TAG = "mixup_studies.user"
SPEC_HASH_TAG = "mixup_studies.spec_hash"
STATUS_TAG = "mixup_studies.status"  # finished | stopped | failed | running, and the study's outcome
ERROR_TAG = "mixup_studies.error"
MAX_PARAM_CHARS = 6000  # MLflow's longest param value


def spec_hash(spec: StudySpec) -> str:
    """A stable fingerprint of the spec's content."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def default_experiment_name(spec: StudySpec, study_id: str) -> str:
    return spec.tracking.experiment or f"mixup-studies/{spec.name}/{study_id}"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def retrying(action: Callable[[], Any], what: str, deadline_s: float) -> Any:
    """Run ``action`` until it succeeds or ``deadline_s`` passes (then re-raise)."""
    delay, started = 0.25, time.monotonic()
    while True:
        try:
            return action()
        except Exception as error:  # the tracking server may be briefly unreachable
            if time.monotonic() - started + delay > deadline_s:
                raise
            log.warning("MLflow %s failed (%s); retrying in %.1fs", what, error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)


@dataclass
class StudyRun:
    """Where a study's records live in MLflow."""

    experiment_id: str
    parent_run_id: str


def use_wal(tracking_uri: str) -> None:
    """Put a local SQLite store in WAL mode (persistent in the file), with ``synchronous=NORMAL`` commits.

    WAL alone turns a commit's several fsyncs into one; ``synchronous=NORMAL`` (per connection, so it is
    set as this process's pool hands each connection out) drops that one too: WAL then syncs only at
    checkpoints. A commit still survives the driver being killed (it is in the OS's cache); only a power
    loss or OS crash could undo the last few, and the database stays consistent either way. A trial's
    record is several commits (MLflow commits params, metrics and tags of one ``log_batch`` separately).
    """
    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    _RELAXED_SYNC_FILES.add(os.path.realpath(path))
    if not event.contains(Pool, "checkout", _relax_sync):
        event.listen(Pool, "checkout", _relax_sync)


_RELAXED_SYNC_FILES: set[str] = set()
_RELAXED_KEY = "mixup_studies.relaxed_sync"


def _relax_sync(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool checkout hook: ``synchronous=NORMAL`` on connections to a store :func:`use_wal` prepared (once each)."""
    if _RELAXED_KEY in record.info:
        return
    record.info[_RELAXED_KEY] = False
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    main = dbapi_connection.execute("PRAGMA database_list").fetchone()  # (seq, "main", file path)
    if main and main[2] and os.path.realpath(main[2]) in _RELAXED_SYNC_FILES:
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        record.info[_RELAXED_KEY] = True


def open_study(
    client: MlflowClient,
    spec: StudySpec,
    study_id: str,
    user: str | None,
    artifact_root: Path | None,
    deadline_s: float = 60.0,
) -> StudyRun:
    """Find or create the study's experiment and parent run (idempotent, so a resume reuses them)."""

    def run() -> StudyRun:
        name = default_experiment_name(spec, study_id)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = (artifact_root / study_id).as_uri() if artifact_root is not None else None
            experiment_id = client.create_experiment(name, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        found = client.search_runs(
            [experiment_id], filter_string=f"tags.`{STUDY_ID_TAG}` = '{study_id}'", max_results=10
        )
        parents = [r for r in found if PARENT_TAG not in r.data.tags]
        if parents:
            client.update_run(parents[0].info.run_id, status="RUNNING")
            client.set_tag(parents[0].info.run_id, STATUS_TAG, "running")
            return StudyRun(experiment_id, parents[0].info.run_id)
        tags = {STUDY_ID_TAG: study_id, SPEC_HASH_TAG: spec_hash(spec), STATUS_TAG: "running"}
        if user:
            tags[USER_TAG] = user
        parent = client.create_run(experiment_id, tags=tags, run_name=spec.name)
        params = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in flatten(spec.model_dump(mode="json")).items()]
        for lo in range(0, len(params), 100):
            client.log_batch(parent.info.run_id, params=params[lo : lo + 100])
        client.log_dict(parent.info.run_id, spec.model_dump(mode="json"), "spec.yaml")
        return StudyRun(experiment_id, parent.info.run_id)

    return retrying(run, "opening the study", deadline_s)


def existing_trial_runs(client: MlflowClient, study: StudyRun) -> dict[str, str]:
    """trial id → run id of the nested runs already there (after a resume)."""
    runs = client.search_runs(
        [study.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{study.parent_run_id}'", max_results=50_000
    )
    return {r.data.tags[TRIAL_ID_TAG]: r.info.run_id for r in runs if TRIAL_ID_TAG in r.data.tags}


def prune_orphan_trials(client: MlflowClient, study: StudyRun, trial_ids: set[str]) -> int:
    """Delete nested runs of trials the study no longer has (work a hard kill's restore discarded)."""
    orphans = [run_id for trial_id, run_id in existing_trial_runs(client, study).items() if trial_id not in trial_ids]
    for run_id in orphans:
        client.delete_run(run_id)
    return len(orphans)


def finish_study(
    client: MlflowClient,
    study: StudyRun,
    outcome: str,
    artifacts: Iterable[tuple[str, bytes | str]] = (),
    deadline_s: float = 60.0,
) -> None:
    """Attach the report artifacts to the parent run and close it with the study's outcome."""
    status = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}[outcome]

    def run() -> None:
        for name, content in artifacts:
            if isinstance(content, str):
                client.log_text(study.parent_run_id, content, name)
            else:
                _log_bytes(client, study.parent_run_id, name, content)
        client.set_tag(study.parent_run_id, STATUS_TAG, outcome)
        client.set_terminated(study.parent_run_id, status=status)

    retrying(run, "closing the study", deadline_s)


def _log_bytes(client: MlflowClient, run_id: str, name: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(content)
        client.log_artifact(run_id, str(path))
