"""What the benchmark scripts share: the machine a figure was measured on, and the paper's reference mixup.

The scripts run as ``python benchmarks/<name>.py``, so this module is imported as ``_common``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

T = TypeVar("T")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def machine(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on, for the JSON line."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def machine_line() -> str:
    """The machine in one line: CPU model, CPU count, OS."""
    return f"{cpu_model()}, {os.cpu_count()} cpus, {platform.system()} {platform.release()}"


def mixup_data(
    x: torch.Tensor, y: torch.Tensor, alpha: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """The paper's ``mixup_data`` (facebookresearch/mixup-cifar10, train.py), ``use_cuda`` read as "x's device"."""
    lam = float(np.random.beta(alpha, alpha)) if alpha > 0 else 1.0
    index = torch.randperm(x.size(0)).to(x.device)
    mixed_x = lam * x + (1 - lam) * x[index, :]
    return mixed_x, y, y[index], lam


def mixup_criterion(
    criterion: nn.Module, pred: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float
) -> torch.Tensor:
    """The paper's ``mixup_criterion``: λ·CE(y_a) + (1 − λ)·CE(y_b)."""
    return lam * criterion(pred, y_a) + (1 - lam) * criterion(pred, y_b)


def sync(device: torch.device) -> None:
    """Wait for the device, so a timer stops when the work is done, not when it was queued."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    arms: dict[str, Callable[[], T]], rounds: int, warmup: int, device: torch.device
) -> dict[str, list[tuple[float, T]]]:
    """(seconds, return value) of every call of each arm, calls interleaved A B C A B C ...

    Interleaving makes load that drifts on a shared machine fall on every arm alike.
    """
    for _ in range(warmup):
        for fn in arms.values():
            fn()
    sync(device)
    samples: dict[str, list[tuple[float, T]]] = {name: [] for name in arms}
    for _ in range(rounds):
        for name, fn in arms.items():
            start = time.perf_counter()
            value = fn()
            sync(device)
            samples[name].append((time.perf_counter() - start, value))
    return samples


def paper_train_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    alpha: float,
) -> int:
    """One epoch of the official mixup-cifar10 training loop (progress bar left out); returns images seen.

    Per step: batch to the device, ``mixup_data``, ``mixup_criterion``, the loss read back with ``.item()``
    and the λ-weighted accuracy summed on the host, as the paper's code does.
    """
    criterion = nn.CrossEntropyLoss()
    seen, train_loss, correct = 0, 0.0, 0.0
    for inputs, targets in loader:
        if inputs.shape[0] < 2:
            continue  # the trainer drops a final batch of 1 too (batch norm cannot train on it)
        inputs, targets = inputs.to(device), targets.to(device)
        inputs, targets_a, targets_b, lam = mixup_data(inputs, targets, alpha)
        outputs = model(inputs)
        loss = mixup_criterion(criterion, outputs, targets_a, targets_b, lam)
        train_loss += loss.item()
        predicted = outputs.detach().argmax(1)
        seen += targets.size(0)
        correct += float(
            lam * predicted.eq(targets_a).cpu().sum().float() + (1 - lam) * predicted.eq(targets_b).cpu().sum()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return seen
