"""The StudySpec of a request body: parsed and validated off the event loop, within a time limit.

A body parameter (``spec: StudySpec``) is parsed (``json.loads``) and validated by FastAPI on the
event loop, even for a ``def`` endpoint: while a large or costly body was checked, every other
request waited (``/healthz`` included). Here the raw bytes go to a worker thread, one at a time
(validation is CPU work under the GIL: a second thread only made the event loop wait longer for
it; ``serve`` also shortens the GIL's switch interval), and the request waits at most
``validation_timeout_s`` for the answer (queueing included): past it, ``503`` naming the limit.
Errors are raised as FastAPI's own ``RequestValidationError`` with the same ``loc``s, so a ``422``
keeps its problem format (service.api.errors).

The OpenAPI schema still describes the body as a StudySpec (:func:`document_body`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from service.api.deps import UserDep
from studies.spec import StudySpec

T = TypeVar("T")
#: Validations running at once; the others queue (their wait counts towards the time limit).
CONCURRENT = 1
#: The schema's own trial cap, off at parsing (counting is arithmetic, validation probes a few trials).
NO_TRIAL_CAP = 2**62
#: Field errors reported of one body (each names its field; the count is bounded by the schema anyway).
MAX_ERRORS = 50
REF = "#/components/schemas/{model}"
#: ``openapi_extra`` of a route that takes a StudySpec through :data:`SpecBody`.
SPEC_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=StudySpec.__name__)}}},
    }
}


def parse(body: bytes, content_type: str | None, max_trials: int) -> StudySpec:
    """Validate a body as FastAPI would a ``StudySpec`` parameter; raises ``RequestValidationError``."""
    if not body:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    context = {"max_trials": max_trials}
    try:
        if _is_json(content_type):
            # pydantic's own JSON parser: no Python objects for what is refused, and a depth limit where
            # json.loads raised RecursionError (a 500) on a body of 100,000 nested brackets
            return StudySpec.model_validate_json(body, context=context)
        return StudySpec.model_validate(body, context=context)  # another type: refused as FastAPI did
    except ValidationError as error:
        errors = error.errors(include_url=False)[:MAX_ERRORS]
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def _is_json(content_type: str | None) -> bool:
    # FastAPI's rule: no Content-Type, application/json or application/*+json
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


class Validations:
    """At most :data:`CONCURRENT` validations at once, in their own threads; how many are running.

    Not the shared threadpool: a request given up at its time limit gets its queued validation
    dropped (a running one finishes its bounded work), and validations never hold the threads the
    ``def`` endpoints need.
    """

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(CONCURRENT, thread_name_prefix="spec-validation")
        self.running = 0
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], T]) -> Future[T]:
        return self.pool.submit(self._count, work)

    def _count(self, work: Callable[[], T]) -> T:
        with self._lock:
            self.running += 1
        try:
            return work()
        finally:
            with self._lock:
                self.running -= 1


async def spec_from_body(request: Request, _caller: UserDep) -> StudySpec:
    """The request's StudySpec, validated in a worker thread; ``503`` when that takes too long.

    Depends on the caller: without a valid token the body is never read (401 first, as before).
    """
    settings = request.app.state.settings
    state = request.app.state
    if getattr(state, "validations", None) is None:
        state.validations = Validations()
    body = await request.body()
    # The trial cap is checked after parsing, by service.admission, whose message names its setting.
    work = functools.partial(parse, body, request.headers.get("content-type"), NO_TRIAL_CAP)
    limit = settings.validation_timeout_s
    try:
        return await asyncio.wait_for(asyncio.wrap_future(state.validations.submit(work)), limit)
    except TimeoutError:
        raise HTTPException(
            503,
            detail=f"validating the spec took longer than the limit of {limit:g} s "
            "(MIXUP_STUDIES_VALIDATION_TIMEOUT_S); the server is busy, try again",
            headers={"Retry-After": "5"},
        ) from None


SpecBody = Annotated[StudySpec, Depends(spec_from_body)]


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
