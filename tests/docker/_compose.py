"""Reading docker/compose.yaml offline: YAML with compose's tags, variable interpolation, override merging.

The build machines have no Docker engine and no compose v2 plugin, so the compose files are checked
against the parts of the Compose specification they use: ``${VAR}``, ``${VAR:-default}``,
``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}`` and ``$$``; ``!reset`` / ``!override`` in
override files; and the merge rules for the keys we override (mappings merge, ``command`` and
``build`` args replace).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

DOCKER_DIR = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = DOCKER_DIR / "compose.yaml"
COMPOSE_CPU = DOCKER_DIR / "compose.cpu.yaml"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"

# $$ | ${NAME} | ${NAME<op><word>} with op one of :- - :? ?
_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?)(?P<word>[^}]*))?\}")
_BARE = re.compile(r"(?<!\$)\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


class Reset:
    """``!reset`` in an override: the key goes back to unset."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Override:
    """``!override`` in an override: the value replaces instead of merging."""

    def __init__(self, value: Any) -> None:
        self.value = value


class ComposeLoader(yaml.SafeLoader):
    """SafeLoader that knows compose's ``!reset`` and ``!override``."""


def _construct(cls: type) -> Any:
    def build(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return cls(loader.construct_mapping(node, deep=True))
        if isinstance(node, yaml.SequenceNode):
            return cls(loader.construct_sequence(node, deep=True))
        return cls(loader.construct_scalar(node))  # type: ignore[arg-type]

    return build


ComposeLoader.add_constructor("!reset", _construct(Reset))
ComposeLoader.add_constructor("!override", _construct(Override))


def load_raw(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=ComposeLoader)  # a SafeLoader subclass
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


class MissingVariable(KeyError):
    """A ``${VAR:?message}`` whose variable is unset."""


def referenced_variables(value: Any) -> set[str]:
    """Names of every ``${VAR...}`` in a loaded document (``$$`` escapes are skipped)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found |= referenced_variables(key) | referenced_variables(item)
    elif isinstance(value, list):
        for item in value:
            found |= referenced_variables(item)
    elif isinstance(value, Reset | Override):
        found |= referenced_variables(value.value)
    elif isinstance(value, str):
        found |= {m.group("name") for m in _VAR.finditer(value) if m.group("name")}
    return found


def bare_variables(value: Any) -> set[str]:
    """``$NAME`` without braces (after removing ``$$``): compose interpolates them too, so we forbid them."""
    found: set[str] = set()
    if isinstance(value, dict):
        for item in value.values():
            found |= bare_variables(item)
    elif isinstance(value, list):
        for item in value:
            found |= bare_variables(item)
    elif isinstance(value, str):
        found |= {m.group("name") for m in _BARE.finditer(value.replace("$$", ""))}
    return found


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Resolve variables as compose does; raise :class:`MissingVariable` for an unset required one."""
    if isinstance(value, dict):
        return {interpolate(k, env): interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, Reset | Override):
        return type(value)(interpolate(value.value, env))
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, word = match.group("name"), match.group("op"), match.group("word") or ""
        current = env.get(name)
        if op == ":-":
            return current if current else word
        if op == "-":
            return current if current is not None else word
        if op in (":?", "?") and (current is None or (op == ":?" and not current)):
            raise MissingVariable(f"{name}: {word}")
        return current or ""

    return _VAR.sub(substitute, value)


def merge(base: Any, override: Any) -> Any:
    """Merge an override file's node into the base (compose merge rules for what we use)."""
    if isinstance(override, Reset):
        return None
    if isinstance(override, Override):
        return override.value
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            if key in ("command", "entrypoint", "build"):  # replaced whole (build: args too, simpler and stricter)
                out[key] = value.value if isinstance(value, Override) else value
            else:
                merged = merge(base.get(key), value)
                if merged is None and isinstance(value, Reset):
                    out.pop(key, None)
                else:
                    out[key] = merged
        return out
    return override


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blanks skipped)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"not KEY=VALUE in {path.name}: {line!r}"
        env[key.strip()] = value.strip()
    return env


def documented_variables(path: Path) -> dict[str, str]:
    """KEY → the comment block right above it in ``.env.example`` (consecutive keys share one block)."""
    docs: dict[str, str] = {}
    comment: list[str] = []
    shared = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("# "))
        elif "=" in stripped:
            text = " ".join(c for c in comment if c and not c.startswith("---"))
            shared = text or shared
            docs[stripped.split("=", 1)[0]] = shared
            comment = []
        else:
            comment, shared = [], ""
    return docs


def resolved(*paths: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The merged and interpolated model of ``paths`` (like ``docker compose -f A -f B config``)."""
    variables = read_env_file(ENV_EXAMPLE) if env is None else env
    model: Any = {}
    for path in paths:
        model = merge(model, load_raw(path))
    result = interpolate(model, variables)
    assert isinstance(result, dict)
    return {k: v for k, v in result.items() if not k.startswith("x-")}
