"""Downloading through torchvision, bounded in time, failing as DatasetNotFound."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mixup_core.errors import DatasetNotFound, InvalidConfig

DOWNLOAD_TIMEOUT_S = 60.0
DEFAULT_DATA_DIR = Path("~/.mixup-studies/data")


def resolve_data_dir(data_dir: Path | None) -> Path:
    """The configured directory, which must be absolute, or ``~/.mixup-studies/data`` (None).

    A relative path or ``~`` would mean whatever the process's working directory or
    home is: in a Ray trial that is the trial's session folder. The place that
    accepts a spec (the service at submit, the CLI when it reads a file) decides
    what a location means and passes an absolute path down; this layer only
    refuses what it was not given that way.

    Raises:
        InvalidConfig: (a ValueError) ``data_dir`` is relative, starts with ``~`` or holds a NUL byte.
    """
    if data_dir is None:
        return DEFAULT_DATA_DIR.expanduser()  # a constant of ours, not a user's path
    if not data_dir.is_absolute() or "\x00" in str(data_dir):
        raise InvalidConfig(
            f"dataset.data_dir must be an absolute path without NUL bytes, got {str(data_dir)!r} "
            "(relative paths and '~' are resolved where a spec is accepted, not by the trainer)"
        )
    return data_dir


@contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Set the process-wide default socket timeout, restoring the previous one after.

    torchvision's downloader uses urllib without a timeout, so without this a
    dead network can hang a trial forever. (DNS lookups are not covered.)
    """
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _mnist_archives(dataset_cls: Any, root: Path) -> list[tuple[list[str], str, str, Path]]:
    # MNIST-style classes: each of their resources from any of their mirrors, into <root>/<Class>/raw.
    raw = root / dataset_cls.__name__ / "raw"
    return [([f"{m}{name}" for m in dataset_cls.mirrors], name, md5, raw) for name, md5 in dataset_cls.resources]


def _archives(dataset_cls: Any, root: Path) -> list[tuple[list[str], str, str, Path]]:
    """(candidate URLs, file name, md5, folder) of every archive a torchvision dataset class downloads."""
    if hasattr(dataset_cls, "resources"):
        return _mnist_archives(dataset_cls, root)
    return [([dataset_cls.url], dataset_cls.filename, dataset_cls.tgz_md5, root)]


def _fetch(urls: list[str], filename: str, md5: str, folder: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    errors = []
    for url in urls:
        try:
            download_and_extract_archive(url, download_root=str(folder), filename=filename, md5=md5)
            return
        except Exception as exc:  # the next mirror, if any; all of them are reported
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
    raise OSError("; ".join(errors))


def torchvision_download(class_name: str, root: Path, expected: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download a torchvision dataset's archives (train and test) into ``root``, with their md5 checked.

    Only torchvision's download helper runs, never the dataset class itself: its
    constructor reads what it finds (CIFAR with ``pickle.load``, MNIST's legacy
    ``processed/*.pt`` with ``torch.load``). The files are read afterwards by this
    package's own readers.

    Args:
        class_name: Class in ``torchvision.datasets`` (``CIFAR10``, ``MNIST``, ...), one of our constants.
        root: Its ``root`` argument.
        expected: Where the files were expected, for the error message.
        timeout: Socket timeout in seconds.

    Raises:
        DatasetNotFound: The download failed for any reason.
    """
    try:
        import torchvision.datasets as tv_datasets

        dataset_cls = getattr(tv_datasets, class_name)
        root.mkdir(parents=True, exist_ok=True)
        with socket_timeout(timeout):
            for urls, filename, md5, folder in _archives(dataset_cls, root):
                _fetch(urls, filename, md5, folder)
    except Exception as exc:
        raise DatasetNotFound(
            f"dataset.data_dir: no {class_name} files at {expected!r} and the download into {str(root)!r} "
            f"failed ({type(exc).__name__}: {exc}); place the files there by hand"
        ) from exc
