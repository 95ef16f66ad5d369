"""Spec files as both CLIs read them (``validate`` of the studies CLI, ``submit`` of the service's), for real.

Every file that is not a spec is exit 2 and one line saying why, never a traceback or a hang.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from studies.specfile import MAX_SPEC_FILE_BYTES
from tests.studies.test_spec import run_cli
from tests.support.processes import free_port


def alias_bomb(levels: int = 9) -> str:
    """ "Billion laughs": each level lists the previous one 9 times; 9 levels (425 bytes) stand for 9**9 strings."""
    lines = [f"a: &a [{', '.join(['lol'] * 9)}]"]
    for level in range(1, levels):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join([*lines, "name: bomb"]) + "\n"


def submit_cli(path: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``mixup-studies submit PATH`` against a port nobody listens on: reading the file is all that may happen."""
    env = {
        "MIXUP_STUDIES_HOME": str(home),
        "MIXUP_STUDIES_URL": f"http://127.0.0.1:{free_port()}",
        "MIXUP_STUDIES_TOKEN": "unused",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "submit", str(path)], capture_output=True, text=True, env=env, timeout=60
    )


def _files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of bad file → (its path, what the one-line error must say)."""
    bomb = folder / "bomb.yaml"
    bomb.write_text(alias_bomb())
    latin1 = folder / "latin1.yaml"
    latin1.write_bytes("name: café\n".encode("latin-1"))
    huge = folder / "huge.yaml"
    huge.write_text("#" * (MAX_SPEC_FILE_BYTES + 1))
    listed = folder / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    deep = folder / "deep.yaml"
    deep.write_text("[" * 5000)
    broken = folder / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    return {
        "alias bomb": (
            bomb,
            "line 1, column 4: YAML anchors and aliases are not allowed in a study spec, found anchor &a",
        ),
        "not UTF-8": (latin1, f"{latin1} is not UTF-8 text (byte 9: invalid continuation byte)"),
        "huge": (huge, f"is larger than {MAX_SPEC_FILE_BYTES} bytes"),
        "directory": (folder, f"the spec file {str(folder)!r} is not a regular file"),
        "missing": (folder / "missing.yaml", "No such file or directory"),
        "not a mapping": (listed, "got list"),
        "deeply nested": (deep, f"{deep} nests its YAML too deeply"),
        "broken": (broken, "is not valid YAML: line 2, column 1: while parsing a flow sequence, expected ',' or ']'"),
    }


pytestmark = pytest.mark.slow  # a CLI in a subprocess imports torch: seconds each
KINDS = ["alias bomb", "not UTF-8", "huge", "directory", "missing", "not a mapping", "deeply nested", "broken"]


@pytest.mark.parametrize("kind", KINDS)
def test_validate_refuses_a_bad_file_with_exit_2_and_one_line(kind: str, tmp_path: Path) -> None:
    path, message = _files(tmp_path)[kind]
    result = run_cli("validate", str(path), home=tmp_path / "home")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"invalid study spec {path}:"
    assert len(lines) == 2
    assert message in lines[1]


@pytest.mark.parametrize("kind", ["alias bomb", "not UTF-8", "directory", "not a mapping"])  # the rest: validate's
def test_submit_refuses_a_bad_file_with_exit_2_and_one_line(kind: str, tmp_path: Path) -> None:
    path, message = _files(tmp_path)[kind]
    result = submit_cli(path, home=tmp_path / "home")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
