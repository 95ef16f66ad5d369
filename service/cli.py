"""The ``mixup-studies`` command: the study commands of :mod:`studies.cli` plus the service's own.

Service side: ``serve`` and ``token create/list/revoke``. Client side (over HTTP, ``MIXUP_STUDIES_URL`` /
``MIXUP_STUDIES_TOKEN``): ``submit [--watch]``, ``list``, ``status``, ``trials``, ``cancel``, ``report``.
``report`` goes through the API; with ``--tracking-uri`` it reads MLflow directly (the studies command).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.cli_tokens import token_app
from service.client import Client, ClientError
from studies import cli as studies_cli
from studies.errors import InvalidStudySpec

app = typer.Typer(help=studies_cli.app.info.help, no_args_is_help=True)
app.registered_commands.extend(
    c for c in studies_cli.app.registered_commands if (c.name or getattr(c.callback, "__name__", "")) != "report"
)
app.add_typer(token_app, name="token")
out = Console()
err = Console(stderr=True)
FINAL = {"succeeded": 0, "failed": 1, "cancelled": 3}
IdArg = Annotated[str, typer.Argument(help="The study's id.")]


def _client() -> Client:
    return Client()


def _call(action: Any) -> Any:
    try:
        return action()
    except ClientError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(2 if error.status in (None, 401, 422) else 1) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
) -> None:
    """Run the REST service (migrations, dispatcher, MLflow UI beside it with the local launcher)."""
    from service.server import serve as run_server

    run_server(host, port)


def _load_spec_file(spec: str) -> dict[str, Any]:
    """The spec file's mapping, read as ``validate`` reads it; the service validates the rest."""
    from studies.specfile import preset_path, read_spec_file

    path = Path(spec)
    if not path.exists() and preset_path(spec).exists():
        path = preset_path(spec)
    try:
        data = read_spec_file(path)
    except InvalidStudySpec as error:
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if not isinstance(data, dict):
        err.print(
            f"[red]error:[/red] {escape(spec)} is not a mapping of study fields, got {type(data).__name__}",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    return data


# What a cancel did, after the study's state (the API's cancel_outcome; "cancelled" needs no note).
_CANCEL_NOTES = {
    "stopping": " (cancel requested: stopping)",
    "too_late": " (cancel came too late: every trial had ended, the study ran to completion)",
}


def _best_text(study: dict[str, Any]) -> str:
    best = study.get("best_trial")
    return f"best {best['metric']} {best['value']:.2f} ({best['trial_id']})" if best else "best: -"


def watch(client: Client, study_id: str, interval_s: float = 2.0) -> int:
    """Show a progress bar until the study ends; return the exit code for its outcome."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=err) as progress:
        task = progress.add_task(study_id, total=None, info="queued")
        while True:
            study = _call(lambda: client.status(study_id))
            counts = study["trial_counts"]
            done = counts["finished"] + counts["stopped"] + counts["failed"]
            info = f"{study['status']} · {_best_text(study)}"
            progress.update(task, total=study["trials_total"], completed=done, info=info)
            if study["status"] in FINAL:
                break
            time.sleep(interval_s)
    note = _CANCEL_NOTES.get(study.get("cancel_outcome"), "")
    out.print(f"study {study_id} {study['status']}{note} · {_best_text(study)}", highlight=False)
    if study.get("error"):
        err.print(study["error"], markup=False, highlight=False)
    return FINAL[study["status"]]


@app.command()
def submit(
    spec: Annotated[str, typer.Argument(help="A study spec (YAML) or a preset name such as 'smoke'.")],
    watch_: Annotated[bool, typer.Option("--watch", help="Follow it until it ends.")] = False,
) -> None:
    """Submit a study to the service; prints its id."""
    client = _client()
    created = _call(lambda: client.submit(_load_spec_file(spec)))
    out.print(f"submitted [bold]{created['id']}[/bold] ({created['status']}, {created['trials_total']} trials)")
    if watch_:
        raise typer.Exit(watch(client, created["id"]))


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="Only studies in this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
) -> None:
    """Your studies, newest first."""
    page = _call(lambda: _client().list(status, limit))
    table = Table("id", "status", "trials done/total", "created")
    table.columns[0].no_wrap = True  # an id is for copying: whole, on one line
    for s in page["items"]:
        c = s["trial_counts"]
        table.add_row(s["id"], s["status"], f"{c['finished'] + c['stopped'] + c['failed']}/{s['trials_total']}",
                      s["created_at"][:19])  # fmt: skip
    _print_table(table)
    out.print(f"{len(page['items'])} of {page['total']}")


@app.command()
def status(study_id: IdArg, json_: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False) -> None:
    """A study's state, trial counts, best trial and MLflow links."""
    study = _call(lambda: _client().status(study_id))
    if json_:
        typer.echo(json.dumps(study, indent=2))
        return
    counts = ", ".join(f"{k} {v}" for k, v in study["trial_counts"].items())
    out.print(f"[bold]{study['id']}[/bold] {study['status']}{_CANCEL_NOTES.get(study.get('cancel_outcome'), '')}")
    out.print(f"trials: {counts} (of {study['trials_total']}) · {_best_text(study)}", highlight=False)
    for key in ("created_at", "started_at", "finished_at"):
        if study.get(key):
            out.print(f"{key.removesuffix('_at')}: {study[key]}")
    if study["mlflow"].get("run_url"):
        out.print(f"MLflow: {study['mlflow']['run_url']}")
    if study.get("error"):
        err.print(study["error"], markup=False, highlight=False)


@app.command()
def trials(study_id: IdArg) -> None:
    """Every trial: parameters, state, epochs and latest metrics."""
    # Every trial, a page (1,000) per request: the table is for reading and grepping, a cut one would mislead.
    body = _call(lambda: _client().all_trials(study_id))
    table = Table("trial", "params", "status", "epochs", "test_error", "median_test_error")
    table.columns[0].no_wrap = True
    for t in body["trials"]:
        m = t["metrics"]
        table.add_row(t["trial_id"], ", ".join(f"{k}={v}" for k, v in t["params"].items()), t["status"],
                      str(t["epochs"]), _num(m.get("test_error")), _num(m.get("median_test_error")))  # fmt: skip
    _print_table(table)


def _print_table(table: Table) -> None:
    """Print ``table`` with no cell cut short: ids must survive a copy.

    Not on a terminal (a pipe, a file, ``$(...)``) rich assumes 80 columns and would cut long ids with an
    ellipsis; there the table is as wide as its content. On a terminal the id columns do not wrap, so rich
    narrows the others first.
    """
    if out.is_terminal:
        out.print(table)
        return
    width = Measurement.get(out, out.options.update_width(100_000), table).maximum
    Console(file=out.file, width=max(width, out.width), color_system=None).print(table)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@app.command()
def cancel(study_id: IdArg) -> None:
    """Cancel a study (a running one stops gracefully and stays resumable)."""
    study = _call(lambda: _client().cancel(study_id))
    out.print(f"{study['id']}: {'cancelled' if study['status'] == 'cancelled' else 'stopping'}")


@app.command()
def report(
    study_id: IdArg,
    format: Annotated[str, typer.Option("--format", help="md, json or png.")] = "md",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="Read MLflow directly instead of the service.")] = None,
) -> None:
    """The study's report (leaderboard, factor table, α plot) from the service."""
    if tracking_uri:
        studies_cli.report(study_id, format, output, tracking_uri)
        return
    if format not in ("md", "json", "png"):
        err.print(f"--format must be md, json or png, got {format!r}")
        raise typer.Exit(2)
    if format == "png" and output is None:
        err.print("--format png needs -o FILE")
        raise typer.Exit(2)
    content = _call(lambda: _client().report(study_id, format))
    if output is not None:
        output.write_bytes(content)
        out.print(f"wrote {output}")
    else:
        sys.stdout.write(content.decode())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
