"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from service.api import docs, errors, health, spec_body, studies
from service.api.limits import BodySizeLimit
from service.auth import LastUsed, TokenCache
from service.db import make_engine, session_factory
from service.settings import ServiceSettings
from service.web import app as web


def create_app(settings: ServiceSettings | None = None, engine: Engine | None = None) -> FastAPI:
    """The REST API over ``settings``' database (or ``engine``); migrations are the caller's job (``serve``)."""
    settings = settings or ServiceSettings()
    engine = engine or make_engine(settings.resolved_database_url)
    app = FastAPI(
        title="mixup-studies",
        version="1",
        description="Submit MixUp hyperparameter studies, watch them run on Ray Tune, compare them in MLflow.",
        docs_url=None,  # served by service.api.docs, with assets from the package instead of a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.inline_reads = engine.dialect.name == "sqlite"  # see service.api.deps.read
    app.state.tokens = TokenCache(settings.token_cache_s)
    app.state.last_used = LastUsed(engine, settings.token_last_used_s)
    app.include_router(health.router)
    app.include_router(studies.router)
    spec_body.document_body(app)
    docs.install(app)
    web.install(app)  # the pages: /, /login, /studies, ... (service.web)
    app.router.on_shutdown.append(lambda: spec_body.close_pool(app))  # its worker processes
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(errors.ContainUnexpected)  # added last: the outermost of ours
    return app
