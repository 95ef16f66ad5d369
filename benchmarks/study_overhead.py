"""Study overhead: wall time of a study through the real engine ÷ the ideal (trial work ÷ concurrency).

The study: 16 trials (grid α ∈ {0, 0.2, 0.5, 1} × seeds {0, 1, 2, 3}, FIFO) of the paper's UCI MLP
(two hidden layers of 128 ReLU units, Adam, batch 32) on mixup_core's ``synthetic`` dataset (Gaussian
class clusters, 32 features, 4 classes; a 64-sample test set so per-epoch evaluation costs next to
nothing), ``--epochs`` epochs (default 4), 2 trials at a time (``max_concurrent_trials: 2``,
``resources: {cpu: 1}``) on a local Ray started with ``num_cpus=2`` and its own temp dir. MLflow
logging is on (a SQLite store in a temporary ``MIXUP_STUDIES_HOME``), as are the engine's trial
checkpoints.

Trial size: just before the clock starts (Ray started and settled), the driver times a training
epoch on one thread (as a Ray worker with ``cpu: 1`` runs) and sizes the training set so that a
trial's training is ≈ ``--trial-seconds`` (default 2 s) in all. On this shared machine the trials
then train 1.3–2.5 s (``mean_trial_s``; 1.4–3.5 s when they were sized before Ray started): the
speed of the two vCPUs changes between the calibration and the study. Timing the calibration beside a
second training process (as the study's two trials run) was tried: trials came out 3.4–3.5 s.

What is timed: ``studies.engine.run_study`` from call to return, with Ray already started
(``studies.engine.init_ray`` is called before the clock starts): opening the study in MLflow, Tune's
whole run (actor start-up, trials, checkpoints, experiment snapshots, result processing, the MLflow
writer's final flush) and the report written to the parent run. Untimed process warm-up, like the
driver's own imports: the SQLite store's tables are created and matplotlib's Agg backend module is
imported before the clock starts (the engine itself warms up the rest of the report's plotting,
``matplotlib.figure`` and the fonts, on a background thread once the trials train; that is timed).

``first_training_s``: from the study's start until the first trial's first training pass began (≈:
the driver's timestamp of that epoch's result minus its ``epoch_seconds``) — mostly Tune's two trial
actors getting a worker process that has imported torch, mixup_core and Tune. The engine's local Ray
preloads those modules in the idle workers it starts with (``studies.warm_workers``) and the trial
actors run on them, so that import happens in Ray's start-up, not the study's; whatever of it has not
finished when the clock starts still counts here. ``wall_over_ideal_after_first`` = (wall − that) ÷
ideal shows the rest. ``ray_init_s`` is ``init_ray`` itself (untimed above; its workers' preloading
goes on in the background after it returns) and ``wall_incl_ray_init_over_ideal`` = (``ray_init_s`` +
wall) ÷ ideal is the figure for a driver that starts its own local Ray (the CLI without a cluster).

What counts as trial work: the training passes only — the sum over all trials and epochs of the
trainer's own ``epoch_seconds`` (the time of :meth:`mixup_core.Trainer.train_epoch`, measured
inside the Ray worker, read back from every trial's MLflow metric history). Everything else a trial
does — building its trainer and dataset, evaluation, checkpoint writes, reporting to Tune — counts
as overhead. ``ideal_s = trial_work_s / 2`` and ``wall_over_ideal = wall_s / ideal_s`` (goal ≤ 1.2).
``mlflow_share`` is the CPU time of the driver's MLflow writes (``StudyOutcome.mlflow_cpu_seconds``: the
writer thread's CPU time inside MLflow calls) ÷ trial work (goal ≤ 0.02): what logging takes from the
machine and from Tune's loop (with which the writer shares the GIL). ``mlflow_wall_share`` is their wall
time (``mlflow_seconds``) ÷ trial work; it also counts the writer waiting for the GIL and for a core
while the trials and Tune's loop run, so it is the upper bound. ``mlflow_calls_per_trial``: MLflow writes
per trial record: 1 where a trial shorter than the writer's hold (5 s) goes into the SQLite store as one
transaction (``studies.direct_record``), 3 through MLflow's client (create, one batch, terminate; with
``--client-writes``, the figure before that path); ``mlflow_cpu_ms_per_trial`` their CPU time per trial,
which does not depend on the trial's length.

``--ray-settle-s N`` (default 15) waits N seconds after ``init_ray`` before the clock starts, so that
Ray's idle workers have finished preloading (≈ 6 s of imports on a quiet 2-core box): the study then
meets Ray "already started" as the issue has it, the way a long-running Ray (the service's, a
cluster's) has it. ``--ray-settle-s 0`` starts the clock as soon as ``init_ray`` returns — the figure
for a driver that starts its own Ray, still preloading. The JSON line carries the value
(``ray_settle_s``).

Usage: ``python benchmarks/study_overhead.py [--trials 16] [--epochs 4] [--trial-seconds 2]
[--ray-settle-s 15] [--client-writes] [--quick]``. Prints one JSON line (last on stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import machine_line

from mixup_core import (
    DataConfig,
    ExperimentConfig,
    MixupConfig,
    ModelConfig,
    SyntheticConfig,
    TrainConfig,
    Trainer,
)
from mixup_core import metrics as M

CONCURRENCY = 2
FEATURES, CLASSES, TEST_SAMPLES, BATCH = 32, 4, 64, 32
SEEDS_PER_ALPHA = 4
ALPHAS = (0.0, 0.2, 0.5, 1.0)


def data_config(num_train: int) -> DataConfig:
    shape = (FEATURES,)
    synthetic = SyntheticConfig(num_train=num_train, num_test=TEST_SAMPLES, num_classes=CLASSES, shape=shape)
    return DataConfig(name="synthetic", synthetic=synthetic)


def training_config(epochs: int) -> TrainConfig:
    return TrainConfig(
        epochs=epochs, batch_size=BATCH, optimizer="adam", lr=0.002, weight_decay=0.0, schedule="constant", device="cpu"
    )


def calibrate(epoch_seconds: float) -> int:
    """Training samples per trial so that one epoch takes ≈ ``epoch_seconds`` on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        probe = 4096
        config = ExperimentConfig(
            dataset=data_config(probe), model=ModelConfig(name="mlp"), training=training_config(3), mixup=MixupConfig()
        )
        times = [m[M.EPOCH_SECONDS] for m in Trainer(config).epochs()]
        per_sample = min(times[1:]) / probe  # the first epoch warms up
    finally:
        torch.set_num_threads(threads)
    return max(BATCH, round(epoch_seconds / per_sample / BATCH) * BATCH)


