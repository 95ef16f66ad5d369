"""One measured run of ``study_scale.py``: submit studies to a running service, watch them to their end, and
turn what the probes saw into the JSON line's figures. Imported as ``_scale_run``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _scale_env import RayNodes, StoreMeter, mlflow_trial_runs, store_figures
from _scale_probes import FINAL, PacedSampler, ProcSampler, TrialsPoller, percentiles, proc_cpu, read_trials

from tests.support.processes import Proc, child_processes, wait_until

ENDED = ("succeeded", "failed", "cancelled")
SAMPLER_RATE = 5.0  # req/s of each API sampler: a modest, fixed load


@dataclass
class Service:
    url: str
    headers: dict[str, str]
    server: Proc
    home: Path
    tracking_uri: str
    nodes: RayNodes
    env: dict[str, str]

    def dispatcher_pid(self) -> int:
        found = [pid for pid, line in child_processes(self.server.pid) if "service.dispatcher" in line]
        assert found, "serve has no dispatcher process"
        return found[0]


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def idle_ray(nodes: RayNodes, seconds: float) -> dict[str, Any]:
    """Each raylet's and the GCS's CPU share and RSS over ``seconds`` with nothing to run."""
    pids = {"gcs": nodes.gcs_pid(), **nodes.raylet_pids()}
    from _scale_probes import proc_status_kb

    before = {name: proc_cpu(pid) for name, pid in pids.items() if pid}
    time.sleep(seconds)
    out = {}
    for name, pid in pids.items():
        start, end = before.get(name), proc_cpu(pid) if pid else None
        if pid and start and end:
            rss = proc_status_kb(pid, "VmRSS") or 0
            out[name] = {"cpu_share": round((end[0] - start[0]) / seconds, 4), "rss_mb": _mb(rss)}
    return out


def submit(service: Service, submissions: list[tuple[dict[str, str], dict[str, Any]]]) -> list[str]:
    ids = []
    with httpx.Client(base_url=service.url, timeout=120) as client:
        for headers, spec in submissions:
            response = client.post("/api/v1/studies", json=spec, headers=headers)
            if response.status_code != 201:
                raise RuntimeError(f"submit refused: {response.status_code} {response.text[:2000]}")
            ids.append(response.json()["id"])
    return ids


def wait_ended(service: Service, ids: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Poll every study's GET (as admin) until all ended; their last bodies, each with ``seen_ended`` (time.time)."""
    bodies: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=service.url, headers=service.headers, timeout=120) as client:

        def all_ended() -> bool:
            for study_id in ids:
                if study_id in bodies:
                    continue
                body = client.get(f"/api/v1/studies/{study_id}").json()
                if body["status"] in ENDED:
                    bodies[study_id] = {**body, "seen_ended": time.time()}
            if not service.server.alive():
                raise RuntimeError(f"serve exited:\n{service.server.log_text()}")
            return len(bodies) == len(ids)

        wait_until(all_ended, timeout_s, 0.5, "every study to end")
    return bodies


def measure_studies(
    service: Service, submissions: list[tuple[dict[str, str], dict[str, Any]]], concurrency: int, idle_s: float
) -> dict[str, Any]:
    """Submit ``submissions`` (headers, spec) together, watch them to their end, return the JSON line's figures."""
    nodes = service.nodes
    idle = idle_ray(nodes, idle_s)
    dispatcher = service.dispatcher_pid()
    fixed = {"dispatcher": dispatcher, "gcs": nodes.gcs_pid() or 0, **nodes.raylet_pids()}
    sampler = ProcSampler({k: v for k, v in fixed.items() if v}, dispatcher, "studies.cli run")
    sampler.actor_parents = nodes.raylet_pids()
    meter = StoreMeter(service.tracking_uri)
    store_before = meter.read()
    reaped_before = (proc_cpu(dispatcher) or (0.0, 0.0))[1]
    ids: list[str] = []
    study_paths = lambda: [f"/api/v1/studies/{i}" for i in ids]  # noqa: E731
    trials_paths = lambda: [f"/api/v1/studies/{i}/trials?limit=100" for i in ids]  # noqa: E731
    probes = [
        PacedSampler(service.url, service.headers, study_paths, SAMPLER_RATE),
        PacedSampler(service.url, service.headers, trials_paths, SAMPLER_RATE),
        TrialsPoller(service.url, service.headers, lambda: ids),
    ]
    sampler.start()
    submitted = time.time()
    ids += submit(service, submissions)
    for probe in probes:
        probe.start()
    try:
        ended = wait_ended(service, ids, timeout_s=6 * 3600)
    finally:
        for probe in probes:
            probe.stop()
        sampler.stop()
    wall = max(body["seen_ended"] for body in ended.values()) - submitted
    reaped = (proc_cpu(dispatcher) or (0.0, 0.0))[1] - reaped_before
    store = store_figures(store_before, meter.read(), sum(_trial_count(s) for _, s in submissions))
    study_get, trials_page, poller = probes
    assert isinstance(poller, TrialsPoller) and isinstance(study_get, PacedSampler)
    assert isinstance(trials_page, PacedSampler)
    result = _figures(service, ids, ended, poller, submissions, concurrency, submitted, wall)
    driver_sampled = sum(t.last_cpu - t.first_cpu for t in sampler.named("driver:"))
    trials = result["trials"]
    result.update(store)
    result.update(
        {
            "driver_cpu_s_per_trial": round(max(reaped, driver_sampled) / trials, 4),
            "driver_cpu_s": round(reaped, 2),
            "driver_cpu_s_sampled": round(driver_sampled, 2),
            "drivers": len(sampler.named("driver:")),
            "driver_peak_rss_mb": max((_mb(t.peak_rss_kb) for t in sampler.named("driver:")), default=None),
            "dispatcher_cpu_s": round(sampler.cpu_s("dispatcher"), 2),
            "dispatcher_cpu_s_per_trial": round(sampler.cpu_s("dispatcher") / trials, 4),
            "dispatcher_peak_rss_mb": _mb(sampler.tracked[dispatcher].peak_rss_kb),
            "ray_cpu_s": {
                t.name: round(t.last_cpu - t.first_cpu, 2)
                for t in sampler.tracked.values()
                if t.name == "gcs" or t.name.startswith("node")
            },
            "ray_peak_rss_mb": {
                t.name: _mb(t.peak_rss_kb)
                for t in sampler.tracked.values()
                if t.name == "gcs" or t.name.startswith("node")
            },
            "ray_idle": idle,
            "trial_actors_per_node": {node: len(pids) for node, pids in sorted(sampler.actors.items())},
            "study_get": study_get.figures(),
            "trials_page": trials_page.figures(),
        }
    )
    return result


