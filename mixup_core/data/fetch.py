"""Downloading through torchvision, bounded in time, failing as DatasetNotFound."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mixup_core.errors import DatasetNotFound

DOWNLOAD_TIMEOUT_S = 60.0
DEFAULT_DATA_DIR = Path("~/.mixup-studies/data")


def resolve_data_dir(data_dir: Path | None) -> Path:
    """The configured directory with ``~`` expanded, or ``~/.mixup-studies/data``."""
    return (data_dir if data_dir is not None else DEFAULT_DATA_DIR).expanduser()


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


def torchvision_download(class_name: str, root: Path, expected: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download a torchvision dataset (train and test) into ``root``.

    Args:
        class_name: Class in ``torchvision.datasets`` (``CIFAR10``, ``MNIST``, ...).
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
            # One call fetches the whole archive / all four IDX files; the second
            # only verifies that the test split is there too.
            dataset_cls(root=str(root), train=True, download=True)
            dataset_cls(root=str(root), train=False, download=True)
    except Exception as exc:
        raise DatasetNotFound(
            f"dataset.data_dir: no {class_name} files at {expected!r} and the download into {str(root)!r} "
            f"failed ({type(exc).__name__}: {exc}); place the files there by hand"
        ) from exc
