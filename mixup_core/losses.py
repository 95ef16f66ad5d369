"""Training targets and losses for mixed batches.

The fast default is the two-index form
``λ·CE(ŷ, y_a) + (1 − λ)·CE(ŷ, y_b)``, which equals cross-entropy against the
mixed one-hot target but never builds a (B, C) target tensor (soft targets in
``F.cross_entropy`` are markedly slower). It runs one log-softmax and two
gathers. Label smoothing ε puts ε/C on every class besides (1 − ε) on the label,
the paper's "ε/10 on each wrong class" for C = 10, exactly as PyTorch's
``label_smoothing`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Lam = float | torch.Tensor  # a scalar per batch, or (B,) per sample


def _per_sample(lam: Lam, like: torch.Tensor) -> torch.Tensor | float:
    return lam.to(like.dtype) if isinstance(lam, torch.Tensor) else lam


def mixed_cross_entropy(
    logits: torch.Tensor,
    y_a: torch.Tensor,
    y_b: torch.Tensor,
    lam: Lam,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean cross-entropy against ``λ·onehot(y_a) + (1 − λ)·onehot(y_b)``, smoothed by ε.

    Args:
        logits: (B, C), any float dtype (the loss is computed in float32).
        y_a, y_b: int64 labels (B,).
        lam: weight of ``y_a``: a float, or a (B,) tensor for per-sample λ.
        label_smoothing: ε in [0, 1).

    Returns:
        A scalar tensor.
    """
    log_p = F.log_softmax(logits.float(), dim=1)  # (B, C)
    nll_a = -log_p.gather(1, y_a[:, None]).squeeze(1)  # (B,)
    if isinstance(lam, float) and lam == 1.0:
        per_sample = nll_a  # ERM and "closest" targets: skip the second gather
    else:
        nll_b = -log_p.gather(1, y_b[:, None]).squeeze(1)
        w = _per_sample(lam, nll_a)
        per_sample = nll_a * w + nll_b * (1 - w)
    if label_smoothing > 0:
        # Smoothing is linear in the target, so it applies after mixing: CE to the
        # uniform distribution is the mean of -log p over classes.
        per_sample = (1 - label_smoothing) * per_sample - label_smoothing * log_p.mean(1)
    return per_sample.mean()


def soft_targets(y_a: torch.Tensor, y_b: torch.Tensor, lam: Lam, num_classes: int, label_smoothing: float = 0.0):
    """The mixed, smoothed probability targets (B, C), float32. For reference and tests."""
    one_a = F.one_hot(y_a, num_classes).float()
    one_b = F.one_hot(y_b, num_classes).float()
    w = lam[:, None].float() if isinstance(lam, torch.Tensor) else lam
    target = w * one_a + (1 - w) * one_b
    return target * (1 - label_smoothing) + label_smoothing / num_classes


def closest_labels(y_a: torch.Tensor, y_b: torch.Tensor, lam: Lam) -> torch.Tensor:
    """ "Mix inputs only": the label of the sample whose weight is >= 0.5, (B,)."""
    if isinstance(lam, torch.Tensor):
        return torch.where(lam >= 0.5, y_a, y_b)
    return y_a if lam >= 0.5 else y_b


def weighted_correct(logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: Lam) -> torch.Tensor:
    """λ-weighted count of correct predictions (a scalar tensor, no host sync).

    Under mixup a prediction of y_a is worth λ and of y_b worth 1 − λ; counting
    plain hits against y_a alone would make training accuracy meaningless.
    """
    pred = logits.argmax(1)
    hit_a = (pred == y_a).float()
    if isinstance(lam, float) and lam == 1.0:
        return hit_a.sum()
    hit_b = (pred == y_b).float()
    w = _per_sample(lam, hit_a)
    return (hit_a * w + hit_b * (1 - w)).sum()
