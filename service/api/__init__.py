"""The REST API: :func:`create_app`."""

from __future__ import annotations

from service.api.app import create_app

__all__ = ["create_app"]
