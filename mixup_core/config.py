"""Configuration models of mixup_core.

These pydantic models are the vocabulary the whole project shares: the study
schema in ``studies`` composes them instead of re-declaring their fields. Each
model rejects unknown keys and impossible values; :class:`ExperimentConfig`
checks the combinations (a mixing layer the model lacks, KNN partners at a
hidden layer, ...) before anything is loaded or trained.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mixup_core.errors import InvalidConfig

# Matched with fullmatch (a bare ``$`` also matches before a final newline) and spelled without ``\w`` or
# ``\d`` (Unicode in Python, ASCII in JSON Schema): the same strings pass here and in the published schema.
LAYER_PATTERN = re.compile(r"^(input|layer[1-9]|feature_map|module:[A-Za-z_][A-Za-z0-9_.]*)$")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")

#: Largest seed: Optuna's sampler and NumPy's legacy generator take 32-bit seeds, and torch.manual_seed overflows
#: past 64 bits (the trainer adds offsets to the seed); one range for every seed of a config or a study.
MAX_SEED = 2**32 - 1

Pairing = Literal["random", "knn"]
Scope = Literal["all", "same_class"]
TargetMode = Literal["mix", "closest"]


#: A fraction in (0, 1), published in the schema; the validator of the field that uses it says what is wrong.
_Fraction = Annotated[float, Field(json_schema_extra={"exclusiveMinimum": 0, "exclusiveMaximum": 1})]

#: Unknown keys of one object reported one by one; more are one error (see refuse_many_unknown_keys).
MAX_UNKNOWN_KEYS = 10


def refuse_many_unknown_keys(model: type[BaseModel], data: Any) -> Any:
    """One error for an object with many unknown keys, where pydantic would give one per key.

    A 1 MB body of 100,000 tiny keys made 100,000 errors, and listing them took 0.8 s.
    """
    # The cheap test first: this runs for every object of a body (40,000 variants).
    if isinstance(data, dict) and len(data) > MAX_UNKNOWN_KEYS + len(model.__pydantic_fields__):
        unknown = [str(k) for k in data if k not in model.__pydantic_fields__]
        shown = ", ".join(repr(k[:40]) for k in unknown[:MAX_UNKNOWN_KEYS])
        raise ValueError(
            f"{len(unknown)} unknown keys ({shown}, ...); the settings are: {', '.join(model.__pydantic_fields__)}"
        )
    return data


class _Config(BaseModel):
    # No float of a config may be inf or NaN (JSON's 1e400 parses as inf): a rate, a fraction or a
    # noise level that is not a number is never meant, and it would fail deep inside training.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_keys(cls, data: Any) -> Any:
        return refuse_many_unknown_keys(cls, data)


def names_schema(names: Callable[[], Sequence[str]]) -> Callable[[dict[str, Any]], None]:
    """A ``json_schema_extra`` that lists the names a field's validator accepts, as an ``enum``.

    The validators check names against the registries (imported late: they import this module's
    neighbours); without the list in the schema, bodies that are valid by the published schema were refused.
    """

    def extra(schema: dict[str, Any]) -> None:
        schema["enum"] = list(names())

    return extra


def _dataset_names() -> Sequence[str]:
    from mixup_core.data.registry import DATASET_NAMES

    return DATASET_NAMES


def _model_names() -> Sequence[str]:
    from mixup_core.models.registry import known_model_names

    return known_model_names()


class MixupConfig(_Config):
    """How each training batch is mixed (and the paper's ablation baselines).

    ``alpha = 0`` is ERM: no mixing and λ = 1. The paper's Table 5 rows map to:
    ``pairing`` random (RP) / knn (KNN), ``scope`` all (AC) / same_class (SC),
    ``target`` mix (mix labels) / closest ("mix inputs only": the label of the
    sample with weight >= 0.5), ``label_smoothing`` ε and ``input_noise`` σ.
    """

    alpha: float = Field(1.0, ge=0, allow_inf_nan=False, description="λ ~ Beta(α, α); 0 is ERM.")
    layer: str = Field(
        "input",
        description="Where to mix: input, layer1..layer4 (the representation entering "
        "residual stage k), feature_map (before global pooling) or module:<dotted.name>.",
        json_schema_extra={"pattern": LAYER_PATTERN.pattern},
    )
    lam_per: Literal["batch", "sample"] = Field("batch", description="One λ per batch (paper) or per sample.")
    pairing: Pairing = Field("random", description="random: in-batch permutation; knn: a k-nearest neighbour.")
    scope: Scope = Field("all", description="Partners from all classes or the same class only.")
    knn_k: int = Field(200, ge=1, description="Neighbours considered by knn pairing.")
    target: TargetMode = Field("mix", description="mix: λ-mixed labels; closest: the dominant sample's label.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="ε/C to each wrong class.")
    input_noise: float = Field(0.0, ge=0, allow_inf_nan=False, description="σ of Gaussian input noise.")

    @field_validator("layer")
    @classmethod
    def _layer_syntax(cls, layer: str) -> str:
        if not LAYER_PATTERN.fullmatch(layer):
            raise ValueError(f"layer must be input, layer1..layer9, feature_map or module:<dotted.name>, got {layer!r}")
        return layer

    @property
    def mixes(self) -> bool:
        """True when batches are mixed at all (α > 0)."""
        return self.alpha > 0


class SyntheticConfig(_Config):
    """Shape of the ``synthetic`` dataset: Gaussian class clusters, seeded."""

    num_train: int = Field(512, ge=2)
    num_test: int = Field(256, ge=1)
    num_classes: int = Field(4, ge=2)
    shape: tuple[int, ...] = Field((16,), min_length=1, max_length=3, fail_fast=True)
    noise: float = Field(1.0, gt=0, description="Within-class standard deviation; centres are unit-norm ×3.")

    @field_validator("shape")
    @classmethod
    def _positive_dims(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < 1 for d in shape):
            raise ValueError(f"every dimension must be >= 1, got {shape=}")
        return shape


class DataConfig(_Config):
    """Which dataset to train on and how to carve it."""

    name: str = Field(
        description="cifar10, cifar100, mnist, fashion_mnist, uci:<iris|wine|breast_cancer|digits>, synthetic.",
        json_schema_extra=names_schema(_dataset_names),
    )
    data_dir: Path | None = Field(
        None,
        description="Where the files are (or go): an absolute path (a spec may give one relative to the data "
        "root, MIXUP_STUDIES_DATA_DIR); None: the default location.",
    )
    download: bool = Field(True, description="Download CIFAR/MNIST when missing and a network is there.")
    train_subset: int | None = Field(None, ge=1, description="Stratified subset of this many training samples.")
    label_noise: float = Field(
        0.0, ge=0, lt=1, description="Fraction of training labels replaced (how: label_noise_mode)."
    )
    # flip stays the default: it is what label_noise meant before the mode existed, and a stored study that is
    # resumed or re-run must train on the same labels as before.
    label_noise_mode: Literal["flip", "uniform"] = Field(
        "flip",
        description="flip: each replaced label becomes a random *different* class (exactly label_noise wrong); "
        "uniform: the paper's (Zhang et al. 2017): a class drawn from all C, so ~1/C land on the true one.",
    )
    validation_fraction: float = Field(0.0, ge=0, lt=1, description="Stratified share of train held out.")
    augment: bool | None = Field(None, description="Random crop (pad 4) + flip; None: on for CIFAR only.")
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seeds the subset, label noise, validation and UCI splits."
    )
    standardize: bool = Field(
        True,
        description="UCI only: scale each feature to mean 0, std 1 with the training split's statistics; False: "
        "the raw feature values (as scikit-learn ships them).",
    )
    synthetic: SyntheticConfig | None = None

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        from mixup_core.data.registry import DATASET_NAMES

        if name not in DATASET_NAMES:
            raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")
        return name

    @model_validator(mode="after")
    def _synthetic_only_for_synthetic(self) -> DataConfig:
        if self.synthetic is not None and self.name != "synthetic":
            raise ValueError(f"'synthetic' options are only for name='synthetic', got name={self.name!r}")
        # Images are normalised with their published per-channel statistics and synthetic data come centred;
        # the switch exists for the UCI sets only, so elsewhere it would silently do nothing.
        if not self.standardize and not self.name.startswith("uci:"):
            raise ValueError(f"standardize=False is for uci:* datasets only, got name={self.name!r}")
        return self


class ModelConfig(_Config):
    """Which network to train."""

    name: str = Field(
        description="preact_resnet18, wide_resnet28_10, small_cnn, lenet_fc, mlp, "
        "or torchvision:<classification model>.",
        json_schema_extra=names_schema(_model_names),
    )
    width: float = Field(
        1.0,
        gt=0,
        le=16,
        allow_inf_nan=False,
        description="Multiplies the layer sizes of a built-in model; 1.0 is the paper's width "
        "(preact_resnet18 at 0.25 has 16..128 channels and 1/16 of the parameters). Built-ins only.",
    )

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from mixup_core.models.registry import check_model_name

        check_model_name(name)
        return name

    @model_validator(mode="after")
    def _width_for_built_ins(self) -> ModelConfig:
        from mixup_core.models.registry import check_model_width

        check_model_width(self.name, self.width)
        return self


class TrainConfig(_Config):
    """The optimisation recipe. Defaults are the paper's CIFAR recipe."""

    epochs: int = Field(200, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0, allow_inf_nan=False)
    schedule: Literal["step", "cosine", "constant"] = Field(
        "step", description="step: lr × gamma at each milestone (fractions of the epochs)."
    )
    milestones: tuple[_Fraction, ...] = Field(
        (0.5, 0.75), fail_fast=True, description="Increasing fractions of the epochs (paper: 100/150 of 200)."
    )
    gamma: float = Field(0.1, gt=0, le=1)
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seeds initialisation, batch order, λ, partners and augmentation."
    )
    device: str = Field(
        "auto",
        description="auto (CUDA when present), cpu, cuda or cuda:N.",
        json_schema_extra={"pattern": DEVICE_PATTERN.pattern},
    )
    amp: bool = Field(True, description="bf16 autocast on CUDA; ignored on the CPU.")
    channels_last: bool = Field(True, description="channels_last memory format for image models.")
    compile: bool = Field(False, description="torch.compile the model (cached per process).")
    cuda_graph: bool = Field(
        False,
        description="A static step with λ, partners and metrics on the device (the last partial batch dropped), "
        "captured in a CUDA graph on CUDA; runs eagerly on the CPU. Input mixing with random pairing only.",
    )

    @field_validator("milestones")
    @classmethod
    def _fractions(cls, milestones: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < m < 1 for m in milestones) or list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing fractions in (0, 1), got {milestones=}")
        return milestones

    @field_validator("device")
    @classmethod
    def _device_syntax(cls, device: str) -> str:
        if not DEVICE_PATTERN.fullmatch(device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
        return device


class EvalConfig(_Config):
    """What is measured after each epoch, beyond test error and loss."""

    median_window: int = Field(10, ge=1, description="The paper's metric: median test error of the last N epochs.")
    batch_size: int = Field(1024, ge=1)
    ece: bool = Field(False, description="Expected calibration error on the test set.")
    ece_bins: int = Field(15, ge=2, le=1000, description="Confidence bins of the ECE (each a tensor element).")
    fgsm_epsilon: float | None = Field(
        None, gt=0, le=1, description="FGSM test error at this ε (pixel scale [0, 1]); None: off."
    )
    # An FGSM pass costs about a training epoch on the test set (forward, backward, forward): every epoch it
    # doubled a CPU study of lenet_fc on Fashion-MNIST, where the paper reports only the final model's.
    fgsm_last_epoch_only: bool = Field(
        False,
        description="Measure the FGSM error after the last epoch only (the paper's final model); off: every epoch.",
    )


class ExperimentConfig(_Config):
    """One training run: data × model × mixing × recipe. A study trial is one of these."""

    dataset: DataConfig
    model: ModelConfig
    mixup: MixupConfig = MixupConfig()
    training: TrainConfig = TrainConfig()
    evaluation: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _check_combination(self) -> ExperimentConfig:
        from mixup_core.data.registry import dataset_info
        from mixup_core.models.registry import check_model_input, mix_points

        info = dataset_info(self.dataset)
        layer = self.mixup.layer
        try:
            check_model_input(self.model.name, info.input_shape)
            available = mix_points(self.model.name, info.input_shape) if layer != "input" else ()
        except ValueError as err:
            if self.dataset.name != "synthetic":
                raise
            raise ValueError(f"dataset.synthetic.shape: {err}") from err  # the one shape a spec writes
        if layer != "input":
            if layer.startswith("module:"):
                if layer not in available:
                    raise ValueError(f"mixup.layer {layer!r}: {self.model.name} has no submodule {layer[7:]!r}")
            elif layer not in available:
                names = ", ".join(p for p in available if not p.startswith("module:"))
                raise ValueError(f"mixup.layer {layer!r} is not a mixing point of {self.model.name}; it has: {names}")
            if self.mixup.pairing == "knn":
                raise ValueError(
                    f"mixup.pairing 'knn' takes partners from the dataset, so it mixes at the input only; "
                    f"got mixup.layer={layer!r}"
                )
            if self.mixup.input_noise > 0:
                raise ValueError(f"mixup.input_noise perturbs inputs; it needs mixup.layer='input', got {layer!r}")
        if self.mixup.mixes and self.training.batch_size < 2:
            raise ValueError(
                f"training.batch_size must be >= 2 when mixing (mixup.alpha > 0), got {self.training.batch_size}"
            )
        if self.training.cuda_graph:
            from mixup_core.device_step import check_supported

            check_supported(self.mixup)
        if self.dataset.augment and len(info.input_shape) != 3:
            raise ValueError(f"dataset.augment crops and flips images; {self.dataset.name!r} gives vectors")
        if self.mixup.pairing == "knn" and self.mixup.knn_k >= info.train_size:
            raise ValueError(
                f"mixup.knn_k must be below the training-set size ({info.train_size}), got knn_k={self.mixup.knn_k}"
            )
        return self

    def with_overrides(self, overrides: dict[str, Any]) -> ExperimentConfig:
        """A copy with dotted-path values replaced (``{"mixup.alpha": 0.2}``), validated again."""
        tree = self.model_dump(mode="python")
        for path, value in overrides.items():
            node = tree
            *parents, leaf = path.split(".")
            for key in parents:
                if not isinstance(node.get(key), dict):
                    raise InvalidConfig(f"unknown setting {path!r}")
                node = node[key]
            if leaf not in node:
                raise InvalidConfig(f"unknown setting {path!r}")
            node[leaf] = value
        return ExperimentConfig.model_validate(tree)
