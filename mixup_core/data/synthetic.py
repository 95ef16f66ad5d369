"""The ``synthetic`` dataset: seeded Gaussian class clusters, for fast tests and demos.

Each class has a centre of norm 3; samples are ``centre + noise · N(0, I)``.
When there are no more classes than dimensions the centres are orthogonal, so
any two are ``3·√2`` apart and, with the default noise of 1, even a linear
model errs on only a few percent of samples.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from mixup_core.config import SyntheticConfig
from mixup_core.data.raw import RawData
from mixup_core.data.splits import STREAM_SYNTHETIC, make_rng

CENTRE_NORM = 3.0


def class_centres(num_classes: int, dim: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """``(num_classes, dim)`` class centres of norm 3, orthogonal when ``num_classes <= dim``."""
    if num_classes <= dim:
        # QR of a Gaussian matrix: orthonormal columns, uniformly oriented.
        q, _ = np.linalg.qr(rng.standard_normal((dim, num_classes)))  # (dim, K)
        directions = q.T
    else:
        g = rng.standard_normal((num_classes, dim))
        directions = g / np.linalg.norm(g, axis=1, keepdims=True)
    return CENTRE_NORM * directions


def _draw(
    centres: npt.NDArray[np.float64], n: int, noise: float, shape: tuple[int, ...], rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    k, dim = centres.shape
    y = rng.permutation(np.arange(n) % k)  # (n,) balanced classes, shuffled
    x = centres[y] + noise * rng.standard_normal((n, dim))  # (n, D)
    return x.astype(np.float32).reshape(n, *shape), y.astype(np.int64)


def make_synthetic(config: SyntheticConfig | None, split_seed: int) -> RawData:
    """Generate the synthetic dataset; identical for identical ``(config, split_seed)``.

    Args:
        config: Sizes, class count, sample shape and noise (defaults when None).
            A 3-tuple shape ``(C, H, W)`` gives images.
        split_seed: Seeds the centres and the samples.

    Returns:
        float32 samples of shape ``(N, *shape)`` and balanced int64 labels.
    """
    cfg = config or SyntheticConfig()
    shape = tuple(cfg.shape)
    rng = make_rng(split_seed, STREAM_SYNTHETIC)
    centres = class_centres(cfg.num_classes, math.prod(shape), rng)
    train_x, train_y = _draw(centres, cfg.num_train, cfg.noise, shape, rng)
    test_x, test_y = _draw(centres, cfg.num_test, cfg.noise, shape, rng)
    return RawData(train_x, train_y, test_x, test_y, cfg.num_classes)
