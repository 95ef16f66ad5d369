"""Batch crop + flip: exact equivalence with padding, cropping and flipping by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from mixup_core.data import crop_flip, random_crop_flip


def _batch(b: int = 6, c: int = 3, h: int = 8, w: int = 10, seed: int = 0) -> torch.Tensor:
    # Continuous random values: every window of the padded image is distinct.
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def _padded(x: torch.Tensor, padding: int, fill: torch.Tensor) -> torch.Tensor:
    """(B, C, H+2p, W+2p): x padded by hand, each channel with its fill value."""
    b, c, h, w = x.shape
    out = fill.view(1, c, 1, 1).expand(b, c, h + 2 * padding, w + 2 * padding).clone()
    out[:, :, padding : padding + h, padding : padding + w] = x
    return out


def _flags(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def test_padding_zero_without_flip_is_identity() -> None:
    x = _batch()
    zeros = torch.zeros(6, dtype=torch.int64)
    out = crop_flip(x, zeros, zeros, zeros.bool(), padding=0)
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()


def test_flip_equals_reversed_width() -> None:
    x = _batch()
    zeros = torch.zeros(6, dtype=torch.int64)
    flip = torch.tensor([True, False, True, False, True, True])
    out = crop_flip(x, zeros, zeros, flip, padding=0)
    assert torch.equal(out[flip], x[flip].flip(-1))
    assert torch.equal(out[~flip], x[~flip])


def test_crop_at_offsets_equals_window_of_padded_image() -> None:
    x = _batch()
    p = 3
    fill = torch.tensor([-1.5, 0.25, 7.0])
    dy, dx = _flags([0, 6, 3, 1, 5, 2]), _flags([6, 0, 3, 4, 2, 1])
    flip = torch.tensor([False, True, False, True, False, True])
    out = crop_flip(x, dy, dx, flip, padding=p, fill=fill)
    padded = _padded(x, p, fill)
    for i in range(6):
        window = padded[i, :, int(dy[i]) : int(dy[i]) + 8, int(dx[i]) : int(dx[i]) + 10]
        expected = window.flip(-1) if flip[i] else window
        assert torch.equal(out[i], expected), i


def test_padding_region_takes_fill_per_channel() -> None:
    x = _batch(b=2)
    fill = torch.tensor([-2.0, 3.0, 0.5])
    zeros = torch.zeros(2, dtype=torch.int64)
    # Offset 0: the top 4 rows and left 4 columns are padding.
    out = crop_flip(x, zeros, zeros, zeros.bool(), padding=4, fill=fill)
    for ch in range(3):
        assert torch.all(out[:, ch, :4, :] == fill[ch])
        assert torch.all(out[:, ch, :, :4] == fill[ch])
    assert torch.equal(out[:, :, 4:, 4:], x[:, :, :-4, :-4])
    # Without fill the padding is zero, like torchvision's default.
    out0 = crop_flip(x, zeros + 8, zeros + 8, zeros.bool(), padding=4)
    assert torch.all(out0[:, :, -4:, :] == 0)
    assert torch.all(out0[:, :, :, -4:] == 0)


def test_matches_torchvision_pad_crop_flip() -> None:
    x = _batch(b=4, h=12, w=12)
    fill = torch.tensor([0.1, -0.2, 0.3])
    dy, dx = _flags([1, 8, 0, 5]), _flags([7, 2, 8, 0])
    flip = torch.tensor([True, False, False, True])
    out = crop_flip(x, dy, dx, flip, padding=4, fill=fill)
    for i in range(4):
        # torchvision pads per channel with a scalar fill; pad each channel separately.
        padded = torch.cat([TF.pad(x[i, c : c + 1], [4], fill=float(fill[c])) for c in range(3)])
        img = TF.crop(padded, int(dy[i]), int(dx[i]), 12, 12)
        img = TF.horizontal_flip(img) if flip[i] else img
        assert torch.equal(out[i], img), i


def _offsets_by_matching(x: torch.Tensor, out: torch.Tensor, padding: int) -> list[tuple[int, int, bool]]:
    """Recover each sample's (dy, dx, flip) by brute force over all windows."""
    _, _, h, w = x.shape
    padded = F.pad(x, [padding] * 4)

    def view(i: int, dy: int, dx: int, flip: bool) -> torch.Tensor:
        window = padded[i, :, dy : dy + h, dx : dx + w]
        return window.flip(-1) if flip else window

    found = []
    span = range(2 * padding + 1)
    for i in range(x.shape[0]):
        hits = [
            (dy, dx, f) for dy in span for dx in span for f in (False, True) if torch.equal(out[i], view(i, dy, dx, f))
        ]
        assert len(hits) == 1, (i, hits)
        found.append(hits[0])
    return found


def test_random_crop_flip_is_a_valid_crop_and_deterministic() -> None:
    x = _batch(b=32)
    out1 = random_crop_flip(x, torch.Generator().manual_seed(7), padding=2)
    out2 = random_crop_flip(x, torch.Generator().manual_seed(7), padding=2)
    out3 = random_crop_flip(x, torch.Generator().manual_seed(8), padding=2)
    assert torch.equal(out1, out2)
    assert not torch.equal(out1, out3)
    params = _offsets_by_matching(x, out1, padding=2)
    # Over 32 samples more than one offset and both flip states show up.
    assert len({(dy, dx) for dy, dx, _ in params}) > 5
    assert {f for _, _, f in params} == {False, True}


def test_roughly_half_flipped() -> None:
    x = _batch(b=4000, c=1, h=4, w=4)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=0)
    same = (out == x).flatten(1).all(dim=1)
    flipped = (out == x.flip(-1)).flatten(1).all(dim=1)
    assert torch.all(same ^ flipped)  # every sample is exactly one of the two
    assert 0.45 < flipped.float().mean().item() < 0.55


def test_offsets_cover_range_uniformly() -> None:
    # Padding 1 on a 1×1 image with distinct fill: the output pixel shows the image
    # only when both offsets are 1, i.e. with probability 1/9.
    x = torch.ones(9000, 1, 1, 1)
    out = random_crop_flip(x, torch.Generator().manual_seed(1), padding=1, fill=torch.tensor([0.0]))
    assert abs(out.mean().item() - 1 / 9) < 0.02


def test_channels_last_is_preserved_and_equal() -> None:
    x = _batch(b=5, c=3, h=8, w=8)
    xcl = x.contiguous(memory_format=torch.channels_last)
    fill = torch.tensor([1.0, 2.0, 3.0])
    a = random_crop_flip(x, torch.Generator().manual_seed(3), fill=fill)
    b = random_crop_flip(xcl, torch.Generator().manual_seed(3), fill=fill)
    assert a.is_contiguous()
    assert b.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b)


def test_dtype_and_bad_inputs() -> None:
    x = _batch(b=2).half()
    out = random_crop_flip(x, torch.Generator().manual_seed(0), fill=torch.tensor([1.0, 2.0, 3.0]))
    assert out.dtype == torch.float16
    with pytest.raises(ValueError, match="B, C, H, W"):
        random_crop_flip(torch.zeros(3, 4, 4), torch.Generator())
    with pytest.raises(ValueError, match="padding"):
        random_crop_flip(torch.zeros(1, 1, 4, 4), torch.Generator(), padding=-1)
    with pytest.raises(ValueError, match="one value per channel"):
        random_crop_flip(torch.zeros(1, 3, 4, 4), torch.Generator(), fill=torch.zeros(2))
