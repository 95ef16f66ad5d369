"""Who is mixed with whom.

Three ways to pick each sample's partner, as in the paper's ablation (Table 5):

* random (RP, the default): a random permutation of the batch. Unlike the
  flip/roll trick it needs no pre-shuffled batch and works for odd sizes.
* same class (SC): a random partner of the same label inside the batch.
* k nearest neighbours (KNN): a random one of the k nearest *training* samples
  in input space, precomputed once per dataset and gathered from the
  device-resident dataset tensor; optionally restricted to the same class
  (SC + KNN, which is SMOTE).

All randomness comes from the caller's generator, on the batch's device, and no
function here reads a value back to the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mixup_core.errors import InvalidConfig


def random_partners(batch_size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A random permutation of ``range(batch_size)``: sample i mixes with ``perm[i]``."""
    return torch.randperm(batch_size, generator=generator, device=device)


def same_class_partners(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """In-batch partners with the same label.

    Sorts the batch by (label, random key) so each class forms a randomly
    ordered run, then pairs every position with the next one in its run,
    cyclically. A sample alone in its class is paired with itself (mixing it
    with itself leaves it unchanged). Fully vectorised: no host sync.

    Args:
        labels: int64 labels, shape (B,).
        generator: on the labels' device.

    Returns:
        int64 partner indices, shape (B,), with ``labels[partner] == labels``.
    """
    b = labels.numel()
    device = labels.device
    keys = torch.rand(b, generator=generator, device=device, dtype=torch.float64)
    order = torch.argsort(labels.to(torch.float64) * 2.0 + keys)  # (B,) grouped by label, random within
    sorted_labels = labels[order]
    pos = torch.arange(b, device=device)
    is_start = torch.ones(b, dtype=torch.bool, device=device)
    is_start[1:] = sorted_labels[1:] != sorted_labels[:-1]
    is_end = torch.ones(b, dtype=torch.bool, device=device)
    is_end[:-1] = is_start[1:]
    start = torch.cummax(torch.where(is_start, pos, torch.zeros_like(pos)), 0).values
    end = torch.cummin(torch.where(is_end, pos, torch.full_like(pos, b - 1)).flip(0), 0).values.flip(0)
    partner_sorted = start + (pos - start + 1) % (end - start + 1)
    partners = torch.empty_like(order)
    partners[order] = order[partner_sorted]
    return partners


@dataclass(frozen=True)
class KnnPartners:
    """The k nearest training samples of every training sample, in input space.

    Attributes:
        neighbours: int64 (N, k) dataset indices, nearest first, never the sample itself.
    """

    neighbours: torch.Tensor

    @classmethod
    def build(
        cls,
        x: torch.Tensor,
        k: int,
        labels: torch.Tensor | None = None,
        chunk_elements: int = 1 << 25,
    ) -> KnnPartners:
        """Precompute neighbours by exact squared Euclidean distance.

        Args:
            x: the training inputs, (N, ...) on any device; flattened per sample.
            k: neighbours per sample.
            labels: when given, neighbours are restricted to the same label (SC + KNN).
            chunk_elements: distance-matrix entries computed at once (bounds memory).
        """
        n = x.shape[0]
        flat = x.reshape(n, -1).float()
        if labels is not None:
            counts = torch.bincount(labels)
            smallest = int(counts[counts > 0].min())
            if k >= smallest:
                raise InvalidConfig(
                    f"mixup.knn_k={k} with same-class partners needs more than k samples in every class; "
                    f"the smallest class has {smallest}"
                )
        elif k >= n:
            raise InvalidConfig(f"mixup.knn_k must be below the number of training samples ({n}), got {k}")
        sq_norms = (flat * flat).sum(1)  # (N,)
        rows = max(1, chunk_elements // n)
        out = torch.empty(n, k, dtype=torch.long, device=x.device)
        for lo in range(0, n, rows):
            hi = min(n, lo + rows)
            # |a - b|² = |a|² - 2 a·b + |b|²; |a|² is constant per row, so it is left out.
            dist = sq_norms[None, :] - 2.0 * (flat[lo:hi] @ flat.T)  # (rows, N)
            dist[torch.arange(hi - lo, device=x.device), torch.arange(lo, hi, device=x.device)] = float("inf")
            if labels is not None:
                dist.masked_fill_(labels[lo:hi, None] != labels[None, :], float("inf"))
            out[lo:hi] = dist.topk(k, dim=1, largest=False).indices
        return cls(out)

    @property
    def k(self) -> int:
        return int(self.neighbours.shape[1])

    def sample(self, indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """For each dataset index, a uniformly random one of its k neighbours (dataset indices, (B,))."""
        pick = torch.randint(0, self.k, (indices.numel(),), generator=generator, device=indices.device)
        return self.neighbours[indices, pick]
