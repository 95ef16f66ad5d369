"""A training step with no per-step host work (``training.cuda_graph``, issue 16).

At the paper's batch 128 a GPU step is short enough that the host's work per step (launching ~hundreds of
kernels, drawing λ on the CPU, the partner permutation, the divergence poll) bounds the throughput. This
path makes every step the same fixed-shape sequence of device operations, so on CUDA it can be captured once
in a CUDA graph and replayed: one launch per step.

* Static shapes: every step trains exactly ``batch_size`` samples; an epoch is ``N // batch_size`` steps and
  the last partial batch is dropped (the paper's loop keeps it: its DataLoader has ``drop_last=False``; at
  CIFAR-10's 50 000 / 128 that is 80 of 50 000 images per epoch, each a different 80 every epoch).
* The epoch's batch order is a device permutation written into a static buffer once per epoch; each step
  picks its row with an on-device step counter.
* λ ~ Beta(α, α) and the partner permutation are drawn on the device from the trainer's device generator:
  λ from two Gamma variates (Marsaglia & Tsang, as :mod:`mixup_core.lam`, but with a fixed number of
  candidates per draw so the shapes never depend on the values), partners as the argsort of uniforms.
* The loss and the λ-weighted correct count are summed in device tensors; the host reads them once per
  epoch, and that read is also the divergence check (a non-finite loss is seen at the epoch's end).

On the CPU the same step runs eagerly (there is no graph and no launch overhead to save). It is not the
default there: the CPU's λ draw (:mod:`mixup_core.lam`) is what every stored study and seed was run with.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mixup_core.config import MixupConfig
from mixup_core.data import LoadedDataset, random_crop_flip
from mixup_core.losses import closest_labels, mixed_cross_entropy, weighted_correct
from mixup_core.manifold import mix_tensor
from mixup_core.recipe import set_learning_rate

#: Candidates per Gamma draw. Marsaglia & Tsang accept each with probability > 0.95 (shape >= 1, which the
#: boost guarantees), so all 8 are rejected with probability < 0.05**8 ≈ 4e-11; the first candidate is then
#: used, a bias far below anything measurable.
GAMMA_CANDIDATES = 8
#: Eager steps on a side stream before capture (cuDNN autotuning, the optimizer's state, allocator warm-up).
WARMUP_STEPS = 3


def _log_gamma(shape: float, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """log of n Gamma(shape, 1) draws, float64 on ``device``, in fixed shapes (graph-capturable)."""
    boosted = shape < 1
    a = shape + 1.0 if boosted else shape
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    x = torch.randn(n, GAMMA_CANDIDATES, generator=generator, device=device, dtype=torch.float64)
    u = torch.rand(n, GAMMA_CANDIDATES, generator=generator, device=device, dtype=torch.float64)
    v = (1.0 + c * x) ** 3
    positive = v > 0
    log_v = torch.log(torch.where(positive, v, torch.ones_like(v)))
    accept = positive & (torch.log(u) < 0.5 * x * x + d - d * v + d * log_v)
    first = accept.to(torch.uint8).argmax(1, keepdim=True)  # the first accepted candidate (argmax: first max)
    log_g = math.log(d) + log_v.gather(1, first).squeeze(1)
    if boosted:  # Gamma(a) = Gamma(a + 1) · U^(1/a), in log space (U^(1/a) underflows for tiny a)
        u1 = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        log_g = log_g + torch.log(u1) / shape
    return log_g


def device_lambda(alpha: float, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """n draws of λ ~ Beta(α, α), float32 (n,) on ``device``; α = 0 gives ones (ERM) without drawing."""
    if not alpha >= 0 or math.isinf(alpha):
        raise ValueError(f"mixup.alpha must be a finite number >= 0, got {alpha}")
    if alpha == 0:
        return torch.ones(n, device=device)
    log_x = _log_gamma(alpha, n, generator, device)
    log_y = _log_gamma(alpha, n, generator, device)
    return torch.sigmoid(log_x - log_y).float()  # X / (X + Y), stable whatever the magnitudes


def device_partners(batch_size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A uniformly random permutation of ``range(batch_size)``: the argsort of device uniforms."""
    return torch.rand(batch_size, generator=generator, device=device).argsort()


def check_supported(mix: MixupConfig) -> None:
    """The mixing settings the static step implements; anything else is refused, naming the setting."""
    for name, value, allowed in (("layer", mix.layer, "input"), ("pairing", mix.pairing, "random")):
        if value != allowed:
            raise ValueError(f"training.cuda_graph supports mixup.{name}={allowed!r} only, got {value!r}")
    if mix.scope != "all" and mix.mixes:
        raise ValueError(f"training.cuda_graph supports mixup.scope='all' only, got {mix.scope!r}")


