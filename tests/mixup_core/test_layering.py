"""mixup_core is the bottom layer: importing it pulls in no tracker, tuner, web or database code."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("ray", "mlflow", "fastapi", "sqlalchemy", "uvicorn", "optuna", "studies", "service")


def test_importing_mixup_core_imports_no_upper_layer_or_framework() -> None:
    code = (
        "import sys, mixup_core, mixup_core.trainer, mixup_core.data, mixup_core.models\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"mixup_core imported: {out.stdout.strip()}"
    # The check itself works: a module that does import one is caught.
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, sqlalchemy; print('sqlalchemy' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "True"
