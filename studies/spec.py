"""StudySpec: the one description of a study (YAML file, REST body, CLI, engine).

A study is a base :class:`~mixup_core.ExperimentConfig` (dataset, model,
training recipe, mixing) plus what to vary: search-space *axes* (α, weight
decay, mixing layer and the paper's other factors; a list is a grid axis, a
``{low, high, log}`` range is sampled), optional named *variants* (the rows of
the paper's Table 5, each a partial mixing config), and *seeds* (repeats of
every configuration). Every trial it can produce is validated before anything
starts, so a spec that validates runs.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mixup_core import DataConfig, EvalConfig, MixupConfig, ModelConfig, TrainConfig, metrics
from mixup_core.config import LAYER_PATTERN, MAX_SEED, Pairing, Scope, TargetMode, refuse_many_unknown_keys

#: Default cap on the trials one study may expand to (override through validation context "max_trials").
DEFAULT_MAX_TRIALS = 1000
#: "max_trials" that caps nothing: for specs admitted already, and for parses whose caller checks its own cap.
NO_TRIAL_CAP = 2**62

#: Search axis → the ExperimentConfig setting it varies.
AXIS_PATHS: dict[str, str] = {
    "alpha": "mixup.alpha",
    "weight_decay": "training.weight_decay",
    "layer": "mixup.layer",
    "pairing": "mixup.pairing",
    "scope": "mixup.scope",
    "target": "mixup.target",
    "label_smoothing": "mixup.label_smoothing",
    "input_noise": "mixup.input_noise",
    "lr": "training.lr",
}
VARIANT = "variant"
SEED = "seed"
KNOWN_METRICS = (
    metrics.MEDIAN_TEST_ERROR,
    metrics.TEST_ERROR,
    metrics.BEST_TEST_ERROR,
    metrics.TEST_LOSS,
    metrics.VAL_ERROR,
    metrics.VAL_LOSS,
    metrics.TEST_ECE,
    metrics.FGSM_TEST_ERROR,
)


#: A study's name (fullmatch; the same pattern is published in the JSON schema).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: A mixing layer, with the pattern the config checks published in the schema.
LayerName = Annotated[str, Field(json_schema_extra={"pattern": LAYER_PATTERN.pattern})]


class _Spec(BaseModel):
    # No float of a config may be inf or NaN (JSON's 1e400 parses as inf): a budget, a resource or a
    # noise level that is not a number is never meant.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_keys(cls, data: Any) -> Any:
        return refuse_many_unknown_keys(cls, data)


class Range(_Spec):
    """A continuous axis, sampled by ``random`` and ``optuna`` search."""

    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low must be <= high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        return self


# FailFast: a list reports its first bad value, not each of 250,000 (listing errors is work in their number).
NumberAxis = Annotated[list[float], Field(min_length=1, fail_fast=True)] | Range


class SearchSpace(_Spec):
    """The axes of the study; an axis left out keeps the base config's value."""

    alpha: NumberAxis | None = None
    weight_decay: NumberAxis | None = None
    lr: NumberAxis | None = None
    label_smoothing: NumberAxis | None = None
    input_noise: NumberAxis | None = None
    layer: Annotated[list[LayerName], Field(min_length=1, fail_fast=True)] | None = None
    pairing: Annotated[list[Pairing], Field(min_length=1, fail_fast=True)] | None = None
    scope: Annotated[list[Scope], Field(min_length=1, fail_fast=True)] | None = None
    target: Annotated[list[TargetMode], Field(min_length=1, fail_fast=True)] | None = None

    def axes(self) -> dict[str, list[Any] | Range]:
        """The axes that are set, in declaration order."""
        return {name: value for name, value in self if value is not None}


class Variant(_Spec):
    """A named method variant (a row of the paper's Table 5): mixing settings over the base."""

    name: str = Field(min_length=1, max_length=80)
    alpha: float | None = Field(None, ge=0, allow_inf_nan=False)
    layer: LayerName | None = None
    lam_per: Literal["batch", "sample"] | None = None
    pairing: Pairing | None = None
    scope: Scope | None = None
    knn_k: int | None = Field(None, ge=1)
    target: TargetMode | None = None
    label_smoothing: float | None = Field(None, ge=0, lt=1)
    input_noise: float | None = Field(None, ge=0, allow_inf_nan=False)

    def overrides(self) -> dict[str, Any]:
        """The ExperimentConfig settings this variant changes."""
        return {f"mixup.{k}": v for k, v in self if k != "name" and v is not None}