def _trial_count(spec: dict[str, Any]) -> int:
    return len(spec["search"]["space"]["alpha"]) * len(spec["search"]["seeds"])


def _figures(
    service: Service,
    ids: list[str],
    ended: dict[str, dict[str, Any]],
    poller: TrialsPoller,
    submissions: list[tuple[dict[str, str], dict[str, Any]]],
    concurrency: int,
    submitted: float,
    wall: float,
) -> dict[str, Any]:
    """Accounting, wall ÷ ideal, visibility and the report's times, from the API and MLflow after the end."""
    expected = [_trial_count(spec) for _, spec in submissions]
    accounted, runs, per_study = True, [], []
    with httpx.Client(base_url=service.url, headers=service.headers, timeout=600) as client:
        for study_id, want in zip(ids, expected, strict=True):
            body = ended[study_id]
            trials, _ = read_trials(client, study_id, {})
            final = sum(1 for t in trials if t["status"] in FINAL)
            ok = body["status"] == "succeeded" and len(trials) == want and final == want
            accounted &= ok
            mlflow = body["mlflow"]
            study_runs = mlflow_trial_runs(service.tracking_uri, mlflow["experiment_id"], mlflow["parent_run_id"])
            runs += study_runs
            per_study.append({"id": study_id, "status": body["status"], "trials": len(trials), "final": final,
                              "mlflow_runs": len(study_runs), "accounted": ok})  # fmt: skip
        began = time.perf_counter()
        client.get(f"/api/v1/studies/{ids[-1]}/report").raise_for_status()
        report_get = time.perf_counter() - began
    work = sum((r["end"] - r["start"]) / 1000 for r in runs if r["end"] and r["start"])
    ideal = work / concurrency
    first_start = min((r["start"] / 1000 for r in runs if r["start"]), default=submitted)
    lags = [poller.first_final[r["run_id"]] - r["end"] / 1000 for r in runs if r["run_id"] in poller.first_final]
    return {
        "benchmark": "study_scale",
        "mode": "many_studies" if len(ids) > 1 else "single",
        "studies": len(ids),
        "trials": sum(expected),
        "concurrency": concurrency,
        "accounted": accounted and len(runs) == sum(expected),
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "wall_over_ideal": round(wall / ideal, 3) if ideal else None,
        # Submit → the first trial's run: the driver's start, joining Ray, the first trial actors' imports.
        "first_trial_s": round(first_start - submitted, 2),
        "wall_after_first_over_ideal": round((wall - (first_start - submitted)) / ideal, 3) if ideal else None,
        "mean_trial_s": round(work / max(1, len(runs)), 3),
        "visible_s": {**_seconds(lags), "seen": len(lags), "of": len(runs)},
        "trials_api_pages": poller.paged,
        "trials_poll_read_s": _seconds(poller.read_s),
        "report_get_s": round(report_get, 3),
        "report_build_s": _report_build_s(service, ids[-1], submissions[-1][1]),
        "per_study": per_study if len(ids) > 1 else None,
    }


def _seconds(values: list[float]) -> dict[str, Any]:
    figures = percentiles(values)
    return {k.removesuffix("_ms"): (round(v / 1000, 3) if v is not None else None) for k, v in figures.items()
            if k != "n"}  # fmt: skip


def _report_build_s(service: Service, study_id: str, spec_data: dict[str, Any]) -> float:
    """``studies.report.build_report`` on the study's trials as MLflow has them (the read is not timed)."""
    from studies.progress import read_progress
    from studies.records import settled
    from studies.report import build_report
    from studies.spec import StudySpec

    spec = StudySpec.model_validate(spec_data, context={"max_trials": 10**9})
    progress = read_progress(service.tracking_uri, study_id, spec)
    assert progress is not None, study_id
    trials = settled(progress.trials)
    # The first build in a process imports what the report's statistics need (~1 s): not the trials' cost.
    build_report(progress.spec or spec, trials[:10], study_id, study_status=progress.status)
    began = time.perf_counter()
    build_report(progress.spec or spec, trials, study_id, study_status=progress.status)
    return round(time.perf_counter() - began, 3)
