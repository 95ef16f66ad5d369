"""From a StudySpec to trials: expansion, counting, validation, per-trial configs.

A trial is identified by a flat parameter dict of short names (``alpha``,
``weight_decay``, ``layer``, ..., ``variant``, ``seed``): the same names appear
as Tune's config keys, MLflow params and report columns.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from mixup_core import ExperimentConfig
from studies.probes import probe_points
from studies.spec import AXIS_PATHS, SEED, VARIANT, Range, few

if TYPE_CHECKING:
    from studies.spec import StudySpec, Variant

Params = dict[str, Any]
#: Tune config key holding a pre-drawn point of a random search (a dict of axis values).
POINT = "point"


def base_config(spec: StudySpec) -> ExperimentConfig:
    """The experiment every trial starts from."""
    return ExperimentConfig(
        dataset=spec.dataset, model=spec.model, mixup=spec.mixup, training=spec.training, evaluation=spec.evaluation
    )


def trial_params(config: dict[str, Any]) -> Params:
    """A Tune trial config as flat parameters (a random search's pre-drawn point unpacked)."""
    params = {k: v for k, v in config.items() if k != POINT}
    params.update(config.get(POINT, {}))
    return params


def trial_config(spec: StudySpec, params: Params, variants: dict[str, Variant] | None = None) -> ExperimentConfig:
    """The full, validated experiment of one trial (``variants``: the spec's by name, when already at hand)."""
    overrides: dict[str, Any] = {}
    if VARIANT in params:
        variants = variants if variants is not None else {v.name: v for v in spec.search.variants or []}
        overrides.update(variants[params[VARIANT]].overrides())
    for axis, path in AXIS_PATHS.items():
        if axis in params:
            overrides[path] = params[axis]
    overrides["training.seed"] = params.get(SEED, spec.training.seed)
    if spec.search.seed_data:
        overrides["dataset.split_seed"] = overrides["training.seed"]
    # Unvalidated base: a base that no trial runs as-is (alpha 1 with batch size 1, every trial alpha 0) is fine.
    base = ExperimentConfig.model_construct(
        dataset=spec.dataset, model=spec.model, mixup=spec.mixup, training=spec.training, evaluation=spec.evaluation
    )
    return base.with_overrides(overrides)


def discrete_axes(spec: StudySpec) -> dict[str, list[Any]]:
    """List axes plus the variant axis (names), in a stable order."""
    axes: dict[str, list[Any]] = {}
    if spec.search.variants:
        axes[VARIANT] = [v.name for v in spec.search.variants]
    for name, axis in spec.search.space.axes().items():
        if isinstance(axis, list):
            axes[name] = list(axis)
    return axes


def _product(axes: dict[str, list[Any]]) -> list[Params]:
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]


def grid_points(spec: StudySpec) -> list[Params]:
    """Every configuration of a grid study, without seeds."""
    return _product(discrete_axes(spec))


def random_points(spec: StudySpec) -> list[Params]:
    """``num_samples`` configurations drawn with the study's seed (reproducible), without seeds."""
    rng = np.random.default_rng(spec.search.seed)
    discrete = discrete_axes(spec)
    ranges = {k: v for k, v in spec.search.space.axes().items() if isinstance(v, Range)}
    points = []
    for _ in range(spec.search.num_samples):
        point: Params = {name: values[int(rng.integers(len(values)))] for name, values in discrete.items()}
        for name, r in ranges.items():
            if r.log:
                point[name] = float(math.exp(rng.uniform(math.log(r.low), math.log(r.high))))
            else:
                point[name] = float(rng.uniform(r.low, r.high))
        points.append(point)
    return points


def trial_count(spec: StudySpec) -> int:
    """How many trials the study will run (before early stopping)."""
    seeds = len(spec.search.seeds)
    if spec.search.algorithm == "grid":
        return math.prod(len(v) for v in discrete_axes(spec).values()) * seeds
    if spec.search.algorithm == "random":
        return spec.search.num_samples * seeds
    return spec.search.num_samples


def _structural_errors(spec: StudySpec, max_trials: int) -> list[str]:
    errors = []
    space = spec.search.space.axes()
    algorithm = spec.search.algorithm
    if algorithm == "grid":
        errors += [
            f"search.space.{name}: a range needs algorithm random or optuna; grid takes a list of values"
            for name, axis in space.items()
            if isinstance(axis, Range)
        ]
    axis_fields = {AXIS_PATHS[a].removeprefix("mixup.") for a in space}
    clashes: dict[str, list[str]] = {}  # setting -> the variants that set it: one message each, not per variant
    for variant in spec.search.variants or [] if axis_fields else []:
        for field in sorted(variant.model_fields_set & axis_fields):  # only what it sets: fast for 40,000
            if getattr(variant, field) is not None:
                clashes.setdefault(f"mixup.{field}", []).append(variant.name)
    errors += [
        f"search.variants {few(names)} set {path}, which is also a search axis" for path, names in clashes.items()
    ]
    if algorithm == "optuna" and len(spec.search.seeds) > 1:
        errors.append(
            "search.seeds: optuna suggests one configuration per trial, so it takes one seed, "
            f"got {len(spec.search.seeds)}: {few(spec.search.seeds)}"
        )
    if spec.resources.gpu > 0 and spec.training.device == "cpu":
        errors.append(f"resources.gpu: {spec.resources.gpu} GPUs asked for a CPU-only run (training.device='cpu')")
    if spec.training.device.startswith("cuda:") and spec.training.device != "cuda:0":
        # Ray hands each trial its GPUs renumbered from 0: another index names a GPU the trial cannot see.
        errors.append(f"training.device: a trial sees its GPU as cuda:0, got {spec.training.device!r}; use 'auto'")
    count = trial_count(spec)
    if count > max_trials:
        field = "search.num_samples" if algorithm != "grid" else "search"
        errors.append(f"{field}: the study expands to {count} trials, above the limit of {max_trials}")
    return errors


def _first_message(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    message = _cut(str(first["msg"]).removeprefix("Value error, "), 300)
    return f"{where}: {message}" if where else message


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def check_space(spec: StudySpec, max_trials: int) -> None:
    """Raise ValueError naming every reason the study cannot run (at most five trials that cannot).

    Validates the few trials of :func:`studies.probes.probe_points`, whose validity implies every
    trial's: the cost grows with the spec, never with the number of trials it describes.
    """
    errors = _structural_errors(spec, max_trials)
    if not errors:
        seen: set[str] = set()
        variants = {v.name: v for v in spec.search.variants or []}
        for point in probe_points(spec):
            try:
                trial_config(spec, point, variants)
            except ValidationError as error:
                message = _first_message(error)
                if message not in seen:
                    seen.add(message)
                    shown = ", ".join(f"{k}={_cut(repr(v), 100)}" for k, v in point.items()) or "the base configuration"
                    errors.append(f"trial with {shown} cannot run: {message}")
            if len(errors) >= 5:
                break
    if errors:
        raise ValueError("; ".join(errors))
