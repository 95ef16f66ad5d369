"""schemathesis against the live OpenAPI schema (uvicorn on loopback): no 5xx, responses match the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.conftest import Api

pytestmark = pytest.mark.slow
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # One database is enough here: the API tests run both.
    return f"sqlite:///{tmp_path / 'service.db'}"


def test_api_conforms_to_its_schema(api: Api, tmp_path: Path) -> None:
    schemathesis = str(Path(sys.executable).parent / "schemathesis")
    result = subprocess.run(
        [schemathesis, "run", f"{api.url}/openapi.json", "--checks", CHECKS, "--max-examples", "30",
         "-H", f"Authorization: Bearer {api.tokens['admin']}", "--no-color", "--seed", "1"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
