"""Tests of mixup_core.models: shapes, sizes, mixing points and the registry's checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from mixup_core.config import ModelConfig
from mixup_core.models import (
    MODEL_NAMES,
    build_model,
    check_model_input,
    check_model_name,
    mix_points,
    registry,
    resolve_mix_point,
)
from mixup_core.models.tv import build_on_meta

CIFAR = (3, 32, 32)
MNIST = (1, 28, 28)
IMAGE_MODELS = ("preact_resnet18", "wide_resnet28_10", "small_cnn")

# Named points (after "input") of each built-in, in network order.
NAMED_POINTS = {
    "preact_resnet18": ("layer1", "layer2", "layer3", "layer4", "feature_map"),
    "wide_resnet28_10": ("layer1", "layer2", "layer3", "feature_map"),
    "small_cnn": ("layer1", "layer2", "feature_map"),
    "lenet_fc": ("layer1", "layer2", "feature_map"),
    "mlp": ("layer1", "feature_map"),
}


def _build(name: str, shape: tuple[int, ...], classes: int = 10, seed: int = 0) -> nn.Module:
    # Initialisation draws from the global RNG (by contract); keep the tests from disturbing each other.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(ModelConfig(name=name), shape, classes)


def _inputs(shape: tuple[int, ...], batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn((batch, *shape), generator=torch.Generator().manual_seed(seed))


def _run(model: nn.Module, paths: tuple[str, ...], x: torch.Tensor) -> torch.Tensor:
    """Feeds ``x`` through the named submodules in turn: a forward pass split by hand."""
    for path in paths:
        x = model.get_submodule(path)(x)
    return x


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def preact() -> nn.Module:
    return _build("preact_resnet18", CIFAR).eval()


@pytest.fixture(scope="module")
def wrn() -> nn.Module:
    return _build("wide_resnet28_10", CIFAR).eval()


# --- shapes and sizes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*IMAGE_MODELS, "mlp"])
@pytest.mark.parametrize("shape", [CIFAR, MNIST])
def test_image_output_shapes(name: str, shape: tuple[int, ...]) -> None:
    model = _build(name, shape, classes=7).eval()
    with torch.no_grad():
        logits = model(_inputs(shape))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_mlp_takes_vectors() -> None:
    model = _build("mlp", (4,), classes=3)
    assert model(_inputs((4,))).shape == (2, 3)
    # The paper's UCI model: 4→128→128→3, i.e. (4·128 + 128) + (128·128 + 128) + (128·3 + 3) parameters.
    assert _num_params(model) == 640 + 16_512 + 387


def test_preact_resnet18_parameter_count(preact: nn.Module) -> None:
    # Convolutions 11_159_232: stem 3·64·9 = 1_728; stage k (C_in→C, 2 blocks) = 9·C·(C_in + 3C) plus a 1×1
    # shortcut C_in·C when the shape changes: 147_456 + 524_288 + 2_097_152 + 8_388_608 (shortcuts included).
    # BatchNorm 6_912 = 2·(2·(64+64) + (64+128) + 3·128 + (128+256) + 3·256 + (256+512) + 3·512) + 2·64 (stem).
    # Linear 512·10 + 10 = 5_130.
    # pytorch-cifar's PreActResNet18 has 11_171_146; the mixup authors' ResNet18 adds the stem's BN(64), +128.
    assert _num_params(preact) == 11_159_232 + 6_912 + 5_130 == 11_171_274


def test_wide_resnet28_10_parameter_count(wrn: nn.Module) -> None:
    # 3·16·9 stem + per stage 4 blocks of two 3×3 convs (the first C_in→C, the rest C→C) + a 1×1 shortcut:
    # 36_454_832 conv weights, 17_952 BN (2 per channel per BN), 640·10 + 10 linear: WRN-28-10's 36.5 M.
    assert _num_params(wrn) == 36_454_832 + 17_952 + 6_410 == 36_479_194


def test_wide_resnet_output(wrn: nn.Module) -> None:
    with torch.no_grad():
        assert wrn(_inputs(CIFAR, batch=1)).shape == (1, 10)


def test_input_channels_follow_input_shape() -> None:
    assert _build("preact_resnet18", (5, 16, 16)).get_parameter("stem.0.weight").shape == (64, 5, 3, 3)
    assert _build("small_cnn", (1, 8, 8)).get_parameter("stem.0.weight").shape == (32, 1, 3, 3)
    assert _build("mlp", (2, 3, 4)).get_parameter("stem.0.weight").shape == (128, 24)


def test_same_seed_same_weights_different_seed_different() -> None:
    a, b, c = (_build("small_cnn", MNIST, seed=s) for s in (3, 3, 4))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.get_parameter("stem.0.weight"), c.get_parameter("stem.0.weight"))


# --- mixing points ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_mix_points_order_and_content(name: str) -> None:
    shape = (4,) if name == "mlp" else CIFAR
    points = mix_points(name, shape)
    named = NAMED_POINTS[name]
    assert points[: 1 + len(named)] == ("input", *named)
    # Then every submodule, in named_modules() order, and nothing else.
    real = _build(name, shape)
    assert points[1 + len(named) :] == tuple(f"module:{path}" for path, _ in real.named_modules() if path)
    assert vars(real)["mix_points"].keys() == set(named)  # "input" is not a hook point


def test_mix_points_of_mlp_exactly() -> None:
    assert mix_points("mlp", (4,)) == (
        "input",
        "layer1",
        "feature_map",
        "module:flatten",
        "module:stem",
        "module:stem.0",
        "module:stem.1",
        "module:layer1",
        "module:layer1.0",
        "module:layer1.1",
        "module:pool",
        "module:fc",
    )


def test_wide_resnet_has_no_layer4() -> None:
    points = mix_points("wide_resnet28_10", CIFAR)
    assert "layer3" in points
    assert "layer4" not in points
    assert "module:layer3.3.conv2" in points  # 4 blocks per stage: 0..3
    assert "module:layer3.4" not in points


def test_residual_module_paths() -> None:
    points = set(mix_points("preact_resnet18", CIFAR))
    expected = {"module:stem", "module:layer1.0.bn1", "module:layer2.0.shortcut", "module:fc"}
    assert expected <= points
    assert "module:layer1.0.shortcut" not in points  # identity shortcut in the first stage


def test_meta_build_allocates_nothing_and_draws_no_random_numbers() -> None:
    registry._meta_model.cache_clear()
    registry._mix_points.cache_clear()
    before = torch.random.get_rng_state()
    mix_points("wide_resnet28_10", CIFAR)
    assert torch.equal(torch.random.get_rng_state(), before)
    model = registry._meta_model("wide_resnet28_10", CIFAR)
    tensors = [*model.parameters(), *model.buffers()]
    assert len(tensors) > 100
    assert {t.device.type for t in tensors} == {"meta"}


def test_meta_build_falls_back_for_builders_that_compute_with_tensors() -> None:
    # RegNet computes its widths with tensors and .tolist(): impossible on the meta default device.
    model = build_on_meta(lambda: build_model("torchvision:regnet_x_400mf", CIFAR, 10))
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert "feature_map" in mix_points("torchvision:regnet_x_400mf", CIFAR)


class _Capture:
    """Records what a hook sees."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.seen.append(args[0].detach().clone())

    def post(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        self.seen.append(output.detach().clone())


def test_layer1_pre_hook_sees_the_stem_output(preact: nn.Module) -> None:
    module, is_pre = resolve_mix_point(preact, "layer1")
    assert module is preact.get_submodule("layer1")
    assert is_pre
    capture = _Capture()
    handle = module.register_forward_pre_hook(capture.pre)
    x = _inputs(CIFAR)
    with torch.no_grad():
        preact(x)
        stem_out = preact.get_submodule("stem")(x)  # (2, 64, 32, 32)
    handle.remove()
    assert len(capture.seen) == 1
    assert capture.seen[0].shape == (2, 64, 32, 32)
    assert torch.equal(capture.seen[0], stem_out)


def test_feature_map_pre_hook_sees_the_last_feature_map(preact: nn.Module) -> None:
    module, is_pre = resolve_mix_point(preact, "feature_map")
    assert is_pre
    assert module is preact.get_submodule("pool")
    capture = _Capture()
    handle = module.register_forward_pre_hook(capture.pre)
    x = _inputs(CIFAR)
    with torch.no_grad():
        preact(x)
        h = _run(preact, ("stem", "layer1", "layer2", "layer3", "layer4"), x)  # (2, 512, 4, 4)
    handle.remove()
    assert isinstance(preact.final, nn.Identity)  # the authors' net pools the raw last block output
    assert capture.seen[0].shape == (2, 512, 4, 4)
    assert (capture.seen[0] < 0).any()  # no ReLU in between: a residual sum
    assert torch.allclose(capture.seen[0], h)


def test_module_point_is_a_forward_hook_on_that_module(preact: nn.Module) -> None:
    module, is_pre = resolve_mix_point(preact, "module:layer2.1.conv1")
    assert module is preact.get_submodule("layer2.1.conv1")
    assert not is_pre
    capture = _Capture()
    handle = module.register_forward_hook(capture.post)
    x = _inputs(CIFAR)
    with torch.no_grad():
        preact(x)
        paths = ("stem", "layer1", "layer2.0", "layer2.1.bn1", "layer2.1.relu1", "layer2.1.conv1")
        expected = _run(preact, paths, x)  # (2, 128, 16, 16)
    handle.remove()
    assert capture.seen[0].shape == (2, 128, 16, 16)
    assert torch.allclose(capture.seen[0], expected)


def test_mlp_feature_map_is_the_last_hidden_layer() -> None:
    model = _build("mlp", (4,))
    module, is_pre = resolve_mix_point(model, "feature_map")
    assert is_pre
    assert module is model.get_submodule("fc")
    capture = _Capture()
    handle = module.register_forward_pre_hook(capture.pre)
    x = _inputs((4,))
    with torch.no_grad():
        model(x)
        hidden = _run(model, ("flatten", "stem", "layer1"), x)  # (2, 128)
    handle.remove()
    assert torch.equal(capture.seen[0], hidden)


def test_resolve_unknown_points_name_them() -> None:
    model = _build("small_cnn", MNIST)
    with pytest.raises(ValueError, match=r"'layer4'.*layer1, layer2, feature_map"):
        resolve_mix_point(model, "layer4")
    with pytest.raises(ValueError, match=r"'input'.*needs no hook"):
        resolve_mix_point(model, "input")
    with pytest.raises(ValueError, match=r"no submodule 'layer1\.9'"):
        resolve_mix_point(model, "module:layer1.9")
    with pytest.raises(ValueError, match="names no submodule"):
        resolve_mix_point(model, "module:")
    # A module without mix_points still resolves module: paths.
    plain = nn.Sequential(nn.Linear(2, 2))
    assert resolve_mix_point(plain, "module:0") == (plain[0], False)
    with pytest.raises(ValueError, match="no named points"):
        resolve_mix_point(plain, "layer1")


def test_projection_shortcut_takes_the_preactivated_input(preact: nn.Module) -> None:
    # He et al. 2016 / pytorch-cifar: the 1×1 shortcut sees relu(bn1(x)), not x; the identity shortcut sees x.
    activated, shortcut_in = _Capture(), _Capture()
    handles = [
        preact.get_submodule("layer2.0.relu1").register_forward_hook(activated.post),
        preact.get_submodule("layer2.0.shortcut").register_forward_pre_hook(shortcut_in.pre),
    ]
    x = _inputs(CIFAR)
    with torch.no_grad():
        out = preact.get_submodule("layer1.0")(preact.get_submodule("stem")(x))  # (2, 64, 32, 32)
        block = preact.get_submodule("layer1.1")
        identity_block_out = block(out)
        block_in = _run(preact, ("stem", "layer1"), x)
        preact.get_submodule("layer2.0")(block_in)
    for handle in handles:
        handle.remove()
    assert torch.equal(shortcut_in.seen[0], activated.seen[0])
    assert (shortcut_in.seen[0] >= 0).all()
    assert not torch.equal(shortcut_in.seen[0], block_in)
    # Identity block: output minus the residual branch is the block's input itself.
    branch = _run(block, ("bn1", "relu1", "conv1", "bn2", "relu2", "conv2"), out)
    assert torch.allclose(identity_block_out - branch, out, atol=1e-5)


def test_split_forward_equals_model_forward(preact: nn.Module) -> None:
    x = _inputs(CIFAR)
    m = preact.get_submodule
    with torch.no_grad():
        split = m("fc")(
            m("flatten")(m("pool")(m("final")(m("layer4")(m("layer3")(m("layer2")(m("layer1")(m("stem")(x))))))))
        )
        whole = preact(x)
    assert split.shape == (2, 10)
    assert torch.equal(split, whole)


def _call_counts(model: nn.Module, x: torch.Tensor) -> Iterator[tuple[str, int]]:
    counts = dict.fromkeys((path for path, _ in model.named_modules() if path), 0)

    def counter(path: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            counts[path] += 1

        return hook

    handles = [model.get_submodule(path).register_forward_pre_hook(counter(path)) for path in counts]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return iter(counts.items())


@pytest.mark.parametrize("name", ["preact_resnet18", "small_cnn", "mlp"])
def test_every_submodule_runs_exactly_once(name: str) -> None:
    # A module: mixing point must fire once per forward, or the batch would be mixed twice.
    shape = (4,) if name == "mlp" else MNIST
    model = _build(name, shape).eval()
    assert dict(_call_counts(model, _inputs(shape))) == {path: 1 for path, _ in model.named_modules() if path}


# --- the registry's checks --------------------------------------------------------------------------------------------


def test_check_model_name() -> None:
    for name in (*MODEL_NAMES, "torchvision:resnet18", "torchvision:vit_b_16"):
        check_model_name(name)
    with pytest.raises(ValueError, match=r"unknown model 'resnet9000'; known: preact_resnet18, .*torchvision:resnet18"):
        check_model_name("resnet9000")
    with pytest.raises(ValueError, match=r"'resnet19'.*did you mean torchvision:resnet18"):
        check_model_name("torchvision:resnet19")
    with pytest.raises(ValueError, match="unknown torchvision model 'fasterrcnn_resnet50_fpn'"):
        check_model_name("torchvision:fasterrcnn_resnet50_fpn")  # detection, not classification


def test_model_config_uses_the_registry() -> None:
    assert ModelConfig(name="torchvision:resnet18").name == "torchvision:resnet18"
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        ModelConfig(name="nope")


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("preact_resnet18", (16,), r"preact_resnet18 takes images \(C, H, W\), got input_shape=\(16,\)"),
        ("wide_resnet28_10", (28, 28), r"wide_resnet28_10 takes images.*\(28, 28\)"),
        ("small_cnn", (1, 7, 7), r"small_cnn needs images of at least 8×8, got input_shape=\(1, 7, 7\)"),
        ("torchvision:resnet18", (1, 28, 28), r"torchvision:resnet18 takes 3-channel.*\(1, 28, 28\)"),
        ("torchvision:resnet18", (64,), r"torchvision:resnet18 takes images.*\(64,\)"),
        ("torchvision:vit_b_16", CIFAR, r"torchvision:vit_b_16 cannot take input_shape=\(3, 32, 32\).*224"),
        ("mlp", (0, 3), r"positive sizes.*\(0, 3\)"),
        ("nope", CIFAR, "unknown model 'nope'"),
    ],
)
def test_check_model_input_rejects(name: str, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_model_input(name, shape)
    with pytest.raises(ValueError, match=message):
        build_model(name, shape, 10)


def test_check_model_input_accepts() -> None:
    for name in IMAGE_MODELS:
        check_model_input(name, (1, 8, 8))
    for shape in ((4,), MNIST, (2, 3)):
        check_model_input("mlp", shape)
    check_model_input("torchvision:vit_b_16", (3, 224, 224))
    check_model_input("torchvision:resnet18", CIFAR)


def test_num_classes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="num_classes=0"):
        build_model("mlp", (4,), 0)


