"""Carving a training split: stratified subsets and hold-outs, label noise.

Pure NumPy functions on label vectors, vectorised over samples (the only loops
are over nothing or over classes), each drawing from an explicit
``numpy.random.Generator``. They return indices into the given labels, sorted,
so the dataset keeps its on-disk order; training shuffles batches anyway.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Independent random streams derived from one split_seed, so that e.g. turning
# on label noise does not change which samples the subset keeps.
STREAM_UCI_TEST = 0
STREAM_SYNTHETIC = 1
STREAM_SUBSET = 2
STREAM_VALIDATION = 3
STREAM_LABEL_NOISE = 4


def make_rng(seed: int, stream: int) -> np.random.Generator:
    """A NumPy generator for ``(seed, stream)``; any Python int seed, negative included."""
    # SeedSequence wants non-negative entropy; mod 2**64 is injective for 64-bit seeds.
    return np.random.default_rng([stream, seed % 2**64])


def _class_quotas(counts: IntArray, n: int, rng: np.random.Generator) -> IntArray:
    """Per-class sample counts summing to ``n`` and each within one of ``n * share``.

    Largest-remainder apportionment: floor of each exact quota, then one more for
    the classes with the largest fractional parts (ties broken at random). Only
    classes with a non-zero fraction get one, so no quota exceeds its count.
    """
    exact = counts * (n / counts.sum())  # (K,)
    quotas = np.floor(exact).astype(np.int64)
    remainder = n - int(quotas.sum())
    if remainder > 0:
        fraction = exact - quotas
        # lexsort: last key is primary -> by fraction descending, random tie-break.
        order = np.lexsort((rng.random(len(counts)), -fraction))
        quotas[order[:remainder]] += 1
    return quotas


def stratified_subset(labels: npt.ArrayLike, n: int, rng: np.random.Generator) -> IntArray:
    """Indices of exactly ``n`` samples with the class proportions of ``labels``.

    Each class gets ``n · count_c / N`` samples rounded so that the total is
    exactly ``n`` (so within one sample of its exact share), chosen uniformly
    within the class.

    Args:
        labels: ``(N,)`` non-negative integer class labels.
        n: Subset size, ``0 <= n <= N``.
        rng: Source of randomness.

    Returns:
        ``(n,)`` sorted int64 indices into ``labels``.

    Raises:
        ValueError: ``n`` is outside ``[0, N]``.
    """
    y = np.asarray(labels, dtype=np.int64)
    total = len(y)
    if not 0 <= n <= total:
        raise ValueError(f"subset size must be in [0, {total}], got {n=}")
    if n == total:
        return np.arange(total, dtype=np.int64)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    counts = np.bincount(y)  # (K,)
    quotas = _class_quotas(counts, n, rng)
    # Shuffle, then group by class (stable sort keeps the shuffled order inside a
    # class); the first quota[c] of each group are the chosen ones.
    perm = rng.permutation(total)
    grouped = perm[np.argsort(y[perm], kind="stable")]  # (N,) indices, class-major
    grouped_y = y[grouped]
    starts = np.cumsum(counts) - counts  # (K,) first position of each class
    rank = np.arange(total) - starts[grouped_y]  # (N,) rank within its class
    return np.sort(grouped[rank < quotas[grouped_y]])


def stratified_split(labels: npt.ArrayLike, n_holdout: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """Split indices into a kept part and a stratified hold-out of ``n_holdout`` samples.

    Args:
        labels: ``(N,)`` integer class labels.
        n_holdout: Samples to hold out, ``0 <= n_holdout <= N``.
        rng: Source of randomness.

    Returns:
        ``(kept, held_out)``: disjoint sorted int64 index arrays covering ``range(N)``.
    """
    y = np.asarray(labels, dtype=np.int64)
    held = stratified_subset(y, n_holdout, rng)
    mask = np.ones(len(y), dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask).astype(np.int64), held


def corrupt_labels(
    labels: npt.ArrayLike,
    fraction: float,
    num_classes: int,
    rng: np.random.Generator,
    mode: Literal["flip", "uniform"] = "flip",
) -> tuple[IntArray, BoolArray]:
    """Corrupt ``round(fraction · N)`` labels, chosen uniformly without replacement.

    ``mode="uniform"`` is the paper's definition (Zhang et al. 2018, Table 2,
    following Zhang et al. 2017, "Understanding deep learning requires rethinking
    generalization"): each chosen label is replaced by a class drawn uniformly from
    all ``C``, so about 1/C of them land on the true class by chance and the share
    of wrong labels is about ``fraction · (C - 1) / C`` (36 % for 40 % on 10 classes).

    ``mode="flip"``: each chosen label becomes a uniformly random *different* class,
    so exactly ``fraction`` of the labels are wrong. ``flip`` at ``p · (C - 1) / C``
    matches ``uniform`` at ``p`` in expectation.

    Args:
        labels: ``(N,)`` clean labels in ``[0, num_classes)``.
        fraction: Share of labels to replace, in ``[0, 1)``.
        num_classes: Number of classes ``C`` (>= 2 when anything is replaced).
        rng: Source of randomness.
        mode: ``flip`` (every replaced label wrong) or ``uniform`` (the paper's).

    Returns:
        ``(noisy_labels, noisy)``: ``(N,)`` int64 labels and ``(N,)`` bool mask of
        the labels that are now wrong (in ``uniform`` mode, the replaced ones that
        did not land on the true class).

    Raises:
        ValueError: ``fraction`` outside ``[0, 1)``, fewer than two classes, labels
            outside ``[0, num_classes)``, or an unknown ``mode``.
    """
    y = np.asarray(labels, dtype=np.int64)
    if not 0 <= fraction < 1:
        raise ValueError(f"label noise fraction must be in [0, 1), got {fraction=}")
    if mode not in ("flip", "uniform"):
        raise ValueError(f"label noise mode must be 'flip' or 'uniform', got {mode=}")
    n = len(y)
    k = round(fraction * n)
    out = y.copy()
    if k == 0:
        return out, np.zeros(n, dtype=bool)
    if num_classes < 2:
        raise ValueError(f"label noise needs at least two classes, got {num_classes=}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
    chosen = rng.choice(n, size=k, replace=False)  # (k,) distinct positions
    if mode == "flip":
        # Adding an offset in 1..C-1 modulo C maps each class uniformly onto the others.
        out[chosen] = (y[chosen] + rng.integers(1, num_classes, size=k)) % num_classes
    else:
        out[chosen] = rng.integers(0, num_classes, size=k)  # (k,) any class, the true one included
    return out, out != y