class SearchConfig(_Spec):
    """How the space is searched."""

    algorithm: Literal["grid", "random", "optuna"] = "grid"
    num_samples: int = Field(1, ge=1, description="random: configurations drawn; optuna: trials.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seeds random sampling and Optuna's TPE sampler.")
    space: SearchSpace = SearchSpace()
    variants: Annotated[list[Variant], Field(min_length=1, fail_fast=True)] | None = None
    seeds: Annotated[
        list[Annotated[int, Field(ge=0, le=MAX_SEED)]],
        Field(min_length=1, fail_fast=True, json_schema_extra={"uniqueItems": True}),
    ] = [0]
    seed_data: bool = Field(
        False,
        description="Each seed also seeds the data (dataset.split_seed := seed): the training subset, the noisy "
        "labels, the validation and UCI splits. Off: seeds change initialisation and batch order only.",
    )

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: list[Variant] | None) -> list[Variant] | None:
        duplicates = _repeated(v.name for v in variants or [])  # one pass: 40,000 variants once took 46 s
        if duplicates:
            raise ValueError(f"variant names must be unique, got duplicates {few(duplicates)}")
        return variants

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        duplicates = _repeated(seeds)
        if duplicates:
            raise ValueError(f"seeds must be distinct, got {few(duplicates)} more than once")
        return seeds


def _repeated(values: Iterable[Hashable]) -> list[Hashable]:
    """The values seen more than once, in order of their second appearance (linear time)."""
    seen: set[Hashable] = set()
    repeated: dict[Hashable, None] = {}
    for value in values:
        if value in seen:
            repeated[value] = None
        seen.add(value)
    return list(repeated)


def few(values: Sequence[Any], limit: int = 10) -> str:
    """At most ``limit`` values for a message, and how many more there are (a message stays short)."""
    shown = ", ".join(repr(v) for v in values[:limit])
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"[{shown}{more}]"


class SchedulerConfig(_Spec):
    """Trial scheduling: run every trial to the end (fifo) or stop the weak early (asha)."""

    name: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(1, ge=1, description="asha: epochs before a trial may be stopped.")
    reduction_factor: float = Field(3.0, gt=1)


class Resources(_Spec):
    """Per trial; a fractional gpu packs several small trials on one GPU."""

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class TrackingConfig(_Spec):
    experiment: str | None = Field(None, max_length=200, description="MLflow experiment; default: per study.")


class StudySpec(_Spec):
    """A MixUp hyperparameter study."""

    name: str = Field(
        max_length=100,
        description="Letters, digits, '.', '_' and '-'.",
        json_schema_extra={"pattern": NAME_PATTERN.pattern},
    )
    description: str = Field("", max_length=4000)
    dataset: DataConfig
    model: ModelConfig
    training: TrainConfig = TrainConfig()
    mixup: MixupConfig = MixupConfig()
    evaluation: EvalConfig = EvalConfig()
    search: SearchConfig = SearchConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    metric: str = Field(metrics.MEDIAN_TEST_ERROR, json_schema_extra={"enum": list(KNOWN_METRICS)})
    mode: Literal["min", "max"] | None = Field(None, description="Default: min for errors and losses.")
    baseline: dict[str, float | str] | None = Field(
        None,
        description="The report's reference row, by factor values ({variant: ERM} or {alpha: 0.0, layer: input}); "
        "every row is compared with it (difference, 95 % CI over seeds). Default: the first row with alpha 0.",
    )
    resources: Resources = Resources()
    max_concurrent_trials: int | None = Field(None, ge=1)
    time_budget_s: float | None = Field(None, gt=0)
    max_failures: int = Field(1, ge=0, le=10, description="Retries of a crashed trial.")
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("name")
    @classmethod
    def _name_syntax(cls, name: str) -> str:
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"name must be letters, digits, '.', '_' or '-', got {name!r}")
        return name

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in KNOWN_METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(KNOWN_METRICS)}")
        return metric

    @property
    def resolved_mode(self) -> Literal["min", "max"]:
        return self.mode or ("min" if self.metric in metrics.LOWER_IS_BETTER else "max")

    @model_validator(mode="after")
    def _check_runnable(self, info: ValidationInfo) -> StudySpec:
        from studies.space import check_space

        context = info.context if isinstance(info.context, dict) else {}
        check_space(self, int(context.get("max_trials", DEFAULT_MAX_TRIALS)))
        from studies.comparison import check_baseline

        errors = check_baseline(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self


def admitted_spec(data: str | bytes | dict[str, Any]) -> StudySpec:
    """A spec admitted already (stored by the service, handed to a driver or a trial), read back as JSON text
    or data without the trial cap: the cap in force at submit applied then, and the schema's default one
    (1,000 trials) refused every later read of a larger study it had let in."""
    context = {"max_trials": NO_TRIAL_CAP}
    if isinstance(data, str | bytes):
        return StudySpec.model_validate_json(data, context=context)
    return StudySpec.model_validate(data, context=context)
