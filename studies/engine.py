"""Run a study on Ray Tune: the study driver.

One call of :func:`run_study` is one driver: it opens the study in MLflow,
builds (or restores) the Tune experiment, runs the trials and closes the study
with its report. It is meant to be its own process — the CLI's ``run``, or a
Ray job's entrypoint — so Tune keeps its graceful-stop signal handling: SIGINT,
SIGTERM and SIGUSR1 stop the trials, save the experiment and leave it
resumable with ``resume=True``.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

import ray
from mlflow.tracking import MlflowClient
from ray import tune

from studies import callbacks, interrupts, placement, search, warm_workers
from studies.data_location import require_absolute
from studies.records import FINAL_TRIAL_STATUSES, TrialRecord, settled
from studies.report import StudyReport, build_report, render_markdown, render_plot_png
from studies.report_render import warm_up_plotting
from studies.settings import StudySettings
from studies.settle import close_open_trials
from studies.space import trial_count
from studies.spec import StudySpec
from studies.store import prepare_store
from studies.tracking import StudyRun, finish_study, open_study, prune_orphan_trials, retrying, use_wal
from studies.trainable import run_trial
from studies.trial_log import TrialLogWriter

log = logging.getLogger(__name__)
Outcome = Literal["succeeded", "failed", "cancelled"]


@dataclass
class StudyOutcome:
    """How a study driver ended."""

    study_id: str
    status: Outcome
    trials: list[TrialRecord]
    report: StudyReport
    experiment_path: str
    mlflow: StudyRun
    mlflow_seconds: float = 0.0  # wall time the driver spent writing trial records to MLflow
    mlflow_cpu_seconds: float = 0.0  # the CPU time of those writes (the wall time also has GIL and core waits)
    mlflow_calls: int = 0  # MLflow calls they took
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def new_study_id(spec: StudySpec) -> str:
    """A readable, unique id: name, UTC time and a random suffix."""
    return f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def joins_cluster(settings: StudySettings) -> bool:
    """Whether the driver joins a running Ray cluster (configured, or a Ray job's own) instead of starting one."""
    return bool(settings.ray_address or os.environ.get("RAY_ADDRESS"))


def init_ray(settings: StudySettings) -> None:
    """Join the configured cluster (or a Ray job's own, via RAY_ADDRESS), else start a local Ray."""
    if ray.is_initialized():
        return
    if joins_cluster(settings):
        ray.init(address=settings.ray_address, logging_level=logging.WARNING, log_to_driver=False)
        return
    temp_dir = str(settings.ray_temp_dir) if settings.ray_temp_dir else None
    ray.init(
        num_cpus=settings.ray_num_cpus,
        include_dashboard=False,
        _temp_dir=temp_dir,
        logging_level=logging.WARNING,
        log_to_driver=False,
        _system_config=warm_workers.local_ray_system_config(),
    )


def resolve_spec(spec: StudySpec, settings: StudySettings) -> StudySpec:
    """The spec as the trials see it: an absolute data dir, the configured one when the spec names none.

    Raises:
        InvalidStudySpec: the spec's data dir is relative (see :mod:`studies.data_location`).
    """
    return require_absolute(spec, settings.resolved_data_dir)


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def _outcome(records: list[TrialRecord], interrupted: bool, total: int) -> Outcome:
    """How the study ended. A stop that came once every trial had reached its end stopped nothing: the study
    ran to completion and is not ``cancelled`` (the service calls that cancel too late)."""
    if any(r.status not in FINAL_TRIAL_STATUSES for r in records) or (interrupted and len(records) < total):
        return "cancelled"
    if records and all(r.status == "failed" for r in records):
        return "failed"
    return "succeeded" if records else "failed"


def _tuner(spec: StudySpec, study_id: str, path: str, resume: bool, settings: StudySettings) -> tune.Tuner:
    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial, spec_json=spec.model_dump_json(), checkpoint_interval_s=settings.checkpoint_interval_s
        ),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    if resume and tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable=trainable, resume_errored=True, param_space=search.param_space(spec))
    tune_config = tune.TuneConfig(
        metric=spec.metric,
        mode=spec.resolved_mode,
        search_alg=search.search_algorithm(spec),
        scheduler=search.scheduler(spec),
        num_samples=search.num_samples(spec),
        max_concurrent_trials=spec.max_concurrent_trials,
        time_budget_s=spec.time_budget_s,
        reuse_actors=True,
    )
    run_config = tune.RunConfig(
        name=study_id,
        storage_path=settings.resolved_results_uri,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[callbacks.StudyCallback(study_id)],
        verbose=0,
    )
    return tune.Tuner(trainable, param_space=search.param_space(spec), tune_config=tune_config, run_config=run_config)


