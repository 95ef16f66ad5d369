"""Mixing a hidden representation ("manifold" mixup, the paper's Layer k rows).

A hook on the model mixes the batch's representation at one point of the
forward pass. The model's code is untouched, so any ``nn.Module`` works: the
built-in models name their points (``layer1`` is the input of stage 1, i.e. the
stem's output; ``feature_map`` the input of the global pool), and
``module:<dotted.name>`` mixes the output of any submodule. Mix between blocks:
a point inside a residual branch mixes only that branch, not the identity path.

The hook is registered once and armed per training step; an unarmed hook (the
evaluation pass) lets the representation through unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mixup_core.losses import Lam
from mixup_core.models.registry import resolve_mix_point


def gather_rows(h: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``h[index]`` along dim 0, in h's memory format (contiguous or channels_last).

    ``index_select`` copies whole rows and is ~4x faster on the CPU than advanced
    indexing (a (128, 3, 32, 32) batch: ~75 µs against ~300 µs on 2 cores), but
    always returns a contiguous tensor; a channels_last batch is therefore
    gathered through its (B, H, W, C) view, which is the contiguous one.
    """
    if h.dim() == 4 and not h.is_contiguous() and h.is_contiguous(memory_format=torch.channels_last):
        return h.permute(0, 2, 3, 1).index_select(0, index).permute(0, 3, 1, 2)  # (B, C, H, W), channels_last
    return h.index_select(0, index)


def mix_tensor(h: torch.Tensor, partners: torch.Tensor, lam: Lam) -> torch.Tensor:
    """``λ·h + (1 − λ)·h[partners]``: one gather, then one fused lerp into the gathered copy.

    ``h`` itself is left untouched, so this is safe inside autograd (the lerp's
    backward needs neither operand) and for a caller that still holds ``h``.

    Args:
        h: (B, ...) the representation.
        partners: int64 (B,) in-batch partner indices.
        lam: a float, or (B,) per sample.

    Returns:
        A new (B, ...) tensor in h's memory format.
    """
    other = gather_rows(h, partners)
    if isinstance(lam, torch.Tensor):
        lam = lam.to(h.dtype).view(-1, *([1] * (h.dim() - 1)))
    # lerp_(end, w): other + w·(h − other) = w·h + (1 − w)·h[partners]
    return other.lerp_(h, lam)


class HiddenMixer:
    """A hook that mixes one hidden representation of ``model`` when armed."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        module, is_pre = resolve_mix_point(model, layer)
        self.layer = layer
        self._pending: tuple[torch.Tensor, Lam] | None = None
        if is_pre:
            self._handle = module.register_forward_pre_hook(self._pre_hook)
        else:
            self._handle = module.register_forward_hook(self._post_hook)

    def arm(self, partners: torch.Tensor, lam: Lam) -> None:
        """Mix at the next forward pass only."""
        self._pending = (partners, lam)

    def _take(self) -> tuple[torch.Tensor, Lam] | None:
        pending, self._pending = self._pending, None
        return pending

    def _pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        pending = self._take()
        if pending is None:
            return None
        return (mix_tensor(args[0], *pending), *args[1:])

    def _post_hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        pending = self._take()
        if pending is None:
            return None
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"mixup.layer {self.layer!r}: the module returns {type(output).__name__}, not a tensor")
        return mix_tensor(output, *pending)

    def remove(self) -> None:
        """Detach the hook from the model."""
        self._handle.remove()
