"""A small HTTP client of the REST API (used by the CLI), with errors a person can act on."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

API = "/api/v1/studies"


class ClientSettings(BaseSettings):
    """``MIXUP_STUDIES_URL`` and ``MIXUP_STUDIES_TOKEN``."""

    model_config = SettingsConfigDict(env_prefix="MIXUP_STUDIES_", extra="ignore")

    url: str = Field("http://127.0.0.1:8000", description="The service's base URL.")
    token: SecretStr | None = Field(None, description="A bearer token (mixup-studies token create).")


class ClientError(Exception):
    """A failed call, with a message for a person."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _explain(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    detail = body.get("detail", "") if isinstance(body, dict) else str(body)
    if response.status_code == 401:
        return f"not authorised ({detail}): set MIXUP_STUDIES_TOKEN to a token from `mixup-studies token create`"
    if response.status_code == 422 and isinstance(body, dict) and body.get("errors"):
        lines = [f"  {'.'.join(e['loc'][1:] or e['loc'])}: {e['msg']}" for e in body["errors"]]
        return "invalid study spec:\n" + "\n".join(lines)
    return f"{detail} (HTTP {response.status_code})"


class Client:
    def __init__(self, settings: ClientSettings | None = None, timeout_s: float = 30.0) -> None:
        self.settings = settings or ClientSettings()
        token = self.settings.token.get_secret_value() if self.settings.token else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.settings.url.rstrip("/"), headers=headers, timeout=timeout_s)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ClientError(
                f"cannot reach the service at {self.settings.url} (is `mixup-studies serve` running? "
                "set MIXUP_STUDIES_URL)"
            ) from None
        except httpx.TimeoutException:
            raise ClientError(f"the service at {self.settings.url} did not answer in time") from None
        if response.status_code >= 400:
            raise ClientError(_explain(response), response.status_code)
        return response

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", API, json=spec).json())

    def list(self, status: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return dict(self.request("GET", API, params=params).json())

    def status(self, study_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{API}/{study_id}").json())

    def trials(self, study_id: str, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """One page of the study's trials (``total``: how many in all)."""
        params = {"limit": limit, "offset": offset}
        return dict(self.request("GET", f"{API}/{study_id}/trials", params=params).json())

    def all_trials(self, study_id: str, page: int = 1000) -> dict[str, Any]:
        """Every trial, read a page at a time: the last page's body with ``trials`` holding all of them."""
        body = self.trials(study_id, page, 0)
        trials = list(body["trials"])
        while body["trials"] and len(trials) < body["total"]:
            body = self.trials(study_id, page, len(trials))
            trials += body["trials"]
        return {**body, "trials": trials, "offset": 0, "limit": len(trials)}

    def cancel(self, study_id: str) -> dict[str, Any]:
        return dict(self.request("POST", f"{API}/{study_id}/cancel").json())

    def report(self, study_id: str, format: str = "md") -> bytes:
        return self.request("GET", f"{API}/{study_id}/report", params={"format": format}).content
