"""The width multiplier of the built-in models (``ModelConfig.width``)."""

from __future__ import annotations


def scaled(size: int, width: float) -> int:
    """``size × width`` rounded, at least 1: a layer's size in a model built at ``width``.

    Args:
        size: The layer's size (channels or units) at the paper's width (1.0).
        width: The multiplier, > 0.

    Returns:
        The number of channels or units to build.
    """
    return max(1, round(size * width))
