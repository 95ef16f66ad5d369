"""GPU training throughput (img/s) of mixup_core's Trainer against the paper's reference loop (issue 6).

CIFAR-shaped synthetic data (``--images`` × 3×32×32 uint8, 10 classes: a fixed blurry colour pattern per
class under pixel noise, see :func:`class_images`; kernel times do not depend on the values)
and ``--model`` (default preact_resnet18), SGD (momentum 0.9, weight decay 1e-4: the paper's; lr 0.02, not its
0.1, which diverges on this data),
input mixup α = 1, random crop (pad 4) + flip, at every batch size of ``--batch-sizes`` (default 128, the
paper's, and 512). Arms:

1. ``reference``: the official mixup-cifar10 loop: a ``DataLoader`` (shuffle, ``--ref-workers`` workers,
   8 in the original) over uint8 images with per-sample PIL ``RandomCrop(32, padding=4)`` +
   ``RandomHorizontalFlip`` + ``ToTensor`` + ``Normalize``, the batch moved to the GPU, ``mixup_data``
   there (``np.random.beta``, ``randperm``, ``lam*x + (1-lam)*x[index]``), fp32, default memory format,
   ``loss.item()`` and the ``.cpu()`` accuracy bookkeeping every step. The baseline.
2. ``ours_fp32``: :class:`mixup_core.Trainer` (dataset resident on the device, uint8 → normalised once;
   crop/flip and mixing on whole batches on the device; fused SGD), fp32, default memory format.
3. ``ours_bf16_cl``: the same with bf16 autocast and channels_last (the trainer's defaults).
4. ``ours_compile``: 3. plus ``torch.compile`` (skipped on the CPU, where inductor compiles for minutes).
5. ``ours_graph``: 3. with ``training.cuda_graph`` (issue 16): the static device-only step, captured in a CUDA
   graph on CUDA (eager on the CPU). It drops each epoch's last partial batch (img/s counts what it trained).
   Its ``mixing_share`` and ``batching_share`` come from an instrumented epoch of the same step run *eagerly*
   (a graph cannot be split into spans), so they are upper bounds for the graphed step.

Every arm starts from the same initial weights. What is timed: whole training epochs (``Trainer.train_epoch``,
one pass of the reference's DataLoader), after ``--warmup-epochs`` untimed ones (worker start-up, cuDNN
autotuning, compilation), with ``torch.cuda.synchronize`` before and after each timed epoch; img/s is the
median over ``--epochs`` timed epochs. Then one more, instrumented epoch per ``ours`` arm times the Mixer call
and the batch gather + crop/flip with CUDA events (wall clock on the CPU): ``mixing_share`` is the mixer's
share of the epoch (goal ≤ 1 %), the largest over arms and batch sizes. One untimed and one timed
``Trainer.evaluate`` (the test split, 10 000 images) give the per-epoch evaluation cost.

Derived figures: ``ours_vs_reference`` = fastest ours arm ÷ reference at the paper's batch (128, or the
first batch size); ``best_img_per_s`` = fastest ours arm at any batch size; ``paper_run_minutes`` =
200 epochs × 50 000 images ÷ ``best_img_per_s`` (training only; ``paper_run_minutes_with_eval`` adds a test
evaluation per epoch).

Usage: ``python benchmarks/gpu_throughput.py [--device auto|cuda|cpu] [--batch-sizes 128,512]
[--epochs 3] [--warmup-epochs 1] [--ref-workers 8] [--no-compile] [--quick]``. Prints one JSON line;
on a machine without CUDA ``"gpu"`` is null. ``--quick`` is a smoke test (small_cnn, 128 images, batches
of 32 and 64, one epoch each).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from _common import machine, paper_train_epoch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from mixup_core import DataConfig, ExperimentConfig, MixupConfig, ModelConfig, TrainConfig, Trainer, build_model
from mixup_core.compiled import clear_compiled_models
from mixup_core.data import LoadedDataset, images_dataset
from mixup_core.data.registry import IMAGE_STATS

# The paper's CIFAR recipe but for the learning rate: at its 0.1 the loss of preact_resnet18 on this synthetic
# data blew up within the first ~15 steps (a plain loop on the CPU: loss 2.3 → 114, logits in the thousands; NaN
# in every b128 arm on an H200, the reference loop's too). At 0.02 it falls steadily. A step costs the same.
LR, MOMENTUM, WEIGHT_DECAY, ALPHA = 0.02, 0.9, 1e-4, 1.0
PAPER_EPOCHS, PAPER_IMAGES, PAPER_BATCH = 200, 50_000, 128
NUM_CLASSES, SHAPE = 10, (3, 32, 32)
OURS = {  # arm -> (amp, channels_last, compile, cuda_graph)
    "ours_fp32": (False, False, False, False),
    "ours_bf16_cl": (True, True, False, False),
    "ours_compile": (True, True, True, False),
    "ours_graph": (True, True, False, True),
}
GOALS = {"ours_vs_reference": 5.0, "img_per_s_h100_b512": 50_000, "paper_run_minutes": 4.0, "mixing_share": 0.01}


# -- data ------------------------------------------------------------------------


def class_images(n: int, seed: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """``(n, 3, 32, 32)`` uint8 images and ``(n,)`` labels in [0, 10), seeded: a learnable task.

    Each class is a fixed low-frequency colour pattern (the same for every seed, so train and test share
    them) plus per-image noise, so the training loss falls as on real data and the test error means
    something. (Uniform random pixels with random labels, used before, cannot be learnt.)
    """
    patterns = np.random.default_rng(1234).standard_normal((NUM_CLASSES, SHAPE[0], 4, 4))
    patterns = patterns.repeat(SHAPE[1] // 4, axis=2).repeat(SHAPE[2] // 4, axis=3)  # 4×4 blocks → 32×32
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n, dtype=np.int64)
    pixels = 128 + 40 * patterns[labels] + 40 * rng.standard_normal((n, *SHAPE), dtype=np.float32)
    return np.clip(pixels, 0, 255).astype(np.uint8), labels


class PilImages(Dataset[tuple[torch.Tensor, int]]):
    """uint8 (N, H, W, C) images served as PIL images through a per-sample transform (torchvision's CIFAR10)."""

    def __init__(self, images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64], transform: Callable) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def epoch_images(n: int, batch: int) -> int:
    """Images one epoch trains on: a final batch of fewer than 2 is dropped (by both loops)."""
    full, rest = divmod(n, batch)
    return full * batch + (rest if rest >= 2 else 0)


