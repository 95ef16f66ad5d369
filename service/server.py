"""``mixup-studies serve``: migrations, bootstrap admin token, dispatcher, MLflow UI, and the API under uvicorn.

Three processes: this one serves the API and nothing else (one uvicorn worker on httptools and uvloop, the
fastest HTTP parser and event loop it has); the dispatcher runs beside it (:mod:`service.dispatcher`),
and so does the MLflow UI (local launcher).
"""

from __future__ import annotations

import gc
import logging
import signal

import uvicorn
from rich.console import Console

from service import auth, dispatcher, mlflow_ui
from service.api import create_app, spec_body
from service.db import make_engine, migrate, session_factory
from service.settings import ServiceSettings
from studies.store import prepare_store

log = logging.getLogger(__name__)
# soft_wrap: never break a line at 80 columns when stderr is no terminal; the export hint is pasted whole.
console = Console(stderr=True, soft_wrap=True)


def bootstrap_admin(settings: ServiceSettings, sessions: object) -> str | None:
    """Ensure an admin exists; return a new token to print once (None when one existed or was configured)."""
    with sessions() as session:  # type: ignore[operator]
        if settings.admin_token is not None:
            auth.create_token(session, "admin", admin=True, secret=settings.admin_token.get_secret_value())
            session.commit()
            return None
        if auth.has_admin(session):
            return None
        token = auth.create_token(session, "admin", admin=True)
        session.commit()
        return token


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def serve(host: str = "127.0.0.1", port: int = 8000, settings: ServiceSettings | None = None) -> None:
    """Run the service until interrupted. Running study drivers are left running; the next start re-attaches."""
    settings = settings or ServiceSettings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    sessions = session_factory(engine)
    token = bootstrap_admin(settings, sessions)
    # Before anything opens it (the UI, the dispatcher's progress reads, the drivers): created once, here.
    prepare_store(settings.resolved_tracking_uri, settings.artifact_root)
    ui = mlflow_ui.start(settings, host)
    if ui is not None and settings.mlflow_ui_url is None:
        settings.mlflow_ui_url = f"http://{host}:{settings.mlflow_ui_port}"
    app = create_app(settings, engine)
    base = f"http://{host}:{port}"
    console.print(f"mixup-studies API on [bold]{base}[/bold] (docs: {base}/docs); launcher {settings.launcher}; "
                  f"home {settings.home_dir}")  # fmt: skip
    # The pages' address on a line of its own, whole, so a terminal makes it a link to click.
    console.print(f"Study pages: {base}/studies (log in with an API token)", highlight=False)
    if settings.mlflow_ui_url:
        console.print(f"MLflow UI: {settings.mlflow_ui_url}")
    if token is not None:
        console.print(f"admin token (shown once): [bold]{token}[/bold]", highlight=False)
        console.print(f"try: export MIXUP_STUDIES_URL={base} MIXUP_STUDIES_TOKEN={token}\n"
                      "     mixup-studies submit studies/presets/smoke.yaml --watch", highlight=False)  # fmt: skip
    dispatching = dispatcher.start_process(settings)
    # uvicorn shuts down gracefully on SIGTERM, then raises it again for its previous handler: by default
    # that kills the process on the spot, skipping the cleanup below (the dispatcher, the MLflow UI).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # Everything allocated so far (torch, pydantic's schemas, the app, ...) lives as long as the process:
    # kept out of the collector, a full collection no longer walks ~400k objects (~0.3-0.8 s with the
    # GIL held, every request waiting) whenever enough new objects have piled up.
    gc.freeze()
    # Submitted specs are prepared in worker processes (service.api.spec_body): started now, not by the first
    # submission. They took the switch interval's place (sys.setswitchinterval(1e-4), which slowed every thread).
    spec_body.spec_pool(app).start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, http="httptools", loop="uvloop")
    finally:
        spec_body.close_pool(app)
        dispatcher.stop_process(dispatching)
        mlflow_ui.stop(settings, ui)
        engine.dispose()
