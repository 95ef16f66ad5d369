"""CIFAR batch files are read without running anything they name (mixup_core.data.batch_pickle)."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixup_core.config import DataConfig
from mixup_core.data import load_dataset
from mixup_core.data.batch_pickle import load_batch
from mixup_core.data.cifar import LAYOUTS
from mixup_core.errors import InvalidConfig

_PurePickler: Any = pickle._Pickler


class _Python2Pickler(_PurePickler):
    """Writes bytes the way Python 2's cPickle wrote ``str`` (SHORT_BINSTRING / BINSTRING), as in the
    original CIFAR files, instead of Python 3's ``_codecs.encode(text, "latin1")`` at protocol 2."""

    dispatch = _PurePickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def _original_format(batch: dict[bytes, Any], numpy_module: str) -> bytes:
    """A protocol-2 pickle as the CIFAR archives hold it: Python 2 strings, numpy.core's _reconstruct."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(batch)
    raw = buffer.getvalue()
    assert b"numpy._core.multiarray\n" in raw or b"numpy.core.multiarray\n" in raw
    raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    return raw.replace(b"numpy.core.multiarray\n", f"{numpy_module}\n".encode())


def _batches(name: str) -> dict[str, dict[bytes, Any]]:
    rng = np.random.default_rng(3)
    layout = LAYOUTS[name]
    files = [*layout.train_files, *layout.test_files]
    out = {}
    for i, fname in enumerate(files):
        n = 4
        batch: dict[bytes, Any] = {
            b"batch_label": f"batch {i + 1} of {len(files)}".encode(),
            layout.label_key.encode(): [int(v) for v in rng.integers(0, layout.num_classes, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}_{k}.png".encode() for k in range(n)],
        }
        if name == "cifar100":
            batch[b"coarse_labels"] = [int(v) for v in rng.integers(0, 20, n)]
        out[fname] = batch
    return out


def _write(root: Path, name: str, numpy_module: str = "numpy.core.multiarray") -> dict[str, dict[bytes, Any]]:
    folder = root / LAYOUTS[name].folder
    folder.mkdir(parents=True, exist_ok=True)
    batches = _batches(name)
    for fname, batch in batches.items():
        (folder / fname).write_bytes(_original_format(batch, numpy_module))
    return batches


@pytest.mark.parametrize("numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_original_format_loads_exactly(tmp_path: Path, name: str, numpy_module: str) -> None:
    batches = _write(tmp_path, name, numpy_module)
    layout = LAYOUTS[name]
    for fname, batch in batches.items():
        loaded = load_batch(tmp_path / layout.folder / fname)
        assert set(loaded) == set(batch)
        assert loaded[b"data"].dtype == np.uint8
        np.testing.assert_array_equal(loaded[b"data"], batch[b"data"])
        for key in batch:
            if key != b"data":
                assert loaded[key] == batch[key]
    d = load_dataset(DataConfig(name=name, data_dir=tmp_path, download=False, augment=False))
    train = [batches[f] for f in layout.train_files]
    labels = [v for b in train for v in b[layout.label_key.encode()]]
    assert d.train_y.tolist() == labels
    assert d.test_y.tolist() == batches[layout.test_files[0]][layout.label_key.encode()]


def test_python3_protocol2_copy_loads(tmp_path: Path) -> None:
    """A copy re-pickled by Python 3 at protocol 2 spells bytes as _codecs.encode(text, 'latin1')."""
    batch = _batches("cifar10")["test_batch"]
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    assert b"_codecs\nencode" in path.read_bytes()
    loaded = load_batch(path)
    np.testing.assert_array_equal(loaded[b"data"], batch[b"data"])
    assert loaded[b"filenames"] == batch[b"filenames"]


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _hostile(kind: str, marker: Path) -> bytes:
    batch: dict[bytes, Any] = _batches("cifar10")["data_batch_2"]
    if kind == "os.system":
        batch[b"labels"] = _System(marker)
    elif kind == "exec":
        batch[b"batch_label"] = _Exec(marker)
    elif kind == "object array":
        batch[b"data"] = np.array([b"x"] * 3072 * 4, dtype=object).reshape(4, 3072)
    elif kind == "whole file":
        return pickle.dumps(_System(marker), protocol=2)
    return pickle.dumps(batch, protocol=2)


@pytest.mark.parametrize("kind", ["os.system", "exec", "object array", "whole file"])
def test_hostile_batch_is_refused_and_runs_nothing(tmp_path: Path, kind: str) -> None:
    _write(tmp_path, "cifar10")
    marker = tmp_path / "marker"
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    bad.write_bytes(_hostile(kind, marker))
    with pytest.raises(InvalidConfig) as info:
        load_dataset(DataConfig(name="cifar10", data_dir=tmp_path, download=False))
    message = str(info.value)
    assert message.startswith("dataset.data_dir: ")
    assert str(bad) in message
    assert "not a CIFAR batch" in message
    assert not marker.exists()


def test_object_dtype_is_named(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    path.write_bytes(_hostile("object array", tmp_path / "marker"))
    with pytest.raises(pickle.UnpicklingError, match="object"):
        load_batch(path)


@pytest.mark.parametrize(
    "payload",
    [
        # numpy.ndarray called by the file itself, not through _reconstruct.
        b"\x80\x02cnumpy\nndarray\nK\x03\x85X\x01\x00\x00\x00O\x86R.",
        # _reconstruct of a start shape numpy never writes.
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\xe1\xf5\x05\x85C\x01b\x87R.",
        # _codecs.encode in any other encoding.
        b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00utf-8\x86R.",
    ],
)
def test_misused_allowed_globals_are_refused(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "batch"
    path.write_bytes(payload)
    with pytest.raises(pickle.UnpicklingError):
        load_batch(path)
