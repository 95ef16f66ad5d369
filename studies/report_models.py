"""The report's schema: what a study report holds (pydantic, frozen), as the API, md, json and png show it.

Built by :func:`studies.report.build_report`; kept apart from the grouping and statistics that fill it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from studies.comparison import BaselineComparisons
from studies.records import TrialStatus


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeaderboardRow(_Model):
    """One trial with a value for the study's metric."""

    rank: int = Field(description="1 = best by the study's mode.")
    trial_id: str
    params: dict[str, Any]
    status: TrialStatus = Field(description="'running'/'pending' rows hold the latest, not the final, value.")
    epochs: int
    value: float = Field(description="The study's metric (errors in percent).")
    test_error: float | None = None
    best_test_error: float | None = None


class FactorCell(_Model):
    """Mean ± sample std of the metric over the trials of one (row, weight decay) that finished all epochs."""

    mean: float | None = Field(None, description="None when no trial finished.")
    std: float | None = Field(None, description="Sample std; 0.0 for a single value.")
    n: int = Field(0, description="Finished trials with the metric: the ones in mean and std.")
    stopped: int = Field(0, description="Stopped early by the scheduler (ASHA); not in the mean.")
    failed: int = Field(0, description="Failed; not in the mean.")
    running: int = Field(0, description="Pending or still running; not in the mean.")
    cancelled: int = Field(0, description="Cut short by the end of the study (a cancel); not in the mean.")
    missing: int = Field(0, description="Finished without a value for the metric.")


class FactorColumn(_Model):
    """A weight decay column."""

    label: str = Field(description="Like 'wd 1e-4'.")
    weight_decay: float
    best_row: str | None = Field(None, description="Label of the best row (the paper's bold cell).")


class FactorRow(_Model):
    """A method: a variant or a combination of the varied factors; cells align with the columns."""

    label: str
    factors: dict[str, Any] = Field(description="The factor values the row stands for.")
    cells: list[FactorCell]


class FactorTable(_Model):
    """The paper's Table 5 form: rows = method, columns = weight decay."""

    factors: list[str] = Field(description="The varied factors that make the rows (weight decay and seed excluded).")
    columns: list[FactorColumn]
    rows: list[FactorRow]


class FailureRow(_Model):
    """A failed trial."""

    trial_id: str
    params: dict[str, Any]
    error: str | None


class AlphaPoint(_Model):
    """One point of the α curve: finished trials of one series and weight decay at one α."""

    series: str
    weight_decay: float
    alpha: float
    mean: float
    std: float
    n: int


class AlphaTrialPoint(_Model):
    """A trial of the α curve that did not finish every epoch, at its last value (drawn apart from the means).

    In an ASHA study most trials are stopped early: without these the curve showed only the α values
    whose trials all ran to the end.
    """

    series: str
    weight_decay: float
    alpha: float
    value: float = Field(description="The study's metric at the trial's last reported epoch.")
    status: TrialStatus = Field(description="stopped, running, pending or cancelled.")
    epochs: int = Field(description="Epochs the trial completed.")
    trial_id: str


class StudyReport(_Model):
    """Everything a reader needs to judge a study, in the paper's form."""

    study_id: str | None = None
    study_status: str | None = Field(
        None, description="The study's state where the reader knows it: queued, running, succeeded, failed, cancelled."
    )
    name: str
    metric: str
    mode: Literal["min", "max"]
    total_epochs: int = Field(description="Epochs a trial runs when not stopped early.")
    counts: dict[str, int] = Field(description="Trials by status, and 'total'.")
    complete: bool = Field(description="There are trials and every one is in a final status.")
    leaderboard: list[LeaderboardRow]
    leaderboard_total: int | None = Field(
        None, description="Rows in the whole leaderboard when `leaderboard` is one page of it (the service's)."
    )
    best: LeaderboardRow | None = Field(description="The leaderboard's first row.")
    factor_table: FactorTable | None = Field(
        description="None without trials, or when an axis is a sampled range (every trial would be its own row)."
    )
    failures: list[FailureRow]
    first_error: str | None = Field(description="The first failed trial's error.")
    alpha_curve: list[AlphaPoint] = Field(description="Empty when α is not a search axis.")
    alpha_partial: list[AlphaTrialPoint] = Field(
        default_factory=list,
        description="Trials that have not finished every epoch but reported the metric (stopped early, running, "
        "cancelled), one point each at its last value; empty when α is not a search axis. Not in the means.",
    )
    seeds: list[int] = Field(description="The seeds every configuration was run with (search.seeds).")
    seed_data: bool = Field(
        description="True: each seed also resampled the data (training subset, noisy labels, splits); "
        "False: the data were fixed by dataset.split_seed and seeds changed initialisation and batch order only."
    )
    split_seed: int = Field(description="dataset.split_seed (used by every trial when seed_data is False).")
    comparisons: BaselineComparisons | None = Field(
        None, description="Each factor-table row against the baseline row: difference with a 95 % CI over seeds."
    )
