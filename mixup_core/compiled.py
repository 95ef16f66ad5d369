"""``torch.compile`` once per worker process.

Ray reuses a worker process for many trials; compiling a fresh model per trial
would pay the compile time every time. Models of the same architecture, input
shape and device share one compiled module here: a new trial copies its freshly
initialised weights *into* the cached module, so the compiled graph (which
guards on the module's parameter objects) stays valid.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

_CACHE: dict[tuple[Any, ...], tuple[nn.Module, nn.Module]] = {}


def compiled_model(key: tuple[Any, ...], fresh: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The (module, compiled callable) pair for ``key``, holding ``fresh``'s weights.

    Args:
        key: identifies the architecture, shapes, device and memory format.
        fresh: a newly built model already on its device and memory format; its
            parameters and buffers are copied into the cached module on a hit.

    Returns:
        The module whose parameters the optimizer must update, and the compiled
        module (sharing those parameters) to run forward passes with.
    """
    hit = _CACHE.get(key)
    if hit is None:
        hit = (fresh, cast(nn.Module, torch.compile(fresh)))
        _CACHE[key] = hit
        return hit
    module, compiled = hit
    with torch.no_grad():
        module.load_state_dict(fresh.state_dict())
    module.train()
    return module, compiled


def clear_compiled_models() -> None:
    """Forget every cached compiled model (tests; freeing device memory)."""
    _CACHE.clear()
