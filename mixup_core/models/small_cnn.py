"""A small convolutional network that trains in minutes on a 2-core CPU.

For 28×28 (MNIST, Fashion-MNIST) and 32×32 (CIFAR) images: a 3×3 stem at full
resolution, then two stages that each halve the resolution *before* their
convolution (so the costly 3×3 convolutions run at 14×14 and 7×7 rather than
28×28 and 14×14: about 4× cheaper for the same widths), global average pooling
and a linear layer: about 7.5 M multiply-adds per 28×28 grey image, ~0.3-0.5 ms per
image for forward + backward at batch 128 on 2 CPU cores.

What it is for: fast, cheap studies on clean data — smoke runs, the service's
own tests and benchmarks, and the shape of an ablation (α × weight decay × where
to mix) at CPU scale.

What it cannot show: the paper's label-noise result (Table 2). With ~94 k
parameters and global average pooling it is too small to memorise wrong labels,
so there is little memorisation for mixup to prevent, and mixup's extra
regularisation only costs it: on Fashion-MNIST with 40 % noisy labels (10,000
images, 20 epochs) ERM reached 15.2 % test error and mixup α = 1 16.5 %, α = 8
18.3 % — the paper's direction reversed (issue 12; a plain PyTorch loop with the
same layout agrees: ERM 14.4, α = 1 15.6). Use ``lenet_fc`` (two conv layers and
a 256-unit fully connected layer, 0.82 M parameters), whose shape memorises the
noise and showed mixup ahead (ERM 17.3 vs α = 1 13.4 in the same plain loop), or a
narrow ``preact_resnet18`` (``ModelConfig.width``): the bundled ``repro_label_noise``
preset (``mixup-studies reproduce table2-label-noise``, docs/REPRODUCTION.md) is the
CPU study that shows mixup's effect.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    # bias=False: BN's shift makes a conv bias redundant.
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Sequential):
    """Stem + two conv stages + global average pooling + linear.

    Submodules in forward order: ``stem`` (conv C→32, BN, ReLU; H×W), ``layer1``
    (maxpool, conv 32→64, BN, ReLU; H/2), ``layer2`` (maxpool, conv 64→128, BN,
    ReLU; H/4), ``final`` (identity: ``layer2`` already ends in BN+ReLU), ``pool``,
    ``flatten``, ``fc``. Inputs need H, W >= 8 so that the last stage still has
    at least 2×2 positions.

    Attributes:
        mix_points: ``layer1``, ``layer2`` and ``feature_map``, each mapped to the
            submodule whose input is that representation.

    Args:
        in_channels: Channels of the input images.
        num_classes: Number of logits.
        width: Channels of the stem; the stages use 2× and 4× that.
    """

    mix_points: dict[str, str]

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 32) -> None:
        super().__init__(
            OrderedDict(
                stem=nn.Sequential(*_conv_bn_relu(in_channels, width)),  # (B, w, H, W)
                layer1=nn.Sequential(nn.MaxPool2d(2), *_conv_bn_relu(width, 2 * width)),  # (B, 2w, H/2, W/2)
                layer2=nn.Sequential(nn.MaxPool2d(2), *_conv_bn_relu(2 * width, 4 * width)),  # (B, 4w, H/4, W/4)
                final=nn.Identity(),
                pool=nn.AdaptiveAvgPool2d(1),  # (B, 4w, 1, 1)
                flatten=nn.Flatten(1),  # (B, 4w)
                fc=nn.Linear(4 * width, num_classes),
            )
        )
        self.mix_points = {"layer1": "layer1", "layer2": "layer2", "feature_map": "pool"}
