"""Training batches straight from the device-resident dataset.

No DataLoader and no workers: each epoch is one permutation of the training
indices; a batch is a gather from the dataset tensor, then crop + flip on the
whole batch (cifar10-airbench's design). KNN partners are gathered in the same
gather as the batch and augmented with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from mixup_core.data import LoadedDataset, random_crop_flip
from mixup_core.pairing import KnnPartners


@dataclass(frozen=True)
class Batch:
    """Clean (augmented, unmixed) training inputs; partners only for KNN pairing."""

    x: torch.Tensor
    y: torch.Tensor
    partner_x: torch.Tensor | None = None
    partner_y: torch.Tensor | None = None


class BatchSource:
    """Iterates shuffled, augmented batches of the training split.

    Args:
        data: the loaded dataset (tensors on the training device).
        batch_size: samples per batch; a final batch of fewer than 2 is dropped
            (a single sample cannot be mixed and breaks batch norm).
        generator: on the training device; order, crops and flips, KNN picks.
        knn: dataset-level partners, or None for in-batch pairing.
        channels_last: hand image batches to the model in channels_last format.
    """

    def __init__(
        self,
        data: LoadedDataset,
        batch_size: int,
        generator: torch.Generator,
        knn: KnnPartners | None = None,
        channels_last: bool = False,
    ) -> None:
        self.data = data
        self.batch_size = batch_size
        self.generator = generator
        self.knn = knn
        images = data.train_x.dim() == 4
        self.memory_format = torch.channels_last if channels_last and images else torch.contiguous_format

    def __len__(self) -> int:
        n, b = self.data.train_x.shape[0], self.batch_size
        full, rest = divmod(n, b)
        return full + (rest >= 2)

    def __iter__(self) -> Iterator[Batch]:
        data = self.data
        order = torch.randperm(data.train_x.shape[0], generator=self.generator, device=data.train_x.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            b = idx.numel()
            if self.knn is not None:
                idx = torch.cat([idx, self.knn.sample(idx, self.generator)])
            # index_select copies whole rows: several times faster than advanced indexing on the CPU
            x = data.train_x.index_select(0, idx)  # (B or 2B, ...)
            y = data.train_y.index_select(0, idx)
            if data.augment:
                x = random_crop_flip(x, self.generator, fill=data.pad_fill)
            if x.dim() == 4:
                x = x.contiguous(memory_format=self.memory_format)
            if self.knn is None:
                yield Batch(x, y)
            else:
                yield Batch(x[:b], y[:b], x[b:], y[b:])