def run_study(
    spec: StudySpec,
    *,
    study_id: str | None = None,
    user: str | None = None,
    settings: StudySettings | None = None,
    resume: bool = False,
    on_progress: callbacks.ProgressListener | None = None,
) -> StudyOutcome:
    """Run (or resume) a study to its end and return its outcome and report.

    Args:
        spec: the study.
        study_id: its id; a new one when None (resume needs the original).
        user: recorded on the MLflow parent run.
        settings: where things live; ``StudySettings()`` from the environment when None.
        resume: continue an interrupted study with ``Tuner.restore`` (start it when nothing was saved yet).
        on_progress: called with every trial's record as the study progresses.
    """
    settings = settings or StudySettings()
    spec = resolve_spec(spec, settings)
    study_id = study_id or new_study_id(spec)
    path = settings.experiment_path(study_id)
    # Tune's per-trial CSV/JSON/TensorBoard loggers: MLflow is the record.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Keeping two checkpoints per trial forces an experiment snapshot every other checkpoint; that is intended.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # ...so the result table Tune builds at the end has no files to read: that is expected, not a warning.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    started = time.monotonic()
    uri = settings.resolved_tracking_uri
    # Created once, under a lock, whoever else opens it now (another driver, serve, its MLflow UI); and
    # before Ray starts, so a store that cannot be opened fails the driver in a second, not after Ray's start.
    prepare_store(uri, settings.artifact_root)
    init_ray(settings)
    # Before anything is written: a trial no node can hold would wait forever, holding the service's slot.
    placement.require_node_for(spec.resources, settings.node_wait_s if joins_cluster(settings) else 0.0)
    warm_workers.use_warm_workers_for_trials()
    warm_workers.keep_starting_trial_actors()

    use_wal(uri)
    client = MlflowClient(uri)
    study = open_study(client, spec, study_id, user, settings.artifact_root if _is_local_store(uri) else None)
    writer = TrialLogWriter(client, study, direct_writes=settings.mlflow_direct_writes)
    latest: list[TrialRecord] = []

    def listen(records: list[TrialRecord]) -> None:
        latest[:] = records
        if any(r.epochs for r in records):
            # Once trials train, the driver idles: it imports the report's plotting now, not after the last trial
            # (~0.5 s there). Sooner, it would slow the start of the trials instead.
            warm_up_plotting()
        if on_progress is not None:
            on_progress(records)

    callbacks.register(study_id, spec, writer, listen)
    with interrupts.graceful_stops():  # held to the end: a stop while the report is written must not cut it
        try:
            try:
                _tuner(spec, study_id, path, resume, settings).fit()
                interrupted = interrupts.stop_requested()
            except KeyboardInterrupt:  # stopped before Tune took over its signals, or a second Ctrl+C
                interrupted = True
            writer.settle(latest)  # trials that ended out of sight (before a kill): their end again
        finally:
            delivered = writer.close()
            callbacks.unregister(study_id)
        return _finish(spec, study_id, client, study, latest, interrupted, delivered, writer, path, started)


def _finish(
    spec: StudySpec,
    study_id: str,
    client: MlflowClient,
    study: StudyRun,
    latest: list[TrialRecord],
    interrupted: bool,
    delivered: bool,
    writer: TrialLogWriter,
    path: str,
    started: float,
) -> StudyOutcome:
    """Close the study in MLflow with its report, and say how it went."""
    status = _outcome(latest, interrupted, trial_count(spec))
    latest = settled(latest)  # the study has ended: none of its trials runs on
    # ...in MLflow either: the trials a stop cut short (Tune calls nothing back for them), and runs of trials
    # a killed driver had started that its restored state no longer has.
    closed = retrying(lambda: close_open_trials(client, study), "closing the open trials", 60.0)
    if closed:
        log.info("closed %d trial runs the end of the study cut short", closed)
    if latest and not interrupted:
        pruned = prune_orphan_trials(client, study, {r.trial_id for r in latest})
        if pruned:
            log.warning("removed %d MLflow runs of trials discarded when the study was restored", pruned)
    report = build_report(spec, latest, study_id, study_status=status)
    artifacts: list[tuple[str, bytes | str]] = [
        ("report.json", report.model_dump_json(indent=2)),
        ("report.md", render_markdown(report)),
    ]
    png = render_plot_png(report)
    if png is not None:
        artifacts.append(("error_vs_alpha.png", png))
    finish_study(client, study, status, artifacts)
    notes = [] if delivered else ["some trial records could not be written to MLflow"]
    return StudyOutcome(
        study_id=study_id,
        status=status,
        trials=latest,
        report=report,
        experiment_path=path,
        mlflow=study,
        mlflow_seconds=writer.busy_seconds,
        mlflow_cpu_seconds=writer.busy_cpu_seconds,
        mlflow_calls=writer.calls,
        wall_seconds=time.monotonic() - started,
        notes=notes,
    )
