"""λ ~ Beta(α, α) drawn from an explicit ``torch.Generator``.

``torch.distributions.Beta`` takes no generator, so draws from it cannot be
replayed per trial. Here Beta is built from two Gamma variates (Marsaglia &
Tsang's method, which needs only normal and uniform draws, both of which take a
generator) and combined in log space, so that tiny α (where Gamma variates
underflow to 0) still gives λ in [0, 1] rather than 0/0.

λ is drawn on the CPU: it is a handful of numbers per batch, and keeping it off
the accelerator means reading a per-batch λ never synchronises the device.
"""

from __future__ import annotations

import math

import torch

from mixup_core.errors import InvalidConfig


def _log_gamma_variates(shape: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """log of n draws of Gamma(shape, 1), float64 on the CPU."""
    # Marsaglia & Tsang (2000) is exact for shape >= 1; for shape < 1 use
    # Gamma(a) = Gamma(a + 1) · U^(1/a), kept in log space (U^(1/a) underflows).
    boosted = shape < 1
    a = shape + 1.0 if boosted else shape
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(n, dtype=torch.float64)
    filled = 0
    while filled < n:
        # Acceptance is above 95% for a >= 1, so one round almost always suffices.
        m = (n - filled) + (n - filled) // 8 + 8
        x = torch.randn(m, generator=generator, dtype=torch.float64)
        u = torch.rand(m, generator=generator, dtype=torch.float64)
        v = (1.0 + c * x) ** 3
        positive = v > 0
        log_v = torch.log(torch.where(positive, v, torch.ones_like(v)))
        accept = positive & (torch.log(u) < 0.5 * x * x + d - d * v + d * log_v)
        log_draws = (math.log(d) + log_v)[accept][: n - filled]
        out[filled : filled + log_draws.numel()] = log_draws
        filled += log_draws.numel()
    if boosted:
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        out += torch.log(u) / shape
    return out


def sample_lambda(alpha: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """Draw n values of λ ~ Beta(α, α).

    Args:
        alpha: the mixup α; 0 means ERM and gives λ = 1 without drawing anything.
        n: how many values (one per batch, or one per sample).
        generator: a CPU ``torch.Generator``; the draws depend only on its state.

    Returns:
        float64 tensor of shape (n,) on the CPU, values in [0, 1].
    """
    if not alpha >= 0 or math.isinf(alpha):
        raise InvalidConfig(f"alpha must be a finite number >= 0, got {alpha=}")
    if n < 0:
        raise InvalidConfig(f"n must be >= 0, got {n=}")
    if alpha == 0:
        return torch.ones(n, dtype=torch.float64)
    log_x = _log_gamma_variates(alpha, n, generator)
    log_y = _log_gamma_variates(alpha, n, generator)
    # X / (X + Y) = sigmoid(log X - log Y): stable whatever the magnitudes.
    return torch.sigmoid(log_x - log_y)
