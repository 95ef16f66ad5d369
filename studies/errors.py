"""The exception hierarchy of studies."""

from __future__ import annotations


class StudyError(Exception):
    """Base class of every error raised by studies."""


class InvalidStudySpec(StudyError, ValueError):
    """A study description that cannot run; ``errors`` lists ``(field, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" if field else message for field, message in errors))


class Unschedulable(InvalidStudySpec):
    """No node of the Ray cluster can hold one trial's resources: the study could never run a trial."""


class StudyNotFound(StudyError, LookupError):
    """No study (MLflow parent run / Tune experiment) with that id."""
