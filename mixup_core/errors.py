"""The exception hierarchy of mixup_core.

Every error a user can cause by a bad setting derives from ``ValueError`` as well,
so callers that only know Python's conventions still catch it.
"""

from __future__ import annotations


class MixupCoreError(Exception):
    """Base class of every error raised by mixup_core."""


class InvalidConfig(MixupCoreError, ValueError):
    """A configuration value that cannot run; the message names field and value."""


class DatasetNotFound(MixupCoreError, FileNotFoundError):
    """The dataset's files are not where the configuration says they are."""


class TrainingDiverged(MixupCoreError, RuntimeError):
    """The training loss became NaN or infinite; training stopped early."""