class DeviceStep:
    """Trains whole epochs with the static, device-only step; captured in a CUDA graph on CUDA.

    Args:
        model: the module the optimizer updates (in train mode).
        forward: the callable that runs it (the model or its compiled wrapper).
        optimizer: the trainer's optimizer.
        data: the device-resident dataset.
        mix: the mixing settings (:func:`check_supported`).
        batch_size: samples per step; ``N // batch_size`` steps per epoch.
        generator: the trainer's device generator: order, crops, flips, λ, partners, noise.
        autocast: the trainer's autocast context factory.
        memory_format: the model's input memory format.
    """

    def __init__(
        self,
        model: nn.Module,
        forward: Callable[[torch.Tensor], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        data: LoadedDataset,
        mix: MixupConfig,
        batch_size: int,
        generator: torch.Generator,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]],
        memory_format: torch.memory_format,
    ) -> None:
        check_supported(mix)
        n = data.train_x.shape[0]
        if n < batch_size:
            raise ValueError(
                f"training.cuda_graph drops the last partial batch: training.batch_size={batch_size} "
                f"is larger than the {n} training samples"
            )
        self.model, self.forward, self.optimizer = model, forward, optimizer
        self.data, self.mix, self.batch_size, self.generator = data, mix, batch_size, generator
        self.autocast, self.memory_format = autocast, memory_format
        self.device = data.train_x.device
        self.steps = n // batch_size
        self.order = torch.zeros(self.steps, batch_size, dtype=torch.long, device=self.device)
        self.counter = torch.zeros(1, dtype=torch.long, device=self.device)
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct_sum = torch.zeros((), device=self.device)
        self.cuda = self.device.type == "cuda"
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_lr: float | None = None
        self._warm = 0

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step, device operations only; returns this step's (mean loss, weighted correct)."""
        b = self.batch_size
        x, y_a, y_b, lam = self._mixed(*self._batch())
        with self.autocast():
            logits = self.forward(x)
        loss = mixed_cross_entropy(logits, y_a, y_b, lam, self.mix.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        correct = weighted_correct(logits.detach(), y_a, y_b, lam)
        self.loss_sum.add_(loss.detach() * b)
        self.correct_sum.add_(correct)
        return loss.detach(), correct

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's row of the epoch's order: gathered, cropped and flipped on the device."""
        idx = self.order.index_select(0, self.counter).view(self.batch_size)
        self.counter.add_(1)
        data = self.data
        x = data.train_x.index_select(0, idx)
        y = data.train_y.index_select(0, idx)
        if data.augment:
            x = random_crop_flip(x, self.generator, fill=data.pad_fill)
        if x.dim() == 4:
            x = x.contiguous(memory_format=self.memory_format)
        return x, y

    def _mixed(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float | torch.Tensor]:
        mix, b = self.mix, self.batch_size
        if mix.mixes:
            lam = device_lambda(mix.alpha, b if mix.lam_per == "sample" else 1, self.generator, self.device)
            lam = lam.expand(b)  # one λ per batch: the same weight for every sample, still on the device
            partners = device_partners(b, self.generator, self.device)
            y_b = y.index_select(0, partners)
            x = mix_tensor(x, partners, lam)
        if mix.input_noise > 0:
            noise = torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
            x = x + mix.input_noise * noise
        if not mix.mixes:
            return x, y, y, 1.0
        if mix.target == "closest":
            label = closest_labels(y, y_b, lam)
            return x, label, label, 1.0
        return x, y, y_b, lam

    def run_epoch(self, lr: float) -> tuple[float, float, int]:
        """One epoch at ``lr``: (sum of per-sample losses, λ-weighted correct, samples), one host read."""
        set_learning_rate(self.optimizer, lr)
        n = self.data.train_x.shape[0]
        perm = torch.randperm(n, generator=self.generator, device=self.device)
        self.order.copy_(perm[: self.steps * self.batch_size].view(self.steps, self.batch_size))
        self.counter.zero_()
        self.loss_sum.zero_()
        self.correct_sum.zero_()
        for _ in range(self.steps):
            if self.cuda:
                self._cuda_step(lr)
            else:
                self.step()
        loss, correct = torch.stack([self.loss_sum, self.correct_sum]).tolist()
        return loss, correct, self.steps * self.batch_size

    def _cuda_step(self, lr: float) -> None:
        """Replay the captured step; warm up and (re)capture first (the lr is baked into the fused step)."""
        if self._graph is not None and self._graph_lr == lr:
            self._graph.replay()
            return
        if self._warm < WARMUP_STEPS:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self.step()
            torch.cuda.current_stream(self.device).wait_stream(side)
            self._warm += 1
            return
        self._graph = None  # a new lr: capture again (the step schedule changes it twice in a run)
        graph = torch.cuda.CUDAGraph()
        if hasattr(graph, "register_generator_state"):
            graph.register_generator_state(self.generator)  # a non-default generator advances per replay
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self.step()
        self._graph, self._graph_lr = graph, lr
        graph.replay()  # capture records without running: this step's work happens now
