"""The service's exceptions; :mod:`service.api.errors` maps each to one HTTP status, in one place."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class of every error the service raises on purpose."""


class NotFound(ServiceError, LookupError):
    """No such study, or not one the caller may see."""


class Conflict(ServiceError):
    """The study is not in a state that allows the action (cancel a finished study, delete a running one)."""


class Forbidden(ServiceError):
    """A request the caller may not make this way (a page's form without its CSRF token, from another origin)."""


class QuotaExceeded(ServiceError):
    """The user already has the most queued studies allowed."""


class Unauthorized(ServiceError):
    """No token, or an unknown one."""


class BadSpec(ServiceError, ValueError):
    """A spec that parses but is not allowed here; ``errors`` lists ``(field, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))


class LaunchError(ServiceError, RuntimeError):
    """A launcher could not start, poll or stop a driver."""
