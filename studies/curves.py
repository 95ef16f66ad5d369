"""Every trial's learning curve (a metric per epoch) read back from MLflow, for the study page's plot.

The trials' runs are the children of the study's parent run (the ``mlflow.parentRunId`` tag); each logs its
metrics once per epoch with ``step`` = the epoch (see :mod:`studies.trial_log`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mixup_core import metrics as M
from studies.progress import trial_from_run
from studies.records import TrialRecord, TrialStatus
from studies.store import store_ready
from studies.tracking import PARENT_TAG

#: Run ids per batched history query (the SQL ``IN`` list stays short; SQLite allows 32766 variables).
RUNS_PER_QUERY = 500


@dataclass(frozen=True)
class TrialCurve:
    """One trial's metric per epoch.

    Attributes:
        trial_id: Ray Tune's trial id.
        run_id: its MLflow run.
        label: what tells it apart (its run name: the varied params, ``alpha=0.2, layer=input, seed=0``).
        params: its params as the report groups them (``alpha``/``weight_decay`` floats, ``seed`` int, ...).
        status: finished, stopped, failed, running, pending or cancelled.
        points: (epoch, value) in epoch order, one per epoch; non-finite values left out.
    """

    trial_id: str
    run_id: str
    label: str
    params: dict[str, Any]
    status: TrialStatus
    points: list[tuple[int, float]] = field(default_factory=list)


def _child_runs(client: MlflowClient, parent_run_id: str, experiment_id: str | None) -> list[Run]:
    if experiment_id is None:
        experiment_id = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
        max_results=50_000,
        order_by=["start_time ASC"],
    )


def _histories(client: MlflowClient, run_ids: Sequence[str], metric: str) -> dict[str, list[tuple[int, float]]]:
    """run id → (step, value) of ``metric``: one query per :data:`RUNS_PER_QUERY` runs on a database store.

    ``MlflowClient`` has only a per-run ``get_metric_history``; a database store (SQLite, PostgreSQL) also
    has ``get_metric_history_bulk`` (one ``SELECT … WHERE run_uuid IN (…)``). The REST store (an
    ``http://`` tracking server) has no bulk read in MLflow's client, so it is asked run by run.
    """
    found: dict[str, list[tuple[int, float]]] = defaultdict(list)
    store = client._tracking_client.store  # private: the client exposes no bulk history read
    bulk = getattr(store, "get_metric_history_bulk", None)
    if bulk is not None:
        for lo in range(0, len(run_ids), RUNS_PER_QUERY):
            for row in bulk(list(run_ids[lo : lo + RUNS_PER_QUERY]), metric, max_results=10**9):
                found[row.run_id].append((row.step, row.value))
    else:
        for run_id in run_ids:
            found[run_id] = [(m.step, m.value) for m in client.get_metric_history(run_id, metric)]
    return found


def _per_epoch(history: list[tuple[int, float]]) -> list[tuple[int, float]]:
    # One value per epoch, the first logged (as the writer keeps it: a replayed epoch is not logged again).
    first: dict[int, float] = {}
    for step, value in history:
        if step not in first:
            first[step] = value
    return [(step, value) for step, value in sorted(first.items()) if math.isfinite(value)]


def trial_curves(
    tracking_uri: str,
    parent_run_id: str,
    metric: str = M.TEST_ERROR,
    experiment_id: str | None = None,
) -> list[TrialCurve]:
    """Every trial's per-epoch ``metric``, read from MLflow in a few queries.

    Two queries on a database store for a whole study (the runs, then every history at once, in batches of
    :data:`RUNS_PER_QUERY`): a study of 50 trials × 30 epochs (1180 points) read back in 0.10–0.28 s (median
    of 5; three runs) from a local SQLite store on the 2-core dev box under a load of 11–16, where
    ``get_metric_history`` run by run took 0.20–0.98 s, 2.1–3.5× longer (``python benchmarks/trial_curves.py``;
    benchmarks/RESULTS.md). The search for the runs is most of it: :func:`curves_for` skips it for trials
    already read.

    Args:
        tracking_uri: the MLflow tracking URI the study's driver logged to.
        parent_run_id: the study's parent run (``StudyProgress.parent_run_id``).
        metric: a ``mixup_core.metrics`` name logged per epoch.
        experiment_id: the study's experiment when known (saves one lookup).

    Returns:
        One curve per trial run, in start order (a trial with no value yet has no points); empty when the
        local store does not exist yet.
    """
    if not store_ready(tracking_uri):
        return []  # a reader must not be what creates a local store (see studies.store)
    client = MlflowClient(tracking_uri)
    runs = _child_runs(client, parent_run_id, experiment_id)
    histories = _histories(client, [r.info.run_id for r in runs], metric)
    curves = []
    for run in runs:
        record = trial_from_run(run)
        curves.append(
            TrialCurve(
                trial_id=record.trial_id,
                run_id=run.info.run_id,
                label=run.info.run_name or record.trial_id,
                params=record.params,
                status=record.status,
                points=_per_epoch(histories.get(run.info.run_id, [])),
            )
        )
    return curves


def curves_for(tracking_uri: str, trials: Sequence[TrialRecord], metric: str = M.TEST_ERROR) -> list[TrialCurve]:
    """The curves of trials already read from MLflow (``read_progress(...).trials``): histories only.

    What :func:`trial_curves` does less its search for the runs, which a page that has just read the study's
    progress has already paid for (the larger part of the time at 200 trials).

    Args:
        tracking_uri: the MLflow tracking URI the study's driver logged to.
        trials: the trials, each with its ``run_id`` (one without has no points).
        metric: a ``mixup_core.metrics`` name logged per epoch.

    Returns:
        One curve per trial, in the given order, labelled by its params (``alpha=0.2, layer=input, seed=0``).
    """
    if not store_ready(tracking_uri):
        return []
    run_ids = [t.run_id for t in trials if t.run_id is not None]
    histories = _histories(MlflowClient(tracking_uri), run_ids, metric) if run_ids else {}
    return [
        TrialCurve(
            trial_id=t.trial_id,
            run_id=t.run_id or "",
            label=", ".join(f"{k}={v}" for k, v in t.params.items()) or t.trial_id,
            params=t.params,
            status=t.status,
            points=_per_epoch(histories.get(t.run_id, [])) if t.run_id is not None else [],
        )
        for t in trials
    ]
