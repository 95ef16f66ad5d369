"""Targets, losses and the Mixer: equalities with the textbook formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mixup_core import (
    Mixer,
    MixupConfig,
    closest_labels,
    mix_tensor,
    mixed_cross_entropy,
    sample_lambda,
    soft_targets,
    weighted_correct,
)


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device).manual_seed(seed)


@given(
    b=st.integers(1, 40),
    c=st.integers(2, 12),
    lam=st.floats(0.0, 1.0),
    eps=st.sampled_from([0.0, 0.05, 0.1, 0.4]),
    per_sample=st.booleans(),
    seed=st.integers(0, 10_000),
)
@settings(max_examples=80, deadline=None)
def test_index_form_equals_soft_target_cross_entropy(b, c, lam, eps, per_sample, seed) -> None:
    g = gen(seed)
    logits = torch.randn(b, c, generator=g, dtype=torch.float64) * 3
    y_a = torch.randint(0, c, (b,), generator=g)
    y_b = torch.randint(0, c, (b,), generator=g)
    weight = torch.rand(b, generator=g, dtype=torch.float64) if per_sample else lam
    target = soft_targets(y_a, y_b, weight, c, eps)
    assert torch.allclose(target.sum(1), torch.ones(b), atol=1e-6)
    assert bool((target >= 0).all())
    reference = F.cross_entropy(logits.float(), target)
    ours = mixed_cross_entropy(logits, y_a, y_b, weight, eps)
    assert torch.allclose(ours, reference, atol=1e-5, rtol=1e-5)


def test_label_smoothing_puts_eps_over_c_on_each_wrong_class() -> None:
    t = soft_targets(torch.tensor([2]), torch.tensor([2]), 1.0, num_classes=10, label_smoothing=0.1)
    assert torch.allclose(t[0, 2], torch.tensor(0.91))
    assert torch.allclose(t[0, [0, 1, 3, 9]], torch.full((4,), 0.01))


def test_closest_label_takes_the_dominant_sample() -> None:
    y_a, y_b = torch.tensor([1, 2, 3]), torch.tensor([7, 8, 9])
    assert torch.equal(closest_labels(y_a, y_b, torch.tensor([0.5, 0.49, 0.9])), torch.tensor([1, 8, 3]))
    assert torch.equal(closest_labels(y_a, y_b, 0.3), y_b)


def test_weighted_accuracy_counts_lambda() -> None:
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])  # predicts 0, 1, 2
    y_a, y_b = torch.tensor([0, 0, 1]), torch.tensor([1, 1, 2])
    # sample 0 hits y_a (0.7), sample 1 hits y_b (0.3), sample 2 hits y_b (0.3)
    assert weighted_correct(logits, y_a, y_b, 0.7).item() == pytest.approx(1.3)


@given(b=st.integers(1, 30), seed=st.integers(0, 1000), per_sample=st.booleans())
@settings(max_examples=50, deadline=None)
def test_mix_tensor_matches_hand_computation(b, seed, per_sample) -> None:
    g = gen(seed)
    h = torch.randn(b, 3, 2, 2, generator=g)
    perm = torch.randperm(b, generator=g)
    lam = torch.rand(b, generator=g) if per_sample else 0.3
    out = mix_tensor(h, perm, lam)
    for i in range(b):
        li = float(lam[i]) if per_sample else lam
        assert torch.allclose(out[i], li * h[i] + (1 - li) * h[perm[i]], atol=1e-6)
    assert out.data_ptr() != h.data_ptr()


def test_mix_tensor_keeps_channels_last() -> None:
    h = torch.randn(4, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    assert mix_tensor(h, torch.tensor([1, 0, 3, 2]), 0.5).is_contiguous(memory_format=torch.channels_last)


def _batch(b: int = 32, c: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = gen(seed)
    return torch.randn(b, 3, 4, 4, generator=g), torch.randint(0, c, (b,), generator=g)


def test_erm_mixer_leaves_the_batch_alone() -> None:
    x, y = _batch()
    batch = Mixer(MixupConfig(alpha=0.0), gen(), gen(1))(x, y)
    assert batch.x is x
    assert batch.lam == 1.0
    assert torch.equal(batch.y_a, y)


def test_input_mixer_reproduces_the_paper_formula() -> None:
    x, y = _batch()
    mixer = Mixer(MixupConfig(alpha=1.0), gen(4), gen(5))
    batch = mixer(x, y)
    # Replay the same draws by hand: λ from the CPU generator, the permutation from the device one.
    lam = float(sample_lambda(1.0, 1, gen(5))[0])
    perm = torch.randperm(32, generator=gen(4))
    assert batch.lam == pytest.approx(lam)
    assert torch.allclose(batch.x, lam * x + (1 - lam) * x[perm], atol=1e-6)
    assert torch.equal(batch.y_b, y[perm])
    assert torch.equal(batch.y_a, y)


def test_per_sample_lambda_mixer() -> None:
    x, y = _batch()
    batch = Mixer(MixupConfig(alpha=0.4, lam_per="sample"), gen(4), gen(5))(x, y)
    assert isinstance(batch.lam, torch.Tensor)
    assert batch.lam.shape == (32,)
    assert len(set(batch.lam.tolist())) > 20


def test_same_class_scope_mixes_within_class() -> None:
    x, y = _batch(b=64)
    batch = Mixer(MixupConfig(alpha=1.0, scope="same_class"), gen(4), gen(5))(x, y)
    assert torch.equal(batch.y_b, batch.y_a)


def test_closest_target_is_a_hard_label() -> None:
    x, y = _batch()
    batch = Mixer(MixupConfig(alpha=1.0, target="closest", lam_per="sample"), gen(4), gen(5))(x, y)
    assert batch.lam == 1.0
    assert torch.equal(batch.y_a, batch.y_b)
    assert not torch.equal(batch.y_a, y), "some samples must take their partner's label"


def test_knn_partners_mix_with_given_partners() -> None:
    x, y = _batch()
    px, py = _batch(seed=1)
    batch = Mixer(MixupConfig(alpha=1.0, pairing="knn"), gen(4), gen(5))(x, y, px, py)
    lam = batch.lam
    assert isinstance(lam, float)
    assert torch.allclose(batch.x, lam * x + (1 - lam) * px, atol=1e-6)
    assert torch.equal(batch.y_b, py)


def test_input_noise_baseline_adds_gaussian_noise() -> None:
    x, y = torch.zeros(4000, 5), torch.zeros(4000, dtype=torch.long)
    batch = Mixer(MixupConfig(alpha=0.0, input_noise=0.2), gen(4), gen(5))(x, y)
    assert batch.x.std().item() == pytest.approx(0.2, rel=0.05)
    assert batch.x.mean().abs().item() < 0.01
