"""The spec of a request body: prepared in a worker process (service.api.spec_pool), within a time limit.

A body parameter (``spec: StudySpec``) is parsed (``json.loads``) and validated by FastAPI on the
event loop, even for a ``def`` endpoint: while a large or costly body was checked, every other
request waited (``/healthz`` included). A worker thread did not help enough: parsing, validating and
serialising a 1 MB spec are single long calls that hold the GIL for 10-80 ms each. Here the raw bytes go
to a worker process (service.spec_work: parse, validate, confine the data folder, admit, count the
trials, serialise what is stored), and the request waits at most ``validation_timeout_s`` for the answer
(queueing included): past it, ``503`` naming the limit, and a worker still busy with it is replaced.
Errors are raised as before: FastAPI's own ``RequestValidationError`` with the same ``loc``s, or a
``BadSpec``, so a ``422`` keeps its problem format (service.api.errors).

The OpenAPI schema still describes the body as a StudySpec (:func:`document_body`).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from service import spec_work
from service.api.deps import UserDep
from service.api.spec_pool import SpecPool
from service.errors import BadSpec
from service.spec_work import Prepared
from studies.spec import StudySpec

REF = "#/components/schemas/{model}"
#: ``openapi_extra`` of a route that takes a StudySpec through :data:`SpecBody`.
SPEC_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=StudySpec.__name__)}}},
    }
}


def spec_pool(app: FastAPI) -> SpecPool:
    """The app's pool of spec workers (made on first use; ``serve`` starts it before the first request)."""
    if getattr(app.state, "spec_pool", None) is None:
        settings = app.state.settings
        app.state.spec_pool = SpecPool(settings.spec_workers, settings.spec_worker_nice)
    pool: SpecPool = app.state.spec_pool
    return pool


def close_pool(app: FastAPI) -> None:
    """Stop the app's spec workers, if it started any (the app's shutdown; tests that run it without one)."""
    pool: SpecPool | None = getattr(app.state, "spec_pool", None)
    if pool is not None:
        pool.close()


async def spec_from_body(request: Request, _caller: UserDep) -> Prepared:
    """The request's spec, prepared in a worker process; ``503`` when that takes too long or the worker dies.

    Depends on the caller: without a valid token the body is never read (401 first, as before).
    """
    settings = request.app.state.settings
    pool = spec_pool(request.app)
    body = await request.body()
    limit = settings.validation_timeout_s
    # In a thread: the first submission of a pool starts its workers (and the fork server: seconds).
    work = (spec_work.prepare, body, request.headers.get("content-type"), settings)
    submitting = asyncio.get_running_loop().run_in_executor(None, pool.submit, *work)
    try:
        async with asyncio.timeout(limit):
            executor, future = await asyncio.shield(submitting)
            answer = await asyncio.wrap_future(future)
    except TimeoutError:
        if not submitting.done():  # still starting the pool: its call is dropped once queued
            submitting.add_done_callback(_drop)
        elif submitting.exception() is None:
            executor, future = submitting.result()
            if not future.cancel():  # running, or handed to a worker: it may be stuck
                await asyncio.to_thread(pool.replace, executor)
        raise _busy(f"validating the spec took longer than the limit of {limit:g} s "
                    "(MIXUP_STUDIES_VALIDATION_TIMEOUT_S); the server is busy, try again") from None  # fmt: skip
    except BrokenProcessPool:
        raise _busy("the worker preparing the spec stopped; try again") from None
    if isinstance(answer, Prepared):
        return answer
    if answer.problems is not None:
        raise BadSpec(answer.problems)
    raise RequestValidationError(answer.validation or [])


def _drop(submitting: asyncio.Future[tuple[Any, Future[Any]]]) -> None:
    if not submitting.cancelled() and submitting.exception() is None:
        submitting.result()[1].cancel()


def _busy(detail: str) -> HTTPException:
    return HTTPException(503, detail=detail, headers={"Retry-After": "5"})


SpecBody = Annotated[Prepared, Depends(spec_from_body)]


def document_body(app: FastAPI) -> None:
    """Put StudySpec and the models it uses in the OpenAPI components, exactly as a body parameter would.

    The route declares its body through ``openapi_extra`` (:data:`SPEC_REQUEST_BODY`); FastAPI only
    adds components for models its routes take or return, so they are taken, once, from a throwaway
    app whose route has the parameter: FastAPI's own schema of it, whatever its version generates.
    """
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in _spec_components().items():
                components.setdefault(name, definition)
            schema["components"]["schemas"] = dict(sorted(components.items()))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _spec_components() -> dict[str, Any]:
    reference = FastAPI()

    @reference.post("/")
    def take(spec: StudySpec) -> None:
        """Never called: only its schema is read."""

    schemas: dict[str, Any] = reference.openapi()["components"]["schemas"]
    return {name: s for name, s in schemas.items() if name not in ("HTTPValidationError", "ValidationError")}