# --- torchvision ------------------------------------------------------------------------------------------------------


def test_torchvision_resnet18() -> None:
    model = _build("torchvision:resnet18", CIFAR, classes=10).eval()
    assert model.get_parameter("fc.weight").shape == (10, 512)
    assert vars(model)["mix_points"] == {
        "layer1": "layer1",
        "layer2": "layer2",
        "layer3": "layer3",
        "layer4": "layer4",
        "feature_map": "avgpool",
    }
    points = mix_points("torchvision:resnet18", CIFAR)
    assert points[:6] == ("input", "layer1", "layer2", "layer3", "layer4", "feature_map")
    assert "module:layer4.1.conv2" in points
    # layer1's input is the ImageNet stem's output: conv s2 + maxpool s2, 32 → 8 pixels.
    capture = _Capture()
    module, is_pre = resolve_mix_point(model, "layer1")
    assert is_pre
    handle = module.register_forward_pre_hook(capture.pre)
    x = _inputs(CIFAR)
    with torch.no_grad():
        logits = model(x)
        stem = _run(model, ("conv1", "bn1", "relu", "maxpool"), x)
    handle.remove()
    assert logits.shape == (2, 10)
    assert torch.equal(capture.seen[0], stem)
    assert stem.shape == (2, 64, 8, 8)