def study_spec(num_train: int, epochs: int, trials: int) -> Any:
    from studies.spec import StudySpec

    seeds = max(1, trials // len(ALPHAS))
    alphas = list(ALPHAS[: max(1, min(len(ALPHAS), trials))])
    return StudySpec.model_validate(
        {
            "name": "study-overhead",
            "dataset": data_config(num_train).model_dump(mode="json"),
            "model": {"name": "mlp"},
            "training": training_config(epochs).model_dump(mode="json"),
            "mixup": {"alpha": 1.0},
            "search": {"algorithm": "grid", "space": {"alpha": alphas}, "seeds": list(range(seeds))},
            "scheduler": {"name": "fifo"},
            "metric": M.MEDIAN_TEST_ERROR,
            "resources": {"cpu": 1},
            "max_concurrent_trials": CONCURRENCY,
        }
    )


def trial_work(outcome: Any, tracking_uri: str) -> tuple[float, int, int, float]:
    """Σ epoch_seconds over every trial's MLflow metric history; the trial and epoch counts; and when
    (wall clock) the first training pass began: the driver's timestamp of a first epoch minus its
    epoch_seconds (so a little late: evaluation and the report's round trip are in it)."""
    from mlflow.tracking import MlflowClient

    from studies.tracking import existing_trial_runs

    client = MlflowClient(tracking_uri)
    runs = existing_trial_runs(client, outcome.mlflow)
    total, epochs, first = 0.0, 0, float("inf")
    for run_id in runs.values():
        history = client.get_metric_history(run_id, M.EPOCH_SECONDS)
        total += sum(m.value for m in history)
        epochs += len(history)
        first = min([first] + [m.timestamp / 1000 - m.value for m in history if m.step == 1])
    return total, len(runs), epochs, first


def run(args: argparse.Namespace) -> dict[str, Any]:
    epochs = args.epochs
    home = Path(tempfile.mkdtemp(prefix="mxso-"))  # short: Ray's socket paths live under its temp dir
    os.environ["MIXUP_STUDIES_HOME"] = str(home)
    try:
        import ray
        from matplotlib.backends import backend_agg  # noqa: F401  (the report's plot: import it untimed)
        from mlflow.tracking import MlflowClient

        from studies.engine import init_ray, run_study
        from studies.settings import StudySettings

        settings = StudySettings(
            home=home, ray_num_cpus=CONCURRENCY, ray_temp_dir=home / "ray", mlflow_direct_writes=not args.client_writes
        )
        ray_started = time.perf_counter()
        init_ray(settings)
        ray_init = time.perf_counter() - ray_started
        MlflowClient(settings.resolved_tracking_uri).search_experiments()  # create the store's tables
        time.sleep(args.ray_settle_s)
        # Sized last, just before the clock starts: these vCPUs' speed drifts from minute to minute.
        num_train = calibrate(args.trial_seconds / epochs)
        spec = study_spec(num_train, epochs, args.trials)
        try:
            started, started_at = time.perf_counter(), time.time()
            outcome = run_study(spec, settings=settings)
            wall = time.perf_counter() - started
        finally:
            ray.shutdown()
        work, trials, trial_epochs, first = trial_work(outcome, settings.resolved_tracking_uri)
        to_first = first - started_at
        if outcome.status != "succeeded" or trials != len(outcome.trials):
            raise RuntimeError(f"the study ended {outcome.status} with {trials} trial runs: {outcome.notes}")
        ideal = work / CONCURRENCY
        return {
            "benchmark": "study_overhead",
            "quick": args.quick,
            "ray_settle_s": args.ray_settle_s,
            "client_writes": args.client_writes,
            "wall_over_ideal": round(wall / ideal, 4),
            "mlflow_share": round(outcome.mlflow_cpu_seconds / work, 5),
            "mlflow_wall_share": round(outcome.mlflow_seconds / work, 5),
            "wall_s": round(wall, 3),
            "ideal_s": round(ideal, 3),
            "trial_work_s": round(work, 3),
            "mlflow_cpu_s": round(outcome.mlflow_cpu_seconds, 4),
            "mlflow_s": round(outcome.mlflow_seconds, 4),
            "mlflow_calls_per_trial": round(outcome.mlflow_calls / trials, 2),
            "mlflow_cpu_ms_per_trial": round(outcome.mlflow_cpu_seconds / trials * 1000, 2),
            "first_training_s": round(to_first, 3),
            "wall_over_ideal_after_first": round((wall - to_first) / ideal, 4),
            "ray_init_s": round(ray_init, 3),
            "wall_incl_ray_init_over_ideal": round((ray_init + wall) / ideal, 4),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "trials": trials,
            "trial_epochs": trial_epochs,
            "epochs": epochs,
            "train_samples": num_train,
            "mean_trial_s": round(work / trials, 3),
            "concurrency": CONCURRENCY,
            "machine": machine_line(),
            "torch": torch.__version__,
            "ray": ray.__version__,
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--trial-seconds", type=float, default=2.0, help="training time of one trial")
    parser.add_argument(
        "--ray-settle-s", type=float, default=15.0, help="wait after starting Ray before the clock (workers preload)"
    )
    parser.add_argument(
        "--client-writes", action="store_true", help="every MLflow write through MLflow's client (no direct records)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 trials of ≈0.5 s, 2 epochs, no settling")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.trial_seconds, args.ray_settle_s = 4, 2, 0.5, 0.0
    # Ray and Tune print to stdout; the JSON line must be the last line there.
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        result = run(args)
    noise = captured.getvalue()
    if noise.strip():
        print(noise, file=__import__("sys").stderr, end="")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
