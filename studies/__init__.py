"""studies: the study schema, the Ray Tune engine, MLflow tracking and paper-style reports.

The package face holds what is light to import (no Ray). The driver itself is
``studies.engine.run_study``: importing it starts Ray Tune's import, which the
service must not pay.
"""

from studies.errors import InvalidStudySpec, StudyError, StudyNotFound, Unschedulable
from studies.records import TrialRecord
from studies.settings import StudySettings
from studies.spec import StudySpec
from studies.specfile import load_spec, parse_spec, preset_path

__all__ = [
    "InvalidStudySpec",
    "StudyError",
    "StudyNotFound",
    "StudySettings",
    "StudySpec",
    "TrialRecord",
    "Unschedulable",
    "load_spec",
    "parse_spec",
    "preset_path",
]
