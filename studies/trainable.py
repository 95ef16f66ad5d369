"""The Ray Tune trainable: one trial = one mixup_core Trainer, reported every epoch.

It runs in a Ray worker process, possibly many trials in a row (actor reuse):
the spec is parsed once per process and datasets / compiled models stay cached
in mixup_core between trials.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch._dynamo  # see below
from ray import tune

from mixup_core import Trainer
from studies.space import trial_config, trial_params
from studies.spec import StudySpec, admitted_spec

# torch._dynamo above: the first torch.optim optimizer a process builds imports it (its constructor is wrapped
# to keep dynamo out), 2-4 s of CPU on a 2-core box. Imported with this module, that happens while a warm Ray
# worker preloads it (studies.warm_workers), not inside the first trial of a study.
CHECKPOINT_FILE = "trainer.pt"
#: Least time between a trial's intermediate checkpoints. Each one is a ``torch.save``, a copy into Tune's
#: storage and (with ``num_to_keep=2``) every other one a forced experiment snapshot on the driver, while the
#: trial waits: per epoch that was ~40 ms of a 0.5 s CPU epoch. A stopped study loses at most this much (plus
#: an epoch) of each running trial; epochs longer than this are still checkpointed every time.
CHECKPOINT_INTERVAL_S = 10.0


@functools.lru_cache(maxsize=4)
def _parse_spec(spec_json: str) -> StudySpec:
    return admitted_spec(spec_json)  # validated when the study was submitted


def _use_assigned_threads() -> None:
    """Run torch on as many threads as the trial has CPUs.

    Ray sets ``OMP_NUM_THREADS`` to the actor's CPUs just before it runs, which a cold worker's
    ``import torch`` then obeys; a worker that preloaded torch (``studies.warm_workers``) sized its
    pools to the whole machine already: 2 actors each spinning OpenMP threads on every core made one
    measured study's epochs ≈ 25× slower on 2 busy cores.
    """
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def load_checkpoint(folder: Path) -> dict[str, Any]:
    """A trial's saved :meth:`Trainer.state_dict`.

    ``weights_only=True``: the state is tensors, numbers, strings, lists and dicts, and the
    checkpoint sits in Tune's storage (possibly a shared folder); a full unpickle would run
    whatever a file placed there names.
    """
    state: dict[str, Any] = torch.load(folder / CHECKPOINT_FILE, weights_only=True)
    return state


def run_trial(
    config: dict[str, Any],
    spec_json: str,
    checkpoint_every: int = 1,
    checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
) -> None:
    """Train one trial, resuming from Tune's checkpoint when there is one.

    Args:
        config: Tune's trial config (the short parameter names of ``studies.space``).
        spec_json: the study's spec as JSON.
        checkpoint_every: epochs between checkpoints (the last epoch is always checkpointed).
        checkpoint_interval_s: and at least this many seconds since the trial's last checkpoint (0: every time).
    """
    _use_assigned_threads()
    spec = _parse_spec(spec_json)
    trainer = Trainer(trial_config(spec, trial_params(config)))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(load_checkpoint(Path(folder)))
    saved = time.monotonic()
    try:
        for metrics in trainer.epochs():
            epoch = trainer.epoch
            due = epoch % checkpoint_every == 0 and time.monotonic() - saved >= checkpoint_interval_s
            if due or epoch == spec.training.epochs:
                with tempfile.TemporaryDirectory() as folder:
                    torch.save(trainer.state_dict(), Path(folder) / CHECKPOINT_FILE)
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
                saved = time.monotonic()
            else:
                tune.report(metrics)
    finally:
        trainer.close()
