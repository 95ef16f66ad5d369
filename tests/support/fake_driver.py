"""A stand-in study driver with ``mixup-studies run``'s command line and exit codes, for launcher tests.

It does not train anything: it follows directives in the spec's ``description``
(``sleep=SECONDS exit=CODE die_first=1 exit_first=CODE raise_first=1``; the ``*_first``
ones act on the first attempt only: killed, an exit code, an uncaught exception), appends one line per start to
``<results>/<study id>/starts.txt``, writes ``progress.json`` (the driver's view,
as MLflow would have it) and exits 3 on SIGINT/SIGTERM, as the real driver does.
Run it through a launcher with ``MIXUP_STUDIES_DRIVER_MODULE=tests.support.fake_driver``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("spec")
    parser.add_argument("--study-id", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--user", default="")
    args = parser.parse_args()
    spec = json.loads(Path(args.spec).read_text())
    directives = dict(part.split("=", 1) for part in spec.get("description", "").split() if "=" in part)
    results = Path(
        os.environ.get("MIXUP_STUDIES_RESULTS_URI") or Path(os.environ["MIXUP_STUDIES_HOME"]) / "ray_results"
    )
    folder = results / args.study_id
    folder.mkdir(parents=True, exist_ok=True)
    starts = folder / "starts.txt"
    attempt = len(starts.read_text().splitlines()) + 1 if starts.exists() else 1
    with open(starts, "a") as handle:
        handle.write(f"{os.getpid()} resume={args.resume} user={args.user}\n")

    def write(status: str) -> None:
        (folder / "progress.json").write_text(json.dumps({"status": status, "attempt": attempt}))

    def stopped(signum: int, _frame: object) -> None:
        write("cancelled")
        print(f"fake driver: stopped by {signal.Signals(signum).name}", flush=True)
        sys.exit(3)

    signal.signal(signal.SIGINT, stopped)
    signal.signal(signal.SIGTERM, stopped)
    write("running")
    print(f"fake driver: study {args.study_id} attempt {attempt} started", flush=True)

    def broke(code: int) -> None:
        if code == 4:  # as studies.cli ends a driver that raised
            print(f"driver error: RuntimeError: fake driver attempt {attempt} broke", file=sys.stderr, flush=True)
        sys.exit(code)

    if attempt == 1 and "exit_first" in directives:
        broke(int(directives["exit_first"]))
    if attempt == 1 and directives.get("raise_first") == "1":  # Python's own exit code 1, no outcome written
        raise RuntimeError("fake driver: an uncaught exception before any trial")
    if directives.get("die_first") == "1" and attempt == 1:
        time.sleep(float(directives.get("die_after", "0.5")))
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(directives.get("sleep", "0.5")))
    code = int(directives.get("exit", "0"))
    write({0: "succeeded", 1: "failed", 3: "cancelled"}.get(code, "running"))
    print(f"fake driver: done with exit code {code}", flush=True)
    broke(code)


if __name__ == "__main__":
    main()
