"""ModelConfig.width (the paper's models at a fraction of their width) and lenet_fc, the label-noise model."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from mixup_core.config import DataConfig, ExperimentConfig, ModelConfig
from mixup_core.models import build_model, mix_points, resolve_mix_point

MNIST = (1, 28, 28)


def _build(name: str, width: float = 1.0, shape: tuple[int, ...] = MNIST) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_model(ModelConfig(name=name, width=width), shape, 10)


def _shape(model: nn.Module, parameter: str) -> tuple[int, ...]:
    return tuple(model.get_parameter(parameter).shape)


def test_default_width_is_the_papers() -> None:
    assert ModelConfig(name="preact_resnet18").width == 1.0
    model = _build("preact_resnet18")
    assert _shape(model, "stem.0.weight") == (64, 1, 3, 3)
    assert _shape(model, "fc.weight") == (10, 512)


@pytest.mark.parametrize(
    ("name", "width", "expected"),
    [
        # 64, 128, 256, 512 channels × 0.25
        ("preact_resnet18", 0.25, {"stem.0.weight": (16, 1, 3, 3), "layer4.0.conv1.weight": (128, 64, 3, 3)}),
        # WRN-28-10 at 0.25 = WRN-28-2.5: stages 40, 80, 160; the stem keeps 16
        ("wide_resnet28_10", 0.25, {"stem.weight": (16, 1, 3, 3), "layer1.0.conv1.weight": (40, 16, 3, 3)}),
        ("wide_resnet28_10", 0.25, {"layer3.3.conv2.weight": (160, 160, 3, 3), "fc.weight": (10, 160)}),
        ("small_cnn", 0.5, {"stem.0.weight": (16, 1, 3, 3), "fc.weight": (10, 64)}),
        ("mlp", 0.5, {"stem.0.weight": (64, 784), "fc.weight": (10, 64)}),
        ("lenet_fc", 0.5, {"stem.0.weight": (16, 1, 3, 3), "layer2.0.weight": (128, 32 * 7 * 7)}),
    ],
)
def test_width_scales_the_layers(name: str, width: float, expected: dict[str, tuple[int, ...]]) -> None:
    model = _build(name, width)
    assert {p: _shape(model, p) for p in expected} == expected
    assert model(torch.zeros((2, *MNIST))).shape == (2, 10)


def test_a_quarter_width_resnet_has_a_sixteenth_of_the_parameters() -> None:
    full, quarter = (sum(p.numel() for p in _build("preact_resnet18", w).parameters()) for w in (1.0, 0.25))
    assert full == 11_170_122
    assert quarter == 700_506
    assert 15 < full / quarter < 16.5  # conv weights scale with width², BN and biases with width


def test_lenet_fc_size_by_hand() -> None:
    # conv 1→32 (3×3): 288 + 32; conv 32→64: 18,432 + 64; FC 64·7·7 → 256: 802,816 + 256; fc 256 → 10: 2,560 + 10.
    model = _build("lenet_fc")
    assert sum(p.numel() for p in model.parameters()) == 320 + 18_496 + 803_072 + 2_570 == 824_458
    cifar = _build("lenet_fc", shape=(3, 32, 32))
    assert _shape(cifar, "layer2.0.weight") == (256, 64 * 8 * 8)


def test_lenet_fc_mixing_points() -> None:
    assert mix_points("lenet_fc", MNIST)[:4] == ("input", "layer1", "layer2", "feature_map")
    model = _build("lenet_fc").eval()
    seen: dict[str, tuple[int, ...]] = {}
    for point in ("layer1", "layer2", "feature_map"):
        module, pre = resolve_mix_point(model, point)
        assert pre

        def hook(module: nn.Module, args: tuple[Any, ...], point: str = point) -> None:
            seen[point] = tuple(args[0].shape)

        module.register_forward_pre_hook(hook)
    model(torch.zeros((3, *MNIST)))
    # the stem's output, the flattened conv features, the 256-unit hidden layer
    assert seen == {"layer1": (3, 32, 14, 14), "layer2": (3, 64 * 7 * 7), "feature_map": (3, 256)}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"name": "torchvision:resnet18", "width": 0.5}, "model.width scales the built-in models only"),
        ({"name": "small_cnn", "width": 0}, "width"),
        ({"name": "small_cnn", "width": 17}, "width"),
    ],
)
def test_bad_widths_are_refused(model: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelConfig.model_validate(model)


def test_lenet_fc_needs_four_pixels_per_side() -> None:
    with pytest.raises(ValidationError, match=r"lenet_fc needs images of at least 4×4"):
        ExperimentConfig(
            dataset=DataConfig.model_validate({"name": "synthetic", "synthetic": {"shape": [1, 3, 3]}}),
            model=ModelConfig(name="lenet_fc"),
        )


def test_compiled_model_cache_tells_widths_apart() -> None:
    # Trials of one worker share compiled models by architecture; two widths of one model are two
    # architectures, or the second trial would load its weights into the first one's shapes.
    from mixup_core import MixupConfig, SyntheticConfig, TrainConfig, Trainer
    from mixup_core.compiled import clear_compiled_models

    clear_compiled_models()
    base = ExperimentConfig(
        dataset=DataConfig(name="synthetic", synthetic=SyntheticConfig(num_train=64, num_test=32)),
        model=ModelConfig(name="mlp"),
        mixup=MixupConfig(alpha=0.0),
        training=TrainConfig(epochs=1, batch_size=16, device="cpu", compile=True),
    )
    try:
        wide = Trainer(base)
        narrow = Trainer(base.with_overrides({"model.width": 0.5}))
        assert tuple(wide.model.get_parameter("fc.weight").shape) == (4, 128)
        assert tuple(narrow.model.get_parameter("fc.weight").shape) == (4, 64)
        wide.close()
        narrow.close()
    finally:
        clear_compiled_models()
