"""MNIST and Fashion-MNIST from IDX files (gzipped or plain).

An IDX file is a big-endian header -- two zero bytes, a type code (0x08 =
uint8), the number of dimensions, then one uint32 per dimension -- followed by
the data. Images are ``idx3`` (magic 2051), labels ``idx1`` (magic 2049).
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mixup_core.data.fetch import torchvision_download
from mixup_core.data.raw import RawData
from mixup_core.errors import DatasetNotFound, InvalidConfig

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
NUM_CLASSES = 10

# IDX type code -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# role -> file stem, in the order (train images, train labels, test images, test labels).
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
TORCHVISION_NAMES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
# Debian's dataset-fashion-mnist package installs the four files here.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (),
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


def read_idx(path: Path, expected_magic: int | None = None) -> npt.NDArray[Any]:
    """Parse an IDX file, gzipped (detected by its content) or plain.

    Args:
        path: The file.
        expected_magic: If given, the magic number it must carry (2051 images, 2049 labels).

    Returns:
        The array, in native byte order, with the dimensions of its header.

    Raises:
        InvalidConfig: Bad magic number, unknown type, or a size that does not
            match the header (a corrupt or truncated file).
    """
    raw = path.read_bytes()
    try:
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError) as exc:
        raise InvalidConfig(f"dataset.data_dir: {str(path)!r} is a damaged gzip file ({exc})") from exc
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else -1
    type_code, ndim = (data[2], data[3]) if len(data) >= 4 else (0, 0)
    valid = len(data) >= 4 and data[:2] == b"\x00\x00" and type_code in _IDX_DTYPES and ndim > 0
    if not valid or (expected_magic is not None and magic != expected_magic):
        want = f" (expected {expected_magic})" if expected_magic is not None else ""
        raise InvalidConfig(
            f"dataset.data_dir: {str(path)!r} is not an IDX file: magic number {magic}{want}; "
            "the file may be corrupt -- delete it and fetch it again"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InvalidConfig(f"dataset.data_dir: {str(path)!r} is truncated inside its IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected_bytes = math.prod(dims) * dtype.itemsize
    if len(data) - header != expected_bytes:
        raise InvalidConfig(
            f"dataset.data_dir: {str(path)!r} has {len(data) - header} data bytes but its header "
            f"{dims} needs {expected_bytes}; the file is corrupt or truncated"
        )
    # frombuffer is read-only and big-endian; astype gives a writable native copy.
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def search_dirs(name: str, data_dir: Path) -> list[Path]:
    """Directories searched for ``name``'s IDX files, in order."""
    return [
        data_dir / name,
        data_dir / TORCHVISION_NAMES[name] / "raw",
        data_dir,
        *SYSTEM_DIRS[name],
    ]


def find_idx_files(name: str, data_dir: Path) -> list[Path] | None:
    """The four IDX files from the first directory that has all of them, else None."""
    for directory in search_dirs(name, data_dir):
        found = [_find(directory, stem) for stem in IDX_FILES]
        if all(p is not None for p in found):
            return [p for p in found if p is not None]
    return None


def _read_pair(images_path: Path, labels_path: Path) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int64)
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1 or len(images) != len(labels):
        raise InvalidConfig(
            f"dataset.data_dir: {str(images_path)!r} ({images.dtype} {images.shape}) and {str(labels_path)!r} "
            f"({labels.shape}) do not form an image/label pair"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise InvalidConfig(
            f"dataset.data_dir: labels in {str(labels_path)!r} span [{labels.min()}, {labels.max()}], expected [0, 10)"
        )
    # (N, H, W) -> (N, 1, H, W): one grey channel.
    return images[:, None], labels


def load_idx_dataset(name: str, data_dir: Path, download: bool) -> RawData:
    """Read MNIST or Fashion-MNIST, searching the usual places, downloading if allowed.

    Searched in order: ``<data_dir>/<name>/``, ``<data_dir>/<MNIST|FashionMNIST>/raw/``
    (torchvision's layout), ``<data_dir>/``, then system directories (Debian's
    ``/usr/share/datasets/fashion-mnist``).

    Args:
        name: ``"mnist"`` or ``"fashion_mnist"``.
        data_dir: The data root.
        download: Try torchvision's downloader (into ``<data_dir>/<TorchvisionName>/raw``) when missing.

    Returns:
        uint8 ``(N, 1, 28, 28)`` images and int64 labels.

    Raises:
        DatasetNotFound: No directory holds the four files and none could be downloaded.
        InvalidConfig: A file is corrupt.
    """
    files = find_idx_files(name, data_dir)
    if files is None and download:
        torchvision_download(TORCHVISION_NAMES[name], data_dir, str(data_dir / TORCHVISION_NAMES[name] / "raw"))
        files = find_idx_files(name, data_dir)
    if files is None:
        searched = ", ".join(repr(str(d)) for d in search_dirs(name, data_dir))
        how = "the download did not produce them" if download else "set download: true with a network"
        raise DatasetNotFound(
            f"dataset.data_dir: no {name} IDX files ({', '.join(IDX_FILES)}, optionally .gz) in any of "
            f"{searched}; place them in one of these or {how}"
        )
    train_x, train_y = _read_pair(files[0], files[1])
    test_x, test_y = _read_pair(files[2], files[3])
    return RawData(np.ascontiguousarray(train_x), train_y, np.ascontiguousarray(test_x), test_y, NUM_CLASSES)
