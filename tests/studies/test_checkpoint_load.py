"""A trial's checkpoint is read with torch.load(weights_only=True): a Trainer's state round-trips, code does not."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from mixup_core import DataConfig, ExperimentConfig, ModelConfig, SyntheticConfig, TrainConfig, Trainer
from mixup_core.config import MixupConfig
from studies.trainable import CHECKPOINT_FILE, load_checkpoint


def _config(optimizer: str = "sgd") -> ExperimentConfig:
    return ExperimentConfig(
        dataset=DataConfig(name="synthetic", synthetic=SyntheticConfig(num_train=64, num_test=32, num_classes=4)),
        model=ModelConfig(name="mlp"),
        mixup=MixupConfig(alpha=1.0),
        training=TrainConfig(epochs=3, batch_size=16, optimizer=optimizer, lr=0.01, device="cpu"),
    )


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_trainers_state_round_trips(tmp_path: Path, optimizer: str) -> None:
    first = Trainer(_config(optimizer))
    epochs = first.epochs()
    next(epochs)
    torch.save(first.state_dict(), tmp_path / CHECKPOINT_FILE)
    rest = [m for m in epochs]
    first.close()
    second = Trainer(_config(optimizer))
    second.load_state_dict(load_checkpoint(tmp_path))
    assert second.epoch == 1
    resumed = list(second.epochs())
    second.close()
    assert [m["test_error"] for m in resumed] == [m["test_error"] for m in rest]


class _Hostile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_names_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    torch.save({"epoch": 1, "model": _Hostile(marker)}, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_checkpoint(tmp_path)
    assert not marker.exists()
