"""The CIFAR PreAct ResNet-18 of the mixup paper.

He et al., "Identity Mappings in Deep Residual Networks" (2016), in the layout
the mixup authors trained (facebookresearch/mixup-cifar10, ``models/resnet.py``,
``ResNet18`` = pre-activation blocks [2, 2, 2, 2]): a 3×3 conv + BN + ReLU stem
at full resolution, four stages of two pre-activation blocks, global average
pooling and one linear layer, with no BN+ReLU between the last block and the
pool. Their ``forward(x, lin, lout)`` splits the net exactly at our mixing
points: Layer 1 is the stem's output, Layer 5 the last block's output.

The model is an ``nn.Sequential`` of named stages, so ``model.layer2`` is
"the representation entering residual stage 2" once hooked, and the stages can
be run one by one.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from mixup_core.models.width import scaled

# Mixing points of the residual nets: Table 5's "Layer k" is the input of stage k,
# "Layer 5" (feature_map) the input of global pooling, i.e. the last feature map.
_RESNET_MIX_POINTS = {"layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "layer4": "layer4"}


class PreActBlock(nn.Module):
    """A pre-activation basic block: BN-ReLU-conv3×3, BN-ReLU-conv3×3, plus a shortcut.

    The shortcut is the identity when the shape is kept and a 1×1 convolution of
    the *pre-activated* input otherwise (He et al. 2016; pytorch-cifar; the WRN
    reference code). Every ReLU is its own module, called once per forward, so a
    hook on any submodule fires exactly once.

    Args:
        in_channels: Channels of the block's input.
        out_channels: Channels of its output.
        stride: Stride of the first convolution (2 halves height and width).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the block on ``x`` of shape (B, C_in, H, W); returns (B, C_out, H/stride, W/stride)."""
        # bn1 gives a fresh tensor, so the in-place ReLU never touches x (needed by the identity shortcut).
        out = self.relu1(self.bn1(x))  # (B, C_in, H, W)
        shortcut = x if self.shortcut is None else self.shortcut(out)  # (B, C_out, H', W')
        out = self.conv1(out)  # (B, C_out, H', W')
        out = self.conv2(self.relu2(self.bn2(out)))
        return out + shortcut


def preact_stage(in_channels: int, out_channels: int, num_blocks: int, stride: int) -> nn.Sequential:
    """A residual stage: ``num_blocks`` :class:`PreActBlock` s, the first one changing shape.

    Args:
        in_channels: Channels entering the stage.
        out_channels: Channels of every block in it.
        num_blocks: How many blocks.
        stride: Stride of the first block.

    Returns:
        The blocks as an ``nn.Sequential`` (submodules ``0``, ``1``, ...).
    """
    blocks = [PreActBlock(in_channels, out_channels, stride)]
    blocks += [PreActBlock(out_channels, out_channels, 1) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def classifier_head(channels: int, num_classes: int, final_norm: bool = True) -> OrderedDict[str, nn.Module]:
    """The shared tail of the residual nets: ``final``, ``pool``, ``flatten``, ``fc``.

    Args:
        channels: Channels of the last stage's output.
        num_classes: Number of logits.
        final_norm: ``final`` is BN+ReLU (He et al., WRN) rather than the identity
            (the mixup authors' PreAct ResNet-18).

    Returns:
        Named modules, in forward order, to append to an ``nn.Sequential``.
    """
    final: nn.Module = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True)) if final_norm else nn.Identity()
    return OrderedDict(
        final=final,
        pool=nn.AdaptiveAvgPool2d(1),  # (B, C, H, W) -> (B, C, 1, 1): any input size works
        flatten=nn.Flatten(1),  # (B, C)
        fc=nn.Linear(channels, num_classes),
    )


class PreActResNet18(nn.Sequential):
    """PreAct ResNet-18 for small images (CIFAR 32×32, MNIST 28×28, any size really).

    Submodules in forward order: ``stem``, ``layer1`` .. ``layer4``, ``final``,
    ``pool``, ``flatten``, ``fc``. For 32×32 inputs the stages see 32, 16, 8 and
    4 pixels per side.

    Attributes:
        mix_points: ``layer1`` .. ``layer4`` and ``feature_map``, each mapped to the
            submodule whose input is that representation.

    Args:
        in_channels: Channels of the input images.
        num_classes: Number of logits.
        width: Multiplies every channel count (the paper's 64, 128, 256, 512 at 1.0;
            0.25 gives 16, 32, 64, 128 and 1/16 of the parameters and compute).
    """

    mix_points: dict[str, str]

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: float = 1.0) -> None:
        widths = tuple(scaled(c, width) for c in (64, 128, 256, 512))
        stages = OrderedDict(
            (f"layer{k + 1}", preact_stage(widths[max(k - 1, 0)], width, 2, 1 if k == 0 else 2))
            for k, width in enumerate(widths)
        )
        super().__init__(
            OrderedDict(
                # conv + BN + ReLU as in the authors' code, although the first block
                # normalises its input again; the pool then sees the raw last block output.
                stem=nn.Sequential(
                    nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False),
                    nn.BatchNorm2d(widths[0]),
                    nn.ReLU(inplace=True),
                ),
                **stages,
                **classifier_head(widths[-1], num_classes, final_norm=False),
            )
        )
        self.mix_points = {**_RESNET_MIX_POINTS, "feature_map": "pool"}
