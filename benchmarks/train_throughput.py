"""Training throughput (images/s): mixup_core's Trainer vs a plain loop vs the paper's reference loop.

Four arms train the same model (``--model``, default small_cnn) from the same initial weights on
the same ``steps × batch`` training images (a stratified subset of Fashion-MNIST at 28×28, CIFAR-10
at 32×32; a synthetic tensor dataset of the same shape when the files are absent), batch 128,
SGD (lr 0.05, momentum 0.9, weight decay 1e-4):

* ``ours``: :class:`mixup_core.Trainer` (input mixup, α = 1, one λ per batch, λ-weighted training
  accuracy, the trainer's defaults: device-resident dataset, channels_last), no augmentation.
* ``ours_aug``: the same with ``dataset.augment=True`` (random crop with padding 4 + horizontal
  flip, done on whole batches on the device), the like-for-like arm for the reference.
* ``plain``: a minimal eager loop, NO mixup and no augmentation: index a shuffled in-memory tensor,
  forward, cross-entropy, backward, step (default memory format).
* ``reference``: the official mixup-cifar10 loop: a ``DataLoader`` (shuffle, ``--ref-workers``
  workers) over a map-style dataset of uint8 images with per-sample ``RandomCrop(padding=4)`` +
  ``RandomHorizontalFlip`` + ``ToTensor`` + ``Normalize`` (PIL, as torchvision's datasets do), then
  ``mixup_data`` (``np.random.beta``, ``randperm``, ``lam*x + (1-lam)*x[index]``), the
  ``mixup_criterion`` and its per-step loss / λ-weighted accuracy bookkeeping (progress bar left out).

What is timed: one *training epoch* over the ``steps × batch`` subset, i.e. exactly ``--steps``
optimizer steps per arm and measurement. For ours that is :meth:`Trainer.train_epoch` (the
trainer's training pass; the per-epoch evaluation lives in :meth:`Trainer.epochs` and is not
called), for the reference one pass over its DataLoader (so its loading and augmentation count,
as they do in training). Arms run interleaved (plain, ours, ours_aug, reference, plain, ...)
after one untimed warm-up round; each img/s figure is the median over ``--rounds`` rounds. Ratios
are throughput ratios (higher is better), each the median over rounds of the ratio within a round
(robust to load that drifts on a shared machine; ``ratio_of_medians`` gives the other reading):
``ours_vs_plain = ours / plain`` and ``ours_vs_reference = ours_aug / reference`` (both augment and
mix); ``ours_noaug_vs_reference`` and ``ours_aug_vs_plain`` are given too.

Usage: ``python benchmarks/train_throughput.py [--device cpu|cuda] [--model preact_resnet18
--image-size 32] [--steps N] [--rounds N] [--quick]``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from _common import machine, paper_train_epoch, time_interleaved
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from mixup_core import (
    DataConfig,
    DatasetNotFound,
    ExperimentConfig,
    LoadedDataset,
    MixupConfig,
    ModelConfig,
    SyntheticConfig,
    TrainConfig,
    Trainer,
    build_model,
    load_dataset,
)

LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 1e-4
NUM_CLASSES = 10
REAL_DATASETS = {28: "fashion_mnist", 32: "cifar10"}


# -- data ------------------------------------------------------------------------


def data_config(image_size: int, n: int, augment: bool) -> DataConfig:
    """The real dataset of that size when its files are here, else a synthetic one of the same shape."""
    name = REAL_DATASETS.get(image_size)
    if name is not None:
        config = DataConfig(name=name, train_subset=n, augment=augment, download=False)
        try:
            load_dataset(config)  # cached: the trainer gets the same object
            return config
        except DatasetNotFound:
            pass
    channels = 1 if image_size == 28 else 3
    shape = (channels, image_size, image_size)
    synthetic = SyntheticConfig(num_train=n, num_test=NUM_CLASSES, num_classes=NUM_CLASSES, shape=shape)
    return DataConfig(name="synthetic", synthetic=synthetic, augment=augment)


def as_uint8_hwc(data: LoadedDataset) -> npt.NDArray[np.uint8]:
    """The training images back as (N, H, W[, C]) uint8, as a torchvision dataset stores them."""
    x = data.train_x.detach().cpu()  # (N, C, H, W), normalised
    if data.mean is not None and data.std is not None:
        mean = torch.tensor(data.mean).view(1, -1, 1, 1)
        std = torch.tensor(data.std).view(1, -1, 1, 1)
        pixels = (x * std + mean) * 255.0
    else:
        pixels = x * 32.0 + 128.0  # synthetic values: any faithful uint8 picture will do
    u8 = pixels.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
    return u8[..., 0] if u8.shape[-1] == 1 else u8


class ImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Map-style dataset of uint8 images with a per-sample transform (torchvision's MNIST/CIFAR10 style)."""

    def __init__(self, images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64], transform: Callable) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.images[i], mode="L" if self.images.ndim == 3 else "RGB")
        return self.transform(img), int(self.labels[i])


# -- the arms ------------------------------------------------------------------------


