"""One callable that turns a clean batch into a training batch, and scores it.

It composes the small helpers (λ, partners, hidden-layer hook, targets) the way
a :class:`~mixup_core.config.MixupConfig` asks, so the training step reads:

    batch = mixer(x, y)                 # or mixer(x, y, partner_x, partner_y) for KNN
    loss = mixer.loss(model(batch.x), batch)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mixup_core.config import MixupConfig
from mixup_core.lam import sample_lambda, sample_lambda_float
from mixup_core.losses import Lam, closest_labels, mixed_cross_entropy, weighted_correct
from mixup_core.manifold import HiddenMixer, mix_tensor
from mixup_core.pairing import random_partners, same_class_partners


@dataclass(frozen=True)
class MixedBatch:
    """A batch ready for the model: inputs and the targets of the two-index loss.

    ``lam`` weighs ``y_a`` against ``y_b``; it is 1.0 for ERM and for the
    "closest" target, whose hard label is then ``y_a``.
    """

    x: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: Lam


class Mixer:
    """Mixes batches on their own device as ``config`` says.

    Args:
        config: the mixing settings.
        generator: on the training device; partners and input noise.
        lam_generator: on the CPU; λ (see :mod:`mixup_core.lam`).
        hidden: the armed-per-step hook when ``config.layer`` is not ``input``.
    """

    def __init__(
        self,
        config: MixupConfig,
        generator: torch.Generator,
        lam_generator: torch.Generator,
        hidden: HiddenMixer | None = None,
    ) -> None:
        if (config.layer != "input" and config.mixes) != (hidden is not None):
            raise ValueError(f"mixup.layer={config.layer!r} needs a HiddenMixer exactly when it mixes a hidden layer")
        self.config = config
        self.generator = generator
        self.lam_generator = lam_generator
        self.hidden = hidden

    def draw_lambda(self, batch_size: int, device: torch.device) -> Lam:
        """One λ per batch (a float: no device transfer) or a (B,) tensor per sample."""
        if self.config.lam_per == "batch":
            return sample_lambda_float(self.config.alpha, self.lam_generator)
        lam = sample_lambda(self.config.alpha, batch_size, self.lam_generator).float()
        if device.type == "cuda":
            # From pageable memory a "non-blocking" copy may still wait for the stream; from pinned memory
            # it is truly asynchronous (the caching host allocator keeps the block until the copy is done).
            lam = lam.pin_memory()
        return lam.to(device, non_blocking=True)

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        partner_x: torch.Tensor | None = None,
        partner_y: torch.Tensor | None = None,
    ) -> MixedBatch:
        """Mix a batch.

        Args:
            x: (B, ...) clean inputs (augmented already); not modified.
            y: (B,) int64 labels.
            partner_x, partner_y: dataset-level partners (KNN pairing); None for in-batch pairing.
        """
        cfg = self.config
        if not cfg.mixes:
            return MixedBatch(self._noised(x), y, y, 1.0)
        lam = self.draw_lambda(y.numel(), y.device)
        if partner_x is not None and partner_y is not None:
            y_b = partner_y
            weight = lam if isinstance(lam, float) else lam.view(-1, *([1] * (x.dim() - 1)))
            mixed = torch.lerp(partner_x, x, weight)  # λ·x + (1 − λ)·partner_x
        else:
            if cfg.scope == "same_class":
                partners = same_class_partners(y, self.generator)
            else:
                partners = random_partners(y.numel(), self.generator, y.device)
            y_b = y.index_select(0, partners)
            if self.hidden is not None:
                self.hidden.arm(partners, lam)
                mixed = x
            else:
                mixed = mix_tensor(x, partners, lam)
        mixed = self._noised(mixed)
        if cfg.target == "closest":
            label = closest_labels(y, y_b, lam)
            return MixedBatch(mixed, label, label, 1.0)
        return MixedBatch(mixed, y, y_b, lam)

    def _noised(self, x: torch.Tensor) -> torch.Tensor:
        sigma = self.config.input_noise
        if sigma == 0:
            return x
        noise = torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        return x + sigma * noise

    def loss(self, logits: torch.Tensor, batch: MixedBatch) -> torch.Tensor:
        """The mean training loss of the batch (two-index form, label smoothing applied)."""
        return mixed_cross_entropy(logits, batch.y_a, batch.y_b, batch.lam, self.config.label_smoothing)

    @staticmethod
    def correct(logits: torch.Tensor, batch: MixedBatch) -> torch.Tensor:
        """λ-weighted number of correct predictions, a scalar tensor on the device."""
        return weighted_correct(logits, batch.y_a, batch.y_b, batch.lam)
