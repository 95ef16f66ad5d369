"""Whether the Ray cluster can ever hold one trial: the driver checks before anything starts.

A trial asking for more CPUs or GPUs than any node has never starts: Tune waits for it forever, and the
study holds a running slot of the service meanwhile. So the driver looks at the nodes' resources once Ray
is up and fails the study at once (:class:`~studies.errors.Unschedulable`, the driver's "invalid spec" exit)
saying what a trial asks for and what the nodes have. A cluster the driver joins may grow: there it waits
up to ``wait_s`` for a node that fits, while a placement group of one trial's bundle tells an autoscaler
what is wanted (Ray's autoscaler launches a node type for a pending placement group it can satisfy).
"""

from __future__ import annotations

import time
from collections import Counter

import ray
from ray.util.placement_group import placement_group, remove_placement_group

from studies.errors import Unschedulable
from studies.spec import Resources

Shape = tuple[float, float]  # (CPUs, GPUs) of one node


def node_shapes() -> list[Shape]:
    """The total (not free) CPUs and GPUs of every live node: what each could hold when idle."""
    shapes = []
    for node in ray.nodes():
        if node.get("Alive"):
            resources = node.get("Resources") or {}
            shapes.append((float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))))
    return shapes


def fits(asked: Resources, shape: Shape) -> bool:
    return asked.cpu <= shape[0] and asked.gpu <= shape[1]


def _bundle(asked: Resources) -> dict[str, float]:
    bundle = {"CPU": asked.cpu}
    if asked.gpu > 0:
        bundle["GPU"] = asked.gpu
    return bundle


def _describe(asked: Resources, shapes: list[Shape], wait_s: float) -> str:
    counts = Counter(shapes)
    nodes = ", ".join(f"{n} x ({cpu:g} CPU, {gpu:g} GPU)" for (cpu, gpu), n in sorted(counts.items())) or "none"
    waited = f"; waited {wait_s:g} s for one to join (MIXUP_STUDIES_NODE_WAIT_S)" if wait_s > 0 else ""
    return (
        f"a trial asks for {asked.cpu:g} CPU and {asked.gpu:g} GPU (resources.cpu, resources.gpu), but no node "
        f"of the Ray cluster has that many; its nodes: {nodes}{waited}"
    )


def require_node_for(asked: Resources, wait_s: float = 0.0, poll_s: float = 1.0) -> None:
    """Return once some node can hold one trial; raise :class:`Unschedulable` when none can (after ``wait_s``)."""
    if any(fits(asked, shape) for shape in node_shapes()):
        return
    if wait_s > 0:
        started = time.monotonic()
        demand = placement_group([_bundle(asked)])  # pending until a node that fits joins: an autoscaler's cue
        try:
            while time.monotonic() - started < wait_s:
                time.sleep(min(poll_s, max(0.0, wait_s - (time.monotonic() - started))))
                if any(fits(asked, shape) for shape in node_shapes()):
                    return
        finally:
            remove_placement_group(demand)
    raise Unschedulable([("resources", _describe(asked, node_shapes(), wait_s))])
