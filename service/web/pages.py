"""The study pages: the list, a study (live while it runs), its cancel form, and a comparison of studies.

Thin handlers like the JSON routes': the same repository reads, the same models (service.schemas, the
study report), then :mod:`service.web.views` for the numbers and a template for the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, get_args
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import Connection
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service import repository, schemas, trial_store
from service.api.deps import SessionDep, SettingsDep, read
from service.auth import Caller, aware
from service.errors import BadSpec
from service.settings import ServiceSettings
from service.web import sessions, views
from service.web.plots import MAX_CURVES, PlotCache, alpha_svg, compare_svg, curves_svg, drawn_trials
from service.web.render import VisitorDep, form_of, page
from studies.records import TrialRecord
from studies.report import StudyReport, build_report
from studies.spec import admitted_spec

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
TRIALS_PAGE = 100  # trials in a study page's table (the report and plots use every trial)
MAX_COMPARED = 8
StatusQuery = Annotated[schemas.StudyStatus | None, Query(description="Only studies in this state.")]


@router.get("/studies")
async def list_page(
    request: Request, visitor: VisitorDep, status: StatusQuery = None, offset: Annotated[int, Query(ge=0)] = 0
) -> Response:
    caller = visitor.caller

    def work(db: Connection) -> tuple[list[dict[str, Any]], int]:
        rows, total = repository.view_page(db, caller, status, PAGE_SIZE, offset)
        return [_list_item(view) for view in rows], total

    items, total = await read(request, work)
    return page(request, "list.html", visitor=visitor, items=items, total=total, status=status, offset=offset,
                page_size=PAGE_SIZE, statuses=get_args(schemas.StudyStatus))  # fmt: skip


def _list_item(view: repository.StudyView) -> dict[str, Any]:
    """One row of the list: counts and best trial from the study row (no trial read)."""
    counts, best = schemas.stats(view)
    return {"study": view, "progress": views.progress(counts, view.trials_total), "best": best,
            "age": views.age(aware(view.created_at))}  # fmt: skip


@dataclass(frozen=True)
class Loaded:
    """A study as its page shows it: the API's detail, a page of its trials and the report built from all."""

    detail: schemas.StudyDetail
    view: repository.StudyView
    trials: list[schemas.Trial]  # one page: TRIALS_PAGE from trials_offset, in start order
    trials_offset: int
    records: list[TrialRecord]  # every trial, as the study's state has them (settled once it ended)
    report: StudyReport


def load(session: Session, caller: Caller, study_id: str, settings: ServiceSettings, trials_offset: int = 0) -> Loaded:
    """The study (if ``caller`` may see it), its trials and its report, read like the API reads them."""
    view = repository.view(session, caller, study_id)
    records = trial_store.records(session, view.seq)  # all of them: the report and the plots need every trial
    session.commit()  # end the read transaction: the report and the plots take a while
    detail = schemas.detail(view, schemas.stats(view), settings.mlflow_ui_url)
    settled = schemas.study_trials(view.status, records)
    trials = [schemas.trial(r) for r in settled[trials_offset : trials_offset + TRIALS_PAGE]]
    report = build_report(admitted_spec(view.spec), settled, view.id, study_status=view.status)
    return Loaded(detail, view, trials, trials_offset, settled, report)


def _plots(request: Request) -> PlotCache:
    cache: PlotCache = request.app.state.web_plots
    return cache


def _results_context(request: Request, loaded: Loaded, settings: ServiceSettings) -> dict[str, Any]:
    detail, report, cache = loaded.detail, loaded.report, _plots(request)
    return {
        "table": views.table(report),
        "report": report,
        "trials": views.trial_rows(loaded.trials, report.metric, detail.mlflow.experiment_url),
        "trials_offset": loaded.trials_offset,
        "trials_total": len(loaded.records),
        "trials_page": TRIALS_PAGE,
        "alpha_svg": alpha_svg(cache, loaded.view, report),
        "curves_svg": curves_svg(cache, settings, loaded.view, drawn_trials(loaded.records, report)),
        "curves_drawn": min(len(loaded.records), MAX_CURVES),
        "curves_total": len(loaded.records),
    }


