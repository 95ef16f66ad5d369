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


#: Up to this many draws, λ is computed with Python floats from the same generator draws: a
#: per-batch λ is one number, and ~50 tiny tensor ops cost ~200 µs on a CPU, more than mixing a batch.
SCALAR_MAX = 8


def _log(u: float) -> float:
    return math.log(u) if u > 0 else -math.inf  # torch.rand can return exactly 0.0


def _log_gamma_scalars(shape: float, n: int, generator: torch.Generator) -> list[float]:
    """:func:`_log_gamma_variates` for small n: the same draws, the same algorithm, on Python floats."""
    boosted = shape < 1
    a = shape + 1.0 if boosted else shape
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out: list[float] = []
    while len(out) < n:
        m = (n - len(out)) + (n - len(out)) // 8 + 8
        xs = torch.randn(m, generator=generator, dtype=torch.float64).tolist()
        us = torch.rand(m, generator=generator, dtype=torch.float64).tolist()
        for x, u in zip(xs, us, strict=True):
            if len(out) == n:
                break
            v = (1.0 + c * x) ** 3
            if v > 0 and _log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
                out.append(math.log(d) + math.log(v))
    if boosted:
        us = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
        out = [g + _log(u) / shape for g, u in zip(out, us, strict=True)]
    return out


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # z < 0 (or nan): no overflow
    return e / (1.0 + e)


def _check(alpha: float, n: int) -> None:
    if not alpha >= 0 or math.isinf(alpha):
        raise InvalidConfig(f"alpha must be a finite number >= 0, got {alpha=}")
    if n < 0:
        raise InvalidConfig(f"n must be >= 0, got {n=}")


def sample_lambda_float(alpha: float, generator: torch.Generator) -> float:
    """One λ ~ Beta(α, α) as a Python float: ``float(sample_lambda(alpha, 1, generator)[0])``, cheaper.

    The per-batch λ of the training step; it draws exactly what :func:`sample_lambda` draws.
    """
    _check(alpha, 1)
    if alpha == 0:
        return 1.0
    (log_x,) = _log_gamma_scalars(alpha, 1, generator)
    (log_y,) = _log_gamma_scalars(alpha, 1, generator)
    return _sigmoid(log_x - log_y)


def sample_lambda(alpha: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """Draw n values of λ ~ Beta(α, α).

    Args:
        alpha: the mixup α; 0 means ERM and gives λ = 1 without drawing anything.
        n: how many values (one per batch, or one per sample).
        generator: a CPU ``torch.Generator``; the draws depend only on its state.

    Returns:
        float64 tensor of shape (n,) on the CPU, values in [0, 1].
    """
    _check(alpha, n)
    if alpha == 0:
        return torch.ones(n, dtype=torch.float64)
    if n <= SCALAR_MAX:
        log_xs = _log_gamma_scalars(alpha, n, generator)
        log_ys = _log_gamma_scalars(alpha, n, generator)
        return torch.tensor([_sigmoid(lx - ly) for lx, ly in zip(log_xs, log_ys, strict=True)], dtype=torch.float64)
    log_x = _log_gamma_variates(alpha, n, generator)
    log_y = _log_gamma_variates(alpha, n, generator)
    # X / (X + Y) = sigmoid(log X - log Y): stable whatever the magnitudes.
    return torch.sigmoid(log_x - log_y)
