"""Random crop (with padding) and horizontal flip on whole batches, on the batch's device.

Equivalent to torchvision's ``RandomCrop(H, padding=p)`` followed by
``RandomHorizontalFlip()`` applied per sample, but done as one gather over the
batch: for every output pixel we compute which input pixel it comes from (or
that it falls in the padding), so nothing is padded and no sample is looped
over. This is what keeps augmentation off the CPU pipeline (the mission's
first pitfall); see Keller Jordan's airbench for the same idea.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(x: Tensor, padding: int) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding=}")


def _fill_vector(x: Tensor, fill: Tensor | None) -> Tensor:
    channels = x.shape[1]
    if fill is None:
        return x.new_zeros(channels)
    fill = fill.to(device=x.device, dtype=x.dtype).reshape(-1)
    if fill.numel() == 1:
        fill = fill.expand(channels)
    if fill.numel() != channels:
        raise ValueError(f"fill must have one value per channel ({channels}), got {fill.numel()}")
    return fill


def crop_flip(x: Tensor, dy: Tensor, dx: Tensor, flip: Tensor, padding: int = 4, fill: Tensor | None = None) -> Tensor:
    """Crop each sample at a given offset of its padded image, then optionally flip it.

    Sample ``b`` of the result is ``pad(x[b], padding, fill)[:, dy[b]:dy[b]+H, dx[b]:dx[b]+W]``,
    reversed along the width when ``flip[b]`` (crop, then flip: torchvision's order).

    Args:
        x: ``(B, C, H, W)`` batch on any device.
        dy: ``(B,)`` integer row offsets into the padded image, normally in ``[0, 2·padding]``
            (offsets beyond that just see more padding; they are not checked, to avoid a device sync).
        dx: ``(B,)`` integer column offsets, likewise.
        flip: ``(B,)`` bool, True to flip horizontally.
        padding: Padding on each side, in pixels.
        fill: ``(C,)`` (or scalar) value of the padding; zeros when None. For normalised
            images pass the normalised black pixel (``LoadedDataset.pad_fill``).

    Returns:
        ``(B, C, H, W)`` new tensor, in ``channels_last`` memory format if ``x`` was, else contiguous.
    """
    _check(x, padding)
    b, c, h, w = x.shape
    device = x.device
    # Source coordinates of every output pixel, in the unpadded image.
    rows = torch.arange(h, device=device).view(1, h, 1) + (dy.to(device).view(b, 1, 1) - padding)  # (B, H, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)  # (1, 1, W)
    cols = torch.where(flip.to(device).view(b, 1, 1), (w - 1) - cols, cols)  # (B, 1, W): flip = read right to left
    cols = cols + (dx.to(device).view(b, 1, 1) - padding)  # (B, 1, W)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # (B, H, W)
    # Padding positions point one past the last pixel, where the fill value is appended.
    src = torch.where(inside, rows * w + cols, h * w).view(b, h * w)  # (B, H·W) int64
    fill_vec = _fill_vector(x, fill)  # (C,)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if channels_last:
        # Pixels as rows of C values: the gather then writes a channels_last result directly.
        pixels = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, H·W, C), a view
        pixels = torch.cat([pixels, fill_vec.view(1, 1, c).expand(b, 1, c)], dim=1)  # (B, H·W+1, C)
        out = pixels.gather(1, src.view(b, h * w, 1).expand(b, h * w, c))  # (B, H·W, C)
        return out.view(b, h, w, c).permute(0, 3, 1, 2)  # (B, C, H, W), channels_last strides
    planes = x.reshape(b, c, h * w)  # (B, C, H·W)
    planes = torch.cat([planes, fill_vec.view(1, c, 1).expand(b, c, 1)], dim=2)  # (B, C, H·W+1)
    out = planes.gather(2, src.view(b, 1, h * w).expand(b, c, h * w))  # (B, C, H·W)
    return out.view(b, c, h, w)


def random_crop_flip(x: Tensor, generator: torch.Generator, padding: int = 4, fill: Tensor | None = None) -> Tensor:
    """Random crop of the padded image plus a random horizontal flip (p = 0.5), per sample.

    Matches ``RandomCrop(H, padding=padding, fill=fill)`` + ``RandomHorizontalFlip()``
    in distribution: offsets uniform in ``[0, 2·padding]`` on each axis.

    Args:
        x: ``(B, C, H, W)`` batch on any device.
        generator: Source of randomness; must live on ``x``'s device.
        padding: Padding on each side, in pixels.
        fill: ``(C,)`` padding value (normalised black for normalised images); zeros when None.

    Returns:
        ``(B, C, H, W)`` augmented batch (a new tensor, ``channels_last`` if ``x`` was).
    """
    _check(x, padding)
    b = x.shape[0]
    offsets = torch.randint(0, 2 * padding + 1, (2, b), device=x.device, generator=generator)  # (2, B)
    flip = torch.randint(0, 2, (b,), device=x.device, generator=generator).bool()  # (B,)
    return crop_flip(x, offsets[0], offsets[1], flip, padding, fill)
