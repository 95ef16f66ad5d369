"""The trainer end to end on real (small) data: learning, determinism, resume, failures."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mixup_core import DataConfig, ExperimentConfig, MixupConfig, ModelConfig, TrainConfig, Trainer, metrics
from mixup_core.config import EvalConfig, SyntheticConfig
from mixup_core.errors import TrainingDiverged

FASHION = Path("/usr/share/datasets/fashion-mnist")
TIMING = {metrics.EPOCH_SECONDS, metrics.TRAIN_SAMPLES_PER_S}


def synthetic_config(**overrides: object) -> ExperimentConfig:
    base = ExperimentConfig(
        dataset=DataConfig(name="synthetic", synthetic=SyntheticConfig(num_train=512, num_test=256, num_classes=4)),
        model=ModelConfig(name="mlp"),
        mixup=MixupConfig(alpha=1.0),
        training=TrainConfig(epochs=8, batch_size=32, optimizer="adam", lr=1e-3, weight_decay=0.0, device="cpu"),
    )
    return base.with_overrides(dict(overrides)) if overrides else base


def without_timing(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


def test_mixup_mlp_learns_synthetic_clusters() -> None:
    result = Trainer(synthetic_config()).fit()
    assert result.final[metrics.TEST_ERROR] < 10.0
    assert result.final[metrics.EPOCH] == 8
    assert len(result.history) == 8
    # Learning happened: the first epoch's error is well above the last.
    assert result.history[0][metrics.TEST_ERROR] > result.final[metrics.TEST_ERROR]
    errors = [h[metrics.TEST_ERROR] for h in result.history]
    # 8 epochs < the window of 10: the median of all of them, the mean of the middle two.
    middle = sorted(errors)[3:5]
    assert result.final[metrics.MEDIAN_TEST_ERROR] == pytest.approx(sum(middle) / 2)
    assert result.final[metrics.BEST_TEST_ERROR] == min(errors)


def test_step_schedule_divides_lr_at_half_and_three_quarters() -> None:
    result = Trainer(synthetic_config(**{"training.optimizer": "sgd", "training.lr": 0.1})).fit()
    lrs = [h[metrics.LR] for h in result.history]
    assert lrs == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)


def test_same_seed_same_run_and_other_seed_other_run() -> None:
    a = Trainer(synthetic_config(**{"training.epochs": 3})).fit()
    b = Trainer(synthetic_config(**{"training.epochs": 3})).fit()
    c = Trainer(synthetic_config(**{"training.epochs": 3, "training.seed": 1})).fit()
    assert without_timing(a.history) == without_timing(b.history)
    assert without_timing(a.history) != without_timing(c.history)


def test_resume_from_state_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = synthetic_config(**{"training.epochs": 4, "mixup.lam_per": "sample"})
    straight = Trainer(cfg).fit()

    first = Trainer(cfg)
    for metrics_ in first.epochs():
        if metrics_[metrics.EPOCH] == 2:
            break
    torch.save(first.state_dict(), tmp_path / "state.pt")
    second = Trainer(cfg)
    second.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=False))
    resumed = second.fit()
    assert without_timing(resumed.history) == without_timing(straight.history)
    for p, q in zip(second.model.parameters(), Trainer(cfg).model.parameters(), strict=True):
        assert p.shape == q.shape


def test_checkpoint_of_another_config_is_refused() -> None:
    state = Trainer(synthetic_config(**{"training.epochs": 1})).state_dict()
    with pytest.raises(ValueError, match="different configuration"):
        Trainer(synthetic_config(**{"training.epochs": 2})).load_state_dict(state)


def test_diverging_run_stops_with_a_clear_error() -> None:
    cfg = synthetic_config(**{"training.optimizer": "sgd", "training.lr": 1e12, "training.epochs": 50})
    trainer = Trainer(cfg)
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf).*epoch 1\b.*training.lr=1000000000000.0"):
        trainer.fit()


@pytest.mark.parametrize("layer", ["layer1", "feature_map", "module:stem"])
def test_hidden_layer_mixing_trains_the_mlp(layer: str) -> None:
    result = Trainer(synthetic_config(**{"mixup.layer": layer})).fit()
    assert result.final[metrics.TEST_ERROR] < 15.0


@pytest.mark.parametrize(
    "mixup",
    [
        {"mixup.pairing": "knn", "mixup.knn_k": 10},
        {"mixup.pairing": "knn", "mixup.knn_k": 10, "mixup.scope": "same_class", "mixup.target": "closest"},
        {"mixup.scope": "same_class", "mixup.target": "closest"},
        {"mixup.alpha": 0.0, "mixup.label_smoothing": 0.1},
        {"mixup.alpha": 0.0, "mixup.input_noise": 0.1},
    ],
)
def test_every_table5_variant_trains(mixup: dict[str, object]) -> None:
    result = Trainer(synthetic_config(**mixup)).fit()
    assert result.final[metrics.TEST_ERROR] < 15.0
    assert 0.0 <= result.final[metrics.TRAIN_ERROR] <= 100.0


def test_calibration_and_fgsm_metrics() -> None:
    cfg = synthetic_config(**{"training.epochs": 3}).model_copy(
        update={"evaluation": EvalConfig(ece=True, fgsm_epsilon=0.5)}
    )
    final = Trainer(cfg).fit().final
    assert 0.0 <= final[metrics.TEST_ECE] <= 100.0
    # The attack can only hurt: FGSM error is at least the clean error, and at ε = 0.5 it hurts a lot.
    assert final[metrics.FGSM_TEST_ERROR] >= final[metrics.TEST_ERROR]
    assert final[metrics.FGSM_TEST_ERROR] > final[metrics.TEST_ERROR] + 1.0


def test_fgsm_last_epoch_only_measures_the_final_model_once() -> None:
    every = synthetic_config(**{"training.epochs": 3}).model_copy(
        update={"evaluation": EvalConfig(ece=True, fgsm_epsilon=0.5)}
    )
    last = every.model_copy(update={"evaluation": EvalConfig(ece=True, fgsm_epsilon=0.5, fgsm_last_epoch_only=True)})
    full, once = Trainer(every).fit().history, Trainer(last).fit().history
    assert [metrics.FGSM_TEST_ERROR in h for h in once] == [False, False, True]
    # The attack draws nothing at random: the last epoch's value is the every-epoch run's, and skipping it
    # earlier changes no other metric.
    assert once[-1][metrics.FGSM_TEST_ERROR] == full[-1][metrics.FGSM_TEST_ERROR]
    trimmed = [{k: v for k, v in h.items() if k != metrics.FGSM_TEST_ERROR} for h in full]
    assert without_timing(once[:-1]) == without_timing(trimmed[:-1])
    assert without_timing(once)[-1] == without_timing(full)[-1]


@pytest.mark.parametrize("model", ["small_cnn", "preact_resnet18"])
def test_image_models_mix_at_every_named_point(model: str) -> None:
    from mixup_core import mix_points

    data = DataConfig(
        name="synthetic", augment=True, synthetic=SyntheticConfig(num_train=16, num_test=8, shape=(3, 16, 16))
    )
    for layer in [p for p in mix_points(model, (3, 16, 16)) if not p.startswith("module:")]:
        cfg = ExperimentConfig(
            dataset=data,
            model=ModelConfig(name=model),
            mixup=MixupConfig(alpha=1.0, layer=layer),
            training=TrainConfig(epochs=1, batch_size=8, device="cpu"),
        )
        final = Trainer(cfg).fit().final
        assert math.isfinite(final[metrics.TRAIN_LOSS]), layer


@pytest.mark.skipif(not FASHION.exists(), reason="Debian's dataset-fashion-mnist is not installed")
@pytest.mark.slow
def test_small_cnn_learns_real_fashion_mnist_subset() -> None:
    cfg = ExperimentConfig(
        dataset=DataConfig(name="fashion_mnist", train_subset=3000, download=False),
        model=ModelConfig(name="small_cnn"),
        mixup=MixupConfig(alpha=0.2),
        training=TrainConfig(epochs=4, batch_size=64, lr=0.05, weight_decay=5e-4, device="cpu"),
        evaluation=EvalConfig(batch_size=2000),
    )
    final = Trainer(cfg).fit().final
    # 10 classes, chance is 90% error; a small CNN on 3000 images reaches ~20% in 4 epochs.
    assert final[metrics.TEST_ERROR] < 28.0


@pytest.mark.slow
def test_compiled_model_is_reused_across_trials_and_matches_eager() -> None:
    from mixup_core.compiled import _CACHE, clear_compiled_models

    clear_compiled_models()
    cfg = synthetic_config(**{"training.epochs": 2, "training.compile": True})
    first = Trainer(cfg)
    first_result = first.fit()
    second = Trainer(cfg.with_overrides({"training.seed": 5}))
    assert second.forward is first.forward, "the second trial must reuse the compiled module"
    assert len(_CACHE) == 1
    second.fit()
    eager = Trainer(cfg.with_overrides({"training.compile": False})).fit()
    # Same seed, same data order: compiled and eager runs agree up to float reassociation.
    for got, want in zip(first_result.history, eager.history, strict=True):
        assert got[metrics.TEST_ERROR] == pytest.approx(want[metrics.TEST_ERROR], abs=1.0)
        assert got[metrics.TRAIN_LOSS] == pytest.approx(want[metrics.TRAIN_LOSS], rel=1e-3)
    clear_compiled_models()
