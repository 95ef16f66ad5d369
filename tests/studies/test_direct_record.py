"""A finished trial inserted in one transaction (studies.direct_record) is row for row what MLflow's client writes.

Both ways run through the real writer into a real store (SQLite, and PostgreSQL where installed); every row of
every table that mentions the trial's run is compared. This is the check that ``CHECKED_REVISIONS`` stands for:
it runs on whatever MLflow is installed, so a new MLflow whose schema or rules differ fails here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient

from studies import direct_record, trial_log
from studies.direct_record import CHECKED_REVISIONS, DirectTrialRecords, schema_revision
from studies.specfile import parse_spec
from studies.tracking import StudyRun, existing_trial_runs, open_study
from studies.trial_log import TrialLogWriter
from tests.support.postgres import PostgresServer, postgres_server

SPEC = parse_spec(
    {
        "name": "direct",
        "dataset": {"name": "synthetic"},
        "model": {"name": "mlp"},
        "training": {"epochs": 3, "device": "cpu"},
        "search": {"space": {"alpha": [0.0, 0.4]}},
    }
)
CLOCK_MS = 1_790_000_000_123  # both writers see the same clock, so their rows can be compared


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def new_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'{uuid.uuid4().hex[:8]}.db'}"
    server: PostgresServer = request.getfixturevalue("pg")
    return server.create_database(f"m_{uuid.uuid4().hex[:12]}")


def write_failed_trial(uri: str, artifact_root: Path, direct: bool) -> tuple[TrialLogWriter, str, str]:
    """A trial with NaN and infinite values, a metric repeated exactly, and an error; (writer, its run, the parent)."""
    client = MlflowClient(uri)
    study = open_study(client, SPEC, "study-x", "ada", artifact_root)
    writer = TrialLogWriter(client, study, tick_s=0.02, direct_writes=direct)
    writer.start_trial("t0", {"alpha": 0.4, "layer": "input", "seed": 0}, "trial-0")
    for epoch in (1, 2, 3):
        writer.log_metrics("t0", {"test_error": 10.0 - epoch, "train_loss": 1.0 / epoch}, step=epoch)
    writer.log_metrics("t0", {"test_error": 7.0}, step=3)  # an exact repeat
    writer.log_metrics("t0", {"train_loss": float("nan"), "grad": float("inf"), "low": float("-inf")}, step=4)
    writer.end_trial("t0", "FAILED", "failed", error="TrainingDiverged: loss is nan at epoch 4")
    assert writer.close(timeout_s=30)
    return writer, writer.run_ids["t0"], study.parent_run_id


def rows_of_run(uri: str, run_id: str, parent_id: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table that mentions the run, with the two run ids replaced by placeholders;
    and, under ``"#rows"``, how many rows each table holds (a row written elsewhere would show there)."""
    engine = sqlalchemy.create_engine(uri)
    found: dict[str, list[tuple[str, ...]]] = {"#rows": []}
    try:
        with engine.connect() as connection:
            for table in sqlalchemy.inspect(engine).get_table_names():
                rows = connection.execute(sqlalchemy.text(f'SELECT * FROM "{table}"')).all()
                found["#rows"].append((table, str(len(rows))))
                for row in rows:
                    text = tuple(str(value) for value in row)
                    if any(run_id in value for value in text):
                        named = (v.replace(run_id, "<trial>").replace(parent_id, "<parent>") for v in text)
                        found.setdefault(table, []).append(tuple(named))
    finally:
        engine.dispose()
    return {table: sorted(rows) for table, rows in found.items()}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_whole_trial_is_stored_row_for_row_as_mlflows_client_stores_it(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trial_log, "_now_ms", lambda: CLOCK_MS)
    stored: dict[bool, dict[str, list[tuple[str, ...]]]] = {}
    for direct in (False, True):
        uri = new_store(kind, tmp_path, request)
        MlflowClient(uri).search_experiments()  # MLflow creates its tables
        monkeypatch.setattr(
            direct_record, "CHECKED_REVISIONS", frozenset({schema_revision(uri)})
        )  # this test is the check
        writer, run_id, parent_id = write_failed_trial(uri, tmp_path / "artifacts", direct)
        assert writer.calls == (1 if direct else 3)  # one transaction, or create + batch + terminate
        stored[direct] = rows_of_run(uri, run_id, parent_id)

        client = MlflowClient(uri)
        run = client.get_run(run_id)
        assert (run.info.status, run.info.run_name) == ("FAILED", "trial-0")
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.data.metrics["test_error"] == 7.0 and run.data.metrics["grad"] == 1.7976931348623157e308
        assert run.data.params == {"alpha": "0.4", "layer": "input", "seed": "0"}
        history = client.get_metric_history(run_id, "train_loss")
        assert [m.step for m in history] == [1, 2, 3, 4] and str(history[-1].value) == "nan"
        assert existing_trial_runs(client, open_study(client, SPEC, "study-x", "ada", tmp_path / "artifacts")) == {
            "t0": run_id
        }

    assert set(stored[True]) >= {"runs", "tags", "params", "metrics", "latest_metrics"}
    assert stored[True] == stored[False]


def local_study(folder: Path) -> tuple[str, MlflowClient, StudyRun]:
    """A study opened in a fresh SQLite store: its URI, a client and the study's MLflow ids."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    return uri, client, open_study(client, SPEC, "study-y", None, folder / "artifacts")


def test_the_direct_path_needs_a_database_store_on_a_checked_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, client, study = local_study(tmp_path)
    records = DirectTrialRecords.open(client, study.experiment_id)
    assert (records is not None) == (schema_revision(uri) in CHECKED_REVISIONS)  # on the installed MLflow's own schema
    if records is not None:
        records.close()
    assert DirectTrialRecords.open(MlflowClient("http://127.0.0.1:9"), study.experiment_id) is None  # a server

    monkeypatch.setattr(direct_record, "CHECKED_REVISIONS", frozenset({"not-this-one"}))
    assert DirectTrialRecords.open(client, study.experiment_id) is None
    writer = TrialLogWriter(client, study, tick_s=0.02)  # an unchecked schema: the client's three calls
    writer.start_trial("t0", {"alpha": 0.0}, "t0")
    writer.log_metrics("t0", {"test_error": 3.0}, step=1)
    writer.end_trial("t0", "FINISHED", "finished")
    assert writer.close(timeout_s=30)
    assert writer.calls == 3
    assert client.get_run(writer.run_ids["t0"]).data.metrics == {"test_error": 3.0}


def test_a_failed_direct_write_falls_back_to_the_client_without_losing_the_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, client, study = local_study(tmp_path)
    monkeypatch.setattr(direct_record, "CHECKED_REVISIONS", frozenset({schema_revision(uri)}))
    writer = TrialLogWriter(client, study, tick_s=0.02)
    assert writer._direct is not None
    # A store whose tables do not take the rows: the transaction fails as a whole and writes nothing.
    writer._direct.engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    writer.start_trial("t0", {"alpha": 0.4}, "t0")
    writer.log_metrics("t0", {"test_error": 5.0}, step=1)
    writer.end_trial("t0", "FINISHED", "finished")
    assert writer.close(timeout_s=30)
    assert writer._direct is None
    [run_id] = existing_trial_runs(client, study).values()
    assert client.get_run(run_id).data.metrics == {"test_error": 5.0}
    assert client.get_run(run_id).info.status == "FINISHED"
