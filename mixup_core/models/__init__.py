"""Models for mixup training and where they can be mixed.

Built-ins: ``preact_resnet18`` and ``wide_resnet28_10`` (the paper's CIFAR
models; ``ModelConfig.width`` shrinks them to fit a CPU), ``small_cnn``
(CPU-friendly, too small to memorise noisy labels), ``lenet_fc`` (small, and
able to memorise them: the label-noise model), ``mlp`` (the paper's UCI model); and
``torchvision:<name>`` for any torchvision classification model. Every model
from :func:`build_model` has a ``mix_points`` attribute naming the submodule
whose input is each hidden mixing point (``layer1`` .., ``feature_map``).
"""

from __future__ import annotations

from mixup_core.models.lenet_fc import LeNetFC
from mixup_core.models.mlp import MLP
from mixup_core.models.preact_resnet import PreActBlock, PreActResNet18
from mixup_core.models.registry import (
    MODEL_NAMES,
    build_model,
    check_model_input,
    check_model_name,
    check_model_width,
    mix_points,
    resolve_mix_point,
)
from mixup_core.models.small_cnn import SmallCNN
from mixup_core.models.tv import TORCHVISION_PREFIX, torchvision_model_names
from mixup_core.models.wide_resnet import WideResNet

__all__ = [
    "MLP",
    "MODEL_NAMES",
    "TORCHVISION_PREFIX",
    "LeNetFC",
    "PreActBlock",
    "PreActResNet18",
    "SmallCNN",
    "WideResNet",
    "build_model",
    "check_model_input",
    "check_model_name",
    "check_model_width",
    "mix_points",
    "resolve_mix_point",
    "torchvision_model_names",
]
