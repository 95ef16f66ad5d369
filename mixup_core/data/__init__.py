"""Datasets for mixup training: CIFAR-10/100, MNIST, Fashion-MNIST, UCI, synthetic.

``load_dataset`` returns whole splits as normalised tensors on the training
device; ``random_crop_flip`` augments whole batches there. ``dataset_info``
answers shapes and sizes without reading anything, for config validation.
"""

from __future__ import annotations

from mixup_core.data.augment import crop_flip, random_crop_flip
from mixup_core.data.loader import LoadedDataset, clear_dataset_cache, images_dataset, load_dataset
from mixup_core.data.registry import DATASET_NAMES, DatasetInfo, dataset_info
from mixup_core.data.splits import corrupt_labels, stratified_split, stratified_subset

__all__ = [
    "DATASET_NAMES",
    "DatasetInfo",
    "LoadedDataset",
    "clear_dataset_cache",
    "corrupt_labels",
    "crop_flip",
    "dataset_info",
    "images_dataset",
    "load_dataset",
    "random_crop_flip",
    "stratified_split",
    "stratified_subset",
]
