"""Let Tune's trial actors start on warm Ray workers instead of cold ones.

A trial actor's first cost is its worker process: start Python, import Ray, then
torch, Ray Tune and mixup_core (≈ 4–8 s of a study on 2 busy cores, before any
training). Ray keeps idle workers ready (``num_prestart_python_workers`` = the
node's CPUs) and gives an actor one of them — but only when the actor's runtime
env equals theirs, which is the empty one. Two things make that work:

* the local Ray is started with the trainable's modules preloaded in every
  worker it starts (``preload_python_modules``: imported before the worker
  accepts work), so an idle worker already holds torch, Tune and mixup_core
  (``studies.trainable`` then sets torch's thread count, which such a worker
  fixed before Ray told it its CPUs);
* Tune reserves each trial's CPUs in a placement group before it creates the
  actor, and the raylet wants only as many idle workers as there are unreserved
  CPUs: with every CPU reserved it kills the idle ones (after 1 s idle), just
  before the actors that could have used them arrive. A local Ray keeps idle
  workers for ``IDLE_WORKER_KEEP_MS`` instead;
* Tune gives every trainable actor ``runtime_env={"env_vars": {"PL_DISABLE_FORK":
  "1"}}`` (``ray.tune.execution.class_cache.DEFAULT_ENV_VARS``, a PyTorch
  Lightning workaround, ray-project/ray#28197) — a non-empty env, so its actors
  never match an idle worker and always start a new process. Nothing here uses
  Lightning; the variable is dropped from that default and, for a local Ray,
  set in the environment its workers inherit instead.

An actor that gets a worker mid-preload just waits for the import it would have
done anyway, so neither step can make a study slower. On an existing cluster
only the second applies (its workers preload what ``ray start`` was given, e.g.
``RAY_preload_python_modules=studies.trainable``).
"""

from __future__ import annotations

import os
from typing import Any

#: What a trial imports: ``studies.trainable`` pulls in torch, ``ray.tune`` and mixup_core.
TRIAL_MODULES = ("studies.trainable",)
#: How long a local Ray keeps an idle worker it does not think it needs (Ray's default: 1 s). The local
#: Ray lives as long as its study driver, so idle workers cannot pile up past the study.
IDLE_WORKER_KEEP_MS = 10 * 60 * 1000
_LIGHTNING_FORK_VAR = "PL_DISABLE_FORK"


def local_ray_system_config() -> dict[str, Any]:
    """Ray system config for a local Ray whose workers come up ready for trials."""
    os.environ.setdefault(_LIGHTNING_FORK_VAR, "1")  # inherited by the raylet and so by every worker
    return {
        "preload_python_modules": list(TRIAL_MODULES),
        "idle_worker_killing_time_threshold_ms": IDLE_WORKER_KEEP_MS,
    }


def use_warm_workers_for_trials() -> None:
    """Drop Tune's Lightning-only env var from its trial actors' runtime env, so they can use idle workers."""
    from ray.tune.execution import class_cache

    defaults = getattr(class_cache, "DEFAULT_ENV_VARS", None)
    if isinstance(defaults, dict):  # Ray versions without it need nothing here
        defaults.pop(_LIGHTNING_FORK_VAR, None)
