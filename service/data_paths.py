"""A submitted spec's ``dataset.data_dir``, confined to the data root and made absolute, once, at submit.

A REST spec is untrusted. Its ``data_dir`` names a folder under the service's
data root (``MIXUP_STUDIES_DATA_DIR``): relative paths are read from the root,
an absolute path must already lie under it. What is stored (and what the driver,
the trainer and mixup_core use as it is) is the absolute path with every symbolic
link resolved, so the folder that was checked is the folder that is read.
Refused with a 422 naming the field and the value: control characters (a NUL byte
cannot name a file) and lone surrogates, ``~`` (it would be some user's home), ``..`` (a path under the
root never needs it), a path outside the root, one that leaves the root through a
symbolic link, and the service's own folders (logs, stored specs, artifacts, Ray
results) where the data root holds them.
"""

from __future__ import annotations

from pathlib import Path

from service.errors import BadSpec
from service.settings import ServiceSettings
from studies.data_location import FIELD, bad_character, with_data_dir
from studies.spec import StudySpec

#: Longest data_dir accepted (Linux's PATH_MAX); longer ones cannot be opened anyway.
MAX_PATH_CHARS = 4096


def _refuse(reason: str, raw: str) -> BadSpec:
    return BadSpec([(FIELD, f"{reason}, got {raw!r}")])


def _syntax_problem(raw: str, path: Path) -> str | None:
    """Why the text itself is refused, before the file system is asked anything."""
    bad = bad_character(raw)
    if bad is not None:
        return f"must not contain {bad}"
    if len(raw) > MAX_PATH_CHARS:
        return f"must be at most {MAX_PATH_CHARS} characters (it has {len(raw)})"
    if raw.startswith("~"):
        return "must not start with '~' (a home directory); give a path relative to the data root"
    if ".." in path.parts:
        return "must not contain '..'; give a path relative to the data root"
    return None


def own_folders(settings: ServiceSettings) -> list[Path]:
    """The service's state that a dataset folder must be neither nor lie in (resolved)."""
    folders = [settings.logs_dir, settings.specs_dir, settings.artifact_root]
    if "://" not in settings.resolved_results_uri:
        folders.append(Path(settings.resolved_results_uri))
    if settings.ray_temp_dir is not None:
        folders.append(settings.ray_temp_dir)
    return [folder.expanduser().resolve() for folder in folders]


def confine(raw: str, data_root: Path, reserved: list[Path] | tuple[Path, ...] = ()) -> Path:
    """The absolute, symlink-free folder ``raw`` names under ``data_root``.

    Args:
        raw: The spec's ``dataset.data_dir``.
        data_root: The service's data root.
        reserved: Resolved folders the path must be neither nor lie in (:func:`own_folders`).

    Raises:
        BadSpec: (422) the path is refused; the message names ``dataset.data_dir`` and the value.
    """
    path = Path(raw)
    problem = _syntax_problem(raw, path)
    if problem is not None:
        raise _refuse(problem, raw)
    try:
        root = data_root.resolve()
        lexical = path if path.is_absolute() else root / path
        resolved = lexical.resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop, a component too long
        raise _refuse(f"cannot be resolved ({error})", raw) from None
    if not resolved.is_relative_to(root):
        if lexical.is_relative_to(root) or lexical.is_relative_to(data_root.absolute()):
            raise _refuse(f"leads out of the data root {str(root)!r} through a symbolic link", raw)
        raise _refuse(f"must be inside the data root {str(root)!r} (or relative to it)", raw)
    for folder in reserved:
        if resolved.is_relative_to(folder):
            raise _refuse(f"is the service's own folder {str(folder)!r}, not a dataset folder", raw)
    return resolved


def confine_data_dir(spec: StudySpec, settings: ServiceSettings) -> StudySpec:
    """``spec`` with its ``dataset.data_dir`` (if any) replaced by :func:`confine`'s absolute path.

    No data_dir stays None: the driver then uses its own configured data root.
    """
    if spec.dataset.data_dir is None:
        return spec
    placed = confine(str(spec.dataset.data_dir), settings.resolved_data_dir, own_folders(settings))
    return with_data_dir(spec, placed)
