"""A study whose trial no node can hold fails at once (with what it asked and what the nodes have),
instead of sitting `running` with no trial; on a real local Ray with 2 CPUs."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
import ray
from ray.util import placement_group_table

from studies.engine import run_study
from studies.errors import InvalidStudySpec, Unschedulable
from studies.placement import node_shapes, require_node_for
from studies.settings import StudySettings
from studies.spec import Resources, StudySpec

SPEC: dict[str, Any] = {
    "name": "unschedulable",
    "dataset": {"name": "uci:iris"},
    "model": {"name": "mlp"},
    "training": {"epochs": 1, "batch_size": 16, "optimizer": "adam", "lr": 0.01},
}


def local_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


@pytest.mark.parametrize("asked", ["cpu", "gpu"])
def test_a_trial_bigger_than_every_node_fails_the_study_at_once(
    local_ray: None, settings: StudySettings, asked: str
) -> None:
    resources = {"cpu": 4} if asked == "cpu" else {"cpu": 1, "gpu": local_gpus() + 1}
    spec = StudySpec.model_validate({**SPEC, "resources": resources})
    started = time.monotonic()
    with pytest.raises(Unschedulable) as raised:
        run_study(spec, study_id=f"too-big-{asked}", settings=settings)
    assert time.monotonic() - started < 10
    assert isinstance(raised.value, InvalidStudySpec)  # the driver exits "invalid": the service fails the study
    gpus = local_gpus()
    wanted = f"{resources['cpu']:g} CPU and {resources.get('gpu', 0):g} GPU"
    assert str(raised.value) == (
        f"resources: a trial asks for {wanted} (resources.cpu, resources.gpu), but no node of the Ray cluster "
        f"has that many; its nodes: 1 x (2 CPU, {gpus:g} GPU)"
    )
    # Nothing was started: the store the driver prepares first (studies.store) holds no run of this study.
    with sqlite3.connect(settings.home_dir / "mlflow.db") as store:
        assert store.execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)


def test_on_a_cluster_that_may_grow_it_waits_a_bounded_time_asking_for_a_node(local_ray: None) -> None:
    started = time.monotonic()
    with pytest.raises(Unschedulable, match=r"waited 1.5 s for one to join \(MIXUP_STUDIES_NODE_WAIT_S\)"):
        require_node_for(Resources(cpu=3), wait_s=1.5, poll_s=0.25)
    assert 1.5 <= time.monotonic() - started < 10
    # The demand it placed for an autoscaler is withdrawn.
    assert {entry["state"] for entry in placement_group_table().values()} <= {"REMOVED"}


def test_a_trial_that_fits_a_node_passes_at_once(local_ray: None) -> None:
    assert node_shapes() == [(2.0, local_gpus())]
    started = time.monotonic()
    require_node_for(Resources(cpu=2), wait_s=30)
    assert time.monotonic() - started < 1
