"""The in-memory form every reader returns, before carving and normalising."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, eq=False)
class RawData:
    """A dataset as read: CPU NumPy arrays, train and test.

    Readers' results may be cached and shared, so consumers must not modify
    the arrays in place (index or copy them instead).

    Attributes:
        train_x: ``(N, C, H, W)`` uint8 images or ``(N, D)`` float32 vectors.
        train_y: ``(N,)`` int64 labels in ``[0, num_classes)``.
        test_x: ``(M, ...)`` like ``train_x``.
        test_y: ``(M,)`` int64 labels.
        num_classes: Number of classes.
    """

    train_x: npt.NDArray[Any]
    train_y: npt.NDArray[np.int64]
    test_x: npt.NDArray[Any]
    test_y: npt.NDArray[np.int64]
    num_classes: int

    @property
    def is_image(self) -> bool:
        """True for ``(N, C, H, W)`` samples."""
        return self.train_x.ndim == 4
