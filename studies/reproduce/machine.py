"""The machine a reproduction ran on, for its JSON line: CPU, cores, torch, and how busy the machine was."""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Any

#: Ray's variable for its workers' niceness (its own spelling; Ray's default is 15).
RAY_WORKER_NICENESS = "RAY_worker_niceness"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none): other work competes for the cores."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """CPU model, cores, OS, Python and torch versions."""
    import torch  # the version only; already imported wherever a study runs

    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "ray_worker_niceness": os.environ.get(RAY_WORKER_NICENESS, "Ray's default (15)"),
    }