def test_torchvision_models_without_stages() -> None:
    # MobileNet has avgpool but no layer1..4; GoogLeNet is built without auxiliary heads so training gives a tensor.
    assert mix_points("torchvision:mobilenet_v3_small", CIFAR)[:2] == ("input", "feature_map")
    assert "layer1" not in mix_points("torchvision:mobilenet_v3_small", CIFAR)
    googlenet = _build("torchvision:googlenet", CIFAR, classes=4).train()
    out = googlenet(_inputs(CIFAR))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, 4)


@pytest.mark.parametrize("layer", ["layer1", "feature_map", "module:layer1.0.bn1", "module:stem.1", "module:stem"])
def test_mixing_hooks_survive_backward_with_in_place_relus(layer: str) -> None:
    # The blocks use in-place ReLUs; a mixed tensor returned by a hook must still backpropagate.
    model = _build("preact_resnet18", (3, 8, 8)).train()
    module, is_pre = resolve_mix_point(model, layer)
    partners = torch.tensor([1, 0, 3, 2])

    def mix(h: torch.Tensor) -> torch.Tensor:
        return 0.7 * h + 0.3 * h[partners]  # (B, ...)

    if is_pre:
        handle = module.register_forward_pre_hook(lambda _, args: (mix(args[0]),))
    else:
        handle = module.register_forward_hook(lambda _, args, out: mix(out))
    x = _inputs((3, 8, 8), batch=4)
    loss = model(x).logsumexp(1).mean()
    loss.backward()
    handle.remove()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    stem_grad = model.get_parameter("stem.0.weight").grad
    assert stem_grad is not None
    assert stem_grad.abs().sum() > 0


def test_config_rejects_layer4_for_wide_resnet() -> None:
    # config.py asks mix_points: WRN has three stages, so "Layer 4" is not a point of it.
    from mixup_core.config import ExperimentConfig

    spec: dict[str, Any] = {
        "dataset": {"name": "synthetic", "synthetic": {"shape": [3, 8, 8]}},
        "model": {"name": "wide_resnet28_10"},
    }
    ExperimentConfig.model_validate({**spec, "mixup": {"layer": "layer3"}})
    with pytest.raises(ValueError, match="'layer4' is not a mixing point of wide_resnet28_10"):
        ExperimentConfig.model_validate({**spec, "mixup": {"layer": "layer4"}})
