"""``training.cuda_graph``: the static, device-only training step (issue 16), tested on the CPU.

The graph capture itself needs CUDA (the CUDA test at the end is skipped here); everything the graph would
replay (λ and partners drawn from the device generator, the static batch order, the metrics summed on the
device) runs eagerly on the CPU and is checked here.
"""

from __future__ import annotations

import pytest
import torch

from mixup_core import DataConfig, ExperimentConfig, MixupConfig, ModelConfig, SyntheticConfig, TrainConfig, Trainer
from mixup_core.device_step import device_lambda, device_partners

HAS_CUDA = torch.cuda.is_available()


def config(cuda_graph: bool, **mix: object) -> ExperimentConfig:
    return ExperimentConfig(
        dataset=DataConfig(name="synthetic", synthetic=SyntheticConfig(num_train=300, num_test=64, num_classes=4)),
        model=ModelConfig(name="mlp"),
        mixup=MixupConfig(**mix),  # type: ignore[arg-type]
        training=TrainConfig(
            epochs=2, batch_size=64, lr=0.05, schedule="constant", device="cpu", seed=3, cuda_graph=cuda_graph
        ),
    )


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_device_lambda_has_the_beta_mean_and_variance(alpha: float) -> None:
    drawn = device_lambda(alpha, 200_000, torch.Generator().manual_seed(0), torch.device("cpu"))
    var = 1.0 / (4.0 * (2.0 * alpha + 1.0))  # Beta(α, α): mean 1/2, variance 1 / (4(2α + 1))
    assert drawn.dtype == torch.float32 and drawn.min() >= 0 and drawn.max() <= 1
    lam = drawn.double()
    assert float(lam.mean()) == pytest.approx(0.5, abs=0.005)
    assert float(lam.var()) == pytest.approx(var, rel=0.02)


def test_device_lambda_at_alpha_zero_is_one_and_draws_nothing() -> None:
    gen = torch.Generator().manual_seed(0)
    before = gen.get_state()
    assert torch.equal(device_lambda(0.0, 5, gen, torch.device("cpu")), torch.ones(5))
    assert torch.equal(gen.get_state(), before)


def test_device_partners_are_a_permutation_and_a_seed_fixes_them() -> None:
    draws = [device_partners(128, torch.Generator().manual_seed(s), torch.device("cpu")) for s in (1, 1, 2)]
    assert torch.equal(draws[0].sort().values, torch.arange(128))
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_a_seed_fixes_a_cuda_graph_run() -> None:
    a, b = (Trainer(config(True)).fit().history for _ in range(2))
    strip = [{k: v for k, v in h.items() if k not in ("epoch_seconds", "train_samples_per_s")} for h in a]
    assert strip == [{k: v for k, v in h.items() if k not in ("epoch_seconds", "train_samples_per_s")} for h in b]


@pytest.mark.parametrize(
    "mix",
    [
        {"alpha": 1.0},
        {"alpha": 0.4, "lam_per": "sample", "label_smoothing": 0.1},
        {"alpha": 1.0, "target": "closest", "input_noise": 0.1},
        {"alpha": 0.0},
    ],
    ids=["batch", "sample_smoothed", "closest_noised", "erm"],
)
def test_device_sums_equal_per_step_reads(mix: dict[str, object]) -> None:
    """The epoch's device-side sums equal the per-step values read back and summed on the host."""
    on_device = Trainer(config(True, **mix))
    metrics = on_device.train_epoch()
    by_hand = Trainer(config(True, **mix))  # same seed: the same weights, order, λ and partners
    step = by_hand.device_step
    assert step is not None and step.steps == 300 // 64 == 4  # the last partial batch (44) is dropped
    perm = torch.randperm(300, generator=by_hand.generator)
    step.order.copy_(perm[: step.steps * 64].view(step.steps, 64))
    step.counter.zero_()
    losses, corrects = [], []
    for _ in range(step.steps):
        loss, correct = step.step()
        losses.append(loss.item() * 64)
        corrects.append(correct.item())
    assert metrics["train_loss"] == pytest.approx(sum(losses) / 256, rel=1e-6)
    assert metrics["train_error"] == pytest.approx(100.0 * (1.0 - sum(corrects) / 256), abs=1e-4)
    assert 0 < metrics["train_loss"] < 10


def test_the_flag_off_changes_nothing() -> None:
    plain = ExperimentConfig.model_validate(config(False).model_dump(exclude={"training": {"cuda_graph"}}))
    assert TrainConfig().cuda_graph is False and plain == config(False)
    a, b = Trainer(plain), Trainer(config(False))
    assert a.device_step is None and b.device_step is None
    ha, hb = a.fit().history, b.fit().history
    keys = ("train_loss", "train_error", "test_error", "test_loss")
    assert [[h[k] for k in keys] for h in ha] == [[h[k] for k in keys] for h in hb]
    # and the default path still trains the last partial batch (300 = 4 × 64 + 44)
    assert len(a.batches) == 5


def test_a_cuda_graph_run_learns_like_the_eager_step() -> None:
    eager = Trainer(config(False, alpha=1.0)).fit().final
    graph = Trainer(config(True, alpha=1.0)).fit().final
    assert graph["test_error"] == pytest.approx(eager["test_error"], abs=10.0)
    assert graph["train_loss"] == pytest.approx(eager["train_loss"], rel=0.25)


@pytest.mark.parametrize(
    ("mix", "field"),
    [({"layer": "layer1"}, "mixup.layer"), ({"pairing": "knn", "knn_k": 5}, "mixup.pairing")],
)
def test_unsupported_mixing_is_refused_naming_the_setting(mix: dict[str, object], field: str) -> None:
    base = config(True).model_dump()
    base["model"] = {"name": "preact_resnet18", "width": 0.25} if field == "mixup.layer" else base["model"]
    if field == "mixup.layer":
        base["dataset"]["synthetic"]["shape"] = (3, 8, 8)
    base["mixup"].update(mix)
    with pytest.raises(ValueError, match=rf"training.cuda_graph supports {field}="):
        ExperimentConfig.model_validate(base)


def test_a_batch_larger_than_the_training_set_is_refused() -> None:
    cfg = config(True).with_overrides({"training.batch_size": 400})
    with pytest.raises(ValueError, match=r"training\.batch_size=400 is larger than the 300 training samples"):
        Trainer(cfg)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device here: the graph capture runs on CUDA only")
def test_the_captured_step_matches_the_eager_step_on_cuda() -> None:
    eager_cfg = config(True).with_overrides({"training.device": "cuda", "training.epochs": 3})
    graphed = Trainer(eager_cfg)
    result = graphed.fit()
    assert graphed.device_step is not None and graphed.device_step._graph is not None
    eager = Trainer(eager_cfg.with_overrides({"training.cuda_graph": False})).fit()
    assert result.final["test_error"] == pytest.approx(eager.final["test_error"], abs=10.0)
