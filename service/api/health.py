"""``/healthz`` (the process is up) and ``/readyz`` (database, Ray and MLflow reachable); no token needed."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from service.api.deps import SettingsDep
from service.settings import ServiceSettings

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


def check_database(sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        session.execute(text("SELECT 1"))
    return "ok"


def check_mlflow(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        httpx.get(f"{uri.rstrip('/')}/health", timeout=2.0).raise_for_status()
        return "ok"
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        if not os.access(folder, os.W_OK):
            raise RuntimeError("the MLflow store's folder is not writable")
        return "ok"
    return "ok (not checked)"


def check_ray(settings: ServiceSettings) -> str:
    if settings.launcher == "local":
        return "ok (a local Ray per study)"
    from service.launchers.ray_jobs import auth_headers

    url = (settings.ray_jobs_url or "").rstrip("/")
    httpx.get(f"{url}/api/version", headers=auth_headers(), timeout=2.0).raise_for_status()
    return "ok"


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    sessions: sessionmaker[Session] = request.app.state.sessions
    checks: dict[str, str] = {}
    ready = True
    probes = {
        "database": lambda: check_database(sessions),
        "mlflow": lambda: check_mlflow(settings.resolved_tracking_uri),
        "ray": lambda: check_ray(settings),
    }
    for name, probe in probes.items():
        try:
            checks[name] = probe()
        except Exception as error:  # report which part is down, not a stack trace
            checks[name] = f"unreachable: {type(error).__name__}"
            ready = False
    body = Readiness(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
