"""Time to mix one batch: mixup_core's Mixer vs the paper's formulation vs timm's Mixup.

Three arms, each mixing a (B, 3, 32, 32) float32 batch with int64 targets (10 classes):

* ``ours``: :class:`mixup_core.Mixer` exactly as the trainer calls it (``mixer(x, y)``, input
  mixing, one λ per batch from the CPU generator, a random permutation as partners), giving the
  mixed batch and the two-index targets (``y_a``, ``y_b``, ``λ``) that the loss consumes.
* ``reference``: the paper's code (facebookresearch/mixup-cifar10 ``mixup_data``) written out:
  ``np.random.beta``, ``torch.randperm``, ``lam * x + (1 - lam) * x[index, :]``, returning
  ``y_a, y_b, lam``.
* ``timm``: ``timm.data.Mixup(mixup_alpha=1, cutmix_alpha=0, mode="batch", label_smoothing=0,
  num_classes=10)``; it pairs the batch with its flip, mixes in place and builds (B, 10) soft
  targets (a heavier loss-side representation than the two-index form, by design).

Each arm gets its own input tensor (timm overwrites its input; a convex combination of a batch
with itself stays bounded, so repeating it is harmless). Calls are interleaved
(ours, reference, timm, ours, ...) for ``--reps`` rounds after a warm-up, each call timed on its
own (with ``torch.cuda.synchronize`` on CUDA); times are medians. Ratios are ``ours / other``
time (lower is better), each the median over rounds of the ratio of neighbouring calls, which
cancels load from other processes on a shared machine; the headline ``ours_vs_timm`` and
``ours_vs_reference`` are the worst over the shapes.

Usage: ``python benchmarks/mixup_op.py [--device cpu|cuda] [--reps N] [--threads N] [--quick]``.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _common import machine, mixup_data, time_interleaved
from timm.data import Mixup

from mixup_core import Mixer, MixupConfig

SHAPES: tuple[tuple[int, int, int, int], ...] = ((128, 3, 32, 32), (1024, 3, 32, 32))
NUM_CLASSES = 10


def bench_shape(shape: tuple[int, ...], device: torch.device, reps: int, warmup: int, seed: int) -> dict[str, float]:
    """Median microseconds per call of the three arms for one batch shape, and ours' time ratios."""
    g = torch.Generator(device).manual_seed(seed)
    x = torch.randn(shape, generator=g, device=device)  # (B, C, H, W)
    y = torch.randint(0, NUM_CLASSES, (shape[0],), generator=g, device=device)  # (B,)
    x_ours, x_ref, x_timm = x.clone(), x.clone(), x.clone()

    # As the trainer builds it: partners on the device generator, λ on a CPU generator.
    mixer = Mixer(
        MixupConfig(alpha=1.0),
        torch.Generator(device).manual_seed(seed + 1),
        torch.Generator("cpu").manual_seed(seed + 2),
    )
    timm_mixup = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, mode="batch", label_smoothing=0.0, num_classes=NUM_CLASSES)
    np.random.seed(seed)
    torch.manual_seed(seed)

    arms: dict[str, Callable[[], object]] = {
        "ours": lambda: mixer(x_ours, y),
        "reference": lambda: mixup_data(x_ref, y),
        "timm": lambda: timm_mixup(x_timm, y),
    }
    timed = time_interleaved(arms, reps, warmup, device)
    samples = {name: [seconds for seconds, _ in calls] for name, calls in timed.items()}
    out = {f"{name}_us": statistics.median(values) * 1e6 for name, values in samples.items()}
    for other in ("timm", "reference"):
        # Median of the ratio of neighbouring calls: load from other processes cancels out.
        ratios = [a / b for a, b in zip(samples["ours"], samples[other], strict=True)]
        out[f"ours_vs_{other}"] = statistics.median(ratios)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--reps", type=int, default=400, help="timed calls per arm and shape")
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls per arm and shape first")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few repetitions only (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.warmup = 5, 2
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available here")
    torch.set_num_threads(args.threads)

    result: dict[str, Any] = {"benchmark": "mixup_op", "reps": args.reps, "quick": args.quick}
    ratios_timm, ratios_ref = [], []
    for shape in SHAPES:
        figures = bench_shape(shape, device, args.reps, args.warmup, args.seed)
        b = shape[0]
        for key, value in figures.items():
            result[f"{key}_b{b}"] = round(value, 1 if key.endswith("_us") else 3)
        ratios_timm.append(figures["ours_vs_timm"])
        ratios_ref.append(figures["ours_vs_reference"])
    # Headline: the worst shape (time ratios, lower is better; the goal is <= 1.0).
    result["ours_vs_timm"] = round(max(ratios_timm), 3)
    result["ours_vs_reference"] = round(max(ratios_ref), 3)
    result["shapes"] = [list(s) for s in SHAPES]
    result["machine"] = machine(device)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
