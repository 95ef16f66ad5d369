"""Bad settings fail before training, with one message naming the field and the value."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mixup_core import (
    DataConfig,
    DatasetNotFound,
    ExperimentConfig,
    InvalidConfig,
    MixupConfig,
    ModelConfig,
    TrainConfig,
    Trainer,
)


def make(data: str = "cifar10", model: str = "preact_resnet18", **mixup: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"dataset": {"name": data}, "model": {"name": model}, "mixup": mixup, "training": {"device": "cpu"}}
    )


def error_of(fn) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises((ValidationError, ValueError)) as info:
        fn()
    return str(info.value)


def test_defaults_are_the_papers_recipe() -> None:
    cfg = make()
    assert (cfg.mixup.alpha, cfg.mixup.layer, cfg.mixup.pairing, cfg.mixup.scope) == (1.0, "input", "random", "all")
    t = cfg.training
    assert (t.epochs, t.batch_size, t.lr, t.momentum, t.weight_decay, t.milestones) == (
        200,
        128,
        0.1,
        0.9,
        1e-4,
        (0.5, 0.75),
    )
    assert cfg.evaluation.median_window == 10


def test_unknown_dataset_names_it() -> None:
    msg = error_of(lambda: make(data="imagenet22k"))
    assert "dataset.name" in msg
    assert "'imagenet22k'" in msg and "cifar10" in msg


def test_unknown_model_names_it() -> None:
    msg = error_of(lambda: make(model="resnet9000"))
    assert "model.name" in msg and "'resnet9000'" in msg and "preact_resnet18" in msg


def test_negative_alpha_names_field_and_value() -> None:
    msg = error_of(lambda: MixupConfig(alpha=-1))
    assert "alpha" in msg and "-1" in msg


@pytest.mark.parametrize("noise", [1.0, -0.1, 1.5])
def test_label_noise_outside_unit_interval(noise: float) -> None:
    msg = error_of(lambda: DataConfig(name="cifar10", label_noise=noise))
    assert "label_noise" in msg and str(noise) in msg


def test_unknown_key_is_rejected() -> None:
    msg = error_of(lambda: MixupConfig.model_validate({"alpah": 1.0}))
    assert "alpah" in msg


def test_layer_the_model_lacks_lists_what_it_has() -> None:
    msg = error_of(lambda: make(model="wide_resnet28_10", layer="layer4"))
    assert "mixup.layer 'layer4'" in msg and "wide_resnet28_10" in msg and "layer3" in msg


def test_unknown_module_path() -> None:
    msg = error_of(lambda: make(layer="module:layer9.conv"))
    assert "module:layer9.conv" in msg


def test_malformed_layer_name() -> None:
    msg = error_of(lambda: MixupConfig(layer="layer 2"))
    assert "'layer 2'" in msg


def test_knn_at_a_hidden_layer_is_unsupported() -> None:
    msg = error_of(lambda: make(layer="layer2", pairing="knn"))
    assert "knn" in msg and "layer2" in msg


def test_mixing_needs_two_samples_per_batch() -> None:
    msg = error_of(
        lambda: ExperimentConfig(
            dataset=DataConfig(name="uci:iris"), model=ModelConfig(name="mlp"), training=TrainConfig(batch_size=1)
        )
    )
    assert "batch_size" in msg and "1" in msg
    # ERM with batch size 1 is fine.
    ExperimentConfig(
        dataset=DataConfig(name="uci:iris"),
        model=ModelConfig(name="mlp"),
        mixup=MixupConfig(alpha=0),
        training=TrainConfig(batch_size=1),
    )


def test_conv_model_on_vectors_is_refused() -> None:
    msg = error_of(lambda: make(data="uci:wine", model="small_cnn"))
    assert "small_cnn" in msg


def test_augmenting_vectors_is_refused() -> None:
    msg = error_of(
        lambda: ExperimentConfig(dataset=DataConfig(name="uci:wine", augment=True), model=ModelConfig(name="mlp"))
    )
    assert "augment" in msg


def test_with_overrides_revalidates_and_rejects_unknown_paths() -> None:
    cfg = make()
    assert cfg.with_overrides({"mixup.alpha": 0.2, "training.weight_decay": 5e-4}).mixup.alpha == 0.2
    with pytest.raises(InvalidConfig, match=r"mixup\.alhpa"):
        cfg.with_overrides({"mixup.alhpa": 0.2})
    with pytest.raises(ValidationError, match="alpha"):
        cfg.with_overrides({"mixup.alpha": -3})


def test_missing_cifar_fails_before_training_and_writes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "nothing-here"
    cfg = ExperimentConfig(
        dataset=DataConfig(name="cifar10", data_dir=data_dir, download=False),
        model=ModelConfig(name="small_cnn"),
        training=TrainConfig(device="cpu"),
    )
    with pytest.raises(DatasetNotFound) as info:
        Trainer(cfg)
    assert str(data_dir / "cifar-10-batches-py") in str(info.value)
    assert list(tmp_path.iterdir()) == [] or not any(data_dir.rglob("*"))
