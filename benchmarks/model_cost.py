"""Parameter count and CPU cost per epoch of each built-in model at a few widths.

One JSON line per (model, width): parameters, forward multiply-adds per image, seconds per training step
(forward + backward + SGD step, channels_last as the trainer uses it, median of ``--steps`` timed steps after
one warm-up) on a
Fashion-MNIST-sized batch (128 × 1 × 28 × 28), and the implied seconds per epoch of a 10,000-image subset
and of the full 60,000 images. The figures in docs/MODELS.md came from this script; they depend on what else
the machine runs (its ``threads`` and the load are in the line).

    python benchmarks/model_cost.py [--quick] [--steps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
from _common import machine
from torch import nn

from mixup_core import ModelConfig, build_model

BATCH, SHAPE, CLASSES = 128, (1, 28, 28), 10
# (model, widths): the paper's width and the fractions that fit a 2-core CPU.
GRID = (
    ("small_cnn", (1.0,)),
    ("lenet_fc", (1.0,)),
    ("mlp", (1.0,)),
    ("preact_resnet18", (0.125, 0.25, 0.5, 1.0)),
    ("wide_resnet28_10", (0.1, 0.25)),
)
QUICK_GRID = (("lenet_fc", (0.5,)),)  # one line, as the smoke test reads it


def forward_macs(model: nn.Module) -> int:
    """Multiply-adds of one image's forward pass through the conv and linear layers (a training step is ~3×).

    Independent of the machine's load, unlike the timings: the figure to compare models by.
    """
    total = 0

    def count(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += out.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total += out.numel() * module.in_features

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.zeros((1, *SHAPE)))
    for handle in handles:
        handle.remove()
    return total


def step_seconds(name: str, width: float, steps: int) -> tuple[int, float]:
    """(parameters, median seconds of one SGD step on a batch of BATCH images)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(ModelConfig(name=name, width=width), SHAPE, CLASSES)
    params = sum(p.numel() for p in model.parameters())
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((BATCH, *SHAPE), generator=generator).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (BATCH,), generator=generator)
    times = []
    for i in range(steps + 1):  # the first step warms up allocators and kernels: not timed
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - started)
    return params, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small model, one timed step: a smoke run")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = 1 if args.quick else args.steps
    for name, widths in QUICK_GRID if args.quick else GRID:
        for width in widths:
            params, seconds = step_seconds(name, width, steps)
            macs = forward_macs(build_model(ModelConfig(name=name, width=width), SHAPE, CLASSES))
            line = {
                "benchmark": "model_cost",
                "model": name,
                "width": width,
                "params": params,
                "forward_mmacs_per_image": round(macs / 1e6, 2),
                "step_s": round(seconds, 4),
                "epoch_10k_s": round(seconds * 10_000 / BATCH, 1),
                "epoch_60k_s": round(seconds * 60_000 / BATCH, 1),
                "batch": BATCH,
                "input_shape": list(SHAPE),
                "steps": steps,
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "quick": args.quick,
                "machine": machine(torch.device("cpu")),
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
