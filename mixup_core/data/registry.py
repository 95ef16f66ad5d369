"""What each dataset is, without reading it.

``dataset_info`` answers shape, class count and the size of the training split
from constants alone, so configurations can be checked (model input, KNN k,
augmentation on images only) before any file is opened. The same size
arithmetic (:func:`carve_sizes`) is used by the loader, so the two always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mixup_core.errors import InvalidConfig

if TYPE_CHECKING:
    from mixup_core.config import DataConfig

DATASET_NAMES: tuple[str, ...] = (
    "cifar10",
    "cifar100",
    "mnist",
    "fashion_mnist",
    "uci:iris",
    "uci:wine",
    "uci:breast_cancer",
    "uci:digits",
    "synthetic",
)

# Per-channel pixel statistics on the [0, 1] scale (the usual published constants).
IMAGE_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
}

# name -> (input shape, classes, train samples, test samples), as distributed.
_IMAGE_SIZES: dict[str, tuple[tuple[int, ...], int, int, int]] = {
    "cifar10": ((3, 32, 32), 10, 50_000, 10_000),
    "cifar100": ((3, 32, 32), 100, 50_000, 10_000),
    "mnist": ((1, 28, 28), 10, 60_000, 10_000),
    "fashion_mnist": ((1, 28, 28), 10, 60_000, 10_000),
}

# name -> (features, classes, samples) of scikit-learn's bundled copies.
UCI_SIZES: dict[str, tuple[int, int, int]] = {
    "uci:iris": (4, 3, 150),
    "uci:wine": (13, 3, 178),
    "uci:breast_cancer": (30, 2, 569),
    "uci:digits": (64, 10, 1797),
}
UCI_TEST_FRACTION = 0.2

_AUGMENT_BY_DEFAULT = frozenset({"cifar10", "cifar100"})


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a configured dataset.

    Attributes:
        input_shape: Shape of one sample, ``(C, H, W)`` for images or ``(D,)`` for vectors.
        num_classes: Number of classes.
        train_size: Training samples after ``train_subset`` and the validation split.
        default_augment: Whether crop + flip is on when ``augment`` is None (CIFAR only).
    """

    input_shape: tuple[int, ...]
    num_classes: int
    train_size: int
    default_augment: bool


def holdout_size(n: int, fraction: float) -> int:
    """Samples held out of ``n`` for a ``fraction``: ``round(fraction * n)``, at least 1 when fraction > 0."""
    if fraction <= 0:
        return 0
    return max(1, round(fraction * n))


def carve_sizes(
    n_available: int, train_subset: int | None, validation_fraction: float, name: str
) -> tuple[int, int, int]:
    """Sizes of the carved training split.

    Args:
        n_available: Training samples the dataset provides.
        train_subset: Requested stratified subset size, or None for all.
        validation_fraction: Share of the (subset) training samples held out.
        name: Dataset name, for error messages.

    Returns:
        ``(subset, train, validation)``: samples kept by the subset, then how they
        divide into training and validation samples.

    Raises:
        InvalidConfig: The subset exceeds the available samples, or the hold-out
            leaves no training sample.
    """
    subset = n_available
    if train_subset is not None:
        if train_subset > n_available:
            raise InvalidConfig(
                f"dataset.train_subset: {train_subset} exceeds the {n_available} training samples of {name!r}"
            )
        subset = train_subset
    n_val = holdout_size(subset, validation_fraction)
    if n_val >= subset:
        raise InvalidConfig(
            f"dataset.validation_fraction: {validation_fraction} of {subset} training samples "
            f"holds out {n_val} and leaves none to train on"
        )
    return subset, subset - n_val, n_val


def _base_info(config: DataConfig) -> tuple[tuple[int, ...], int, int]:
    """(input shape, classes, training samples before carving)."""
    if config.name in _IMAGE_SIZES:
        shape, classes, n_train, _ = _IMAGE_SIZES[config.name]
        return shape, classes, n_train
    if config.name in UCI_SIZES:
        features, classes, total = UCI_SIZES[config.name]
        return (features,), classes, total - holdout_size(total, UCI_TEST_FRACTION)
    if config.name == "synthetic":
        from mixup_core.config import SyntheticConfig

        synthetic = config.synthetic or SyntheticConfig()
        return tuple(synthetic.shape), synthetic.num_classes, synthetic.num_train
    raise InvalidConfig(f"dataset.name: unknown dataset {config.name!r}; known: {', '.join(DATASET_NAMES)}")


def dataset_info(config: DataConfig) -> DatasetInfo:
    """Shape, classes and training-split size of a configured dataset, without file I/O.

    ``train_size`` uses the published split sizes (CIFAR 50000, MNIST and
    Fashion-MNIST 60000, UCI 80% of scikit-learn's copy), then ``train_subset``
    and ``validation_fraction``.

    Args:
        config: The data configuration.

    Returns:
        The dataset's :class:`DatasetInfo`.

    Raises:
        InvalidConfig: ``train_subset`` exceeds the available training samples, or
            the validation split leaves none.
    """
    shape, classes, n_train = _base_info(config)
    _, train_size, _ = carve_sizes(n_train, config.train_subset, config.validation_fraction, config.name)
    return DatasetInfo(
        input_shape=shape,
        num_classes=classes,
        train_size=train_size,
        default_augment=config.name in _AUGMENT_BY_DEFAULT,
    )
