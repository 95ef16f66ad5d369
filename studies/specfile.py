"""Reading a StudySpec from YAML / JSON / a dict, with errors a person can act on.

Every spec file (``validate``, ``run``, ``submit``) is read by :func:`read_spec_file`: a bounded size, UTF-8,
and YAML without anchors or aliases.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from studies.errors import InvalidStudySpec
from studies.spec import DEFAULT_MAX_TRIALS, StudySpec

#: Largest spec file read. Specs are a few KB (the largest preset is under 2 KB); the API takes 1 MiB bodies.
MAX_SPEC_FILE_BYTES = 1024 * 1024


class SpecLoader(yaml.SafeLoader):
    """YAML's safe subset, without anchors and aliases.

    Aliases let a 1 KB file ("billion laughs") stand for gigabytes once expanded: ``submit`` hung turning it
    into JSON. A spec has no use for them, so the first anchor or alias is an error naming its line.
    """

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise yaml.composer.ComposerError(
                None, None, f"YAML anchors and aliases are not allowed in a study spec, found {kind}{event.anchor}",
                event.start_mark,
            )  # fmt: skip
        return super().compose_node(parent, index)


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


def _read_bytes(path: Path) -> bytes:
    """The file's bytes: a regular file (a FIFO would block, a directory is no spec) of a bounded size."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise InvalidStudySpec([("", f"the spec file {str(path)!r} is not a regular file")])
        with path.open("rb") as file:
            raw = file.read(MAX_SPEC_FILE_BYTES + 1)
    except OSError as error:
        raise InvalidStudySpec([("", f"cannot read the spec file {str(path)!r}: {error.strerror}")]) from None
    if len(raw) > MAX_SPEC_FILE_BYTES:
        raise InvalidStudySpec([("", f"the spec file {str(path)!r} is larger than {MAX_SPEC_FILE_BYTES} bytes")])
    return raw


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's error on one line: where, and what (its own text spans lines and quotes the source)."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return str(error)
    what = ", ".join(part for part in (error.context, error.problem) if part) or "parse error"
    mark = error.problem_mark or error.context_mark
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark is not None else what


def read_spec_file(path: str | Path) -> Any:
    """The YAML document in a spec file (YAML includes JSON), not validated yet.

    Raises:
        InvalidStudySpec: the file is missing, not a regular file, too large, not UTF-8, or not YAML
            (anchors and aliases included, see :class:`SpecLoader`).
    """
    path = Path(path)
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidStudySpec([("", f"{path} is not UTF-8 text (byte {error.start}: {error.reason})")]) from None
    try:
        return yaml.load(text, Loader=SpecLoader)  # a SafeLoader
    except yaml.YAMLError as error:
        raise InvalidStudySpec([("", f"{path} is not valid YAML: {_yaml_problem(error)}")]) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise InvalidStudySpec([("", f"{path} nests its YAML too deeply")]) from None


def load_spec(path: str | Path, max_trials: int = DEFAULT_MAX_TRIALS) -> StudySpec:
    """Read (:func:`read_spec_file`) and validate a spec file.

    Raises:
        InvalidStudySpec: the file cannot be read as YAML, or describes a study that cannot run.
    """
    return parse_spec(read_spec_file(path), max_trials)


def preset_path(name: str) -> Path:
    """The path of a bundled preset (``smoke`` → ``studies/presets/smoke.yaml``)."""
    return Path(__file__).parent / "presets" / f"{name}.yaml"
