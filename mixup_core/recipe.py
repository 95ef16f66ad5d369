"""Optimizer and learning-rate schedule from a :class:`TrainConfig`.

The schedule is a pure function of the epoch, so resuming needs no scheduler
state: the paper's step schedule divides the lr by 10 at 50% and 75% of the
epochs (100 and 150 of 200).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mixup_core.config import TrainConfig


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """The lr for a 0-based ``epoch``."""
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    passed = sum(epoch >= round(m * config.epochs) for m in config.milestones)
    return config.lr * config.gamma**passed


def make_optimizer(config: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or Adam (the paper's UCI runs), fused on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    # The fused kernels update all parameters in one launch; on the CPU the
    # default multi-tensor path is already the fast one.
    fused = True if device.type == "cuda" else None
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, fused=fused
    )


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
