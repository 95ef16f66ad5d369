"""The model registry: names, input checks, mixing points and construction.

``mixup_core.config`` validates against this module before anything is built:
:func:`check_model_name` for the name, :func:`check_model_input` for the data's
per-sample shape, :func:`mix_points` for ``MixupConfig.layer``. The checks build
the model on the meta device (shapes only, no memory, no RNG draws) and cache
the answer, so validating a study's many trial configs stays cheap.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
from torch import nn

from mixup_core.models.lenet_fc import LeNetFC
from mixup_core.models.mlp import MLP
from mixup_core.models.preact_resnet import PreActResNet18
from mixup_core.models.small_cnn import SmallCNN
from mixup_core.models.tv import TORCHVISION_PREFIX, build_on_meta, build_torchvision_model, torchvision_model_names
from mixup_core.models.wide_resnet import WideResNet
from mixup_core.models.width import scaled

if TYPE_CHECKING:
    from mixup_core.config import ModelConfig

MODEL_NAMES: tuple[str, ...] = ("preact_resnet18", "wide_resnet28_10", "small_cnn", "lenet_fc", "mlp")
"""The built-in models; ``torchvision:<name>`` adds any torchvision classification model."""

MODULE_PREFIX = "module:"

# Built-ins: (per-sample input shape, number of classes, width multiplier) -> untrained model.
_BUILDERS: dict[str, Callable[[tuple[int, ...], int, float], nn.Module]] = {
    "preact_resnet18": lambda shape, classes, width: PreActResNet18(shape[0], classes, width),
    "wide_resnet28_10": lambda shape, classes, width: WideResNet(shape[0], classes, 28, 10, width),
    "small_cnn": lambda shape, classes, width: SmallCNN(shape[0], classes, scaled(32, width)),
    "lenet_fc": lambda shape, classes, width: LeNetFC((shape[0], shape[1], shape[2]), classes, width),
    "mlp": lambda shape, classes, width: MLP(math.prod(shape), classes, scaled(128, width)),
}
# small_cnn pools twice; below 8×8 its last stage would see at most one position per side.
# lenet_fc pools twice before its fully connected layer, which needs at least one position.
_MIN_SIDE = {"small_cnn": 8, "lenet_fc": 4}


def _torchvision_name(name: str) -> str | None:
    return name[len(TORCHVISION_PREFIX) :] if name.startswith(TORCHVISION_PREFIX) else None


#: Elements in a batch of two samples (the smallest a check runs) that a tensor can index (int64).
_MAX_ELEMENTS = 2**63 - 1


def _as_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive sizes, got input_shape={input_shape!r}")
    if 2 * math.prod(shape) > _MAX_ELEMENTS:  # torch would overflow, not refuse, building anything for it
        raise ValueError(f"input_shape={shape} is more than a tensor can hold ({_MAX_ELEMENTS} elements)")
    return shape


def known_model_names() -> tuple[str, ...]:
    """Every name :func:`check_model_name` accepts: the built-ins, then ``torchvision:<name>`` for each."""
    return MODEL_NAMES + tuple(TORCHVISION_PREFIX + name for name in torchvision_model_names())


def check_model_name(name: str) -> None:
    """Raises ``ValueError`` unless ``name`` is a built-in or ``torchvision:<classification model>``.

    Args:
        name: A model name such as ``preact_resnet18`` or ``torchvision:resnet18``.

    Raises:
        ValueError: The message names the unknown model and what is known.
    """
    tv_name = _torchvision_name(name)
    if tv_name is None:
        if name not in MODEL_NAMES:
            raise ValueError(
                f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}, "
                f"or {TORCHVISION_PREFIX}<name> (e.g. {TORCHVISION_PREFIX}resnet18)"
            )
        return
    known = torchvision_model_names()
    if tv_name not in known:
        close = difflib.get_close_matches(tv_name, known, n=3)
        hint = f"; did you mean {', '.join(TORCHVISION_PREFIX + c for c in close)}?" if close else ""
        raise ValueError(
            f"unknown torchvision model {tv_name!r} in {name!r}{hint} "
            f"(the {len(known)} choices: torchvision.models.list_models(module=torchvision.models))"
        )


def check_model_input(name: str, input_shape: Sequence[int]) -> None:
    """Raises ``ValueError`` when model ``name`` cannot take samples of ``input_shape``.

    Convolutional models (every built-in but ``mlp``, and all torchvision models)
    need images ``(C, H, W)``; torchvision models need ``C == 3`` and are run once
    on the meta device, which catches fixed-size models (``vit_b_16`` wants
    224×224) and inputs too small for their downsampling; ``small_cnn`` needs
    H, W >= 8. ``mlp`` flattens anything.

    Args:
        name: A model name (checked with :func:`check_model_name` first).
        input_shape: One sample's shape: ``(C, H, W)`` or ``(D,)``.

    Raises:
        ValueError: The message names the model and the shape.
    """
    check_model_name(name)
    _check_input(name, _as_shape(input_shape))


@lru_cache(maxsize=256)
def _check_input(name: str, shape: tuple[int, ...]) -> None:
    if name == "mlp":
        _meta_model(name, shape)  # its width is C·H·W: a shape whose weights no tensor can hold is refused
        return
    if len(shape) != 3:
        raise ValueError(f"model {name} takes images (C, H, W), got input_shape={shape}")
    channels, height, width = shape
    if _torchvision_name(name) is None:
        side = _MIN_SIDE.get(name, 1)
        if height < side or width < side:
            raise ValueError(f"model {name} needs images of at least {side}×{side}, got input_shape={shape}")
        return
    if channels != 3:
        raise ValueError(f"model {name} takes 3-channel (RGB) images, got input_shape={shape}")
    try:
        with torch.no_grad():
            _meta_model(name, shape)(torch.empty((2, *shape), device="meta"))  # (2, 3, H, W); batch 2 for BN
    except NotImplementedError:
        return  # an op without a meta kernel: the shape cannot be judged here, the real run will tell
    except Exception as err:  # what torchvision raises for a bad size varies: RuntimeError, AssertionError, ...
        raise ValueError(f"model {name} cannot take input_shape={shape}: {err}") from err


@lru_cache(maxsize=32)
def _meta_model(name: str, shape: tuple[int, ...]) -> nn.Module:
    # Shared and cached: only for reading names and shapes, never handed out.
    # The width does not change a model's module names, so width 1 answers for every width.
    try:
        return build_on_meta(lambda: _build(name, shape, 10, 1.0)).eval()
    except NotImplementedError:
        raise  # no meta kernel (inside an outer meta build): the callers handle it
    except (RuntimeError, OverflowError, TypeError) as err:  # a size torch cannot hold: mlp's width = C·H·W
        raise ValueError(f"model {name} cannot take input_shape={shape}: {err}") from err


def _build(name: str, shape: tuple[int, ...], num_classes: int, width: float) -> nn.Module:
    tv_name = _torchvision_name(name)
    if tv_name is not None:
        return build_torchvision_model(tv_name, num_classes)
    return _BUILDERS[name](shape, num_classes, width)


def _named_points(model: nn.Module) -> dict[str, str]:
    points = getattr(model, "mix_points", None)
    return dict(points) if isinstance(points, dict) else {}


def mix_points(name: str, input_shape: Sequence[int]) -> tuple[str, ...]:
    """Every value ``MixupConfig.layer`` may take for this model and input shape.

    Args:
        name: A model name.
        input_shape: One sample's shape.

    Returns:
        ``"input"``, then the named hidden points in network order (``layer1``,
        ``layer2``, ..., ``feature_map``), then ``"module:<dotted.name>"`` for every
        submodule in ``named_modules()`` order.

    Raises:
        ValueError: Unknown model, or an input it cannot take.
    """
    check_model_input(name, input_shape)
    return _mix_points(name, _as_shape(input_shape))


@lru_cache(maxsize=256)
def _mix_points(name: str, shape: tuple[int, ...]) -> tuple[str, ...]:
    model = _meta_model(name, shape)
    modules = (MODULE_PREFIX + path for path, _ in model.named_modules() if path)
    return ("input", *_named_points(model), *modules)


def resolve_mix_point(model: nn.Module, layer: str) -> tuple[nn.Module, bool]:
    """The submodule to hook for mixing at ``layer``, and whether the hook is a pre-hook.

    Args:
        model: A model from :func:`build_model` (or any module; without a
            ``mix_points`` attribute only ``module:`` paths resolve).
        layer: A named point (``layer1``, ``feature_map``, ...) or ``module:<dotted.name>``.

    Returns:
        ``(submodule, True)`` for a named point: register a forward *pre*-hook, the
        representation is the submodule's input. ``(submodule, False)`` for
        ``module:a.b``: register a forward hook, the representation is its output.

    Raises:
        ValueError: ``layer`` is not a point of this model; the message lists those it has.
    """
    if layer.startswith(MODULE_PREFIX):
        path = layer[len(MODULE_PREFIX) :]
        try:
            submodule = model.get_submodule(path) if path else None
        except AttributeError as err:
            raise ValueError(f"mixing point {layer!r}: {type(model).__name__} has no submodule {path!r}") from err
        if submodule is None:
            raise ValueError(f"mixing point {layer!r} names no submodule; write module:<dotted.name>")
        return submodule, False
    points = _named_points(model)
    if layer in points:
        return model.get_submodule(points[layer]), True
    known = ", ".join(points) or "no named points"
    note = " ('input' is mixed before the forward pass and needs no hook)" if layer == "input" else ""
    raise ValueError(
        f"unknown mixing point {layer!r} for {type(model).__name__}{note}; it has: {known}, "
        f"and {MODULE_PREFIX}<dotted.name> for any submodule"
    )


def build_model(config: ModelConfig | str, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """An untrained model for samples of ``input_shape`` and ``num_classes`` classes.

    Parameters are initialised from PyTorch's global RNG; callers that need
    reproducibility wrap the call in ``torch.random.fork_rng`` + ``manual_seed``.

    Args:
        config: The model's config (or just its name).
        input_shape: One sample's shape: ``(C, H, W)`` or ``(D,)``.
        num_classes: Number of logits.

    Returns:
        The model, with a ``mix_points`` attribute mapping each named hidden point
        to the submodule whose input it is (see :func:`resolve_mix_point`).

    Raises:
        ValueError: Unknown model, an input it cannot take, or ``num_classes < 1``.
    """
    name, width = (config, 1.0) if isinstance(config, str) else (config.name, config.width)
    shape = _as_shape(input_shape)
    check_model_input(name, shape)
    check_model_width(name, width)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes=}")
    return _build(name, shape, num_classes, width)


def check_model_width(name: str, width: float) -> None:
    """Raises ``ValueError`` unless ``width`` is > 0, and 1.0 for a torchvision model (built as published).

    Args:
        name: A model name.
        width: ``ModelConfig.width``.

    Raises:
        ValueError: The message names the model and the width.
    """
    if not (width > 0 and math.isfinite(width)):
        raise ValueError(f"model.width must be a finite number > 0, got width={width!r}")
    if _torchvision_name(name) is not None and width != 1.0:
        raise ValueError(
            f"model.width scales the built-in models only; {name} is built as torchvision publishes it, "
            f"got width={width!r} (leave it at 1.0)"
        )