def _live_context(request: Request, detail: schemas.StudyDetail, view: repository.StudyView) -> dict[str, Any]:
    settings: ServiceSettings = request.app.state.settings
    return {
        "study": detail,
        "progress": views.progress(detail.trial_counts, detail.trials_total),
        "version": views.version(detail, view.progress_at),
        "ended": schemas.ended(detail.status),
        "refresh_s": settings.web_refresh_s,
    }


@router.get("/studies/compare")
def compare_page(
    request: Request,
    visitor: VisitorDep,
    session: SessionDep,
    settings: SettingsDep,
    ids: Annotated[list[str] | None, Query(description="Study ids, comma-separated or repeated.")] = None,
) -> Response:
    wanted = list(dict.fromkeys(i.strip() for value in ids or [] for i in value.split(",") if i.strip()))
    if not 2 <= len(wanted) <= MAX_COMPARED:
        raise BadSpec([("ids", f"compare 2 to {MAX_COMPARED} studies, got {len(wanted)}: {','.join(wanted)!r}")])
    loaded = [load(session, visitor.caller, study_id, settings) for study_id in wanted]
    names = [item.detail.name for item in loaded]
    # Two runs of one spec share a name: the legend then needs their ids to tell the curves apart.
    labels = [n if names.count(n) == 1 else item.detail.id for n, item in zip(names, loaded, strict=True)]
    studies = [{"study": item.detail, "label": label, "table": views.table(item.report), "report": item.report}
               for item, label in zip(loaded, labels, strict=True)]  # fmt: skip
    svg = compare_svg(
        _plots(request), [(label, item.view, item.report) for label, item in zip(labels, loaded, strict=True)]
    )
    return page(request, "compare.html", visitor=visitor, studies=studies, alpha_svg=svg)


TrialsOffset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Trials skipped in the trial table.")]


@router.get("/studies/{study_id}")
def study_page(
    study_id: str,
    request: Request,
    visitor: VisitorDep,
    session: SessionDep,
    settings: SettingsDep,
    trials_offset: TrialsOffset = 0,
) -> Response:
    loaded = load(session, visitor.caller, study_id, settings, trials_offset)
    spec_yaml = yaml.safe_dump(loaded.detail.spec, sort_keys=False, allow_unicode=True)
    return page(request, "study.html", visitor=visitor, spec_yaml=spec_yaml,
                **_live_context(request, loaded.detail, loaded.view),
                **_results_context(request, loaded, settings))  # fmt: skip


@router.get("/studies/{study_id}/live")
async def live_fragment(study_id: str, request: Request, visitor: VisitorDep) -> Response:
    """The status block alone, polled by the page every ``MIXUP_STUDIES_WEB_REFRESH_S`` while the study runs."""
    ui_url = request.app.state.settings.mlflow_ui_url

    def work(db: Connection) -> tuple[schemas.StudyDetail, repository.StudyView]:
        view = repository.view(db, visitor.caller, study_id)
        return schemas.detail(view, schemas.stats(view), ui_url), view

    detail, view = await read(request, work)
    return page(request, "_live.html", visitor=visitor, **_live_context(request, detail, view))


@router.get("/studies/{study_id}/results")
def results_fragment(
    study_id: str,
    request: Request,
    visitor: VisitorDep,
    session: SessionDep,
    settings: SettingsDep,
    trials_offset: TrialsOffset = 0,
) -> Response:
    """Table 5, plots and a page of trials, reloaded by the page when the live block says they changed."""
    loaded = load(session, visitor.caller, study_id, settings, trials_offset)
    return page(request, "_results.html", visitor=visitor, study=loaded.detail,
                **_results_context(request, loaded, settings))  # fmt: skip


@router.post("/studies/{study_id}/cancel")
async def cancel(study_id: str, request: Request, visitor: VisitorDep) -> Response:
    sessions.check_origin(request)
    sessions.check_csrf(visitor.session, await form_of(request))
    factory = request.app.state.sessions

    def work() -> None:
        with factory() as session:
            repository.request_cancel(session, visitor.caller, study_id)
            session.commit()

    await run_in_threadpool(work)  # a write: never on the event loop
    return RedirectResponse(f"/studies/{quote(study_id)}", status_code=303)
