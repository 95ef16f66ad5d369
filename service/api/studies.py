"""``/api/v1/studies``: thin handlers over :mod:`service.repository`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool

from service import repository, schemas, trial_store
from service.api.deps import SessionDep, SettingsDep, UserDep, read
from service.api.spec_body import SPEC_REQUEST_BODY, SpecBody
from service.errors import NotFound
from studies.records import OPEN_TRIAL_STATUSES, TrialStatus
from studies.report import StudyReport, build_report, render_markdown, render_plot_png
from studies.spec import admitted_spec

T = TypeVar("T")
MAX_TRIALS_PAGE = 1000  # trials in one /trials answer
MAX_LEADERBOARD_PAGE = 5000  # leaderboard rows in one report answer
router = APIRouter(prefix="/api/v1/studies", tags=["studies"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.Problem, "description": text}
    for code, text in {
        401: "Missing or invalid token",
        404: "No such study (or not yours)",
        422: "Invalid request; every invalid field is named (and the setting of a limit it is over)",
    }.items()
}

_STUDY = "#/paths/~1api~1v1~1studies~1{study_id}"
#: OpenAPI links from a created study to what can be done with it (clients and stateful testers follow them).
CREATED_LINKS: dict[str, dict[str, Any]] = {
    name: {"operationRef": f"{_STUDY}{suffix}", "parameters": {"study_id": "$response.body#/id"}}
    for name, suffix in {
        "GetStudy": "/get",
        "GetTrials": "~1trials/get",
        "GetReport": "~1report/get",
        "CancelStudy": "~1cancel/post",
        "DeleteStudy": "/delete",
    }.items()
}


def _json(body: BaseModel) -> Response:
    # The body is built from typed models already: skip FastAPI's re-validation of the response model
    # (a dump, a full validation and a dump again), a large share of a status poll's CPU time.
    return Response(body.model_dump_json(), media_type="application/json")


StudyStatusQuery = Annotated[schemas.StudyStatus | None, Query(description="Only studies in this state.")]


@router.post(
    "",
    status_code=201,
    response_model=schemas.StudyDetail,
    openapi_extra=SPEC_REQUEST_BODY,  # the body is read by SpecBody, off the event loop
    responses={
        **ERRORS,
        201: {"links": CREATED_LINKS},
        413: {"model": schemas.Problem},
        422: {"model": schemas.Problem},
        429: {"model": schemas.Problem, "description": "Too many queued studies"},
        503: {"model": schemas.Problem, "description": "Validating the spec took longer than the limit"},
    },
)
def submit_study(prepared: SpecBody, session: SessionDep, user: UserDep, settings: SettingsDep) -> Response:
    """Queue a study (a StudySpec); it starts when a slot is free."""
    # Parsed, validated, placed (data_dir), admitted and serialised in a worker process (SpecBody).
    study = repository.submit(session, user, prepared, settings.max_queued_per_user)
    session.commit()
    # The row's spec is the stored JSON text: the answer is built without it, and the text spliced in as it is
    # (dumping a 1 MB spec again here held the GIL for tens of ms, every other request waiting).
    view = dataclasses.replace(repository.view_of(study, user.name), spec={})
    detail = schemas.detail(view, schemas.stats(view), settings.mlflow_ui_url)
    return Response(splice_spec(detail.model_dump_json(exclude={"spec"}), prepared.spec_json), 201,
                    media_type="application/json")  # fmt: skip


def splice_spec(detail_json: str, spec_json: str) -> bytes:
    """A StudyDetail's JSON (dumped without ``spec``) with the stored spec's JSON text as its ``spec``."""
    assert detail_json.endswith("}") and detail_json != "{}"
    return b"".join((detail_json[:-1].encode(), b',"spec":', spec_json.encode(), b"}"))


@router.get("", response_model=schemas.StudyPage, responses=ERRORS)
async def list_studies(
    request: Request,
    user: UserDep,
    status: StudyStatusQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    """Your studies (all of them for admins), newest first."""

    def work(db: Connection) -> schemas.StudyPage:
        rows, total = repository.view_page(db, user, status, limit, offset)
        items = [schemas.summary(s, schemas.stats(s)) for s in rows]
        return schemas.StudyPage(items=items, total=total, limit=limit, offset=offset)

    return _json(await read(request, work))


#: A spec longer than this (JSON characters) is decoded and echoed off the event loop (a 1 MB body of
#: 40,000 variants is stored as 4 MB: ~0.1 s to decode, validate and dump again).
INLINE_SPEC_CHARS = 100_000


@router.get("/{study_id}", response_model=schemas.StudyDetail, responses=ERRORS)
async def get_study(study_id: str, request: Request, user: UserDep) -> Response:
    """Spec, status, timestamps, trial counts by state, best trial so far, MLflow ids and links."""
    ui_url = request.app.state.settings.mlflow_ui_url  # not a dependency: each one costs a status poll CPU
    inline = request.app.state.inline_reads

    def work(db: Connection, on_loop: bool) -> Response | None:
        study, text = repository.view_unparsed(db, user, study_id)
        if on_loop and len(text) > INLINE_SPEC_CHARS:
            return None  # too much for the event loop: done again in a thread
        study = dataclasses.replace(study, spec=json.loads(text))
        return _json(schemas.detail(study, schemas.stats(study), ui_url))

    answer = await read(request, lambda db: work(db, inline))
    if answer is None:
        answer = await run_in_threadpool(_with_connection, request, lambda db: work(db, False))
    assert answer is not None
    return answer


def _with_connection(request: Request, work: Callable[[Connection], T]) -> T:
    engine: Engine = request.app.state.engine
    with engine.connect() as connection:
        return work(connection)


TrialStatusQuery = Annotated[
    TrialStatus | None,
    Query(
        description="Only trials in this state (as the study's state has them: none pending or running once it ended)."
    ),
]
UpdatedAfterQuery = Annotated[
    datetime | None,
    Query(description="Only trials the service changed after this moment (ISO 8601): a trial's updated_at, the "
          "largest of the last read, makes the next read incremental."),
]  # fmt: skip


@router.get("/{study_id}/trials", response_model=schemas.TrialList, responses=ERRORS)
async def get_trials(
    study_id: str,
    request: Request,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=MAX_TRIALS_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    status: TrialStatusQuery = None,
    updated_after: UpdatedAfterQuery = None,
) -> Response:
    """One page of trials in start order: configuration, state, latest and final metrics, and how many match."""

    def work(db: Connection) -> schemas.TrialList:
        study = repository.view(db, user, study_id)
        query = trial_store.TrialQuery(stored_statuses(study.status, status), updated_after, limit, offset)
        page, total = trial_store.page(db, study.seq, query)
        return schemas.trial_list(study, page, total, limit, offset)

    return _json(await read(request, work))


def stored_statuses(study_status: str, wanted: str | None) -> frozenset[str] | None:
    """The stored statuses that show as ``wanted``: an ended study's pending and running ones show as cancelled."""
    if wanted is None:
        return None
    if not schemas.ended(study_status):
        return frozenset({wanted})
    if wanted in OPEN_TRIAL_STATUSES:
        return frozenset()
    return frozenset({wanted, *OPEN_TRIAL_STATUSES}) if wanted == "cancelled" else frozenset({wanted})


