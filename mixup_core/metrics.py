"""Metric names (one place for every layer above) and the paper's summary statistics.

Errors are in percent, as the paper reports them.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch

EPOCH = "epoch"
LR = "lr"
TRAIN_LOSS = "train_loss"
TRAIN_ERROR = "train_error"  # λ-weighted: a prediction of y_b counts 1 − λ
TEST_LOSS = "test_loss"
TEST_ERROR = "test_error"
VAL_LOSS = "val_loss"
VAL_ERROR = "val_error"
MEDIAN_TEST_ERROR = "median_test_error"  # the paper's Table 5 metric: median over the last N epochs
BEST_TEST_ERROR = "best_test_error"
TEST_ECE = "test_ece"  # expected calibration error, percent
FGSM_TEST_ERROR = "fgsm_test_error"
EPOCH_SECONDS = "epoch_seconds"
TRAIN_SAMPLES_PER_S = "train_samples_per_s"

#: Every per-epoch metric the trainer reports (what trackers log).
ALL = (
    EPOCH,
    LR,
    TRAIN_LOSS,
    TRAIN_ERROR,
    TEST_LOSS,
    TEST_ERROR,
    VAL_LOSS,
    VAL_ERROR,
    MEDIAN_TEST_ERROR,
    BEST_TEST_ERROR,
    TEST_ECE,
    FGSM_TEST_ERROR,
    EPOCH_SECONDS,
    TRAIN_SAMPLES_PER_S,
)

#: Metrics where lower is better: everything in ALL but throughput and the epoch/lr bookkeeping.
LOWER_IS_BETTER = frozenset(ALL) - {EPOCH, LR, EPOCH_SECONDS, TRAIN_SAMPLES_PER_S}


def median_of_last(values: Sequence[float], window: int) -> float:
    """Median of the last ``window`` values (all of them while fewer have been seen)."""
    if not values:
        raise ValueError("median_of_last needs at least one value")
    return float(statistics.median(values[-window:]))


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE (Guo et al. 2017) in percent: Σ_b |B_b|/N · |accuracy(B_b) − confidence(B_b)|.

    Args:
        probs: (N, C) predicted probabilities.
        labels: (N,) int64 true labels.
        bins: equal-width confidence bins over (0, 1].
    """
    confidence, pred = probs.float().max(1)
    correct = (pred == labels).float()
    # bin b holds confidences in (b/bins, (b+1)/bins]
    which = (confidence * bins).ceil().clamp(1, bins).long() - 1
    conf_sum = torch.zeros(bins, device=probs.device).index_add_(0, which, confidence)
    acc_sum = torch.zeros(bins, device=probs.device).index_add_(0, which, correct)
    gap = (acc_sum - conf_sum).abs().sum()  # Σ_b |B_b| · |acc_b − conf_b|
    return float(100.0 * gap / max(1, labels.numel()))
