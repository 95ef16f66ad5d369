"""Hidden-layer mixing equals mixing by hand in a split forward pass."""

from __future__ import annotations

import pytest
import torch

from mixup_core import HiddenMixer, ModelConfig, build_model


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def preact() -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="preact_resnet18"), (3, 32, 32), 10)
    return model.eval()  # eval: batch norm uses running stats, so a split forward is comparable


def head(model: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
    return model.fc(model.flatten(model.pool(h)))


@pytest.mark.parametrize("per_sample", [False, True])
def test_layer1_of_preact_resnet18_equals_a_manual_split_forward(preact: torch.nn.Module, per_sample: bool) -> None:
    g = gen(1)
    x = torch.randn(6, 3, 32, 32, generator=g)
    perm = torch.randperm(6, generator=g)
    lam = torch.rand(6, generator=g) if per_sample else 0.37
    mixer = HiddenMixer(preact, "layer1")
    try:
        with torch.no_grad():
            mixer.arm(perm, lam)
            hooked = preact(x)
            # By hand: the stem's output is the paper's "Layer 1" representation.
            h = preact.stem(x)
            w = lam.view(-1, 1, 1, 1) if isinstance(lam, torch.Tensor) else lam
            h = w * h + (1 - w) * h[perm]
            for stage in (preact.layer1, preact.layer2, preact.layer3, preact.layer4):
                h = stage(h)
            manual = head(preact, preact.final(h))
            unmixed = preact(x)  # the hook fires once per arm()
    finally:
        mixer.remove()
    assert torch.allclose(hooked, manual, atol=1e-5)
    assert not torch.allclose(hooked, unmixed, atol=1e-3)
    assert torch.allclose(unmixed, preact(x), atol=1e-6)


def test_feature_map_mixes_before_global_pooling(preact: torch.nn.Module) -> None:
    x = torch.randn(4, 3, 32, 32, generator=gen(2))
    perm = torch.tensor([3, 2, 1, 0])
    mixer = HiddenMixer(preact, "feature_map")
    try:
        with torch.no_grad():
            mixer.arm(perm, 0.8)
            hooked = preact(x)
            h = preact.final(preact.layer4(preact.layer3(preact.layer2(preact.layer1(preact.stem(x))))))
            manual = head(preact, 0.8 * h + 0.2 * h[perm])
    finally:
        mixer.remove()
    assert torch.allclose(hooked, manual, atol=1e-5)


def test_module_path_mixes_that_modules_output() -> None:
    model = build_model(ModelConfig(name="mlp"), (5,), 3).eval()
    x = torch.randn(4, 5, generator=gen(3))
    perm = torch.tensor([1, 0, 3, 2])
    mixer = HiddenMixer(model, "module:layer1")
    with torch.no_grad():
        mixer.arm(perm, 0.25)
        hooked = model(x)
        h = model.layer1(model.stem(model.flatten(x)))
        manual = model.fc(model.pool(0.25 * h + 0.75 * h[perm]))
    mixer.remove()
    assert torch.allclose(hooked, manual, atol=1e-6)


def test_gradients_flow_through_a_mixed_hidden_layer() -> None:
    model = build_model(ModelConfig(name="small_cnn"), (1, 28, 28), 10)
    mixer = HiddenMixer(model, "layer1")
    x = torch.randn(8, 1, 28, 28, generator=gen(4))
    mixer.arm(torch.randperm(8, generator=gen(5)), torch.rand(8, generator=gen(6)))
    model(x).logsumexp(1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    mixer.remove()
