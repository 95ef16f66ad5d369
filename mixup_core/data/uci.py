"""UCI tabular datasets from scikit-learn's bundled copies (no network needed).

The paper's UCI experiments use a held-out test set; scikit-learn ships each
dataset whole, so it is split 80/20, stratified, seeded by ``split_seed``.
Features stay raw here; the loader standardises them with the training split's
statistics once the training split is final (unless ``DataConfig.standardize``
is False: the paper does not say it scaled them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mixup_core.data.raw import RawData
from mixup_core.data.registry import UCI_SIZES, UCI_TEST_FRACTION, holdout_size
from mixup_core.data.splits import STREAM_UCI_TEST, make_rng, stratified_split


def _loader(name: str) -> Callable[..., Any]:
    # Imported lazily: scikit-learn is slow to import and only UCI needs it.
    from sklearn import datasets

    loaders: dict[str, Callable[..., Any]] = {
        "uci:iris": datasets.load_iris,
        "uci:wine": datasets.load_wine,
        "uci:breast_cancer": datasets.load_breast_cancer,
        "uci:digits": datasets.load_digits,
    }
    return loaders[name]


def load_uci(name: str, split_seed: int) -> RawData:
    """Load a bundled UCI dataset and split it 80/20, stratified.

    Args:
        name: ``"uci:iris"``, ``"uci:wine"``, ``"uci:breast_cancer"`` or ``"uci:digits"``.
        split_seed: Seeds the train/test split.

    Returns:
        ``(N, D)`` float32 features (unscaled) and int64 labels.
    """
    features, classes, total = UCI_SIZES[name]
    x, y = _loader(name)(return_X_y=True)
    x = np.asarray(x, dtype=np.float32)  # (total, D)
    y = np.asarray(y, dtype=np.int64)  # (total,)
    assert x.shape == (total, features), (name, x.shape)
    assert int(y.max()) + 1 == classes, (name, int(y.max()))
    train, test = stratified_split(y, holdout_size(total, UCI_TEST_FRACTION), make_rng(split_seed, STREAM_UCI_TEST))
    return RawData(x[train], y[train], x[test], y[test], classes)
