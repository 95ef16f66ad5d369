"""Run a reproduction: its study through the engine (Ray Tune + MLflow), its claims judged, one JSON line.

The line (printed and appended to a ``.jsonl`` file) holds when and where it ran (the machine and its load
average before and after: other work on the cores slows a run and says how far its wall time can be
compared), how long it took, the study's id and outcome, and each claim's paper numbers, ours, the
difference with its 95 % CI, n and verdict. :mod:`studies.reproduce.render` turns the file into
docs/REPRODUCTION.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studies.data_location import place_data_dir
from studies.reproduce.claims import NO_DATA, judge
from studies.reproduce.experiments import DEFAULT_RESULTS, Experiment
from studies.reproduce.machine import load_average, machine
from studies.settings import StudySettings

USER = "reproduce"


def _summary(spec: Any) -> dict[str, Any]:
    """The settings a reader needs to weigh the numbers (the whole spec is in MLflow under the study id)."""
    return {
        "dataset": spec.dataset.name,
        "train_subset": spec.dataset.train_subset,
        "label_noise": spec.dataset.label_noise,
        "label_noise_mode": spec.dataset.label_noise_mode,
        "model": spec.model.name,
        "width": spec.model.width,
        "epochs": spec.training.epochs,
        "batch_size": spec.training.batch_size,
        "optimizer": spec.training.optimizer,
        "lr": spec.training.lr,
        "weight_decay": spec.training.weight_decay,
        "space": {k: v for k, v in spec.search.space.model_dump(mode="json").items() if v is not None},
        "variants": [v.name for v in spec.search.variants or []],
        "seeds": list(spec.search.seeds),
        "seed_data": spec.search.seed_data,
        "metric": spec.metric,
    }


def run_experiment(
    experiment: Experiment,
    *,
    quick: bool = False,
    settings: StudySettings | None = None,
    results: Path | None = DEFAULT_RESULTS,
    echo: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run ``experiment``'s study to its end, judge its claims, and record the JSON line.

    Args:
        experiment: what to run.
        quick: apply the experiment's quick overrides (the test suite's run).
        settings: where the study's MLflow store, Ray results and data live (default: the environment's).
        results: the ``.jsonl`` file the line is appended to; None: not written.
        echo: called with the line (default: printed on stdout); None: silent.

    Returns:
        The line as a dict.
    """
    from studies.engine import run_study  # imports Ray: only where a study runs

    settings = settings or StudySettings()
    spec = place_data_dir(experiment.spec(quick, settings.max_trials), settings.resolved_data_dir)
    load_before, started = load_average(), time.monotonic()
    outcome = run_study(spec, settings=settings, user=USER)
    wall = time.monotonic() - started
    claims: list[dict[str, Any]] = []
    for claim in experiment.claims:
        try:
            claims.append(judge(spec, outcome.trials, claim).as_json())
        except ValueError as error:  # a failed study has no row to compare: say so rather than lose the line
            if outcome.status == "succeeded":
                raise
            claims.append({"label": claim.title, "metric": claim.metric, "verdict": NO_DATA, "error": str(error)})
    line = {
        "experiment": experiment.name,
        "title": experiment.title,
        "preset": experiment.preset,
        "quick": quick,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {**machine(), "load_before": load_before, "load_after": load_average()},
        "wall_s": round(wall, 1),
        "study_id": outcome.study_id,
        "status": outcome.status,
        "trials": outcome.report.counts,
        "tracking_uri": settings.resolved_tracking_uri,
        "settings": _summary(spec),
        "claims": claims,
    }
    text = json.dumps(line, sort_keys=False)
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        with results.open("a", encoding="utf-8") as file:
            file.write(text + "\n")
    if echo is not None:
        echo(text)
    return line
