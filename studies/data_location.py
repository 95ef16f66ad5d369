"""What a spec's ``dataset.data_dir`` means: decided once, where a spec is accepted.

A spec may name its dataset location relative to the data root (``MIXUP_STUDIES_DATA_DIR``,
default ``<home>/data``). The place that accepts the spec turns that into an
absolute path once — the service at submit (:mod:`service.data_paths`, which also
confines it to the root), the CLI's ``run`` / ``validate`` when they read a file
(:func:`place_data_dir`) — and everything below (the engine, the trainable,
mixup_core) takes the absolute path as it is: nothing there expands ``~`` or
resolves a path against a working directory (a Ray trial's is its session folder).
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from studies.errors import InvalidStudySpec
from studies.spec import StudySpec

FIELD = "dataset.data_dir"


_UNUSABLE = {"Cc": "a control character", "Cs": "a lone surrogate"}


def bad_character(text: str) -> str | None:
    """What no path should hold, the first one found: a control character (NUL, newline, DEL, C1 ...),
    or a lone surrogate (not text: it has no UTF-8 encoding); e.g. ``"a control character (U+0000)"``."""
    for char in text:
        kind = _UNUSABLE.get(unicodedata.category(char))
        if kind is not None:
            return f"{kind} (U+{ord(char):04X})"
    return None


def with_data_dir(spec: StudySpec, data_dir: Path) -> StudySpec:
    """``spec`` with ``dataset.data_dir`` replaced (the rest of the validated spec unchanged)."""
    return spec.model_copy(update={"dataset": spec.dataset.model_copy(update={"data_dir": data_dir})})


def place_data_dir(spec: StudySpec, data_root: Path) -> StudySpec:
    """The CLI's reading of a spec file: ``~`` is the user's home, a relative path is under ``data_root``.

    An absolute path is taken as it is (the service's stored specs hold one, and its driver is this CLI).

    Raises:
        InvalidStudySpec: the path holds a control character (a NUL byte cannot name a file) or a lone surrogate.
    """
    data_dir = spec.dataset.data_dir
    if data_dir is None:
        return spec
    bad = bad_character(str(data_dir))
    if bad is not None:
        raise InvalidStudySpec([(FIELD, f"must not contain {bad}, got {str(data_dir)!r}")])
    if data_dir.is_absolute():
        return spec
    path = data_dir.expanduser()
    return with_data_dir(spec, path if path.is_absolute() else data_root.absolute() / path)


def require_absolute(spec: StudySpec, default_root: Path) -> StudySpec:
    """The spec as a study driver runs it: no data_dir means ``default_root``; a relative one is refused.

    Raises:
        InvalidStudySpec: ``dataset.data_dir`` is not absolute (a spec that did not come through the
            service or the CLI, e.g. a direct ``run_study`` call) or holds a control character.
    """
    data_dir = spec.dataset.data_dir
    if data_dir is None:
        return with_data_dir(spec, default_root.absolute())
    text = str(data_dir)
    if not data_dir.is_absolute() or bad_character(text) is not None:
        raise InvalidStudySpec([
            (FIELD, f"must be an absolute path without control characters when a study runs, got {text!r} "
                    "(the service and `mixup-studies run` place a relative path under the data root)"),
        ])  # fmt: skip
    return spec
