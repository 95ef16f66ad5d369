"""The ``mixup-studies`` command: the study commands of :mod:`studies.cli` plus the service's own.

The service issue adds ``serve``, ``token``, and the REST client commands
(``submit``, ``list``, ``status``, ``trials``, ``cancel``) to the same Typer app.
"""

from __future__ import annotations

from studies.cli import app


def main() -> None:
    app()
