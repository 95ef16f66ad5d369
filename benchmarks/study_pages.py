"""What the study pages cost the API process: latency of each page over real HTTP, one client at a time.

A throwaway SQLite service (the app under uvicorn on loopback, in this process) holds one study of
``--trials`` trials (α × layer × weight decay × seeds, every trial finished with a metric) and ``--studies``
studies in all; a logged-in client (session cookie) then requests, ``--repeats`` times each: the list
(``/studies``), a study's page (``/studies/{id}``: report, Table 5, α plot; no MLflow store, so no learning
curves), its live block (``/studies/{id}/live``, what a running study's page polls every few seconds) and,
for reference, the JSON status poll (``/api/v1/studies/{id}``) with a bearer token.

Goals: the live block costs about what the JSON status poll does (both read the study row and the cached
trial counts); a study page of 96 trials renders in well under a second once its plots are drawn (they are
cached per stored snapshot; ``first_ms`` is the request that drew them). Prints one JSON line: per page the
first request, p50 and p90 of the others, in ms.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from _common import machine_line  # noqa: E402
from sqlalchemy import select  # noqa: E402

from service import auth, repository, trial_store  # noqa: E402
from service.api import create_app  # noqa: E402
from service.db import make_engine, migrate, session_factory  # noqa: E402
from service.models import Study  # noqa: E402
from service.settings import ServiceSettings  # noqa: E402
from studies.records import TrialRecord  # noqa: E402
from studies.spec import StudySpec  # noqa: E402
from tests.support.processes import free_port, wait_until  # noqa: E402


def spec(seeds: int) -> StudySpec:
    return StudySpec.model_validate({
        "name": "bench", "dataset": {"name": "uci:digits"}, "model": {"name": "mlp"},
        "training": {"epochs": 6, "batch_size": 32, "optimizer": "adam", "lr": 0.002},
        "search": {"space": {"alpha": [0.0, 0.2, 1.0, 2.0], "layer": ["input", "feature_map"],
                             "weight_decay": [0.0, 1e-4, 5e-4]}, "seeds": list(range(seeds))},
    })  # fmt: skip


def trials(study: StudySpec) -> list[TrialRecord]:
    space = study.search.space.axes()
    combos = itertools.product(space["alpha"], space["layer"], space["weight_decay"], study.search.seeds)
    return [
        TrialRecord(f"t{i:04d}", {"alpha": a, "layer": layer, "weight_decay": wd, "seed": seed}, "finished", 6,
                    {"median_test_error": 5 + a + 100 * wd + 0.1 * seed, "test_error": 5 + a}, run_id=f"r{i}")
        for i, (a, layer, wd, seed) in enumerate(combos)
    ]  # fmt: skip


def seed_database(settings: ServiceSettings, studies: int, seeds: int) -> tuple[str, str]:
    """``studies`` finished studies of one owner; the id of the last and the owner's token."""
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    with session_factory(engine)() as session:
        token = auth.create_token(session, "bench", admin=False)
        owner = auth.ensure_user(session, "bench")
        study = spec(seeds)
        for _ in range(studies):
            row = repository.submit(session, owner, study, max_queued=studies + 1)
            repository.mark_running(row, "local", "1:1")
            trial_store.store_progress(session, row, "1", "parent", trials(study))
            repository.finish(row, "succeeded", 0)
        session.commit()
        last = session.scalars(select(Study.id).order_by(Study.seq.desc())).first()
    engine.dispose()
    assert last is not None
    return last, token


def timed(client: httpx.Client, path: str, repeats: int) -> dict[str, float]:
    start = time.perf_counter()
    client.get(path).raise_for_status()  # the first (drawing the plots, filling caches) is reported apart
    first = (time.perf_counter() - start) * 1000
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.get(path).raise_for_status()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p90 = samples[int(0.9 * (len(samples) - 1))]
    return {"first_ms": round(first, 2), "p50_ms": round(statistics.median(samples), 2), "p90_ms": round(p90, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per configuration (24 configurations)")
    parser.add_argument("--studies", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="1 seed, 3 studies, 3 repeats (tests)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.studies, args.repeats = 1, 3, 3
    home = Path(tempfile.mkdtemp(prefix="study-pages-"))
    settings = ServiceSettings(
        home=home,
        database_url=f"sqlite:///{home / 'service.db'}",
        tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        mlflow_ui_url="http://127.0.0.1:5000",
    )
    study_id, token = seed_database(settings, args.studies, args.seeds)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    wait_until(lambda: server.started, 60, 0.05, "uvicorn to start")
    base = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"benchmark": "study_pages", "quick": args.quick, "machine": machine_line(),
                              "trials": len(trials(spec(args.seeds))), "studies": args.studies}  # fmt: skip
    with httpx.Client(base_url=base, headers={"Origin": base}, timeout=60) as client:
        assert client.post("/login", data={"token": token}).status_code == 303
        for name, path in (("list", "/studies"), ("study_page", f"/studies/{study_id}"),
                           ("live_block", f"/studies/{study_id}/live")):  # fmt: skip
            result[name] = timed(client, path, args.repeats)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        result["api_status_poll"] = timed(client, f"/api/v1/studies/{study_id}", args.repeats)
    server.should_exit = True
    print(json.dumps(result))


if __name__ == "__main__":
    main()
