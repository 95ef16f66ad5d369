"""Tune callbacks of the study driver: MLflow nested runs, and live progress.

Tune pickles its RunConfig (callbacks included) into the experiment folder and
uses that copy when the study is restored. The callbacks here therefore hold
only a study id; the live objects (the MLflow writer, the progress listener)
are looked up in this process's registry, which the engine fills before every
``fit`` — the first run and every resume alike.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.experiment import Trial

from mixup_core import metrics as M
from studies import interrupts
from studies.records import TrialRecord, TrialStatus
from studies.space import trial_config, trial_params
from studies.spec import StudySpec
from studies.trial_log import TrialLogWriter

ProgressListener = Callable[[list[TrialRecord]], None]

_WRITERS: dict[str, TrialLogWriter] = {}
_LISTENERS: dict[str, ProgressListener] = {}
_SPECS: dict[str, StudySpec] = {}


def register(study_id: str, spec: StudySpec, writer: TrialLogWriter, listener: ProgressListener | None) -> None:
    """Make the live objects of a study available to its (possibly unpickled) callbacks."""
    _SPECS[study_id] = spec
    _WRITERS[study_id] = writer
    if listener is not None:
        _LISTENERS[study_id] = listener
    else:
        _LISTENERS.pop(study_id, None)


def unregister(study_id: str) -> None:
    for registry in (_WRITERS, _LISTENERS, _SPECS):
        registry.pop(study_id, None)


#: Longest trial error kept (API, report, MLflow tag); the whole traceback is in the driver's log (Tune logs it).
MAX_ERROR_CHARS = 2000
_FAILURE_HEADER = re.compile(r"^Failure # \d+ \(occurred at [^)]*\)$", re.MULTILINE)
_FRAME = re.compile(r'^\s+File ".*", line \d+')
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_text(text: str) -> str:
    """The exception and its whole message from a trial's error file (Tune's text: one traceback per failure).

    The message is everything after the last frame of the last failure's traceback (its source and caret
    lines skipped), so one that spans lines, as torchvision's download errors do, is kept whole; the last line
    alone was ``"); place the files there by hand"``. Longer than :data:`MAX_ERROR_CHARS`, its middle is cut.
    """
    text = _ANSI.sub("", text)
    headers = list(_FAILURE_HEADER.finditer(text))
    lines = text[headers[-1].end() if headers else 0 :].strip("\n").splitlines()
    frames = [i for i, line in enumerate(lines) if _FRAME.match(line)]
    if frames:
        start = frames[-1] + 1
        while start < len(lines) and lines[start].startswith("    "):  # the frame's source line and carets
            start += 1
        lines = lines[start:]
    message = "\n".join(lines).strip()
    if len(message) > MAX_ERROR_CHARS:
        cut = f"\n[... {len(message) - MAX_ERROR_CHARS + 40} characters cut ...]\n"  # 40: room for this line
        keep = (MAX_ERROR_CHARS - len(cut)) // 2
        message = f"{message[:keep]}{cut}{message[-keep:]}"
    return message or "the trial failed without an error message"


def error_message(trial: Trial) -> str:
    """The trial's exception and its whole message (:func:`error_text`)."""
    # Tune writes the error locally first and syncs it to storage (where get_error reads) later.
    local = Path(trial.error_file) if getattr(trial, "error_file", None) else None
    text = local.read_text(errors="replace") if local is not None and local.exists() else trial.get_error() or ""
    return error_text(str(text))


def ended_status(trial: Trial, epochs: int) -> TrialStatus:
    """How a trial that Tune ended (not errored) stands; Tune calls back before it updates ``trial.status``."""
    done = int((trial.last_result or {}).get("training_iteration", 0) or 0)
    if done >= epochs:
        return "finished"
    # Cut short: by the scheduler (ASHA), or by a stop of the whole study (a resume reopens it).
    return "cancelled" if interrupts.stop_requested() else "stopped"


def trial_status(trial: Trial, epochs: int) -> TrialStatus:
    """Tune's trial state in the study's words."""
    if trial.status == Trial.ERROR:
        return "failed"
    if trial.status == Trial.RUNNING:
        return "running"
    if trial.status == Trial.TERMINATED:
        return ended_status(trial, epochs)
    return "pending"


