"""dataset.data_dir at submit, over real HTTP: confined to the data root, stored as an absolute path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.settings import ServiceSettings
from tests.service.conftest import TINY_SPEC, Api
from tests.service.test_api import STUDIES, study_rows


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'service.db'}"  # the path check is the same on every database


@pytest.fixture
def settings(settings: ServiceSettings, request: pytest.FixtureRequest) -> ServiceSettings:
    """conftest's settings; with the indirect parameter "home as data root", datasets live in the home."""
    if getattr(request, "param", None) == "home as data root":
        return settings.model_copy(update={"data_dir": settings.home_dir})
    return settings


@pytest.fixture
def root(api: Api) -> Path:
    root = api.settings.resolved_data_dir
    (root / "cifar").mkdir(parents=True)
    outside = root.parent.parent / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "inner").symlink_to(root / "cifar")
    return root


def _post(api: Api, data_dir: str) -> httpx.Response:
    spec: dict[str, Any] = copy.deepcopy(TINY_SPEC)
    spec["dataset"]["data_dir"] = data_dir
    with api.client() as client:
        return client.post(STUDIES, json=spec)


@pytest.mark.parametrize(
    ("data_dir", "reason"),
    [
        ("~/../tmp/x", "must not start with '~'"),
        ("~", "must not start with '~'"),
        ("../x", "must not contain '..'"),
        ("cifar/../../x", "must not contain '..'"),
        ("/etc", "must be inside the data root"),
        ("escape", "leads out of the data root"),
        ("escape/cifar-10-batches-py", "leads out of the data root"),
        ("a\u0000b", "must not contain a control character (U+0000)"),
        ("a\nb", "must not contain a control character (U+000A)"),
        ("a\u0085b", "must not contain a control character (U+0085)"),
        ("x" * 5000, "must be at most 4096 characters"),
    ],
)
def test_hostile_data_dirs_are_refused(api: Api, root: Path, data_dir: str, reason: str) -> None:
    spec: dict[str, Any] = copy.deepcopy(TINY_SPEC)
    spec["dataset"]["data_dir"] = data_dir
    body = json.dumps(spec)  # ASCII: a lone surrogate travels as a \uXXXX escape, as JSON allows
    with api.client() as client:
        response = client.post(STUDIES, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert client.get(STUDIES).status_code == 200  # the same keep-alive connection still answers
    assert "dataset.data_dir" in detail
    assert reason in detail
    assert repr(str(Path(data_dir)))[:100] in detail
    assert study_rows(api) == 0


def test_an_absolute_symlink_out_of_the_root_is_refused(api: Api, root: Path) -> None:
    response = _post(api, str(root / "escape"))
    assert response.status_code == 422
    assert "leads out of the data root" in response.json()["detail"]


@pytest.mark.parametrize(
    ("data_dir", "stored"),
    [("cifar", "cifar"), ("./cifar/", "cifar"), ("new/folder", "new/folder"), (".", ""), ("inner", "cifar")],
)
def test_a_good_path_is_stored_absolute_under_the_root(api: Api, root: Path, data_dir: str, stored: str) -> None:
    response = _post(api, data_dir)
    assert response.status_code == 201, response.text
    expected = str((root / stored).resolve()) if stored else str(root.resolve())
    assert response.json()["spec"]["dataset"]["data_dir"] == expected
    with api.client() as client:
        assert client.get(f"{STUDIES}/{response.json()['id']}").json()["spec"]["dataset"]["data_dir"] == expected


def test_an_absolute_path_under_the_root_is_accepted(api: Api, root: Path) -> None:
    response = _post(api, str(root / "cifar"))
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["dataset"]["data_dir"] == str((root / "cifar").resolve())


@pytest.mark.parametrize("data_dir", [f"a{chr(0xD800)}b", f"a{chr(0xDC80)}b"], ids=["D800", "DC80"])
def test_a_lone_surrogate_is_refused_by_the_body_parser(api: Api, data_dir: str) -> None:
    """JSON may carry a lone surrogate as an escape; the service's JSON parser refuses it before any field."""
    spec: dict[str, Any] = copy.deepcopy(TINY_SPEC)
    spec["dataset"]["data_dir"] = data_dir
    with api.client() as client:
        response = client.post(STUDIES, content=json.dumps(spec), headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        assert "body is not valid JSON" in response.json()["detail"]
        assert client.get(STUDIES).status_code == 200
    assert study_rows(api) == 0


def test_no_data_dir_stays_none(api: Api) -> None:
    with api.client() as client:
        response = client.post(STUDIES, json=TINY_SPEC)
    assert response.status_code == 201
    assert response.json()["spec"]["dataset"].get("data_dir") is None  # stored without unset fields


@pytest.mark.parametrize("settings", ["home as data root"], indirect=True)
@pytest.mark.parametrize("data_dir", ["logs", "specs/x", "mlartifacts", "ray_results"])
def test_the_services_own_folders_are_refused(api: Api, data_dir: str) -> None:
    """`logs` is the service's driver logs when the data root is the home (it was Ray's session folder before)."""
    assert api.settings.resolved_data_dir == api.settings.home_dir.absolute()
    response = _post(api, data_dir)
    assert response.status_code == 422, response.text
    assert "dataset.data_dir" in response.json()["detail"]
    assert "the service's own folder" in response.json()["detail"]