# -- the arms ------------------------------------------------------------------------


def fresh_model(name: str, device: torch.device, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the trainer's initialisation: every arm starts from the same weights
        model = build_model(ModelConfig(name=name), SHAPE, NUM_CLASSES)
    return model.to(device).train()


def reference_arm(
    train: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]],
    model_name: str,
    batch: int,
    device: torch.device,
    seed: int,
    workers: int,
) -> Callable[[], int]:
    """The official mixup-cifar10 training loop; returns a function that trains one epoch."""
    model = fresh_model(model_name, device, seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    mean, std = IMAGE_STATS["cifar10"]
    transform = transforms.Compose(
        [
            transforms.RandomCrop(SHAPE[-1], padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    images = np.ascontiguousarray(train[0].transpose(0, 2, 3, 1))  # (N, H, W, C), as torchvision stores CIFAR
    loader = DataLoader(
        PilImages(images, train[1], transform),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
    np.random.seed(seed)

    def epoch() -> int:
        return paper_train_epoch(model, loader, optimizer, device, ALPHA)

    return epoch


def make_trainer(
    data: LoadedDataset, model: str, batch: int, device: torch.device, seed: int, flags: tuple[bool, ...]
) -> Trainer:
    amp, channels_last, compile_, cuda_graph = flags
    config = ExperimentConfig(
        # Validation and naming only: the trainer gets the random images below, never CIFAR's files.
        dataset=DataConfig(name="cifar10", download=False),
        model=ModelConfig(name=model),
        mixup=MixupConfig(alpha=ALPHA),
        training=TrainConfig(
            epochs=PAPER_EPOCHS,
            batch_size=batch,
            lr=LR,
            momentum=MOMENTUM,
            weight_decay=WEIGHT_DECAY,
            schedule="constant",
            seed=seed,
            device=str(device),
            amp=amp,
            channels_last=channels_last,
            compile=compile_,
            cuda_graph=cuda_graph,
        ),
    )
    return Trainer(config, dataset=data)


# -- instrumentation ------------------------------------------------------------------------


class SpanTimer:
    """Sums the duration of marked spans: CUDA events on the GPU timeline, wall clock on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.seconds = 0.0

    def start(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def stop(self, token: Any) -> None:
        if not self.cuda:
            self.seconds += time.perf_counter() - token
            return
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        self.events.append((token, event))

    def total(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            self.seconds += sum(a.elapsed_time(b) for a, b in self.events) / 1000.0  # elapsed_time is in ms
            self.events.clear()
        return self.seconds


class TimedMixer:
    """The trainer's Mixer with its ``__call__`` (λ, partners, the mixing itself) timed."""

    def __init__(self, mixer: Any, timer: SpanTimer) -> None:
        self._mixer, self._timer = mixer, timer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        token = self._timer.start()
        out = self._mixer(*args, **kwargs)
        self._timer.stop(token)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mixer, name)


class TimedBatches:
    """The trainer's BatchSource with the production of each batch (gather, crop, flip) timed."""

    def __init__(self, batches: Any, timer: SpanTimer) -> None:
        self._batches, self._timer = batches, timer

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self) -> Iterator[Any]:
        it = iter(self._batches)
        while True:
            token = self._timer.start()
            try:
                batch = next(it)
            except StopIteration:
                return
            self._timer.stop(token)
            yield batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batches, name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def step_shares(trainer: Trainer, device: torch.device) -> dict[str, float]:
    """One instrumented epoch: the Mixer's and the batch source's shares of its wall time."""
    if trainer.device_step is not None:
        return device_step_shares(trainer, device)
    mix_timer, batch_timer = SpanTimer(device), SpanTimer(device)
    mixer, batches = trainer.mixer, trainer.batches
    trainer.mixer = TimedMixer(mixer, mix_timer)  # type: ignore[assignment]
    trainer.batches = TimedBatches(batches, batch_timer)  # type: ignore[assignment]
    try:
        _, seconds = timed(trainer.train_epoch, device)
    finally:
        trainer.mixer, trainer.batches = mixer, batches
    return {"mixing": mix_timer.total() / seconds, "batching": batch_timer.total() / seconds}


def device_step_shares(trainer: Trainer, device: torch.device) -> dict[str, float]:
    """The same shares for ``training.cuda_graph``: one epoch of its step run eagerly, its parts timed."""
    step = trainer.device_step
    assert step is not None
    mix_timer, batch_timer = SpanTimer(device), SpanTimer(device)
    mixed, batch, cuda = step._mixed, step._batch, step.cuda

    def timed_part(fn: Callable[..., Any], timer: SpanTimer) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            token = timer.start()
            out = fn(*args)
            timer.stop(token)
            return out

        return run

    step._mixed = timed_part(mixed, mix_timer)  # type: ignore[method-assign]
    step._batch = timed_part(batch, batch_timer)  # type: ignore[method-assign]
    step.cuda = False  # eager: the spans of a replayed graph cannot be told apart
    try:
        _, seconds = timed(trainer.train_epoch, device)
    finally:
        del step._mixed, step._batch
        step.cuda = cuda
    return {"mixing": mix_timer.total() / seconds, "batching": batch_timer.total() / seconds}


def run_ours(
    arm: str, data: LoadedDataset, args: argparse.Namespace, batch: int, device: torch.device
) -> dict[str, Any]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = make_trainer(data, args.model, batch, device, args.seed, OURS[arm])
    n = epoch_images(data.train_size, batch)
    if trainer.device_step is not None:
        n = trainer.device_step.steps * batch  # the static step drops the last partial batch
    for _ in range(args.warmup_epochs):
        trainer.train_epoch()
    rates = [n / timed(trainer.train_epoch, device)[1] for _ in range(args.epochs)]
    shares = step_shares(trainer, device)
    trainer.evaluate()  # untimed: compiles / autotunes the evaluation shapes
    _, eval_seconds = timed(trainer.evaluate, device)
    out = {
        "img_per_s": statistics.median(rates),
        "epochs_img_per_s": rates,
        "mixing_share": shares["mixing"],
        "batching_share": shares["batching"],
        "eval_seconds": eval_seconds,
    }
    if device.type == "cuda":
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    trainer.close()
    return out


def run_reference(
    train: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]],
    args: argparse.Namespace,
    batch: int,
    device: torch.device,
) -> dict[str, Any]:
    epoch = reference_arm(train, args.model, batch, device, args.seed, args.ref_workers)
    for _ in range(args.warmup_epochs):
        epoch()
    rates = []
    for _ in range(args.epochs):
        seen, seconds = timed(epoch, device)
        rates.append(seen / seconds)
    return {"img_per_s": statistics.median(rates), "epochs_img_per_s": rates}


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -- report ------------------------------------------------------------------------


def minutes(img_per_s: float, eval_seconds: float = 0.0) -> float:
    """The paper's run (200 epochs of 50 000 images) at this throughput, plus an evaluation per epoch."""
    return PAPER_EPOCHS * (PAPER_IMAGES / img_per_s + eval_seconds) / 60.0


def summarise(results: dict[int, dict[str, dict[str, Any]]], batches: list[int]) -> dict[str, Any]:
    def ours(batch: int) -> dict[str, dict[str, Any]]:
        return {arm: r for arm, r in results[batch].items() if arm in OURS and r is not None}

    best_batch, best_arm = max(
        ((b, arm) for b in batches for arm in ours(b)), key=lambda ba: results[ba[0]][ba[1]]["img_per_s"]
    )
    best = results[best_batch][best_arm]
    by_batch = {
        str(b): max(r["img_per_s"] for r in ours(b).values()) / results[b]["reference"]["img_per_s"] for b in batches
    }
    paper_batch = PAPER_BATCH if PAPER_BATCH in batches else batches[0]
    paper_best = max(ours(paper_batch).values(), key=lambda r: r["img_per_s"])
    shares = {str(b): {arm: r["mixing_share"] for arm, r in ours(b).items()} for b in batches}
    return {
        "best_img_per_s": round(best["img_per_s"], 1),
        "best_arm": best_arm,
        "best_batch_size": best_batch,
        "ours_vs_reference": round(by_batch[str(paper_batch)], 3),
        "ours_vs_reference_batch_size": paper_batch,
        "ours_vs_reference_by_batch": {b: round(v, 3) for b, v in by_batch.items()},
        "paper_run_minutes": round(minutes(best["img_per_s"]), 2),
        "paper_run_minutes_with_eval": round(minutes(best["img_per_s"], best["eval_seconds"]), 2),
        "paper_run_minutes_at_paper_batch": round(minutes(paper_best["img_per_s"]), 2),
        "reference_paper_run_minutes": round(minutes(results[paper_batch]["reference"]["img_per_s"]), 2),
        "mixing_share": round(max(v for arms in shares.values() for v in arms.values()), 5),
        "mixing_share_by": {b: {a: round(v, 5) for a, v in arms.items()} for b, arms in shares.items()},
        "batching_share_by": {
            str(b): {arm: round(r["batching_share"], 5) for arm, r in ours(b).items()} for b in batches
        },
        "img_per_s": {
            str(b): {arm: (round(r["img_per_s"], 1) if r is not None else None) for arm, r in results[b].items()}
            for b in batches
        },
        "arms": {str(b): results[b] for b in batches},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda[:N] or cpu")
    parser.add_argument("--model", default="preact_resnet18")
    parser.add_argument("--batch-sizes", default="128,512", help="comma-separated")
    parser.add_argument("--images", type=int, default=PAPER_IMAGES, help="training images (CIFAR-10: 50 000)")
    parser.add_argument("--test-images", type=int, default=10_000, help="test images (evaluation timing)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per arm (the median is reported)")
    parser.add_argument("--warmup-epochs", type=int, default=1, help="untimed epochs per arm first")
    parser.add_argument("--ref-workers", type=int, default=min(8, os.cpu_count() or 1), help="reference workers")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile arm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (small_cnn, 128 images, 1 epoch)")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.batch_sizes, args.images, args.test_images = "small_cnn", "32,64", 128, 64
        args.epochs, args.warmup_epochs, args.ref_workers = 1, 1, 0
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error(f"--device {args.device}: no CUDA device is available here")
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
        torch.cuda.set_device(device)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    skipped = {}
    if args.no_compile:
        skipped["ours_compile"] = "--no-compile"
    elif device.type != "cuda":
        skipped["ours_compile"] = "not on the CPU (inductor compiles for minutes there)"

    train = class_images(args.images, args.seed)
    test = class_images(args.test_images, args.seed + 1)
    mean, std = IMAGE_STATS["cifar10"]
    data = images_dataset(train, test, NUM_CLASSES, mean, std, device, augment=True)  # uint8 → device → normalised
    results: dict[int, dict[str, dict[str, Any]]] = {}
    for batch in batches:
        results[batch] = {"reference": run_reference(train, args, batch, device)}
        free(device)
        for arm in OURS:
            results[batch][arm] = None if arm in skipped else run_ours(arm, data, args, batch, device)
            free(device)
        clear_compiled_models()  # the next batch size compiles afresh, with static shapes first
        torch._dynamo.reset()

    result: dict[str, Any] = {
        "benchmark": "gpu_throughput",
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        **summarise(results, batches),
        "skipped": skipped,
        "goals": GOALS,
        "model": args.model,
        "images": args.images,
        "batch_sizes": batches,
        "epochs": args.epochs,
        "warmup_epochs": args.warmup_epochs,
        "ref_workers": args.ref_workers,
        "quick": args.quick,
        "machine": machine(device),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
