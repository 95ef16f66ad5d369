"""Reading a study's learning curves from MLflow, and drawing the page's plots: how long a study page waits.

A study of ``--trials`` trials × ``--epochs`` epochs (each epoch logs every metric the trainer reports, as the
driver does) is written to a fresh local SQLite store; then, each timed ``--reps`` times (median reported):

- ``trial_curves`` (the batched read: the child runs, then every history in one query), ``curves_for``
  (the histories alone, for trials the caller has read already), and the read run by run with
  ``MlflowClient.get_metric_history`` (what an ``http://`` tracking server gets);
- ``learning_curves_svg`` of those curves and ``alpha_curve_svg`` / ``render_plot_png`` of a report of
  the same size.

Prints one JSON line. ``--quick``: 5 trials × 3 epochs, 1 rep (tests).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from mixup_core import metrics as M
from studies.curves import curves_for, trial_curves
from studies.plots import alpha_curve_svg, learning_curves_svg, render_plot_png
from studies.records import TrialRecord
from studies.report import build_report
from studies.spec import StudySpec
from studies.store import prepare_store
from studies.tracking import PARENT_TAG, STATUS_TAG, TRIAL_ID_TAG

LAYERS = ("input", "layer1", "feature_map")
ALPHAS = (0.0, 0.2, 1.0, 2.0)
LOGGED = (M.TEST_ERROR, M.TRAIN_LOSS, M.TRAIN_ERROR, M.TEST_LOSS, M.MEDIAN_TEST_ERROR, M.EPOCH)


def trial_params(i: int) -> dict[str, Any]:
    return {"layer": LAYERS[i % 3], "alpha": ALPHAS[(i // 3) % 4], "weight_decay": 1e-4, "seed": i // 12}


def write_study(uri: str, trials: int, epochs: int) -> str:
    """A parent run and ``trials`` child runs, every metric of :data:`LOGGED` per epoch; returns the parent id."""
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("bench")
    parent = client.create_run(experiment_id, run_name="bench").info.run_id
    for i in range(trials):
        status = "stopped" if i % 3 == 2 else "finished"
        tags = {PARENT_TAG: parent, TRIAL_ID_TAG: f"t{i:04d}", STATUS_TAG: status}
        run_id = client.create_run(experiment_id, tags=tags, run_name=f"trial {i}", start_time=1000 + i).info.run_id
        last = epochs // 3 if status == "stopped" else epochs
        values = [Metric(k, 50.0 * 0.9**e + i % 7, 1000 + e, e) for e in range(1, last + 1) for k in LOGGED]
        params = [Param(k, str(v)) for k, v in trial_params(i).items()]
        client.log_batch(run_id, metrics=values, params=params)
    return parent


def per_run(uri: str, parent: str) -> int:
    """The same read run by run (``get_metric_history``): the count of points, so the work is not skipped."""
    client = MlflowClient(uri)
    experiment_id = client.get_run(parent).info.experiment_id
    runs = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{parent}'", max_results=50_000)
    return sum(len(client.get_metric_history(r.info.run_id, M.TEST_ERROR)) for r in runs)


def median_s(action: Any, reps: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(reps):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def report_of(trials: int, epochs: int) -> Any:
    spec = StudySpec.model_validate(
        {
            "name": "bench",
            "dataset": {"name": "synthetic"},
            "model": {"name": "mlp"},
            "training": {"epochs": epochs, "device": "cpu"},
            "search": {"space": {"alpha": list(ALPHAS), "layer": list(LAYERS)}, "seeds": list(range(trials // 12 + 1))},
        },
        context={"max_trials": 10**9},
    )
    records = [
        TrialRecord(
            f"t{i}", trial_params(i), "stopped" if i % 3 == 2 else "finished", epochs, {spec.metric: 5.0 + i % 7}
        )
        for i in range(trials)
    ]
    return build_report(spec, records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="5 trials × 3 epochs, 1 rep (tests)")
    opts = parser.parse_args()
    if opts.quick:
        opts.trials, opts.epochs, opts.reps = 5, 3, 1
    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{folder}/mlflow.db"
        prepare_store(uri, Path(folder) / "artifacts")
        parent = write_study(uri, opts.trials, opts.epochs)
        trial_curves(uri, parent)  # first open of the store: MLflow's engine and migrations check, not timed
        bulk_s, curves = median_s(lambda: trial_curves(uri, parent), opts.reps)
        per_run_s, points = median_s(lambda: per_run(uri, parent), opts.reps)
        # the TrialRecords a page has from read_progress
        known = [TrialRecord(c.trial_id, c.params, c.status, run_id=c.run_id) for c in curves]
        histories_s, _ = median_s(lambda: curves_for(uri, known), opts.reps)
    assert sum(len(c.points) for c in curves) == points
    svg_s, svg = median_s(lambda: learning_curves_svg(curves), opts.reps)
    report = report_of(opts.trials, opts.epochs)
    alpha_s, alpha_svg = median_s(lambda: alpha_curve_svg(report), opts.reps)
    png_s, png = median_s(lambda: render_plot_png(report), opts.reps)
    result = {
        "benchmark": "trial_curves",
        "quick": opts.quick,
        "trials": opts.trials,
        "epochs": opts.epochs,
        "points": points,
        "trial_curves_s": round(bulk_s, 4),
        "per_run_history_s": round(per_run_s, 4),
        "curves_for_s": round(histories_s, 4),
        "per_run_vs_batched": round(per_run_s / bulk_s, 2),
        "learning_curves_svg_s": round(svg_s, 4),
        "learning_curves_svg_bytes": len(svg or ""),
        "alpha_curve_svg_s": round(alpha_s, 4),
        "alpha_curve_svg_bytes": len(alpha_svg or ""),
        "report_png_s": round(png_s, 4),
        "report_png_bytes": len(png or b""),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