@router.get(
    "/{study_id}/report",
    response_model=StudyReport,
    responses={
        **ERRORS,
        200: {
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            }
        },
    },
)
def get_report(
    study_id: str,
    session: SessionDep,
    user: UserDep,
    format: Annotated[Literal["json", "md", "png"], Query(description="json, md (Markdown) or png (α plot).")] = "json",
    leaderboard_limit: Annotated[int, Query(ge=1, le=MAX_LEADERBOARD_PAGE, description="Leaderboard rows.")] = 100,
    leaderboard_offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Leaderboard rows skipped.")] = 0,
) -> Response:
    """The paper-style report (leaderboard, factor table, α curve); live while the study runs.

    Built from every trial; the leaderboard in the answer is one page of it (``leaderboard_total`` rows in all).
    """
    study = repository.view(session, user, study_id)
    trials = trial_store.records(session, study.seq)
    session.commit()  # end the read transaction: building and rendering the report takes a while
    trials = schemas.study_trials(study.status, trials)
    report = build_report(admitted_spec(study.spec), trials, study.id, study_status=study.status)
    if format == "png":
        png = render_plot_png(report)
        if png is None:
            raise NotFound(f"study {study_id!r} has no α curve to plot (yet)")
        return Response(png, media_type="image/png")
    report = leaderboard_page(report, leaderboard_limit, leaderboard_offset)
    if format == "md":
        return Response(render_markdown(report), media_type="text/markdown")
    return JSONResponse(report.model_dump(mode="json"))


def leaderboard_page(report: StudyReport, limit: int, offset: int) -> StudyReport:
    rows = report.leaderboard
    return report.model_copy(update={"leaderboard": rows[offset : offset + limit], "leaderboard_total": len(rows)})


@router.post(
    "/{study_id}/cancel",
    response_model=schemas.StudyDetail,
    responses={**ERRORS, 409: {"model": schemas.Problem, "description": "Already ended"}},
)
def cancel_study(study_id: str, session: SessionDep, user: UserDep, settings: SettingsDep) -> Response:
    """Cancel: a queued study at once; a running one is stopped gracefully (its Tune state stays resumable)."""
    study = repository.request_cancel(session, user, study_id)
    session.commit()
    view = repository.view_of(study, study.owner.name)
    return _json(schemas.detail(view, schemas.stats(view), settings.mlflow_ui_url))  # see submit_study


@router.delete(
    "/{study_id}", status_code=204, responses={**ERRORS, 409: {"model": schemas.Problem, "description": "Not finished"}}
)
def delete_study(study_id: str, session: SessionDep, user: UserDep) -> Response:
    """Forget a finished study (its MLflow runs and Tune results stay)."""
    repository.delete(session, user, study_id)
    session.commit()
    return Response(status_code=204)


__all__ = ["router"]
