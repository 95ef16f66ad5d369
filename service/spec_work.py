"""What a submission costs in proportion to its body, done in a worker process (service.api.spec_pool).

Parsing and validating a 1 MB spec, placing its data folder, admitting it and serialising what is stored
are single long calls (pydantic, json) that hold the GIL for 10-80 ms each: in the API process they stalled
the event loop, ``/healthz`` included. A worker does them all and hands back only small things and the
stored spec's JSON text (:class:`Prepared`), or the refusal (:class:`Refused`) in plain, picklable data:
the API raises the same errors as before from it (``422`` with the same ``loc``s and messages).

No FastAPI here: a worker imports this module once and only what it needs.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from service import admission
from service.data_paths import confine_data_dir
from service.errors import BadSpec
from service.processes import process_start_time
from service.settings import ServiceSettings
from studies.space import trial_count
from studies.spec import NO_TRIAL_CAP, StudySpec

#: Field errors reported of one body (each names its field; the count is bounded by the schema anyway).
MAX_ERRORS = 50


@dataclass(frozen=True)
class Prepared:
    """An admitted spec: what the API stores (``spec_json`` as it is, not decoded again) and echoes."""

    name: str
    trials_total: int
    spec_json: str


@dataclass(frozen=True)
class Refused:
    """A body that is no valid spec (``validation``: FastAPI-style error dicts) or not one allowed here."""

    validation: list[dict[str, Any]] | None = None
    problems: list[tuple[str, str]] | None = None


def stored_json(spec: StudySpec) -> str:
    """The stored form of a spec: without the unset (None) fields, which validate back to the same spec.

    A 1 MB body of 40,000 variants was stored, echoed and read back as 4 MB of nulls, each JSON pass a long
    hold of the GIL.
    """
    return spec.model_dump_json(exclude_none=True)


def prepare(body: bytes, content_type: str | None, settings: ServiceSettings) -> Prepared | Refused:
    """Parse, validate, place the data folder, admit and serialise one submitted body."""
    if not body:
        return Refused(validation=[{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    try:
        if _is_json(content_type):
            # pydantic's own JSON parser: no Python objects for what is refused, and a depth limit where
            # json.loads raised RecursionError (a 500) on a body of 100,000 nested brackets
            # The schema's own cap is off here: admission checks the configured one (counting is arithmetic).
            spec = StudySpec.model_validate_json(body, context={"max_trials": NO_TRIAL_CAP})
        else:  # another type: refused as FastAPI did
            spec = StudySpec.model_validate(body, context={"max_trials": NO_TRIAL_CAP})
    except ValidationError as error:
        return Refused(validation=[_plain(e) for e in error.errors(include_url=False)[:MAX_ERRORS]])
    try:
        spec = confine_data_dir(spec, settings)
        # The service's limits (sizes, what a node can hold); the trial cap's message names its setting.
        admission.admit(spec, settings)
    except BadSpec as error:
        return Refused(problems=list(error.errors))
    return Prepared(spec.name, trial_count(spec), stored_json(spec))


def _plain(error: Any) -> dict[str, Any]:
    """What the problem format reads of an error (service.api.errors): no input (up to the whole body)."""
    plain: dict[str, Any] = {"type": error["type"], "loc": ("body", *error["loc"]), "msg": error["msg"]}
    if "error" in error.get("ctx", {}):
        plain["ctx"] = {"error": str(error["ctx"]["error"])}  # an exception object may not unpickle
    return plain


def _is_json(content_type: str | None) -> bool:
    # FastAPI's rule: no Content-Type, application/json or application/*+json
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def start_worker(niceness: int, api_pid: int, api_started: str | None) -> None:
    """A worker's initializer: lower its priority, and end it when the API process is gone.

    Niced, it yields the CPU to the API process, whose event loop answers every request. A worker is a child
    of the fork server, not of the API, and waits on a queue whose writing end it holds itself: a killed API
    (SIGKILL) left it, and the fork server it keeps alive, running for good.
    """
    os.nice(niceness)
    threading.Thread(target=_end_with, args=(api_pid, api_started), name="end-with-api", daemon=True).start()


def _end_with(api_pid: int, api_started: str | None, period_s: float = 1.0) -> None:
    while process_start_time(api_pid) == api_started:  # the same process, not one that reused its pid
        time.sleep(period_s)
    os._exit(0)


def warm() -> int:
    """Nothing but the worker's pid: the first call starts the worker (and tests ask where work runs)."""
    return os.getpid()
