"""CIFAR-10 / CIFAR-100 from torchvision's on-disk format ("python version").

``<data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch}`` and
``<data_dir>/cifar-100-python/{train, test}``: pickles holding ``b"data"``
(N, 3072) uint8 rows (1024 R, 1024 G, 1024 B, each row-major 32×32) and
``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100). They are pickles, but
read with :mod:`mixup_core.data.batch_pickle`, which builds only what the format
holds and refuses a file that names anything else (``pickle.load``, as
torchvision uses, would run whatever code the file names).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mixup_core.data.batch_pickle import UnsafePickle, load_batch
from mixup_core.data.fetch import torchvision_download
from mixup_core.data.raw import RawData
from mixup_core.errors import DatasetNotFound, InvalidConfig


@dataclass(frozen=True)
class _Layout:
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    num_classes: int
    torchvision_class: str
    title: str


LAYOUTS: dict[str, _Layout] = {
    "cifar10": _Layout(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "labels",
        10,
        "CIFAR10",
        "CIFAR-10",
    ),
    "cifar100": _Layout("cifar-100-python", ("train",), ("test",), "fine_labels", 100, "CIFAR100", "CIFAR-100"),
}


def _get(batch: dict[Any, Any], key: str, path: Path) -> Any:
    # The original files are Python 2 pickles: with encoding="bytes" their keys
    # are bytes. Re-pickled copies may have str keys; accept both.
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise InvalidConfig(
        f"dataset.data_dir: {str(path)!r} is not a CIFAR batch (no {key!r} entry); the file may be corrupt"
    )


def read_batch(path: Path, label_key: str) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Read one CIFAR pickle.

    Args:
        path: The batch file.
        label_key: ``"labels"`` (CIFAR-10) or ``"fine_labels"`` (CIFAR-100).

    Returns:
        ``(images, labels)``: ``(N, 3, 32, 32)`` uint8 and ``(N,)`` int64.

    Raises:
        InvalidConfig: The file is not a readable CIFAR batch.
    """
    try:
        batch = load_batch(path)
    except UnsafePickle as exc:
        raise InvalidConfig(f"dataset.data_dir: {str(path)!r} is not a CIFAR batch and was not loaded: {exc}") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise InvalidConfig(
            f"dataset.data_dir: cannot unpickle {str(path)!r} ({exc}); the file may be corrupt"
        ) from exc
    data = np.asarray(_get(batch, "data", path))
    try:
        labels = np.asarray(_get(batch, label_key, path), dtype=np.int64)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidConfig(f"dataset.data_dir: {str(path)!r} holds labels that are not integers ({exc})") from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise InvalidConfig(
            f"dataset.data_dir: {str(path)!r} holds data {data.dtype} {data.shape} and {len(labels)} labels; "
            "expected (N, 3072) uint8 and N labels"
        )
    # (N, 3072) -> (N, 3, 32, 32): channel planes, each row-major.
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)), labels


def _read_split(
    folder: Path, files: tuple[str, ...], label_key: str
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    parts = [read_batch(folder / name, label_key) for name in files]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return images, labels


def load_cifar(name: str, data_dir: Path, download: bool) -> RawData:
    """Read CIFAR-10 or CIFAR-100 from ``data_dir``, downloading first if allowed.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        data_dir: The root that holds ``cifar-10-batches-py`` / ``cifar-100-python``.
        download: Try torchvision's downloader when the files are missing.

    Returns:
        uint8 ``(N, 3, 32, 32)`` images and int64 labels.

    Raises:
        DatasetNotFound: The files are missing and could not be downloaded.
        InvalidConfig: A file is corrupt or labels are out of range.
    """
    layout = LAYOUTS[name]
    folder = data_dir / layout.folder
    expected = (*layout.train_files, *layout.test_files)

    def complete() -> bool:
        return all((folder / f).is_file() for f in expected)

    if not complete():
        if download:
            torchvision_download(layout.torchvision_class, data_dir, str(folder))
        if not complete():
            how = "the download did not produce them" if download else "set download: true with a network"
            raise DatasetNotFound(
                f"dataset.data_dir: no {layout.title} files at {str(folder)!r} "
                f"(expected {', '.join(expected)}); place them there or {how}"
            )
    train_x, train_y = _read_split(folder, layout.train_files, layout.label_key)
    test_x, test_y = _read_split(folder, layout.test_files, layout.label_key)
    for split, labels in (("train", train_y), ("test", test_y)):
        if len(labels) and (labels.min() < 0 or labels.max() >= layout.num_classes):
            raise InvalidConfig(
                f"dataset.data_dir: {layout.title} {split} labels in {str(folder)!r} span "
                f"[{labels.min()}, {labels.max()}], expected [0, {layout.num_classes})"
            )
    return RawData(train_x, train_y, test_x, test_y, layout.num_classes)
