"""The mixup paper's UCI model: an MLP with two hidden layers of 128 ReLU units."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


class MLP(nn.Sequential):
    """Flatten, two hidden ReLU layers, linear classifier.

    Submodules in forward order: ``flatten`` (any per-sample shape to (B, D)),
    ``stem`` (Linear(D, h) + ReLU), ``layer1`` (Linear(h, h) + ReLU), ``pool``
    (identity; it exists so that every built-in model has the same tail names),
    ``fc`` (Linear(h, classes)).

    Attributes:
        mix_points: ``layer1`` (the first hidden layer's output, entering
            ``layer1``) and ``feature_map`` (the last hidden representation,
            entering ``fc``).

    Args:
        in_features: D, the number of input features (the product of the sample shape).
        num_classes: Number of logits.
        hidden: Units per hidden layer (the paper: 128).
    """

    mix_points: dict[str, str]

    def __init__(self, in_features: int, num_classes: int, hidden: int = 128) -> None:
        super().__init__(
            OrderedDict(
                flatten=nn.Flatten(1),  # (B, *shape) -> (B, D)
                stem=nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True)),  # (B, h)
                layer1=nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(inplace=True)),  # (B, h)
                pool=nn.Identity(),
                fc=nn.Linear(hidden, num_classes),  # (B, classes)
            )
        )
        self.mix_points = {"layer1": "layer1", "feature_map": "fc"}
