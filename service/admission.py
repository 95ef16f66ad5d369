"""Admission: what one study may ask of this service, checked at submit (beyond the schema).

The schema (:class:`~studies.spec.StudySpec`) says what a study *is*; this module says what this
deployment will *take*: every size a spec chooses is bounded by a ``MIXUP_STUDIES_*`` setting, and a
trial may not ask for more CPUs or GPUs than one node of the cluster has (it would never start, and
its study would hold a running slot for nothing). Each refusal names the field, the value and the
setting; :func:`admit` reports them all at once as a :class:`~service.errors.BadSpec` (422).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

from service.errors import BadSpec
from service.settings import ServiceSettings
from studies.space import trial_count
from studies.spec import StudySpec

Problem = tuple[str, str]


def setting_env(name: str) -> str:
    """The environment variable of a :class:`ServiceSettings` field."""
    return f"MIXUP_STUDIES_{name.upper()}"


@dataclass(frozen=True)
class Capacity:
    """The most one trial may ask for (None: unknown here, left to the driver) and why, for refusals."""

    cpus: float | None
    gpus: float | None
    cpus_from: str
    gpus_from: str


@functools.cache
def visible_gpus() -> int:
    """GPUs a local Ray started on this machine would find (both honour CUDA_VISIBLE_DEVICES)."""
    import torch  # already imported with mixup_core's configs; a count reads NVML, it creates no CUDA context

    return int(torch.cuda.device_count())


def uses_local_ray(settings: ServiceSettings) -> bool:
    """Whether drivers start their own Ray on this machine (else they join a cluster we cannot see)."""
    return settings.launcher == "local" and not (settings.ray_address or os.environ.get("RAY_ADDRESS"))


def capacity(settings: ServiceSettings) -> Capacity:
    """The per-trial maximum: the settings when given, else the local Ray's machine, else unknown."""
    local = uses_local_ray(settings)
    cpus, cpus_from = settings.max_trial_cpus, setting_env("max_trial_cpus")
    if cpus is None and local:
        if settings.ray_num_cpus is not None:
            cpus, cpus_from = settings.ray_num_cpus, f"the local Ray's, {setting_env('ray_num_cpus')}"
        else:
            cpus, cpus_from = os.cpu_count() or 1, "the local Ray's: this machine's cores"
    gpus, gpus_from = settings.max_trial_gpus, setting_env("max_trial_gpus")
    if gpus is None and local:
        gpus, gpus_from = visible_gpus(), "the local Ray's: the GPUs this machine has"
    return Capacity(cpus, gpus, cpus_from, gpus_from)


def _num(value: float) -> str:
    """1000, 2592000, 0.5: the number as a user wrote it (no exponent, no trailing .0)."""
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e18 else f"{value:g}"


def _over(field: str, value: float | None, limit: float, setting: str, what: str = "") -> Problem | None:
    if value is None or value <= limit:
        return None
    return field, f"{_num(value)}{what} is over the limit of {_num(limit)} ({setting_env(setting)})"


def _synthetic_problems(spec: StudySpec, s: ServiceSettings) -> list[Problem | None]:
    synthetic = spec.dataset.synthetic
    if synthetic is None:
        return []
    sample = math.prod(synthetic.shape)
    total = (synthetic.num_train + synthetic.num_test) * sample
    where = "dataset.synthetic"
    return [
        _over(f"{where}.num_train", synthetic.num_train, s.max_samples, "max_samples"),
        _over(f"{where}.num_test", synthetic.num_test, s.max_samples, "max_samples"),
        _over(f"{where}.num_classes", synthetic.num_classes, s.max_classes, "max_classes"),
        _over(
            f"{where}.shape", sample, s.max_sample_values, "max_sample_values", f" values per sample {synthetic.shape}"
        ),
        _over(where, total, s.max_dataset_values, "max_dataset_values", " values in the dataset"),
    ]


def size_problems(spec: StudySpec, s: ServiceSettings) -> list[Problem]:
    """Every size of ``spec`` over its setting."""
    found = [
        _over("training.epochs", spec.training.epochs, s.max_epochs, "max_epochs"),
        _over("training.batch_size", spec.training.batch_size, s.max_batch_size, "max_batch_size"),
        _over("evaluation.batch_size", spec.evaluation.batch_size, s.max_batch_size, "max_batch_size"),
        _over("dataset.train_subset", spec.dataset.train_subset, s.max_samples, "max_samples"),
        *_synthetic_problems(spec, s),
        _over("search.seeds", len(spec.search.seeds), s.max_seeds, "max_seeds", " seeds"),
        _over("search.variants", len(spec.search.variants or ()), s.max_variants, "max_variants", " variants"),
        _over("search", trial_count(spec), s.max_trials, "max_trials", " trials"),
        _over("max_concurrent_trials", spec.max_concurrent_trials, s.max_concurrent_trials, "max_concurrent_trials"),
        _over("time_budget_s", spec.time_budget_s, s.max_time_budget_s, "max_time_budget_s"),
    ]
    return [problem for problem in found if problem is not None]


def resource_problems(spec: StudySpec, cluster: Capacity) -> list[Problem]:
    """Per-trial resources no node can hold: such a trial would wait forever, and its study with it."""
    problems = []
    asked = spec.resources
    if cluster.cpus is not None and asked.cpu > cluster.cpus:
        problems.append(
            ("resources.cpu", f"{_num(asked.cpu)} CPUs per trial is more than a node has: {_num(cluster.cpus)} "
             f"({cluster.cpus_from}; {setting_env('max_trial_cpus')})")
        )  # fmt: skip
    if cluster.gpus is not None and asked.gpu > cluster.gpus:
        problems.append(
            ("resources.gpu", f"{_num(asked.gpu)} GPUs per trial is more than a node has: {_num(cluster.gpus)} "
             f"({cluster.gpus_from}; {setting_env('max_trial_gpus')})")
        )  # fmt: skip
    return problems


def admit(spec: StudySpec, settings: ServiceSettings) -> None:
    """Raise :class:`BadSpec` naming every limit ``spec`` is over; return when the service takes it."""
    problems = size_problems(spec, settings) + resource_problems(spec, capacity(settings))
    if problems:
        raise BadSpec(problems)
