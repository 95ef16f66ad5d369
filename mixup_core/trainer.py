"""The training loop: one :class:`ExperimentConfig` in, per-epoch metrics out.

Readable top to bottom: build (data, model, optimizer, mixer), then per epoch
train on device-resident batches and evaluate. Progress leaves through
callbacks (``on_epoch_end(metrics)``) or :meth:`Trainer.epochs`; the trainer
never logs to a tracker itself. Everything random is drawn from the trainer's
own generators, so a seed fixes a CPU run and a saved state resumes it exactly.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mixup_core import metrics as M
from mixup_core.batches import BatchSource
from mixup_core.compiled import compiled_model
from mixup_core.config import ExperimentConfig
from mixup_core.data import LoadedDataset, load_dataset
from mixup_core.device_step import DeviceStep
from mixup_core.divergence import DivergenceWatch
from mixup_core.errors import TrainingDiverged
from mixup_core.evaluation import PixelScale, calibration_error, evaluate, fgsm_error
from mixup_core.manifold import HiddenMixer
from mixup_core.mixer import Mixer
from mixup_core.models import build_model
from mixup_core.pairing import KnnPartners
from mixup_core.recipe import learning_rate, make_optimizer, set_learning_rate

EpochCallback = Callable[[dict[str, float]], None]
#: Steps between finiteness checks of the running loss. On CUDA a check starts an asynchronous copy and reads
#: the previous one if it has landed (see :mod:`mixup_core.divergence`): no check ever waits for the device.
DIVERGENCE_CHECK_EVERY = 50
_KNN_CACHE: dict[tuple[int, int, bool], KnnPartners] = {}


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first visible CUDA device (``cuda:0``) when there is one, else the CPU.

    A Ray worker sees only the GPUs Ray gave its trial (``CUDA_VISIBLE_DEVICES``;
    several fractional trials see the same one), renumbered from 0, and no GPU
    at all for a CPU-only trial, so ``auto`` is right in both. A bare ``cuda``
    gets its index, so caches keyed on the device see one name per GPU.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"training.device {name!r}: no CUDA device is available here")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def knn_partners(data: LoadedDataset, k: int, same_class: bool) -> KnnPartners:
    """KNN partners of a loaded dataset, computed once per process and dataset."""
    key = (id(data), k, same_class)
    if key not in _KNN_CACHE:
        _KNN_CACHE[key] = KnnPartners.build(data.train_x, k, data.train_y if same_class else None)
    return _KNN_CACHE[key]


@dataclass
class TrainResult:
    """The last epoch's metrics and every epoch's, in order."""

    final: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Trains one configuration.

    Args:
        config: the experiment.
        callbacks: called with each epoch's metrics, in order.
        dataset: an already loaded dataset (on the training device); loaded from
            ``config.dataset`` when None.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        callbacks: Sequence[EpochCallback] = (),
        dataset: LoadedDataset | None = None,
    ) -> None:
        self.config = config
        self.callbacks = list(callbacks)
        train = config.training
        self.device = resolve_device(train.device)
        if self.device.type == "cuda":
            # Fixed shapes every step: let cuDNN time its algorithms once per shape and keep the fastest.
            torch.backends.cudnn.benchmark = True
        self.data = dataset if dataset is not None else load_dataset(config.dataset, self.device)
        images = self.data.train_x.dim() == 4
        self.memory_format = torch.channels_last if train.channels_last and images else torch.contiguous_format

        # forward passes run through self.forward: the model itself or its compiled wrapper
        self.model, self.forward = self._build_model()
        self.optimizer = make_optimizer(train, self.model, self.device)
        self.generator = torch.Generator(self.device).manual_seed(train.seed)
        self.lam_generator = torch.Generator("cpu").manual_seed(train.seed + 1_000_003)
        mix = config.mixup
        self.hidden = HiddenMixer(self.model, mix.layer) if mix.layer != "input" and mix.mixes else None
        knn = knn_partners(self.data, mix.knn_k, mix.scope == "same_class") if mix.pairing == "knn" else None
        self.batches = BatchSource(
            self.data, train.batch_size, self.generator, knn if mix.mixes else None, train.channels_last
        )
        self.mixer = Mixer(mix, self.generator, self.lam_generator, self.hidden)
        self.device_step = (
            DeviceStep(
                self.model,
                self.forward,
                self.optimizer,
                self.data,
                mix,
                train.batch_size,
                self.generator,
                self.autocast,
                self.memory_format,
            )
            if train.cuda_graph
            else None
        )
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self._watch = DivergenceWatch(self.device)

    def _build_model(self) -> tuple[nn.Module, nn.Module]:
        # Initialisation draws from PyTorch's global RNG; fork it so the seed fixes
        # the weights without touching anyone else's random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.training.seed)
            model = build_model(self.config.model, self.data.input_shape, self.data.num_classes)
        model = model.to(self.device).to(memory_format=self.memory_format)
        if not self.config.training.compile:
            return model, model
        key = (
            self.config.model.name,
            self.config.model.width,
            self.data.input_shape,
            self.data.num_classes,
            str(self.device),
            self.memory_format,
        )
        return compiled_model(key, model)

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """bf16 autocast on CUDA when ``training.amp``; a no-op elsewhere (CPU bf16 is slower)."""
        if self.device.type == "cuda" and self.config.training.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- training ---------------------------------------------------------------

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training set; returns loss, λ-weighted error and throughput."""
        self.model.train()
        lr = learning_rate(self.config.training, self.epoch)
        set_learning_rate(self.optimizer, lr)
        started = time.perf_counter()
        if self.device_step is not None:
            # Metrics summed on the device; the epoch's one read is also the divergence check.
            total_loss, total_correct, seen = self.device_step.run_epoch(lr)
            self._raise_if_diverged(total_loss, self.device_step.steps - 1)
        else:
            total_loss, total_correct, seen = self._eager_epoch()
        seconds = time.perf_counter() - started
        return {
            M.LR: lr,
            M.TRAIN_LOSS: total_loss / max(1, seen),
            M.TRAIN_ERROR: 100.0 * (1.0 - total_correct / max(1, seen)),
            M.EPOCH_SECONDS: seconds,
            M.TRAIN_SAMPLES_PER_S: seen / seconds if seconds > 0 else math.inf,
        }

    def _eager_epoch(self) -> tuple[float, float, int]:
        """The default step: (sum of per-sample losses, λ-weighted correct, samples) of one epoch."""
        loss_sum = torch.zeros((), device=self.device)
        correct_sum = torch.zeros((), device=self.device)
        seen = 0
        for step, clean in enumerate(self.batches):
            batch = self.mixer(clean.x, clean.y, clean.partner_x, clean.partner_y)
            with self.autocast():
                logits = self.forward(batch.x)
            loss = self.mixer.loss(logits, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            n = batch.y_a.numel()
            seen += n
            loss_sum += loss.detach() * n
            correct_sum += self.mixer.correct(logits.detach(), batch)
            if (step + 1) % DIVERGENCE_CHECK_EVERY == 0 and (seen_loss := self._watch.poll(loss_sum, step)):
                self._raise_if_diverged(*seen_loss)
        # The epoch's one read of the device (it waits for the last step, so the timing below is honest).
        total_loss, total_correct = torch.stack([loss_sum, correct_sum]).tolist()
        self._raise_if_diverged(total_loss, len(self.batches) - 1)
        self._watch.reset()
        return total_loss, total_correct, seen

    def _raise_if_diverged(self, value: float, step: int) -> None:
        if not math.isfinite(value):
            cfg = self.config
            raise TrainingDiverged(
                f"training loss became {value} in epoch {self.epoch + 1}, by step {step + 1} "
                f"(training.lr={cfg.training.lr}, mixup.alpha={cfg.mixup.alpha}, model={cfg.model.name}); "
                f"try a smaller learning rate"
            )

    # -- evaluation -------------------------------------------------------------

    def evaluate(self, last_epoch: bool = True) -> dict[str, float]:
        """Test (and validation) metrics of the current model.

        Args:
            last_epoch: whether this is the run's last evaluation (``fgsm_last_epoch_only`` measures FGSM then).
        """
        ev = self.config.evaluation
        data = self.data
        test = evaluate(
            self.forward, data.test_x, data.test_y, ev.batch_size, self.autocast, ev.ece, self.memory_format
        )
        out = {M.TEST_ERROR: test.error, M.TEST_LOSS: test.loss}
        if ev.ece:
            out[M.TEST_ECE] = calibration_error(test, data.test_y, ev.ece_bins)
        if data.val_x is not None and data.val_y is not None:
            val = evaluate(
                self.forward,
                data.val_x,
                data.val_y,
                ev.batch_size,
                self.autocast,
                memory_format=self.memory_format,
            )
            out[M.VAL_ERROR], out[M.VAL_LOSS] = val.error, val.loss
        if ev.fgsm_epsilon is not None and (last_epoch or not ev.fgsm_last_epoch_only):
            scale = PixelScale(data.mean, data.std) if data.mean is not None and data.std is not None else None
            out[M.FGSM_TEST_ERROR] = fgsm_error(
                self.forward,
                data.test_x,
                data.test_y,
                ev.fgsm_epsilon,
                ev.batch_size,
                scale,
                self.autocast,
                self.memory_format,
            )
        return out

    # -- the loop ---------------------------------------------------------------

    def epochs(self) -> Iterator[dict[str, float]]:
        """Train and evaluate epoch by epoch until ``training.epochs``; yields each epoch's metrics.

        Resumes from ``self.epoch`` (after :meth:`load_state_dict`).
        """
        window = self.config.evaluation.median_window
        while self.epoch < self.config.training.epochs:
            metrics = self.train_epoch()
            metrics.update(self.evaluate(last_epoch=self.epoch + 1 == self.config.training.epochs))
            self.epoch += 1
            metrics[M.EPOCH] = float(self.epoch)
            errors = [h[M.TEST_ERROR] for h in self.history] + [metrics[M.TEST_ERROR]]
            metrics[M.MEDIAN_TEST_ERROR] = M.median_of_last(errors, window)
            metrics[M.BEST_TEST_ERROR] = min(errors)
            self.history.append(metrics)
            for callback in self.callbacks:
                callback(metrics)
            yield metrics

    def fit(self) -> TrainResult:
        """Run every remaining epoch and return the result."""
        for _ in self.epochs():
            pass
        if not self.history:
            raise ValueError(f"nothing to train: already at epoch {self.epoch} of {self.config.training.epochs}")
        return TrainResult(self.history[-1], list(self.history))

    def close(self) -> None:
        """Detach hooks (a cached compiled model outlives this trainer)."""
        if self.hidden is not None:
            self.hidden.remove()
            self.hidden = None

    # -- checkpoints ------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where training stopped."""
        return {
            "config": self.config.model_dump(mode="json"),
            "epoch": self.epoch,
            "history": list(self.history),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "lam_generator": self.lam_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (model, optimizer, epoch, history, RNG)."""
        saved = ExperimentConfig.model_validate(state["config"])
        if saved != self.config:
            raise ValueError("the checkpoint was written by a different configuration")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.lam_generator.set_state(state["lam_generator"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