def logged_params(spec: StudySpec, trial: Trial) -> dict[str, Any]:
    """What a trial's MLflow run records as params: α, weight decay and layer always, plus every varied factor."""
    varied = trial_params(trial.config)
    config = trial_config(spec, varied)
    fixed = {"alpha": config.mixup.alpha, "weight_decay": config.training.weight_decay, "layer": config.mixup.layer}
    return fixed | varied


def trial_record(trial: Trial, epochs: int) -> TrialRecord:
    result = trial.last_result or {}
    values = {k: float(result[k]) for k in M.ALL if isinstance(result.get(k), int | float)}
    status = trial_status(trial, epochs)
    return TrialRecord(
        trial_id=trial.trial_id,
        params=trial_params(trial.config),
        status=status,
        epochs=int(values.get(M.EPOCH, 0)),
        metrics=values,
        error=error_message(trial) if status == "failed" else None,
    )


class StudyCallback(tune.Callback):
    """Mirrors trials into MLflow nested runs and feeds the progress listener."""

    def __init__(self, study_id: str, progress_interval_s: float = 0.5) -> None:
        self.study_id = study_id
        self.progress_interval_s = progress_interval_s
        self._last_progress = 0.0
        # trial id → (Tune's status, the last result, the record built from them): a trial's record is built
        # again only when one of them changed, not for every trial at every update of the study's progress.
        self._records: dict[str, tuple[str, Any, TrialRecord]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "study_id": self.study_id,
            "progress_interval_s": self.progress_interval_s,
            "_last_progress": 0.0,
            "_records": {},
        }

    @property
    def _writer(self) -> TrialLogWriter | None:
        return _WRITERS.get(self.study_id)

    @property
    def _epochs(self) -> int:
        spec = _SPECS.get(self.study_id)
        return spec.training.epochs if spec is not None else 0

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        writer, spec = self._writer, _SPECS.get(self.study_id)
        if writer is not None and spec is not None:
            name = ", ".join(f"{k}={v}" for k, v in trial_params(trial.config).items())
            writer.start_trial(trial.trial_id, logged_params(spec, trial), run_name=name[:250])

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        writer = self._writer
        if writer is not None:
            values = {k: result[k] for k in M.ALL if isinstance(result.get(k), int | float)}
            writer.log_metrics(trial.trial_id, values, step=int(result.get(M.EPOCH, iteration)))

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        writer = self._writer
        if writer is not None:
            status = ended_status(trial, self._epochs)
            writer.end_trial(trial.trial_id, "KILLED" if status == "cancelled" else "FINISHED", status)
        self._progress(trials)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        writer = self._writer
        if writer is not None:
            writer.end_trial(trial.trial_id, "FAILED", "failed", error=error_message(trial))
        self._progress(trials)

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        self._progress(trials)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self._progress(trials, force=True)

    def _progress(self, trials: list[Trial], force: bool = False) -> None:
        """Hand every trial's record to the listener: when ``force``d (the study's end), else at most every
        ``progress_interval_s`` — and every ``len(trials)`` ms (5 s at 5,000 trials), so that the driver's
        cost of a progress update, which visits every trial, stays a flat share of its time at any size.

        A trial's end is not forced: Tune calls back before it updates the trial's status, so the update
        would still show it running; the study's end (``on_experiment_end``) has every final status.
        """
        listener = _LISTENERS.get(self.study_id)
        now = time.monotonic()
        interval = max(self.progress_interval_s, len(trials) / 1000)
        if listener is None or (not force and now - self._last_progress < interval):
            return
        self._last_progress = now
        listener([self._record(t) for t in trials])

    def _record(self, trial: Trial) -> TrialRecord:
        cached = self._records.get(trial.trial_id)
        # The stored result object: Tune replaces it with each new result. Not ``trial.last_result``, a
        # property that builds a set of the result's keys on every read (a third of this loop's time).
        result = trial.run_metadata.last_result
        if cached is not None and cached[0] == trial.status and cached[1] is result:
            return cached[2]
        record = trial_record(trial, self._epochs)
        self._records[trial.trial_id] = (trial.status, result, record)
        return record
