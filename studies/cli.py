"""The study commands of ``mixup-studies``: ``validate``, ``run`` and ``report``.

Exit codes (scripts and the service's launchers rely on them):
0 the study succeeded · 1 it failed (every trial failed) · 2 invalid spec or
usage · 3 cancelled (SIGINT/SIGTERM; rerun with ``--study-id ID --resume``) ·
4 the driver itself failed (MLflow, Ray or the file system raised; the study has
no outcome: rerun with ``--study-id ID --resume``).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape

from studies.data_location import place_data_dir
from studies.errors import InvalidStudySpec, StudyNotFound
from studies.live import ProgressView
from studies.records import settled
from studies.reproduce.command import reproduce as reproduce_command
from studies.settings import StudySettings
from studies.space import trial_count
from studies.spec import StudySpec
from studies.specfile import load_spec, preset_path

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_CANCELLED, EXIT_ERROR = 0, 1, 2, 3, 4
DRIVER_ERROR = "driver error: "  # the last line of a driver that ended with EXIT_ERROR; the service shows it
EXIT_CODES = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}

app = typer.Typer(help="Run MixUp hyperparameter studies (Zhang et al., ICLR 2018).", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

SpecArg = Annotated[str, typer.Argument(help="A study spec (YAML), or the name of a bundled preset such as 'smoke'.")]
TrackingOpt = Annotated[str | None, typer.Option(help="MLflow tracking URI (default: MIXUP_STUDIES_TRACKING_URI).")]


def _settings(tracking_uri: str | None = None, ray_address: str | None = None) -> StudySettings:
    settings = StudySettings()
    if tracking_uri:
        settings.tracking_uri = tracking_uri
    if ray_address:
        settings.ray_address = ray_address
    return settings


def _spec_path(spec: str) -> Path:
    path = Path(spec)
    if not path.exists() and preset_path(spec).exists():
        return preset_path(spec)
    return path


def _load(spec: str, settings: StudySettings) -> StudySpec:
    """The validated spec, or exit 2 after printing every problem."""
    try:
        return place_data_dir(load_spec(_spec_path(spec), settings.max_trials), settings.resolved_data_dir)
    except InvalidStudySpec as error:
        err.print(f"[red]invalid study spec[/red] {escape(spec)}:", soft_wrap=True)
        for field, message in error.errors:
            err.print(
                f"  {field}: {message}" if field else f"  {message}", markup=False, highlight=False, soft_wrap=True
            )
        raise typer.Exit(EXIT_INVALID) from None


@app.command()
def validate(spec: SpecArg) -> None:
    """Check a spec and print how many trials it expands to (exit 2 and the errors if it cannot run)."""
    settings = _settings()
    study = _load(spec, settings)
    axes = [*study.search.space.axes()]
    if study.search.variants:
        axes.insert(0, "variant")
    varied = " × ".join(axes) or "the base configuration"
    out.print(
        f"[green]valid[/green] {study.name}: {trial_count(study)} trials "
        f"({study.search.algorithm} over {varied}; seeds {study.search.seeds}; scheduler {study.scheduler.name})"
    )


@app.command()
def run(
    spec: SpecArg,
    study_id: Annotated[str | None, typer.Option(help="The study's id (default: a new one).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the study --study-id where it stopped (or start it).")] = False,
    ray_address: Annotated[str | None, typer.Option(help="An existing Ray cluster (default: a local Ray).")] = None,
    tracking_uri: TrackingOpt = None,
    user: Annotated[str | None, typer.Option(help="Recorded on the study's MLflow run.")] = None,
    quiet: Annotated[bool, typer.Option(help="No live display; just the final report.")] = False,
) -> None:
    """Run a study on Ray Tune, log it to MLflow and print the paper-style report."""
    if resume and not study_id:
        err.print("--resume needs --study-id: the id of the study to continue")
        raise typer.Exit(EXIT_INVALID)
    settings = _settings(tracking_uri, ray_address)
    study = _load(spec, settings)
    view = ProgressView(study, trial_count(study))
    live = Live(view.render(), console=out, refresh_per_second=2, transient=False) if not quiet else None

    def on_progress(records: list) -> None:
        view.update(records)
        if live is not None:
            live.update(view.render())

    try:
        if live is not None:
            live.start()
        from studies.engine import run_study  # imports Ray: only for the command that needs it

        outcome = run_study(
            study, study_id=study_id, user=user, settings=settings, resume=resume, on_progress=on_progress
        )
    except InvalidStudySpec as error:
        err.print(f"[red]cannot run[/red]: {error}")
        raise typer.Exit(EXIT_INVALID) from None
    except KeyboardInterrupt:
        err.print("cancelled before the study started")
        raise typer.Exit(EXIT_CANCELLED) from None
    except Exception as error:
        # Not the study's outcome (Python's own exit code for this, 1, would read as "every trial failed"):
        # the traceback for the log, then one line that says what broke.
        traceback.print_exc()
        message = " ".join(f"{type(error).__name__}: {error}".split())[:1000]
        print(f"{DRIVER_ERROR}{message}", file=sys.stderr, flush=True)
        raise typer.Exit(EXIT_ERROR) from None
    finally:
        if live is not None:
            live.stop()
    from studies.report import render_markdown

    out.print(Markdown(render_markdown(outcome.report)))
    out.print(f"study [bold]{outcome.study_id}[/bold] {outcome.status} in {outcome.wall_seconds:.0f} s")
    out.print(f"MLflow: {settings.resolved_tracking_uri} (experiment {outcome.mlflow.experiment_id})", markup=False)
    for note in outcome.notes:
        err.print(f"note: {note}")
    if outcome.status == "cancelled":
        err.print(f"resume with: mixup-studies run {spec} --study-id {outcome.study_id} --resume")
    raise typer.Exit(EXIT_CODES[outcome.status])


@app.command()
def report(
    study_id: Annotated[str, typer.Argument(help="The study's id.")],
    format: Annotated[str, typer.Option("--format", help="md, json or png.")] = "md",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file.")] = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Print (or write) the report of a running or finished study, read from MLflow."""
    from studies.progress import require_progress
    from studies.report import build_report, render_markdown, render_plot_png

    if format not in ("md", "json", "png"):
        err.print(f"--format must be md, json or png, got {format!r}")
        raise typer.Exit(EXIT_INVALID)
    settings = _settings(tracking_uri)
    try:
        progress = require_progress(settings.resolved_tracking_uri, study_id)
    except StudyNotFound as error:
        err.print(str(error))
        raise typer.Exit(EXIT_INVALID) from None
    if progress.spec is None:
        err.print(f"the spec of study {study_id!r} could not be read from MLflow")
        raise typer.Exit(EXIT_FAILED)
    # The driver's view of the study: once it has ended (its parent run closed), no trial of it runs on.
    ended = progress.status in EXIT_CODES
    trials = settled(progress.trials) if ended else progress.trials
    built = build_report(progress.spec, trials, study_id, study_status=progress.status)
    if format == "png":
        png = render_plot_png(built)
        if png is None:
            err.print("nothing to plot: the study has no finished trials with an α")
            raise typer.Exit(EXIT_FAILED)
        if output is None:
            err.print("--format png needs -o FILE")
            raise typer.Exit(EXIT_INVALID)
        output.write_bytes(png)
        return
    text = built.model_dump_json(indent=2) if format == "json" else render_markdown(built)
    if output is not None:
        output.write_text(text)
    elif format == "md" and sys.stdout.isatty():
        out.print(Markdown(text))
    else:
        typer.echo(text)


# The reproduction suite's command (its own module: it runs many studies and writes docs/REPRODUCTION.md).
app.command("reproduce")(reproduce_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
