"""A StudySpec's search as Ray Tune objects: param space, search algorithm, scheduler."""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from studies.space import POINT, discrete_axes, random_points
from studies.spec import SEED, VARIANT, Range, StudySpec


def param_space(spec: StudySpec) -> dict[str, Any]:
    """Tune's param space; trial configs use the short names of ``studies.space``.

    grid: every axis a ``grid_search``; random: the points are drawn up front
    with the study's seed (so every seed repeats the same configurations);
    optuna: ``choice`` / ``uniform`` / ``loguniform`` domains for TPE to sample.
    """
    seeds = spec.search.seeds
    algorithm = spec.search.algorithm
    if algorithm == "grid":
        space: dict[str, Any] = {name: tune.grid_search(values) for name, values in discrete_axes(spec).items()}
        space[SEED] = tune.grid_search(seeds)
        return space
    if algorithm == "random":
        return {POINT: tune.grid_search(random_points(spec)), SEED: tune.grid_search(seeds)}
    space = {}
    if spec.search.variants:
        space[VARIANT] = tune.choice([v.name for v in spec.search.variants])
    for name, axis in spec.search.space.axes().items():
        if isinstance(axis, Range):
            space[name] = (tune.loguniform if axis.log else tune.uniform)(axis.low, axis.high)
        else:
            space[name] = tune.choice(list(axis))
    space[SEED] = seeds[0]
    return space


def search_algorithm(spec: StudySpec) -> Searcher | None:
    """Optuna's TPE (seeded) for ``optuna``; None lets Tune expand grid/random points itself."""
    if spec.search.algorithm != "optuna":
        return None
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(
        metric=spec.metric, mode=spec.resolved_mode, sampler=optuna.samplers.TPESampler(seed=spec.search.seed)
    )


def scheduler(spec: StudySpec) -> TrialScheduler:
    """FIFO (every trial runs all epochs) or ASHA over epochs."""
    if spec.scheduler.name == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=spec.training.epochs,
            grace_period=min(spec.scheduler.grace_period, spec.training.epochs),
            reduction_factor=spec.scheduler.reduction_factor,
        )
    return FIFOScheduler()


def num_samples(spec: StudySpec) -> int:
    """Tune's num_samples: grid and random expand through grid_search, optuna draws N."""
    return spec.search.num_samples if spec.search.algorithm == "optuna" else 1
