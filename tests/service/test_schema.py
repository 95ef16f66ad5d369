"""schemathesis against the live OpenAPI schema (uvicorn on loopback): no 5xx, responses match the schema.

A bounded run over every operation, as a user with a valid token and real studies: their ids are the path
parameters of most cases, and the stateful phase follows the schema's links from ``POST /studies`` to the
created study's other operations.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from service.api.studies import CREATED_LINKS
from service.settings import ServiceSettings
from tests.service.conftest import TINY_SPEC, Api

pytestmark = pytest.mark.slow
CHECKS = ",".join(
    [
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "allow_header_conformance",
        "unsupported_method",
        "use_after_free",
        "ensure_resource_availability",
    ]
)
MAX_EXAMPLES = 50  # per operation and phase: a few hundred cases in all
STATEFUL_EXAMPLES = 200  # scenarios: sequences of calls that follow the links


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # One database is enough here: the API tests run both.
    return f"sqlite:///{tmp_path / 'service.db'}"


@pytest.fixture
def settings(settings: ServiceSettings) -> ServiceSettings:
    # The queue limit has its own tests; here it would turn most created studies into 429s and leave the
    # stateful phase no study to follow links from.
    return settings.model_copy(update={"max_queued_per_user": 100_000})


def _real_studies(api: Api, count: int) -> list[str]:
    with api.client("alice") as client:
        created = [client.post("/api/v1/studies", json=TINY_SPEC) for _ in range(count)]
    assert [r.status_code for r in created] == [201] * count
    return [r.json()["id"] for r in created]


def test_api_conforms_to_its_schema(api: Api, tmp_path: Path) -> None:
    ids = _real_studies(api, 3)
    config = tmp_path / "schemathesis.toml"
    # Most cases use a real study (path parameters are otherwise random strings: 404 every time).
    config.write_text(
        f"[dictionaries.studies]\nvalues = {ids!r}\n\n"
        '[parameters]\n"path.study_id" = { dictionary = "studies", probability = 0.8 }\n\n'
        f"[phases.stateful.generation]\nmax-examples = {STATEFUL_EXAMPLES}\n\n"
        "[phases.stateful.inference]\nalgorithms = []\n"  # the schema's own links only
    )
    schemathesis = str(Path(sys.executable).parent / "schemathesis")
    result = subprocess.run(
        [schemathesis, "--no-color", "--config-file", str(config), "run", f"{api.url}/openapi.json",
         "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", "1", "--workers", "1",
         "--phases", "examples,coverage,fuzzing,stateful",
         "-H", f"Authorization: Bearer {api.tokens['alice']}"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    # The stateful phase followed every link the schema declares (schemathesis' own inference is off).
    links = re.search(r"API Links: +(\d+) covered / (\d+) selected", result.stdout)
    assert links is not None, result.stdout[-3000:]
    assert links.groups() == (str(len(CREATED_LINKS)),) * 2
