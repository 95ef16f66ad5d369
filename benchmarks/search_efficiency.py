"""Search efficiency: Optuna (TPE) + ASHA vs the full grid on the Fashion-MNIST ablation space.

Both studies run through the real engine (``studies.engine.run_study``: local Ray with ``num_cpus=2``
and its own temp dir, 2 trials at a time with ``cpu: 1`` each, MLflow logging to a SQLite store in a
temporary ``MIXUP_STUDIES_HOME``) on the space of ``studies/presets/fashion_mnist_ablation.yaml``:
α ∈ {0, 0.2, 1} × weight decay ∈ {1e-4, 5e-4} × mixing layer ∈ {input, layer1, feature_map} with
``small_cnn`` (SGD momentum 0.9, batch 128, lr 0.05, step schedule, crop + flip), shrunk for CPU cost:
1 seed (the preset has 2), a stratified 2,000-image training subset (10,000), 6 epochs (15) and so the
paper's metric — median test error of the last N epochs, in percent — over the last 4 epochs (10).
The test set is Fashion-MNIST's full 10,000 images (``/usr/share/datasets/fashion-mnist``).

* grid: all 18 configurations, FIFO, every trial runs all epochs: ``grid_trial_epochs`` = 18 × 6.
* optuna + ASHA: TPE over the same three axes (as categorical choices), 18 trials (``--optuna-trials``),
  ASHA on epochs (grace period 2 (``--grace-period``), reduction factor 3, max 6 epochs), once per sampler seed
  (``--sampler-seeds``, default 0–4: one seed says more about its draw than about TPE). The grid is
  deterministic in its configurations, so it runs once; every trial trains with seed 0 in both.

``budget_fraction``: walk the optuna study's trial-epochs in the order they completed (the MLflow
metric timestamps the driver wrote) and count them until the first trial that finished all epochs
with ``median_test_error`` ≤ the grid's best + 0.5 points (that trial's last epoch included);
divide by ``grid_trial_epochs``. Goal ≤ 0.25. When no optuna trial gets there, the fraction is the
whole optuna run's and ``reached`` is false. ``budget_fraction`` is the mean over the sampler seeds
(the expected cost); ``budget_fractions`` has each seed's, ``budget_fraction_max`` the worst.
``mlflow_share``: the CPU time of all the drivers' MLflow writes ÷ their trial work (Σ ``epoch_seconds``:
the training passes), ``mlflow_wall_share`` their wall time ÷ trial work, as in ``study_overhead.py``.

Usage: ``python benchmarks/search_efficiency.py [--epochs 6] [--train-subset 2000] [--optuna-trials 18]
[--sampler-seeds 0,1,2,3,4] [--quick]`` (quick: 2 × 1 × 2 configurations, 600 images, 2 epochs, sampler
seed 0). Prints one JSON line (last on stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine_line

from mixup_core import metrics as M

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
CONCURRENCY = 2
TOLERANCE = 0.5  # points of test error


def study_spec(args: argparse.Namespace, algorithm: str, sampler_seed: int = 0) -> Any:
    from studies.specfile import load_spec, preset_path

    base = load_spec(preset_path("fashion_mnist_ablation")).model_dump(mode="json")
    base["name"] = f"search-efficiency-{algorithm}" + (f"-{sampler_seed}" if algorithm == "optuna" else "")
    base["dataset"].update(train_subset=args.train_subset, data_dir=str(args.data_dir.absolute()), download=False)
    base["training"].update(epochs=args.epochs, device="cpu")
    base["evaluation"]["median_window"] = args.median_window
    space = base["search"]["space"]
    if args.quick:
        space.update(alpha=[0.0, 1.0], weight_decay=[0.0005], layer=["input", "feature_map"])
    base["search"]["seeds"] = [0]
    if algorithm == "optuna":
        base["search"].update(algorithm="optuna", num_samples=args.optuna_trials, seed=sampler_seed)
        base["scheduler"] = {"name": "asha", "grace_period": args.grace_period, "reduction_factor": 3}
    else:
        base["scheduler"] = {"name": "fifo"}
    base["resources"] = {"cpu": 1}
    base["max_concurrent_trials"] = CONCURRENCY
    from studies.spec import StudySpec

    return StudySpec.model_validate(base)


def epoch_events(outcome: Any, tracking_uri: str) -> list[tuple[int, str, int, float, float]]:
    """(driver timestamp ms, trial id, epoch, median test error, epoch seconds) of every trial-epoch."""
    from mlflow.tracking import MlflowClient

    from studies.tracking import existing_trial_runs

    client = MlflowClient(tracking_uri)
    events = []
    for trial_id, run_id in existing_trial_runs(client, outcome.mlflow).items():
        errors = {m.step: m for m in client.get_metric_history(run_id, M.MEDIAN_TEST_ERROR)}
        seconds = {m.step: m.value for m in client.get_metric_history(run_id, M.EPOCH_SECONDS)}
        for step, metric in errors.items():
            events.append((metric.timestamp, trial_id, step, metric.value, seconds.get(step, 0.0)))
    return sorted(events)


def run_one(spec: Any, settings: Any) -> tuple[Any, list[tuple[int, str, int, float, float]], float]:
    from studies.engine import run_study

    started = time.perf_counter()
    outcome = run_study(spec, settings=settings)
    wall = time.perf_counter() - started
    if outcome.status != "succeeded":
        raise RuntimeError(f"{spec.name} ended {outcome.status}: {outcome.notes}")
    return outcome, epoch_events(outcome, settings.resolved_tracking_uri), wall


def budget_until(events: list[tuple[int, str, int, float, float]], epochs: int, target: float) -> tuple[int, float]:
    """Trial-epochs spent until the first trial finished all epochs at ≤ target (all of them when none did)."""
    for spent, (_, _, epoch, error, _) in enumerate(events, start=1):
        if epoch == epochs and error <= target:
            return spent, error
    finals = [e[3] for e in events if e[2] == epochs]
    return len(events), min(finals) if finals else float("inf")


def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="mxse-"))  # short: Ray's socket paths live under its temp dir
    os.environ["MIXUP_STUDIES_HOME"] = str(home)
    try:
        import ray

        from studies.engine import init_ray
        from studies.settings import StudySettings

        settings = StudySettings(home=home, ray_num_cpus=CONCURRENCY, ray_temp_dir=home / "ray")
        init_ray(settings)
        try:
            grid, grid_events, grid_wall = run_one(study_spec(args, "grid"), settings)
            searches = [run_one(study_spec(args, "optuna", seed), settings) for seed in args.sampler_seeds]
        finally:
            ray.shutdown()
        grid_finals = {trial: error for _, trial, epoch, error, _ in grid_events if epoch == args.epochs}
        grid_best = min(grid_finals.values())
        per_seed = [budget_until(events, args.epochs, grid_best + TOLERANCE) for _, events, _ in searches]
        fractions = [spent / len(grid_events) for spent, _ in per_seed]
        work = sum(e[4] for e in grid_events) + sum(e[4] for _, events, _ in searches for e in events)
        outcomes = [grid] + [outcome for outcome, _, _ in searches]
        mlflow_cpu_s = sum(outcome.mlflow_cpu_seconds for outcome in outcomes)
        mlflow_s = sum(outcome.mlflow_seconds for outcome in outcomes)
        return {
            "benchmark": "search_efficiency",
            "quick": args.quick,
            "budget_fraction": round(statistics.fmean(fractions), 4),
            "budget_fraction_max": round(max(fractions), 4),
            "budget_fractions": [round(f, 4) for f in fractions],
            "sampler_seeds": args.sampler_seeds,
            "grid_best_error": round(grid_best, 3),
            "found_error": round(max(found for _, found in per_seed), 3),
            "found_errors": [round(found, 3) for _, found in per_seed],
            "reached": all(found <= grid_best + TOLERANCE for _, found in per_seed),
            "optuna_epochs_to_target": [spent for spent, _ in per_seed],
            "grid_trial_epochs": len(grid_events),
            "optuna_trial_epochs": [len(events) for _, events, _ in searches],
            "grid_trials": len(grid_finals),
            "optuna_trials": [len(outcome.trials) for outcome, _, _ in searches],
            "optuna_finished_trials": [sum(1 for e in events if e[2] == args.epochs) for _, events, _ in searches],
            "mlflow_share": round(mlflow_cpu_s / work, 5),
            "mlflow_wall_share": round(mlflow_s / work, 5),
            "mlflow_cpu_s": round(mlflow_cpu_s, 3),
            "mlflow_s": round(mlflow_s, 3),
            "trial_work_s": round(work, 2),
            "grid_wall_s": round(grid_wall, 1),
            "optuna_wall_s": [round(wall, 1) for _, _, wall in searches],
            "epochs": args.epochs,
            "train_subset": args.train_subset,
            "median_window": args.median_window,
            "grace_period": args.grace_period,
            "seeds": 1,
            "machine": machine_line(),
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        message = f"{text!r} is not a comma-separated list of integers"
        raise argparse.ArgumentTypeError(message) from error
    if not seeds:
        raise argparse.ArgumentTypeError(f"{text!r} names no seed")
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-subset", type=int, default=2000)
    parser.add_argument("--median-window", type=int, default=4)
    parser.add_argument("--optuna-trials", type=int, default=18)
    parser.add_argument("--grace-period", type=int, default=2, help="ASHA's epochs before its first cut")
    parser.add_argument(
        "--sampler-seeds", type=seed_list, default=[0, 1, 2, 3, 4], help="TPE sampler seeds, comma-separated"
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 configurations, 600 images, 2 epochs")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.train_subset, args.median_window, args.optuna_trials = 2, 600, 2, 3
        args.sampler_seeds = args.sampler_seeds[:1]
    # Ray and Tune print to stdout; the JSON line must be the last line there.
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        result = run(args)
    if captured.getvalue().strip():
        print(captured.getvalue(), file=sys.stderr, end="")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
