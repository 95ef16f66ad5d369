"""``mixup-studies reproduce``: run the suite's experiments (or some), and/or render docs/REPRODUCTION.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from studies.reproduce.experiments import DEFAULT_DOC, DEFAULT_RESULTS
from studies.reproduce.machine import RAY_WORKER_NICENESS
from studies.settings import StudySettings

err = Console(stderr=True)
EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _settings(home: Path | None) -> StudySettings:
    settings = StudySettings()
    if home is not None:
        # The studies' MLflow store and Ray results go under ``home``; the data stay where they are.
        settings = settings.model_copy(update={"home": home, "data_dir": settings.resolved_data_dir})
    return settings


def reproduce(
    names: Annotated[list[str] | None, typer.Argument(help="Experiments to run (default: all; see --list).")] = None,
    quick: Annotated[bool, typer.Option(help="Each experiment's tiny quick setting (the test suite's).")] = False,
    render_doc: Annotated[
        bool, typer.Option("--render", help="Write the document from the results file (after any runs).")
    ] = False,
    list_only: Annotated[bool, typer.Option("--list", help="List the experiments and their claims.")] = False,
    results: Annotated[Path, typer.Option(help="The JSON-lines file each run appends to.")] = DEFAULT_RESULTS,
    doc: Annotated[Path, typer.Option(help="The document --render writes.")] = DEFAULT_DOC,
    home: Annotated[
        Path | None,
        typer.Option(help="Where the studies' MLflow store and Ray results go (default: MIXUP_STUDIES_HOME)."),
    ] = None,
) -> None:
    """Reproduce the paper's findings: each experiment a real study, each claim with its 95 % CI (one JSON line
    per experiment on stdout and in --results); --render writes docs/REPRODUCTION.md from those lines."""
    # Imported here: the report and the engine are seconds of imports the other commands do not need.
    from studies.reproduce.registry import experiments, get
    from studies.reproduce.render import read_lines, render, write_document
    from studies.reproduce.runner import run_experiment

    if list_only:
        for experiment in experiments():
            typer.echo(f"{experiment.name}: {experiment.title} (preset {experiment.preset})")
            for claim in experiment.claims:
                typer.echo(f"  {claim.title}: the paper's row is {claim.direction} ({claim.source})")
        return
    try:
        chosen = [get(n) for n in names] if names else ([] if render_doc else list(experiments()))
    except KeyError as error:
        err.print(error.args[0], markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    # Ray starts its workers at niceness 15 by default: on a machine shared with other work at normal priority
    # the trials then got a fraction of a core and the wall time in the line measured the neighbours. The suite's
    # trials run at the driver's priority unless RAY_worker_niceness says otherwise.
    os.environ.setdefault(RAY_WORKER_NICENESS, "0")
    failed = 0
    for experiment in chosen:
        line = run_experiment(experiment, quick=quick, settings=_settings(home), results=results, echo=typer.echo)
        failed += line["status"] != "succeeded"
    if render_doc:
        write_document(doc, render(read_lines(results), experiments(), include_quick=quick))
        err.print(f"wrote {doc}", markup=False)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)
