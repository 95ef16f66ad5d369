"""Launchers: where study drivers run. One interface (:class:`Launcher`), two implementations."""

from __future__ import annotations

from service.launchers.base import DriverState, Launch, Launcher
from service.launchers.local import LocalLauncher
from service.settings import ServiceSettings

__all__ = ["DriverState", "Launch", "Launcher", "LocalLauncher", "make_launcher"]


def make_launcher(settings: ServiceSettings) -> Launcher:
    """The launcher ``settings.launcher`` names."""
    if settings.launcher == "ray_jobs":
        from service.launchers.ray_jobs import RayJobsLauncher

        return RayJobsLauncher(settings)
    return LocalLauncher(settings)
