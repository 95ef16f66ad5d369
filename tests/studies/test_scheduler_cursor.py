"""The study's schedulers choose the next trial as Tune's do, without walking the ended trials again."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ray.tune.experiment import Trial

from studies.search import AshaScheduler, FifoScheduler, scheduler
from studies.specfile import parse_spec


class CountingStatus:
    """A trial stand-in whose ``status`` reads are counted (only ``status`` is what the choice reads)."""

    reads = 0

    def __init__(self, name: str, status: str) -> None:
        self.name, self._status = name, status

    @property
    def status(self) -> str:
        CountingStatus.reads += 1
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value


@dataclass
class Controller:
    trials: list[CountingStatus] = field(default_factory=list)

    def get_trials(self) -> list[CountingStatus]:
        return self.trials


@pytest.mark.parametrize("make", [FifoScheduler, lambda: AshaScheduler(max_t=4, grace_period=1)])
def test_chooses_the_first_pending_then_paused_and_skips_ended_ones_once(make: object) -> None:
    chooser = make()  # type: ignore[operator]
    trials = [CountingStatus(f"t{i}", Trial.TERMINATED) for i in range(1000)]
    trials += [CountingStatus("e", Trial.ERROR), CountingStatus("p", Trial.PAUSED), CountingStatus("q", Trial.PENDING)]
    controller = Controller(trials)
    assert chooser.choose_trial_to_run(controller).name == "q"  # PENDING first, as Tune's own
    CountingStatus.reads = 0
    for _ in range(100):
        assert chooser.choose_trial_to_run(controller).name == "q"
    assert CountingStatus.reads <= 100 * 4  # the 1,001 ended trials in front are not read again
    trials[-1].status = Trial.RUNNING
    assert chooser.choose_trial_to_run(controller).name == "p"
    trials[-2].status = Trial.TERMINATED
    assert chooser.choose_trial_to_run(controller) is None


def test_a_trial_retried_after_the_cursor_passed_it_is_still_found() -> None:
    chooser = FifoScheduler()
    trials = [CountingStatus("a", Trial.TERMINATED), CountingStatus("b", Trial.RUNNING)]
    controller = Controller(trials)
    assert chooser.choose_trial_to_run(controller) is None
    trials[1].status = Trial.PENDING  # Tune's recovery: RUNNING -> PENDING, never through ERROR
    assert chooser.choose_trial_to_run(controller).name == "b"


def test_the_cursor_is_not_saved(tmp_path: Path) -> None:
    """A restored study may reopen errored trials in front of it: it must scan from the start again."""
    fifo = FifoScheduler()
    fifo.choose_trial_to_run(Controller([CountingStatus("a", Trial.ERROR)]))
    assert fifo._cursor == 1
    assert pickle.loads(pickle.dumps(fifo))._cursor == 0
    asha = AshaScheduler(max_t=4, grace_period=1)
    asha.choose_trial_to_run(Controller([CountingStatus("a", Trial.TERMINATED)]))
    asha.save(str(tmp_path / "asha.pkl"))  # ASHA pickles its __dict__ itself
    assert asha._cursor == 1
    restored = AshaScheduler(max_t=4, grace_period=1)
    restored.restore(str(tmp_path / "asha.pkl"))
    assert restored._cursor == 0


def test_specs_get_these_schedulers() -> None:
    base = {"name": "s", "dataset": {"name": "synthetic"}, "model": {"name": "mlp"}, "training": {"epochs": 4}}
    assert type(scheduler(parse_spec(base))) is FifoScheduler
    asha = parse_spec({**base, "scheduler": {"name": "asha", "grace_period": 1}})
    assert type(scheduler(asha)) is AshaScheduler
