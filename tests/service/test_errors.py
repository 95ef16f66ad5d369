"""Errors users see from the API: a JSON 500 on a connection that stays usable, 4xx that say what and where,
and a schema that publishes what the server enforces."""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from mixup_core import DATASET_NAMES, MODEL_NAMES
from service.api import create_app
from service.settings import ServiceSettings
from studies.spec import KNOWN_METRICS
from tests.service.conftest import TINY_SPEC, Api, make_token
from tests.support.processes import free_port, wait_until

STUDIES = "/api/v1/studies"


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # Nothing here depends on the database: the API tests run both.
    return f"sqlite:///{tmp_path / 'service.db'}"


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn on loopback, on httptools as ``serve`` runs it."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off", http="httptools")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, 0.05, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _client_addr(response: httpx.Response) -> object:
    """The client's end of the connection that carried ``response``."""
    return response.extensions["network_stream"].get_extra_info("client_addr")


def test_an_unexpected_exception_is_a_json_500_and_the_connection_stays_usable(
    settings: ServiceSettings, engine: Engine
) -> None:
    app = create_app(settings, engine)

    @app.get("/api/v1/fault")
    def fault() -> None:  # a fault injected for real: the handler raises what nothing maps to a status
        raise RuntimeError("injected fault")

    token = make_token(engine, "alice")
    with served(app) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        broken = client.get("/api/v1/fault")
        connection = _client_addr(broken)
        assert broken.status_code == 500
        assert broken.headers["content-type"] == "application/json"
        assert broken.json() == {"detail": "internal error; see the service log"}
        assert broken.headers.get("connection", "keep-alive").lower() != "close"
        after = client.get("/api/v1/studies")
        assert after.status_code == 200
        assert after.json()["total"] == 0
        assert _client_addr(after) == connection  # the same keep-alive connection served both


def test_a_405_lists_every_method_of_the_path(api: Api) -> None:
    with api.client() as client:
        allowed = {path: client.put(path).headers["allow"] for path in (STUDIES, f"{STUDIES}/x", f"{STUDIES}/x/cancel")}
    assert allowed == {STUDIES: "GET, POST", f"{STUDIES}/x": "GET, DELETE", f"{STUDIES}/x/cancel": "POST"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'{"name": "ab\x00cd"}',
            "body is not valid JSON (control character (\\u0000-\\u001F) found while parsing a string"
            " at line 1 column 13)",
        ),
        (b'{"name": ', "body is not valid JSON (EOF while parsing a value at line 1 column 9)"),
    ],
)
def test_a_json_decode_error_is_located_at_the_body_with_its_position_in_the_message(
    api: Api, content: bytes, message: str
) -> None:
    with api.client() as client:
        response = client.post(STUDIES, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"loc": ["body"], "msg": message, "type": "json_invalid"}]


def _schema(api: Api) -> dict[str, Any]:
    with api.client(None) as client:
        return client.get("/openapi.json").json()["components"]["schemas"]


def test_the_schema_publishes_the_names_and_patterns_the_server_checks(api: Api) -> None:
    schemas = _schema(api)
    spec = schemas["StudySpec"]["properties"]
    assert spec["name"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._-]*$"
    assert spec["metric"]["enum"] == list(KNOWN_METRICS)
    assert schemas["DataConfig"]["properties"]["name"]["enum"] == list(DATASET_NAMES)
    models = schemas["ModelConfig"]["properties"]["name"]["enum"]
    assert models[: len(MODEL_NAMES)] == list(MODEL_NAMES)
    assert "torchvision:resnet18" in models
    layer = schemas["MixupConfig"]["properties"]["layer"]["pattern"]
    assert schemas["SearchSpace"]["properties"]["layer"]["anyOf"][0]["items"]["pattern"] == layer
    assert schemas["TrainConfig"]["properties"]["device"]["pattern"] == "^(auto|cpu|cuda(:[0-9]+)?)$"
    assert schemas["SearchConfig"]["properties"]["seeds"]["uniqueItems"] is True
    milestone = schemas["TrainConfig"]["properties"]["milestones"]["items"]
    assert milestone == {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}


def _accepted(api: Api, spec: dict[str, Any]) -> bool:
    """Whether the API takes ``spec`` (a study it took is cancelled and deleted again: the queue stays short)."""
    with api.client() as client:
        response = client.post(STUDIES, json=spec)
        if response.status_code != 201:
            assert response.status_code == 422, response.text
            return False
        study_id = response.json()["id"]
        assert client.post(f"{STUDIES}/{study_id}/cancel").status_code == 200
        assert client.delete(f"{STUDIES}/{study_id}").status_code == 204
        return True


def test_every_dataset_name_of_the_schema_is_accepted(api: Api) -> None:
    names = _schema(api)["DataConfig"]["properties"]["name"]["enum"]
    assert {name: _accepted(api, {**TINY_SPEC, "dataset": {"name": name}}) for name in names} == dict.fromkeys(
        names, True
    )


@pytest.mark.parametrize(
    ("field", "value", "by_schema"),
    [
        ("name", "run.1_a-b", True),
        ("name", "-run", False),
        ("name", "run 1", False),
        ("name", "run\n", False),  # a bare `$` matched before a final newline
        ("training.device", "cpu", True),
        ("training.device", "cpu\n", False),
        ("training.device", "cuda:\u0661", False),  # an Arabic-Indic digit: \d in Python, not in JSON Schema
        ("mixup.layer", "input\n", False),
    ],
)
def test_the_server_accepts_what_the_published_pattern_accepts(
    api: Api, field: str, value: str, by_schema: bool
) -> None:
    schemas = _schema(api)
    section, _, key = field.rpartition(".")
    model = {"": "StudySpec", "training": "TrainConfig", "mixup": "MixupConfig"}[section]
    assert _ecma_full_match(schemas[model]["properties"][key]["pattern"], value) == by_schema
    spec = copy.deepcopy(TINY_SPEC)
    (spec.setdefault(section, {}) if section else spec)[key] = value
    assert _accepted(api, spec) == by_schema


def _ecma_full_match(pattern: str, value: str) -> bool:
    # JSON Schema patterns are ECMA-262: `$` is the end of the string only and [0-9] is ASCII; re.ASCII and
    # a `$` read as `\Z` give Python the same meaning for these patterns.
    return re.search(pattern.removesuffix("$") + r"\Z", value, re.ASCII) is not None
