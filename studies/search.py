"""A StudySpec's search as Ray Tune objects: param space, search algorithm, scheduler."""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.experiment import Trial
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


class _ScansFromFirstOpen:
    """Tune's ``choose_trial_to_run`` without walking past every ended trial each time.

    Tune's FIFO scheduler (ASHA's too) looks for a trial to start by walking the study's whole trial list from
    its first trial, several times per trial started: at 1,000 trials of a short trial that walk was ~6 ms of
    driver time per trial, and it grows with the trial count (the study's cost with its square). Trials at the
    front that have ended for good (``TERMINATED``, ``ERROR``: a trial to be retried goes back to ``PENDING``
    without passing through ``ERROR``) are skipped once and for all; the cursor is not kept across a pickle, so
    a restored study, which may reopen errored trials, scans from the start again (nor in a scheduler's saved
    state).
    """

    _cursor = 0

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        trials = tune_controller.get_trials()
        while self._cursor < len(trials) and trials[self._cursor].status in (Trial.TERMINATED, Trial.ERROR):
            self._cursor += 1
        for wanted in (Trial.PENDING, Trial.PAUSED):
            for index in range(self._cursor, len(trials)):
                if trials[index].status == wanted:
                    return trials[index]
        return None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_cursor", None)
        return state

    def save(self, checkpoint_path: str) -> None:
        # ASHA saves its __dict__ itself (not through pickle's __getstate__): without the cursor, as above.
        cursor = self.__dict__.pop("_cursor", None)
        try:
            super().save(checkpoint_path)  # type: ignore[misc]
        finally:
            if cursor is not None:
                self._cursor = cursor


class FifoScheduler(_ScansFromFirstOpen, FIFOScheduler):
    """Tune's FIFO scheduler, choosing the next trial in time independent of the ended trials' count."""


class AshaScheduler(_ScansFromFirstOpen, ASHAScheduler):
    """Tune's ASHA scheduler, choosing the next trial in time independent of the ended trials' count."""


def scheduler(spec: StudySpec) -> TrialScheduler:
    """FIFO (every trial runs all epochs) or ASHA over epochs."""
    if spec.scheduler.name == "asha":
        return AshaScheduler(
            time_attr="training_iteration",
            max_t=spec.training.epochs,
            grace_period=min(spec.scheduler.grace_period, spec.training.epochs),
            reduction_factor=spec.scheduler.reduction_factor,
        )
    return FifoScheduler()


def num_samples(spec: StudySpec) -> int:
    """Tune's num_samples: grid and random expand through grid_search, optuna draws N."""
    return spec.search.num_samples if spec.search.algorithm == "optuna" else 1
