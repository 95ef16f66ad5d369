"""A LeNet-style network with a wide fully connected layer: small, yet able to memorise noisy labels.

Two 3×3 convolutions (32 and 64 channels, each followed by ReLU and a 2×2 max
pool) and one hidden fully connected layer of 256 units: ~0.82 M parameters on
28×28 grey images, nearly all of them in the fully connected layer. That layer
gives the network the capacity to fit wrong labels, which is what the mixup
paper's label-noise experiment (Table 2) is about: ERM memorises the corrupted
labels and its test error grows, mixup does not. On 40 % noisy Fashion-MNIST a
plain PyTorch loop gave ERM 17.3 % vs mixup (α = 1) 13.4 % test error with a
network of this shape (2 conv layers, a 256-unit FC layer, ~0.8 M parameters),
where the layout of :class:`~mixup_core.models.small_cnn.SmallCNN` (~100 k
parameters, global pooling) showed the reverse (issue 12). On the real
Fashion-MNIST here (4,000 images, 40 % noise) this network memorised the noise in 24
epochs (ERM training error 15 %, last-epoch test error 27.1 % vs 17.6 % for α = 8) but
not in 12 (training error ~41 %, ERM ahead): it needs enough SGD steps
(docs/REPRODUCTION.md).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from mixup_core.models.width import scaled


class LeNetFC(nn.Sequential):
    """conv-pool, conv-pool, flatten, FC 256 + ReLU, linear classifier.

    Submodules in forward order: ``stem`` (conv C→32, ReLU, pool; H/2), ``layer1``
    (conv 32→64, ReLU, pool; H/4), ``flatten`` (B, 64·⌊H/4⌋·⌊W/4⌋), ``layer2``
    (Linear → 256, ReLU), ``pool`` (identity; the same tail names as the other
    built-ins), ``fc``. No batch norm: like the plain loop that showed the effect.

    Attributes:
        mix_points: ``layer1`` (the stem's output), ``layer2`` (the flattened conv
            features) and ``feature_map`` (the 256-unit hidden layer, entering ``fc``).

    Args:
        input_shape: One sample's shape ``(C, H, W)``; H, W >= 4.
        num_classes: Number of logits.
        width: Multiplies every layer's size (32, 64 and 256 at 1.0).
    """

    mix_points: dict[str, str]

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int = 10, width: float = 1.0) -> None:
        channels, height, side = input_shape
        c1, c2, hidden = scaled(32, width), scaled(64, width), scaled(256, width)
        super().__init__(
            OrderedDict(
                stem=nn.Sequential(nn.Conv2d(channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),  # (B, c1, H/2)
                layer1=nn.Sequential(nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),  # (B, c2, H/4)
                flatten=nn.Flatten(1),  # (B, c2·H/4·W/4)
                layer2=nn.Sequential(nn.Linear(c2 * (height // 4) * (side // 4), hidden), nn.ReLU()),  # (B, hidden)
                pool=nn.Identity(),
                fc=nn.Linear(hidden, num_classes),
            )
        )
        self.mix_points = {"layer1": "layer1", "layer2": "layer2", "feature_map": "fc"}
