"""The Ray Tune trainable: one trial = one mixup_core Trainer, reported every epoch.

It runs in a Ray worker process, possibly many trials in a row (actor reuse):
the spec is parsed once per process and datasets / compiled models stay cached
in mixup_core between trials.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from mixup_core import Trainer
from studies.space import trial_config, trial_params
from studies.spec import StudySpec

CHECKPOINT_FILE = "trainer.pt"


@functools.lru_cache(maxsize=4)
def _parse_spec(spec_json: str) -> StudySpec:
    # Validated when the study was submitted; the cap is not re-applied in workers.
    return StudySpec.model_validate_json(spec_json, context={"max_trials": 10**9})


def run_trial(config: dict[str, Any], spec_json: str, checkpoint_every: int = 1) -> None:
    """Train one trial, resuming from Tune's checkpoint when there is one.

    Args:
        config: Tune's trial config (the short parameter names of ``studies.space``).
        spec_json: the study's spec as JSON.
        checkpoint_every: epochs between checkpoints (the last epoch is always checkpointed).
    """
    spec = _parse_spec(spec_json)
    trainer = Trainer(trial_config(spec, trial_params(config)))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(torch.load(Path(folder) / CHECKPOINT_FILE, weights_only=False))
    try:
        for metrics in trainer.epochs():
            epoch = trainer.epoch
            if epoch % checkpoint_every == 0 or epoch == spec.training.epochs:
                with tempfile.TemporaryDirectory() as folder:
                    torch.save(trainer.state_dict(), Path(folder) / CHECKPOINT_FILE)
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            else:
                tune.report(metrics)
    finally:
        trainer.close()
