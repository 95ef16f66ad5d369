"""``load_dataset``: a configured dataset as normalised tensors on the training device.

Like airbench, the whole dataset lives on the device as one tensor and batches
are index slices of it; no DataLoader. Pipeline: read (cached per process) ->
carve the training split (subset, validation hold-out, label noise; NumPy on
labels only) -> move uint8 pixels to the device and convert to float there,
once -> normalise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from mixup_core.config import DataConfig
from mixup_core.data.cifar import LAYOUTS, load_cifar
from mixup_core.data.fetch import resolve_data_dir
from mixup_core.data.idx import TORCHVISION_NAMES, load_idx_dataset
from mixup_core.data.raw import RawData
from mixup_core.data.registry import IMAGE_STATS, carve_sizes, dataset_info
from mixup_core.data.splits import (
    STREAM_LABEL_NOISE,
    STREAM_SUBSET,
    STREAM_VALIDATION,
    corrupt_labels,
    make_rng,
    stratified_split,
    stratified_subset,
)
from mixup_core.data.synthetic import make_synthetic
from mixup_core.data.uci import load_uci
from mixup_core.errors import InvalidConfig

# Ray reuses worker processes across trials: keep the last few datasets. Each
# CIFAR entry is ~0.7 GB of float32 on its device, so keep the cache small.
DATASET_CACHE_SIZE = 2
FILE_CACHE_SIZE = 2


@dataclass(frozen=True, eq=False)
class LoadedDataset:
    """A dataset ready for training: normalised tensors on one device.

    Cached and shared between calls: treat every tensor as read-only.

    Attributes:
        train_x: ``(N, C, H, W)`` or ``(N, D)`` contiguous float32, normalised.
        train_y: ``(N,)`` int64 training labels, after label noise.
        test_x: ``(M, ...)`` float32, normalised like ``train_x``.
        test_y: ``(M,)`` int64.
        val_x: ``(V, ...)`` held-out training samples, or None without a validation split.
        val_y: ``(V,)`` int64 clean labels, or None.
        num_classes: Number of classes.
        input_shape: Shape of one sample.
        augment: Whether training should crop + flip (config value, else the dataset default).
        mean: Per-channel pixel mean used to normalise images ([0, 1] scale); None for vectors.
        std: Per-channel pixel std; None for vectors.
        pad_fill: ``(C,)`` normalised value of a black pixel (``-mean/std``), the padding
            value for crops; zeros for synthetic images; None for vectors.
        noisy: ``(N,)`` bool, True where ``train_y`` is wrong (was corrupted); None without label noise.
    """

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    val_x: Tensor | None
    val_y: Tensor | None
    num_classes: int
    input_shape: tuple[int, ...]
    augment: bool
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    pad_fill: Tensor | None
    noisy: Tensor | None

    @property
    def train_size(self) -> int:
        """Number of training samples."""
        return int(self.train_x.shape[0])


@functools.lru_cache(maxsize=FILE_CACHE_SIZE)
def _read_files(name: str, data_dir: Path, download: bool) -> RawData:
    # Cached apart from the tensors so that configs differing only in carving
    # (subset, noise, seed) do not re-read and re-parse CIFAR.
    if name in LAYOUTS:
        return load_cifar(name, data_dir, download)
    assert name in TORCHVISION_NAMES, name
    return load_idx_dataset(name, data_dir, download)


def _read(config: DataConfig) -> RawData:
    if config.name == "synthetic":
        return make_synthetic(config.synthetic, config.split_seed)
    if config.name.startswith("uci:"):
        return load_uci(config.name, config.split_seed)
    return _read_files(config.name, resolve_data_dir(config.data_dir), config.download)


def _carve(
    labels: npt.NDArray[np.int64], config: DataConfig, num_classes: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64] | None, npt.NDArray[np.int64], npt.NDArray[np.bool_] | None]:
    """(train indices, validation indices or None, train labels after noise, noisy mask or None)."""
    subset_n, _, val_n = carve_sizes(len(labels), config.train_subset, config.validation_fraction, config.name)
    seed = config.split_seed
    train_idx = stratified_subset(labels, subset_n, make_rng(seed, STREAM_SUBSET))
    val_idx = None
    if val_n:
        keep, held = stratified_split(labels[train_idx], val_n, make_rng(seed, STREAM_VALIDATION))
        train_idx, val_idx = train_idx[keep], train_idx[held]
    train_y = labels[train_idx]
    noisy = None
    if config.label_noise > 0:
        rng = make_rng(seed, STREAM_LABEL_NOISE)
        train_y, noisy = corrupt_labels(train_y, config.label_noise, num_classes, rng, config.label_noise_mode)
    return train_idx, val_idx, train_y, noisy


def _take(x: npt.NDArray[Any], idx: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    # Identity selections skip the copy (the common no-subset case on CIFAR).
    return x if len(idx) == len(x) else x[idx]


def _images(x: npt.NDArray[np.uint8], scale: Tensor, shift: Tensor, device: torch.device) -> Tensor:
    # Move uint8 (4x fewer bytes), convert on the device: (x/255 - mean)/std = x·scale - shift.
    t = torch.from_numpy(x).to(device).float()  # (N, C, H, W)
    t = t.mul_(scale.view(1, -1, 1, 1)).sub_(shift.view(1, -1, 1, 1))
    if t.stride() != _row_major_strides(t.shape):
        # With C = 1 NumPy may give the channel axis any stride (a (N, 28, 28) array viewed as (N, 1, 28, 28)
        # gets 1). Torch then calls the tensor both contiguous and channels_last, and every batch cut from it
        # drags a model into channels_last convolutions. The dataset keeps the default layout; the trainer
        # picks the format of its batches itself, and a plain loop over these tensors gets what it asked for.
        t = t.clone(memory_format=torch.contiguous_format)
    return t


def _row_major_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _labels(y: npt.NDArray[Any], device: torch.device) -> Tensor:
    # torch.tensor copies, so the cached NumPy arrays never alias returned tensors.
    return torch.tensor(y, dtype=torch.int64, device=device)


def _build(config: DataConfig, device: torch.device) -> LoadedDataset:
    info = dataset_info(config)  # validates the sizes against the published ones first
    raw = _read(config)
    train_idx, val_idx, train_y, noisy = _carve(raw.train_y, config, raw.num_classes)
    augment = info.default_augment if config.augment is None else config.augment
    if augment and not raw.is_image:
        raise InvalidConfig(f"dataset.augment: crop + flip needs images; {config.name!r} gives vectors")
    parts = {"train": _take(raw.train_x, train_idx), "test": raw.test_x}
    if val_idx is not None:
        parts["val"] = raw.train_x[val_idx]
    mean = std = pad_fill = None
    if config.name in IMAGE_STATS:
        mean, std = IMAGE_STATS[config.name]
        m = torch.tensor(mean, dtype=torch.float32, device=device)  # (C,)
        s = torch.tensor(std, dtype=torch.float32, device=device)  # (C,)
        tensors = {k: _images(v, 1.0 / (255.0 * s), m / s, device) for k, v in parts.items()}
        pad_fill = -m / s  # (C,) a black pixel, normalised
    else:
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).to(device) for k, v in parts.items()}
        if config.name.startswith("uci:") and config.standardize:
            # Statistics of the final training split only: no leakage from validation or test.
            mu = tensors["train"].mean(dim=0)  # (D,)
            sigma = tensors["train"].std(dim=0)
            sigma = torch.where(sigma > 1e-8, sigma, torch.ones_like(sigma))  # constant features (digits' borders)
            tensors = {k: (v - mu) / sigma for k, v in tensors.items()}
        else:
            # Synthetic values are already centred; clone so the result never aliases a NumPy buffer.
            tensors = {k: v.clone() for k, v in tensors.items()}
        if raw.is_image:
            pad_fill = torch.zeros(raw.train_x.shape[1], device=device)
    return LoadedDataset(
        train_x=tensors["train"],
        train_y=_labels(train_y, device),
        test_x=tensors["test"],
        test_y=_labels(raw.test_y, device),
        val_x=tensors.get("val"),
        val_y=_labels(raw.train_y[val_idx], device) if val_idx is not None else None,
        num_classes=raw.num_classes,
        input_shape=tuple(raw.train_x.shape[1:]),
        augment=augment,
        mean=mean,
        std=std,
        pad_fill=pad_fill,
        noisy=torch.from_numpy(noisy).to(device) if noisy is not None else None,
    )


def images_dataset(
    train: tuple[npt.NDArray[np.uint8], npt.NDArray[np.integer[Any]]],
    test: tuple[npt.NDArray[np.uint8], npt.NDArray[np.integer[Any]]],
    num_classes: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device | str = "cpu",
    augment: bool = True,
) -> LoadedDataset:
    """In-memory uint8 images as a :class:`LoadedDataset`, through the same path as ``load_dataset``.

    The pixels travel to ``device`` as uint8 and are converted and normalised
    there, once. For data that is not one of the named datasets (benchmarks on
    random images, a user's own arrays); nothing is cached.

    Args:
        train: ``(N, C, H, W)`` uint8 images and ``(N,)`` integer labels.
        test: ``(M, C, H, W)`` uint8 images and ``(M,)`` integer labels.
        num_classes: Number of classes.
        mean: Per-channel pixel mean on the [0, 1] scale.
        std: Per-channel pixel standard deviation on the [0, 1] scale.
        device: Where the tensors go.
        augment: Whether training crops and flips.
    """
    (train_x, train_y), (test_x, test_y) = train, test
    if (
        train_x.dtype != np.uint8
        or train_x.ndim != 4
        or test_x.dtype != np.uint8
        or test_x.shape[1:] != train_x.shape[1:]
    ):
        raise ValueError(
            f"images_dataset needs uint8 (N, C, H, W) images of one shape, got train {train_x.dtype} "
            f"{train_x.shape} and test {test_x.dtype} {test_x.shape}"
        )
    if len(mean) != train_x.shape[1] or len(std) != train_x.shape[1]:
        raise ValueError(f"mean and std need one value per channel ({train_x.shape[1]}), got {mean=}, {std=}")
    device = torch.device(device)
    m = torch.tensor(mean, dtype=torch.float32, device=device)  # (C,)
    s = torch.tensor(std, dtype=torch.float32, device=device)  # (C,)
    scale, shift = 1.0 / (255.0 * s), m / s
    return LoadedDataset(
        train_x=_images(train_x, scale, shift, device),
        train_y=_labels(train_y, device),
        test_x=_images(test_x, scale, shift, device),
        test_y=_labels(test_y, device),
        val_x=None,
        val_y=None,
        num_classes=num_classes,
        input_shape=tuple(train_x.shape[1:]),
        augment=augment,
        mean=tuple(mean),
        std=tuple(std),
        pad_fill=-m / s,
        noisy=None,
    )


@functools.lru_cache(maxsize=DATASET_CACHE_SIZE)
def _load_cached(config: DataConfig, device: torch.device) -> LoadedDataset:
    return _build(config, device)


def load_dataset(config: DataConfig, device: torch.device | str = "cpu") -> LoadedDataset:
    """Load, carve and normalise a dataset onto ``device``, memoised per process.

    The last few results are cached on ``(config, device)``; the same arguments
    return the same object, so treat its tensors as read-only. The order of the
    options, all seeded by ``config.split_seed`` on separate streams: stratified
    ``train_subset``, then the stratified validation hold-out, then label noise
    on the remaining training labels (the validation labels stay clean).

    Args:
        config: The data configuration.
        device: Where the tensors go.

    Returns:
        The :class:`LoadedDataset`.

    Raises:
        DatasetNotFound: The files are missing and could not be downloaded.
        InvalidConfig: Impossible sizes, augmentation of vectors, or corrupt files.
    """
    return _load_cached(config, torch.device(device))


def clear_dataset_cache() -> None:
    """Forget cached datasets and parsed files (frees their memory once unreferenced)."""
    _load_cached.cache_clear()
    _read_files.cache_clear()
