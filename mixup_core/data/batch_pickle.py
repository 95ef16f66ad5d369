"""A restricted unpickler for CIFAR's batch files: it builds data, never runs code.

A pickle is a program: ``pickle.load`` calls whatever global the file names
(``os.system``, ``builtins.exec``, ...), so a batch file someone else could
write would run as the trial worker's user. CIFAR's "python version" holds only
a dict of bytes keys -> bytes, lists of ints, lists of bytes and one uint8
array. This reader resolves just the globals those need and refuses every other
one, before anything is called:

- numpy's array reconstruction: ``_reconstruct`` (spelled ``numpy.core.multiarray``
  in the original Python 2 files, ``numpy._core.multiarray`` in numpy 2's),
  ``numpy.ndarray`` and ``numpy.dtype``, each checked (plain ndarray, no object
  dtype, an empty start shape);
- ``_codecs.encode(text, "latin1")``: how Python 3 writes bytes at protocol 2
  (a re-pickled copy of the files).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

# The running numpy's own _reconstruct, whichever module it lives in (numpy.core in 1.x, numpy._core in 2.x).
_NUMPY_RECONSTRUCT = cast("Callable[..., Any]", np.zeros(0).__reduce__()[0])


class UnsafePickle(pickle.UnpicklingError):
    """The file names something a CIFAR batch never holds."""


def _dtype(*args: Any) -> np.dtype[Any]:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UnsafePickle(f"an array of Python objects (dtype {dtype}) is not data")
    return dtype


class _NdarrayName:
    """What the file's ``numpy.ndarray`` becomes: a name for ``_reconstruct`` to check, not the class
    (``ndarray(shape, "O")`` called by the file itself would build an object array of any size)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafePickle("it calls numpy.ndarray itself, which numpy's own pickles never do")


_NDARRAY = _NdarrayName()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray[Any, Any]:
    # numpy pickles an array as _reconstruct(ndarray, (0,), b"b") followed by __setstate__ with the real
    # shape, dtype and bytes. Anything else (a subclass, a huge start shape) is not what numpy writes.
    if subtype is not _NDARRAY or not isinstance(shape, tuple) or shape != (0,):
        raise UnsafePickle(f"_reconstruct({subtype!r}, {shape!r}, ...) is not how numpy pickles an array")
    array: np.ndarray[Any, Any] = _NUMPY_RECONSTRUCT(np.ndarray, (0,), _dtype(dtype))
    return array


def _latin1(text: Any, encoding: str = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickle(f"_codecs.encode is only read as Python 3's spelling of bytes, got {encoding=}")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickle(f"it refers to {module}.{name}, which a CIFAR batch never holds") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickle("it refers to a persistent object, which a CIFAR batch never holds")


def _check_value(value: Any) -> None:
    """Only the kinds of value the format holds; an array's dtype checked again after its __setstate__."""
    if isinstance(value, np.ndarray):
        if type(value) is not np.ndarray or value.dtype.hasobject:
            raise UnsafePickle(f"an array of {value.dtype} is not data")
    elif isinstance(value, list):
        if not all(type(item) in (int, bytes, str) for item in value):
            kinds = sorted({type(item).__name__ for item in value})
            raise UnsafePickle(f"a list of {', '.join(kinds)} is not a list of labels or file names")
    elif type(value) not in (bytes, str, int):
        raise UnsafePickle(f"a {type(value).__name__} value is not part of a CIFAR batch")


def load_batch(path: Path) -> dict[Any, Any]:
    """The dict a CIFAR batch file holds, built without calling anything the file names.

    Args:
        path: The batch file.

    Returns:
        Its dict (bytes keys for the original files).

    Raises:
        pickle.UnpicklingError: (``UnsafePickle``) the file names a global, a value or a dtype the
            format never holds; or the file is not a pickle at all.
        EOFError, ValueError, TypeError: a truncated or otherwise corrupt file.
    """
    batch = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    if not isinstance(batch, dict):
        raise UnsafePickle(f"it holds a {type(batch).__name__}, not a dict")
    for key, value in batch.items():
        if type(key) not in (bytes, str):
            raise UnsafePickle(f"a {type(key).__name__} key is not part of a CIFAR batch")
        _check_value(value)
    return batch
