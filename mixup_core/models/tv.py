"""torchvision classification models as ``torchvision:<name>``.

The model is built untrained (``weights=None``) with the study's number of
classes. Its named mixing points are derived from its attribute names: the
ResNet family (ResNet, ResNeXt, Wide ResNet) has ``layer1`` .. ``layer4`` and
``avgpool``; most others have at least ``avgpool``. Everything else can still be
mixed at ``module:<dotted.name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

TORCHVISION_PREFIX = "torchvision:"


def _models() -> Any:
    """torchvision.models, imported on first use: it pulls in torch._dynamo, seconds of start-up
    that every study worker would otherwise pay even when it trains none of these models."""
    import torchvision.models

    return torchvision.models


# Their auxiliary classifiers make the training-mode output a tuple; the trainer wants one logits tensor.
# init_weights=True is their documented initialisation and silences a FutureWarning.
_EXTRA_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


@lru_cache(maxsize=1)
def torchvision_model_names() -> tuple[str, ...]:
    """The classification models of the installed torchvision, sorted (``resnet18``, ``vit_b_16``, ...)."""
    return tuple(sorted(_models().list_models(module=_models())))


def torchvision_mix_points(model: nn.Module) -> dict[str, str]:
    """The named mixing points of a torchvision model, found by its attribute names.

    Args:
        model: A model built by :func:`build_torchvision_model`.

    Returns:
        ``layer1`` .. ``layer4`` → themselves and ``feature_map`` → ``avgpool`` for
        the ResNet family; only ``feature_map`` for other models with ``avgpool``;
        otherwise nothing.
    """
    children = dict(model.named_children())
    points: dict[str, str] = {}
    if "avgpool" in children and all(f"layer{k}" in children for k in range(1, 5)):
        points.update({f"layer{k}": f"layer{k}" for k in range(1, 5)})
    if "avgpool" in children:
        points["feature_map"] = "avgpool"
    return points


def build_torchvision_model(name: str, num_classes: int) -> nn.Module:
    """An untrained torchvision classification model with ``mix_points`` set on it.

    Args:
        name: A torchvision model name without the prefix (``resnet18``).
        num_classes: Number of logits.

    Returns:
        The model; its ``mix_points`` attribute maps named points to submodule names.
    """
    model = _models().get_model(name, weights=None, num_classes=num_classes, **_EXTRA_KWARGS.get(name, {}))
    model.__dict__["mix_points"] = torchvision_mix_points(model)  # a plain attribute, not a submodule
    return model


class _EmptyOnMeta(TorchFunctionMode):
    """Puts every ``torch.empty`` without an explicit device on the meta device.

    Layers allocate their parameters with ``torch.empty`` and then initialise them
    in place, so this keeps the big tensors off the CPU while leaving the small
    arithmetic some builders do at construction time (RegNet computes its widths
    with tensors and ``.tolist()``) on the CPU, where it has data.
    """

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = dict(kwargs or {})
        if func is torch.empty and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def build_on_meta(build: Callable[[], nn.Module]) -> nn.Module:
    """Runs ``build`` so that the model's tensors live on the meta device (shapes, no memory).

    The meta device as default device is tried first; builders that need real
    data during construction (RegNet) are retried with only ``torch.empty`` on
    meta, then moved to meta.

    Args:
        build: Builds the model.

    Returns:
        The model, every parameter and buffer on the meta device.
    """
    try:
        with torch.device("meta"):
            return build()
    except NotImplementedError:  # "Cannot copy out of meta tensor; no data!"
        pass
    with _EmptyOnMeta():
        model = build()
    return model.to("meta")
