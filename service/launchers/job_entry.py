"""Entrypoint of a study's Ray job: write the spec from the job's environment to a file, exec the driver.

``exec`` keeps the PID, so the job supervisor's stop signal reaches the driver itself.
"""

from __future__ import annotations

import os
import sys
import tempfile

from service.launchers.ray_jobs import ENV_MODULE, ENV_SPEC, ENV_STUDY, ENV_USER


def main() -> None:
    spec, study_id = os.environ.pop(ENV_SPEC), os.environ[ENV_STUDY]
    folder = tempfile.mkdtemp(prefix=f"mixup-studies-{study_id}-")
    path = os.path.join(folder, "spec.json")
    with open(path, "w") as handle:
        handle.write(spec)
    module = os.environ.get(ENV_MODULE, "studies.cli")
    args = [
        sys.executable,
        "-m",
        module,
        "run",
        path,
        "--study-id",
        study_id,
        "--resume",
        "--quiet",
        "--user",
        os.environ.get(ENV_USER, ""),
    ]
    sys.stdout.flush()
    os.execv(sys.executable, args)


if __name__ == "__main__":
    main()
