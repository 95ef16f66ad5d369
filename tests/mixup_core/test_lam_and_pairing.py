"""λ sampling and partner selection: distributions, invariants, determinism."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mixup_core import KnnPartners, random_partners, same_class_partners, sample_lambda
from mixup_core.errors import InvalidConfig


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@given(alpha=st.floats(0.01, 64.0), n=st.integers(1, 300), seed=st.integers(0, 2**31))
@settings(max_examples=60, deadline=None)
def test_lambda_lies_in_unit_interval(alpha: float, n: int, seed: int) -> None:
    lam = sample_lambda(alpha, n, gen(seed))
    assert lam.shape == (n,)
    assert lam.dtype == torch.float64
    assert bool(((lam >= 0) & (lam <= 1)).all())


@pytest.mark.parametrize("alpha", [0.2, 1.0, 8.0, 32.0])
def test_lambda_follows_beta_alpha_alpha(alpha: float) -> None:
    lam = sample_lambda(alpha, 20_000, gen(int(alpha * 10))).numpy()
    # Kolmogorov–Smirnov against the exact Beta(α, α) CDF: a wrong sampler
    # (say Beta(α, 1) or uniform) gives p far below 1e-3 with 20k draws.
    assert stats.kstest(lam, stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    assert abs(lam.mean() - 0.5) < 0.01


def test_small_alpha_quantiles_match_beta() -> None:
    # Below α ≈ 0.1 a visible share of draws lies within 1e-16 of 1, which float64
    # rounds to exactly 1.0, so a KS test fails on rounding, not on the sampler;
    # compare the CDF away from the ends instead.
    alpha = 0.05
    lam = sample_lambda(alpha, 40_000, gen(11)).numpy()
    for q in (1e-6, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
        assert (lam < q).mean() == pytest.approx(stats.beta(alpha, alpha).cdf(q), abs=0.01), q


def test_tiny_alpha_puts_lambda_near_zero_or_one() -> None:
    lam = sample_lambda(0.01, 2000, gen())
    assert not torch.isnan(lam).any()
    assert ((lam < 0.01) | (lam > 0.99)).float().mean() > 0.9


def test_alpha_zero_is_erm() -> None:
    g = gen(3)
    before = g.get_state()
    assert torch.equal(sample_lambda(0.0, 5, g), torch.ones(5, dtype=torch.float64))
    assert torch.equal(g.get_state(), before), "ERM must not consume random numbers"


def test_lambda_is_determined_by_the_generator() -> None:
    assert torch.equal(sample_lambda(1.0, 64, gen(7)), sample_lambda(1.0, 64, gen(7)))
    assert not torch.equal(sample_lambda(1.0, 64, gen(7)), sample_lambda(1.0, 64, gen(8)))


@pytest.mark.parametrize("alpha", [-0.1, float("inf"), float("nan")])
def test_bad_alpha_is_rejected_with_its_value(alpha: float) -> None:
    with pytest.raises(InvalidConfig, match="alpha"):
        sample_lambda(alpha, 3, gen())


@given(b=st.integers(1, 257), seed=st.integers(0, 1000))
@settings(max_examples=40, deadline=None)
def test_random_partners_is_a_permutation_for_any_size(b: int, seed: int) -> None:
    perm = random_partners(b, gen(seed), torch.device("cpu"))
    assert sorted(perm.tolist()) == list(range(b))


@given(labels=st.lists(st.integers(0, 5), min_size=1, max_size=200), seed=st.integers(0, 1000))
@settings(max_examples=80, deadline=None)
def test_same_class_partners_share_the_class(labels: list[int], seed: int) -> None:
    y = torch.tensor(labels)
    partners = same_class_partners(y, gen(seed))
    assert torch.equal(y[partners], y)
    # A permutation: every sample is somebody's partner exactly once.
    assert sorted(partners.tolist()) == list(range(len(labels)))
    # Nobody is paired with itself unless alone in its class.
    counts = torch.bincount(y)
    alone = counts[y] == 1
    assert torch.equal(partners == torch.arange(len(labels)), alone)


def test_same_class_partners_are_random() -> None:
    y = torch.zeros(64, dtype=torch.long)
    a = same_class_partners(y, gen(1))
    b = same_class_partners(y, gen(2))
    assert not torch.equal(a, b)


def _brute_force_knn(x: torch.Tensor, k: int, labels: torch.Tensor | None) -> torch.Tensor:
    d = torch.cdist(x.reshape(len(x), -1).double(), x.reshape(len(x), -1).double())
    d.fill_diagonal_(float("inf"))
    if labels is not None:
        d[labels[:, None] != labels[None, :]] = float("inf")
    return d.topk(k, largest=False).indices


@pytest.mark.parametrize("same_class", [False, True])
def test_knn_partners_are_the_k_nearest(same_class: bool) -> None:
    g = gen(5)
    x = torch.randn(300, 3, 4, 4, generator=g)
    y = torch.randint(0, 3, (300,), generator=g)
    k = 7
    knn = KnnPartners.build(x, k, y if same_class else None, chunk_elements=300 * 37)  # several chunks
    expected = _brute_force_knn(x, k, y if same_class else None)
    assert knn.neighbours.shape == (300, k)
    # Same sets (order among exact ties may differ).
    assert all(set(a) == set(b) for a, b in zip(knn.neighbours.tolist(), expected.tolist(), strict=True))
    idx = torch.arange(300)
    picked = knn.sample(idx, gen(9))
    assert all(int(p) in set(row) for p, row in zip(picked, knn.neighbours.tolist(), strict=True))
    assert not (picked == idx).any()
    if same_class:
        assert torch.equal(y[picked], y)


def test_knn_with_too_few_samples_per_class_names_the_setting() -> None:
    x = torch.randn(20, 4)
    y = torch.tensor([0] * 18 + [1] * 2)
    with pytest.raises(InvalidConfig, match=r"knn_k=5.*smallest class has 2"):
        KnnPartners.build(x, 5, y)
