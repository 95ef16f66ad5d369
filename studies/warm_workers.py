"""Let Tune's trial actors start on warm Ray workers instead of cold ones.

A trial actor's first cost is its worker process: start Python, import Ray, then
torch, Ray Tune and mixup_core (≈ 4–8 s of a study on 2 busy cores, before any
training). Ray keeps idle workers ready (``num_prestart_python_workers`` = the
node's CPUs) and gives an actor one of them — but only when the actor's runtime
env equals theirs, which is the empty one. Three things make that work:

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

Once actors run, Tune itself wasted them: when a trial ends, its actor is cached, and the next time Tune picks
a trial that has an actor coming up, it hands the trial the cached actor and kills the one coming up
(``TuneController._maybe_reuse_cached_actor``). Where trials are shorter than an actor's start (a cold
worker importing torch: seconds, tens of seconds on a loaded node), no second actor ever gets ready: the
whole study ran on one actor while the raylet started a worker per trial for actors killed before they
could run (a 100-trial study at 16 at once left 63 idle workers and 20 GB used on the 2-core box, with
one trial running at a time). :func:`keep_starting_trial_actors` leaves an actor that already has its
resources to come up; the cached one goes to a trial without an actor.

An actor that gets a worker mid-preload just waits for the import it would have
done anyway, so none of this can make a study slower. On an existing cluster the
first two are the cluster's own settings (its workers preload what ``ray start`` was
given, e.g. ``RAY_preload_python_modules=studies.trainable``); dropping the env var
and keeping the actors that come up apply to every study.
"""

from __future__ import annotations

import functools
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


def keep_starting_trial_actors() -> None:
    """Make Tune give a cached trial actor only to a trial whose own actor is not already coming up.

    An actor still waiting for its resources is given up as before (nothing has started for it, and the
    cached actor may hold exactly the resources it waits for); one that has them is left to start.
    """
    from ray.tune.execution.tune_controller import TuneController

    reuse = TuneController._maybe_reuse_cached_actor
    if getattr(reuse, "_keeps_starting_actors", False):
        return

    @functools.wraps(reuse)
    def reuse_unless_coming_up(controller: Any, trial: Any) -> bool:
        if _actor_coming_up(controller, trial):
            return False
        return bool(reuse(controller, trial))

    reuse_unless_coming_up._keeps_starting_actors = True  # type: ignore[attr-defined]
    TuneController._maybe_reuse_cached_actor = reuse_unless_coming_up  # type: ignore[method-assign,assignment]


def _actor_coming_up(controller: Any, trial: Any) -> bool:
    """Whether ``trial``'s own actor was created (its resources acquired) and is not ready yet."""
    try:
        actor = controller._trial_to_actor.get(trial)
        if actor is None or trial in controller._resetting_trials:
            return False
        return bool(controller._actor_manager.is_actor_started(actor)) and actor not in controller._started_actors
    except AttributeError:  # a Tune whose controller differs: its own behaviour
        return False