def fresh_model(name: str, data: LoadedDataset, device: torch.device, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the trainer's initialisation: every arm starts from the same weights
        model = build_model(ModelConfig(name=name), data.input_shape, data.num_classes)
    return model.to(device).train()


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def plain_arm(model_name: str, data: LoadedDataset, batch: int, device: torch.device, seed: int) -> Callable[[], int]:
    """A minimal eager loop without mixup; returns a function that trains one epoch."""
    model = fresh_model(model_name, data, device, seed)
    optimizer = sgd(model)
    x_all, y_all = data.train_x, data.train_y  # (N, C, H, W), (N,) on the device
    g = torch.Generator(device).manual_seed(seed)

    def epoch() -> int:
        n = x_all.shape[0]
        order = torch.randperm(n, generator=g, device=device)
        for i in range(n // batch):
            idx = order[i * batch : (i + 1) * batch]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return (n // batch) * batch

    return epoch


def reference_arm(
    model_name: str, data: LoadedDataset, batch: int, device: torch.device, seed: int, workers: int
) -> Callable[[], int]:
    """The official mixup-cifar10 training loop; returns a function that trains one epoch."""
    model = fresh_model(model_name, data, device, seed)
    optimizer = sgd(model)
    size = data.input_shape[-1]
    mean, std = (data.mean, data.std) if data.mean is not None and data.std is not None else ((0.5,), (0.25,))
    transform = transforms.Compose(
        [
            transforms.RandomCrop(size, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    dataset = ImageDataset(as_uint8_hwc(data), data.train_y.cpu().numpy(), transform)
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
    np.random.seed(seed)

    def epoch() -> int:
        return paper_train_epoch(model, loader, optimizer, device, 1.0)

    return epoch


def trainer_arm(config: ExperimentConfig) -> Callable[[], int]:
    """mixup_core's Trainer; one call is one :meth:`Trainer.train_epoch` (no evaluation)."""
    trainer = Trainer(config)

    def epoch() -> int:
        trainer.train_epoch()
        return len(trainer.batches) * config.training.batch_size

    return epoch


# -- measurement ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--model", default="small_cnn", help="small_cnn (default), preact_resnet18, ...")
    parser.add_argument("--image-size", type=int, default=28, choices=(28, 32), help="28: Fashion-MNIST, 32: CIFAR-10")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps per arm and measurement")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--ref-workers", type=int, default=0, help="DataLoader workers of the reference loop")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny step counts, one round (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.rounds, args.warmup = 2, 1, 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available here")
    torch.set_num_threads(args.threads)

    n = args.steps * args.batch_size  # one epoch = exactly --steps batches in every arm
    configs = {}
    for name, augment in (("ours", False), ("ours_aug", True)):
        configs[name] = ExperimentConfig(
            dataset=data_config(args.image_size, n, augment),
            model=ModelConfig(name=args.model),
            mixup=MixupConfig(alpha=1.0),
            training=TrainConfig(
                epochs=1,
                batch_size=args.batch_size,
                optimizer="sgd",
                lr=LR,
                momentum=MOMENTUM,
                weight_decay=WEIGHT_DECAY,
                schedule="constant",
                seed=args.seed,
                device=str(device),
            ),
        )
    data = load_dataset(configs["ours"].dataset, device)
    arms = {
        "plain": plain_arm(args.model, data, args.batch_size, device, args.seed),
        "ours": trainer_arm(configs["ours"]),
        "ours_aug": trainer_arm(configs["ours_aug"]),
        "reference": reference_arm(args.model, data, args.batch_size, device, args.seed, args.ref_workers),
    }
    timed = time_interleaved(arms, args.rounds, args.warmup, device)
    rates = {name: [images / seconds for seconds, images in calls] for name, calls in timed.items()}
    med = {name: statistics.median(values) for name, values in rates.items()}

    def paired(a: str, b: str) -> float:
        # Median over rounds of the ratio within each round: arms of one round ran seconds apart,
        # so load from other processes that drifts over minutes cancels out of the ratio.
        return round(statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True)), 3)

    result: dict[str, Any] = {
        "benchmark": "train_throughput",
        "ours_vs_plain": paired("ours", "plain"),
        "ours_vs_reference": paired("ours_aug", "reference"),
        "ours_noaug_vs_reference": paired("ours", "reference"),
        "ours_aug_vs_plain": paired("ours_aug", "plain"),
        "ratio_of_medians": {
            "ours_vs_plain": round(med["ours"] / med["plain"], 3),
            "ours_vs_reference": round(med["ours_aug"] / med["reference"], 3),
        },
        "ours_img_per_s": round(med["ours"], 1),
        "ours_aug_img_per_s": round(med["ours_aug"], 1),
        "plain_img_per_s": round(med["plain"], 1),
        "reference_img_per_s": round(med["reference"], 1),
        "rounds_img_per_s": {name: [round(r, 1) for r in values] for name, values in rates.items()},
        "dataset": configs["ours"].dataset.name,
        "model": args.model,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "ref_workers": args.ref_workers,
        "quick": args.quick,
        "machine": machine(device),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
