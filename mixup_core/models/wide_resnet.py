"""WRN-28-10, the wide residual network of the mixup paper's CIFAR experiments.

Zagoruyko & Komodakis, "Wide Residual Networks" (BMVC 2016): a 3×3 stem with 16
channels, three stages of (depth - 4) / 6 pre-activation basic blocks of widths
16k, 32k, 64k (k = 10: 160, 320, 640; strides 1, 2, 2), BN+ReLU, global average
pooling and a linear layer. No dropout (the paper's mixup runs used none).
Initialisation follows the reference code: He-normal (fan_out) convolutions,
BN weight 1 / bias 0, zero linear bias.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from mixup_core.models.preact_resnet import classifier_head, preact_stage
from mixup_core.models.width import scaled


class WideResNet(nn.Sequential):
    """WRN-depth-k with pre-activation basic blocks (default WRN-28-10).

    Submodules in forward order: ``stem``, ``layer1`` .. ``layer3``, ``final``,
    ``pool``, ``flatten``, ``fc``. There is no ``layer4``: a WRN has three stages.

    Attributes:
        mix_points: ``layer1`` .. ``layer3`` and ``feature_map``, each mapped to the
            submodule whose input is that representation.

    Args:
        in_channels: Channels of the input images.
        num_classes: Number of logits.
        depth: Total depth; must be 6n + 4.
        widen_factor: k, the width multiplier of the paper's WRN.
        width: Multiplies the stages' channels 16k, 32k, 64k once more (the stem keeps
            16): WRN-28-10 at 0.25 is WRN-28-2.5 (40, 80, 160 channels).
    """

    mix_points: dict[str, str]

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, depth: int = 28, widen_factor: int = 10, width: float = 1.0
    ) -> None:
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"WideResNet depth must be 6n + 4 (10, 16, 22, 28, ...), got {depth=}")
        if widen_factor < 1:
            raise ValueError(f"WideResNet widen_factor must be >= 1, got {widen_factor=}")
        blocks = (depth - 4) // 6
        widths = (16, *(scaled(c * widen_factor, width) for c in (16, 32, 64)))
        stages = OrderedDict(
            (f"layer{k}", preact_stage(widths[k - 1], widths[k], blocks, 1 if k == 1 else 2)) for k in (1, 2, 3)
        )
        super().__init__(
            OrderedDict(
                stem=nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False),
                **stages,
                **classifier_head(widths[-1], num_classes),
            )
        )
        self.mix_points = {"layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "feature_map": "pool"}
        self._init_weights()

    def _init_weights(self) -> None:
        # The reference initialisation; draws from the global RNG, which the trainer seeds in a forked scope.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
