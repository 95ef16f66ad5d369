"""Where mixup_core looks for files: only an absolute data_dir it was given; downloads never unpickle."""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torchvision.datasets
import torchvision.datasets.utils

from mixup_core.config import DataConfig
from mixup_core.data import load_dataset
from mixup_core.data.fetch import DEFAULT_DATA_DIR, resolve_data_dir
from mixup_core.data.idx import IDX_FILES
from mixup_core.errors import InvalidConfig


@pytest.mark.parametrize("data_dir", ["data", "~/data", "~/../tmp/x", "./logs", "a\x00b", "/srv/a\x00b"])
def test_a_data_dir_that_is_not_absolute_is_refused(data_dir: str, tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)  # a relative path would otherwise be looked up (or downloaded into) here
    try:
        with pytest.raises(ValueError, match=r"^dataset\.data_dir must be an absolute path") as info:
            load_dataset(DataConfig(name="mnist", data_dir=Path(data_dir), download=True))
    finally:
        os.chdir(cwd)
    assert isinstance(info.value, InvalidConfig)
    assert repr(str(Path(data_dir))) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing downloaded


def test_none_is_the_fixed_default_and_absolute_is_taken_as_is(tmp_path: Path) -> None:
    assert resolve_data_dir(None) == Path.home() / ".mixup-studies" / "data"
    assert resolve_data_dir(None) == DEFAULT_DATA_DIR.expanduser()
    assert resolve_data_dir(tmp_path / "x") == tmp_path / "x"


def _cifar_archive(folder: Path, filename: str) -> None:
    """A tiny CIFAR-10 tar.gz in the real layout (protocol-2 pickles)."""
    src = folder / "src" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": [i % 10 for i in range(10)],
            b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
            b"filenames": [b"x.png"] * 10,
        }
        (src / name).write_bytes(pickle.dumps(batch, protocol=2))
    with tarfile.open(folder / filename, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")


def test_cifar_download_extracts_the_archive_and_never_unpickles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The network is not here: the download helper is replaced by one that writes the archive it was asked for.
    torchvision's CIFAR10 class (which pickle.loads every batch it finds) must not be built at all."""
    calls: list[tuple[str, str, str | None, str | None]] = []

    def download(url: str, download_root: str, filename: str | None = None, md5: str | None = None) -> None:
        calls.append((url, download_root, filename, md5))
        assert filename is not None
        _cifar_archive(Path(download_root), filename)
        torchvision.datasets.utils.extract_archive(str(Path(download_root) / filename), download_root)

    def unpickling_class(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("torchvision's CIFAR10 was built: its constructor unpickles the batches")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", download)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", type("CIFAR10", (), {
        "url": torchvision.datasets.CIFAR10.url,
        "filename": torchvision.datasets.CIFAR10.filename,
        "tgz_md5": torchvision.datasets.CIFAR10.tgz_md5,
        "__init__": unpickling_class,
    }))  # fmt: skip
    d = load_dataset(DataConfig(name="cifar10", data_dir=tmp_path, download=True, augment=False))
    assert calls == [
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", str(tmp_path), "cifar-10-python.tar.gz",
         "c58f30108f718f92721af3b95e74349a"),
    ]  # fmt: skip
    assert d.train_size == 50
    assert d.test_y.tolist() == list(range(10))


def test_mnist_download_tries_each_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    urls: list[str] = []

    def download(url: str, download_root: str, filename: str | None = None, md5: str | None = None) -> None:
        urls.append(url)
        mirrors = torchvision.datasets.MNIST.mirrors
        if url.startswith(mirrors[0]):
            raise OSError("first mirror down")
        assert filename is not None and md5 is not None
        stem = filename.removesuffix(".gz")
        n = 20 if stem.startswith("train") else 10
        arr = (np.arange(n) % 10).astype(np.uint8) if "labels" in stem else np.zeros((n, 28, 28), np.uint8)
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
        Path(download_root).mkdir(parents=True, exist_ok=True)
        (Path(download_root) / stem).write_bytes(gzip.decompress(gzip.compress(header + arr.tobytes())))

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", download)
    d = load_dataset(DataConfig(name="mnist", data_dir=tmp_path, download=True))
    assert d.train_size == 20
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(IDX_FILES)
    mirrors = torchvision.datasets.MNIST.mirrors
    assert urls[:2] == [f"{mirrors[0]}train-images-idx3-ubyte.gz", f"{mirrors[1]}train-images-idx3-ubyte.gz"]
    assert len(urls) == 8
