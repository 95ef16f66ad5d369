"""Several small trials per GPU: throughput of trials packed on one GPU against one trial at a time (issue 6).

Ray Tune with ``resources: {gpu: 0.25}`` runs four trial processes on one GPU at once. Whether that pays
depends on how far one small trial is from filling the GPU; this measures it without Ray (the GPU machine
need not have it): ``--trials`` identical small trials (``--model``, default small_cnn, on Fashion-MNIST-shaped
random data: ``--images`` × 1×28×28 uint8, 10 classes; input mixup α = 1, batch 128, ``--epochs`` epochs, each
with its test evaluation, i.e. :meth:`Trainer.fit`) are spread over P worker processes for every P in
``--concurrency``; each worker runs its share of the trials one after another, as a Ray actor reused across
trials does. P = 1 is the one-trial-per-GPU baseline.

Each worker is a fresh process (``spawn``) that, like a Ray trial worker, resolves ``training.device = "auto"``
itself (``CUDA_VISIBLE_DEVICES`` as inherited), builds its dataset on the device and runs one untimed warm-up
epoch (CUDA context, cuDNN autotuning); then all workers of a level pass a barrier together and train. The
span of a level is the first trial's start to the last trial's end (a system-wide monotonic clock).
Figures per level: aggregate training img/s (trained images ÷ span; evaluation time counts in the span) and
trials/hour. ``packing_gain`` = aggregate img/s at ``--gain-at`` workers (default 4, i.e. ``gpu: 0.25``) ÷ at 1.

Issue 16: ``--model preact_resnet18`` trains the paper's network on CIFAR-shaped data instead (3×32×32, the
learnable synthetic task of ``gpu_throughput.py``'s :func:`class_images`, 50 000 training images, crop + flip,
batch 128); ``--cuda-graph`` turns on ``training.cuda_graph`` in every trial. Each level also reports every
trial's final test error next to the same trial (same seed) run solo: ``error_vs_solo`` (points; packing
changes the speed, never what a seed computes, so beyond float noise a difference means a bug).

Usage: ``python benchmarks/gpu_packing.py [--device auto|cuda|cpu] [--model small_cnn|preact_resnet18]
[--trials 8] [--concurrency 1,2,4,8] [--epochs 2] [--cuda-graph] [--quick]``. Prints one JSON line;
``"gpu"`` is null without CUDA. ``--quick``: 2 tiny trials at concurrency 1 and 2 (a smoke test of the
logic; on a CPU the "gain" only says how the cores were shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import time
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp

from mixup_core import (
    DataConfig,
    ExperimentConfig,
    LoadedDataset,
    MixupConfig,
    ModelConfig,
    TrainConfig,
    Trainer,
    resolve_device,
)
from mixup_core.data import images_dataset
from mixup_core.data.registry import IMAGE_STATS

NUM_CLASSES, SHAPE = 10, (1, 28, 28)
#: Models trained on CIFAR-shaped images (the paper's CIFAR networks); every other model on Fashion-MNIST's shape.
CIFAR_MODELS = ("preact_resnet18", "wide_resnet28_10")
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 1e-4
WORKER_TIMEOUT_S = 900


def trial_config(args: dict[str, Any], seed: int, epochs: int) -> ExperimentConfig:
    return ExperimentConfig(
        # Validation and naming only: the trainer is handed the random images, never Fashion-MNIST's files.
        dataset=DataConfig(name="cifar10" if cifar(args) else "fashion_mnist", download=False),
        model=ModelConfig(name=args["model"]),
        mixup=MixupConfig(alpha=1.0),
        training=TrainConfig(
            epochs=epochs,
            batch_size=args["batch_size"],
            lr=LR,
            momentum=MOMENTUM,
            weight_decay=WEIGHT_DECAY,
            schedule="constant",
            seed=seed,
            device=args["device"],
            cuda_graph=args["cuda_graph"],
        ),
    )


def cifar(args: dict[str, Any]) -> bool:
    return bool(args["model"] in CIFAR_MODELS)


def worker(rank: int, trials: list[int], args: dict[str, Any], barrier: Any, results: Any) -> None:
    """One trial process: build, warm up, wait for the others, then train its trials in turn."""
    try:
        torch.set_num_threads(args["threads"])
        data = trial_data(args)
        warm = Trainer(trial_config(args, seed=10_000 + rank, epochs=1), dataset=data)
        warm.train_epoch()  # untimed: CUDA context, cuDNN autotuning, allocator
        warm.evaluate()
        device = warm.device
        del warm
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        barrier.wait(timeout=WORKER_TIMEOUT_S)
        spans = []
        for trial in trials:
            start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on the machine
            result = Trainer(trial_config(args, seed=trial, epochs=args["epochs"]), dataset=data).fit()
            spans.append((start, time.monotonic(), result.final["test_error"], trial))
        results.put(
            {
                "rank": rank,
                "spans": spans,
                "device": str(device),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            }
        )
    except BaseException as exc:  # report, so the parent does not wait for a dead worker
        results.put({"rank": rank, "error": f"{type(exc).__name__}: {exc}"})
        raise


def trial_data(args: dict[str, Any]) -> LoadedDataset:
    """The level's images on the device the trial's trainer will resolve (as ``load_dataset`` would put them)."""
    n, m, seed = args["images"], args["test_images"], args["seed"]
    device = resolve_device(args["device"])
    if cifar(args):
        from gpu_throughput import class_images  # the learnable CIFAR-shaped task (benchmarks/ is on sys.path)

        mean, std = IMAGE_STATS["cifar10"]
        train, test = class_images(n, seed), class_images(m, seed + 1)
        return images_dataset(train, test, NUM_CLASSES, mean, std, device, augment=True)
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8), rng.integers(0, NUM_CLASSES, n)
    test = rng.integers(0, 256, (m, *SHAPE), dtype=np.uint8), rng.integers(0, NUM_CLASSES, m)
    mean, std = IMAGE_STATS["fashion_mnist"]
    return images_dataset(train, test, NUM_CLASSES, mean, std, device, augment=False)


def run_level(processes: int, args: dict[str, Any]) -> dict[str, Any]:
    """All ``args['trials']`` trials spread over ``processes`` concurrent workers."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    shares = [list(range(args["trials"]))[rank::processes] for rank in range(processes)]
    level_args = {**args, "threads": max(1, (os.cpu_count() or 1) // processes)}
    workers = [ctx.Process(target=worker, args=(r, shares[r], level_args, barrier, results)) for r in range(processes)]
    for w in workers:
        w.start()
    reports = []
    try:
        for _ in workers:
            report = results.get(timeout=WORKER_TIMEOUT_S)
            if "error" in report:
                raise RuntimeError(f"worker {report['rank']} failed: {report['error']}")
            reports.append(report)
    except queue.Empty as exc:
        raise RuntimeError(
            f"a worker of the {processes}-process level reported nothing in {WORKER_TIMEOUT_S}s"
        ) from exc
    finally:
        for w in workers:
            w.join(timeout=60)
            if w.is_alive():
                w.terminate()
    spans = [s for r in reports for s in r["spans"]]
    span = max(s[1] for s in spans) - min(s[0] for s in spans)
    full, rest = divmod(args["images"], args["batch_size"])
    kept = 0 if args["cuda_graph"] else (rest if rest >= 2 else 0)  # the static step drops the partial batch
    images = len(spans) * args["epochs"] * (full * args["batch_size"] + kept)
    return {
        "processes": processes,
        "trials": len(spans),
        "span_s": span,
        "img_per_s": images / span,
        "trials_per_hour": len(spans) / span * 3600.0,
        "mean_trial_s": sum(s[1] - s[0] for s in spans) / len(spans),
        "test_errors": sorted(s[2] for s in spans),
        "test_error_by_trial": {str(s[3]): s[2] for s in sorted(spans, key=lambda s: s[3])},
        "devices": sorted({r["device"] for r in reports}),
        "cuda_visible_devices": sorted({str(r["cuda_visible_devices"]) for r in reports}),
    }


def error_vs_solo(level: dict[str, Any], solo: dict[str, Any]) -> dict[str, float]:
    """Each trial's final test error minus the same trial's (same seed) run solo, in points, and the largest."""
    diffs = {t: round(e - solo["test_error_by_trial"][t], 3) for t, e in level["test_error_by_trial"].items()}
    return {**diffs, "max_abs": max((abs(d) for d in diffs.values()), default=0.0)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="auto", help="auto (as a Ray trial resolves it), cuda or cpu")
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--trials", type=int, default=8, help="trials per concurrency level")
    parser.add_argument("--concurrency", default="1,2,4,8", help="comma-separated worker counts; must include 1")
    parser.add_argument("--gain-at", type=int, default=4, help="packing_gain compares this level with 1")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial")
    parser.add_argument("--images", type=int, help="training images; default 60 000 (Fashion-MNIST), CIFAR 50 000")
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--cuda-graph", action="store_true", help="training.cuda_graph in every trial (issue 16)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 tiny trials at concurrency 1 and 2")
    args = parser.parse_args(argv)
    if args.images is None:
        args.images = 50_000 if args.model in CIFAR_MODELS else 60_000
    if args.quick:
        args.trials, args.concurrency, args.gain_at, args.epochs = 2, "1,2", 2, 1
        args.images, args.test_images, args.batch_size = 96, 64, 32
    levels = [int(p) for p in args.concurrency.split(",")]
    if 1 not in levels or args.gain_at not in levels:
        parser.error(f"--concurrency must include 1 and --gain-at ({args.gain_at}), got {args.concurrency!r}")
    if any(p > args.trials for p in levels):
        parser.error(f"every level needs at least one trial per worker: --trials {args.trials}, levels {levels}")
    if args.device != "auto" and args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available here")
    keys = ("device", "model", "trials", "epochs", "images", "test_images", "seed", "cuda_graph")
    shared = {k: getattr(args, k) for k in keys}
    shared["batch_size"] = args.batch_size

    by_level = {p: run_level(p, shared) for p in levels}
    base = by_level[1]
    cuda = torch.cuda.is_available() and args.device != "cpu"
    result: dict[str, Any] = {
        "benchmark": "gpu_packing",
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "packing_gain": round(by_level[args.gain_at]["img_per_s"] / base["img_per_s"], 3),
        "packing_gain_at": args.gain_at,
        "best_packing_gain": round(max(r["img_per_s"] for r in by_level.values()) / base["img_per_s"], 3),
        "img_per_s": {str(p): round(r["img_per_s"], 1) for p, r in by_level.items()},
        "trials_per_hour": {str(p): round(r["trials_per_hour"], 1) for p, r in by_level.items()},
        "levels": {str(p): r for p, r in by_level.items()},
        "error_vs_solo": {str(p): error_vs_solo(r, base) for p, r in by_level.items() if p != 1},
        "model": args.model,
        "trials": args.trials,
        "epochs": args.epochs,
        "images": args.images,
        "batch_size": args.batch_size,
        "cuda_graph": args.cuda_graph,
        "quick": args.quick,
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": args.device,
        },
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
