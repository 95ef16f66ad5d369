"""Test-set evaluation: error and loss, and optionally calibration and FGSM robustness."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mixup_core.metrics import expected_calibration_error

AutocastFactory = Callable[[], AbstractContextManager[object]]


@dataclass(frozen=True)
class PixelScale:
    """How normalised inputs relate to pixels in [0, 1]: x_norm = (x − mean) / std, per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def bounds(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(lower, upper, std) as (1, C, 1, 1) tensors on like's device."""
        shape = (1, len(self.mean), 1, 1)
        mean = torch.tensor(self.mean, device=like.device, dtype=like.dtype).view(shape)
        std = torch.tensor(self.std, device=like.device, dtype=like.dtype).view(shape)
        return -mean / std, (1 - mean) / std, std


@dataclass(frozen=True)
class EvalResult:
    error: float  # percent
    loss: float
    probs: torch.Tensor | None = None  # (N, C), kept only when calibration is asked for


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    autocast: AutocastFactory,
    keep_probs: bool = False,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> EvalResult:
    """Error (percent) and mean cross-entropy of ``model`` on (x, y), in eval mode.

    Sums stay on the device and are read once at the end.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    wrong = torch.zeros((), device=x.device)
    probs = []
    with torch.inference_mode():
        for lo in range(0, x.shape[0], batch_size):
            xb = x[lo : lo + batch_size]
            if xb.dim() == 4:
                xb = xb.contiguous(memory_format=memory_format)
            yb = y[lo : lo + batch_size]
            with autocast():
                logits = model(xb)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            wrong += (logits.argmax(1) != yb).sum()
            if keep_probs:
                probs.append(logits.softmax(1))
    model.train(was_training)
    n = max(1, y.numel())
    return EvalResult(
        error=100.0 * float(wrong) / n,
        loss=float(loss_sum) / n,
        probs=torch.cat(probs) if keep_probs else None,
    )


def calibration_error(result: EvalResult, y: torch.Tensor, bins: int) -> float:
    assert result.probs is not None, "evaluate(..., keep_probs=True) first"
    return expected_calibration_error(result.probs, y, bins)


def fgsm_error(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    batch_size: int,
    scale: PixelScale | None,
    autocast: AutocastFactory,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> float:
    """Test error (percent) under a white-box FGSM attack of size ``epsilon``.

    ε is in pixel units ([0, 1] images), as in the paper's ImageNet experiment
    (ε = 4/255); it is divided by the per-channel std in normalised space and the
    adversarial image is clipped to valid pixels. Without a pixel scale (tabular
    data) ε is in standardised feature units and nothing is clipped.
    """
    was_training = model.training
    model.eval()
    wrong = torch.zeros((), device=x.device)
    for lo in range(0, x.shape[0], batch_size):
        xb = x[lo : lo + batch_size].clone()
        if xb.dim() == 4:
            xb = xb.contiguous(memory_format=memory_format)
        xb.requires_grad_(True)
        yb = y[lo : lo + batch_size]
        with autocast():
            loss = F.cross_entropy(model(xb).float(), yb)
        (grad,) = torch.autograd.grad(loss, xb)
        with torch.no_grad():
            if scale is not None:
                low, high, std = scale.bounds(xb)
                adv = torch.maximum(torch.minimum(xb + epsilon / std * grad.sign(), high), low)
            else:
                adv = xb + epsilon * grad.sign()
            with autocast():
                wrong += (model(adv).argmax(1) != yb).sum()
    model.train(was_training)
    return 100.0 * float(wrong) / max(1, y.numel())
