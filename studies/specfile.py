"""Reading a StudySpec from YAML / JSON / a dict, with errors a person can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from studies.errors import InvalidStudySpec
from studies.spec import DEFAULT_MAX_TRIALS, StudySpec


def validation_errors(error: ValidationError) -> list[tuple[str, str]]:
    """pydantic's errors as ``(dotted.field, message)`` pairs, the input value named."""
    pairs = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] not in ("value_error", "missing") and "input" in item:
            shown = repr(item["input"])
            message = f"{message}, got {shown[:200]}"
        pairs.append((where, message))
    return pairs


def parse_spec(data: Any, max_trials: int = DEFAULT_MAX_TRIALS) -> StudySpec:
    """Validate a spec given as plain data (a YAML document, a JSON body).

    Raises:
        InvalidStudySpec: listing every problem as ``(field, message)``.
    """
    if not isinstance(data, dict):
        raise InvalidStudySpec([("", f"a study spec is a mapping of fields, got {type(data).__name__}")])
    try:
        return StudySpec.model_validate(data, context={"max_trials": max_trials})
    except ValidationError as error:
        raise InvalidStudySpec(validation_errors(error)) from None


def load_spec(path: str | Path, max_trials: int = DEFAULT_MAX_TRIALS) -> StudySpec:
    """Read and validate a spec file (YAML, which includes JSON).

    Raises:
        InvalidStudySpec: the file is missing, is not YAML, or describes a study that cannot run.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise InvalidStudySpec([("", f"cannot read the spec file {str(path)!r}: {error.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidStudySpec([("", f"{path} is not valid YAML: {error}")]) from None
    return parse_spec(data, max_trials)


def preset_path(name: str) -> Path:
    """The path of a bundled preset (``smoke`` → ``studies/presets/smoke.yaml``)."""
    return Path(__file__).parent / "presets" / f"{name}.yaml"
