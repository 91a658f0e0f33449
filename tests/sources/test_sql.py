"""A database query as the source: SQLite and a real PostgreSQL server, through ``main(argv)``
and ``importer.run/plan``."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import importer
from importer.cli import main
from importer.sandbox import Sandbox
from tests.conftest import phone
from tests.sources.conftest import PG_PASSWORD, Postgres, contact_rows
from tests.sources.test_urls import everything_written
from tests.test_run import results


@pytest.fixture
def crm_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (crm_id TEXT, phone TEXT, name TEXT, email TEXT, "
                   "msisdn INTEGER, note)")  # fmt: skip
        # ``note`` has no type: SQLite keeps each value's own (a number, then text, a float)
        notes: list[object] = [7, 8, 9, "VIP since 2019", 2.5, 3.0, None, b"raw"]
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
            [(r["crm_id"], r["phone"], r["name"], r["email"], int(r["phone"][1:]), note)
             for r, note in zip(contact_rows(8), notes, strict=True)],
        )  # fmt: skip
        db.execute("INSERT INTO customers VALUES ('C-bad', '12', 'Bad', NULL, 12, NULL)")
    monkeypatch.setenv("KIRIM_SOURCE_DB", f"sqlite:///{path}")
    return path


def test_sqlite_query_runs_in_query_order_with_the_row_key_in_results(
    crm_sqlite: Path, box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    code = main(
        ["run", "--sql", "SELECT crm_id, phone, name, email, note FROM customers "
         "ORDER BY crm_id DESC",
         "--row-key", "crm_id", "--default-region", "ID", "--base-url", box.base_url,
         "--report-dir", str(report), "--state", str(tmp_path / "j.sqlite")]
    )  # fmt: skip
    assert code == 1  # the one bad phone
    out = capsys.readouterr().out
    assert f"Input: SQL query on sqlite:///{crm_sqlite} (sql)" in out
    rows = results(report)
    assert [r["row_key"] for r in rows] == [*(f"C{i:07d}" for i in range(8, 0, -1)), "C-bad"]
    assert [r["row_number"] for r in rows] == [str(i) for i in range(1, 10)]
    assert rows[0]["phone_number"] == phone(8)
    assert rows[-1]["status"] == "invalid"
    with (report / "failures.csv").open(encoding="utf-8-sig") as f:
        failed = list(csv.DictReader(f))
    assert [r["crm_id"] for r in failed] == ["C-bad"]
    assert len(box.contacts()) == 8
    notes = {c["phone_number"]: c["metadata"].get("note") for c in box.contacts()}
    assert [notes[phone(i)] for i in range(1, 9)] == [
        "7", "8", "9", "VIP since 2019", "2.5", "3", None, "raw"
    ]


def test_a_numeric_phone_column_is_refused_with_the_cast_to_use(
    crm_sqlite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", "--sql", "SELECT crm_id, msisdn AS phone FROM customers",
                 "--report-dir", str(tmp_path / "r")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "the phone column 'phone' is a number" in err
    assert "CAST(phone AS TEXT)" in err
    assert "Nothing was sent." in err


def test_sql_file_and_a_variable_of_ones_own(
    crm_sqlite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KIRIM_SOURCE_DB")
    monkeypatch.setenv("CRM_DB", f"sqlite:///{crm_sqlite}")
    query = tmp_path / "nightly.sql"
    query.write_text("-- the CRM's active customers\nSELECT phone, name FROM customers "
                     "WHERE crm_id <> 'C-bad';\n")  # fmt: skip
    code = main(["plan", "--sql-file", str(query), "--db-uri-env", "CRM_DB", "--report-dir",
                 str(tmp_path / "r"), "--default-region", "ID"])  # fmt: skip
    assert code == 0
    assert len(results(tmp_path / "r")) == 8


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["plan", "x.csv", "--sql", "SELECT 1"], "give one source: SOURCE and --sql"),
        (["plan"], "give the input"),
        (["plan", "--sql", "SELECT phone FROM t", "--db-uri-env", "NOPE_UNSET"],
         "--sql needs the database URI in the environment variable NOPE_UNSET"),
        (["plan", "x.csv", "--db-uri-env", "X"], "--db-uri-env goes with --sql"),
    ],
)  # fmt: skip
def test_source_usage_errors_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--report-dir", str(tmp_path)])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_a_row_key_that_is_not_a_column(
    crm_sqlite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", "--sql", "SELECT phone FROM customers", "--row-key", "id",
                 "--report-dir", str(tmp_path / "r")])  # fmt: skip
    assert code == 2
    assert "--row-key 'id' is not a column" in capsys.readouterr().err


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def crm_pg(postgres: Postgres, monkeypatch: pytest.MonkeyPatch) -> Postgres:
    postgres.execute(
        "DROP TABLE IF EXISTS customers",
        "CREATE TABLE customers (id bigint PRIMARY KEY, phone text, msisdn numeric, name text, "
        "email text, joined date, vip boolean)",
        "INSERT INTO customers SELECT i, '+62812' || lpad(i::text, 8, '0'), "
        "('62812' || lpad(i::text, 8, '0'))::numeric, 'Contact ' || i, "
        "'c' || i || '@example.com', date '2024-01-01' + i, i % 2 = 0 "
        "FROM generate_series(1, 25) AS i",
    )
    monkeypatch.setenv("KIRIM_SOURCE_DB", postgres.uri)
    return postgres


NIGHTLY = "SELECT id, phone, name, email, joined, vip FROM customers ORDER BY id"


def test_postgres_nightly_run_then_update_sends_only_what_changed(
    crm_pg: Postgres, box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "journal.sqlite"

    def nightly(night: str) -> int:
        return main(["run", "--sql", NIGHTLY, "--row-key", "id", "--on-existing", "update",
                     "--default-region", "ID", "--base-url", box.base_url, "--state",
                     str(journal), "--report-dir", str(tmp_path / night)])  # fmt: skip

    assert nightly("n1") == 0
    assert len(box.contacts()) == 25
    first = results(tmp_path / "n1")
    assert first[0]["row_key"] == "1"
    assert first[-1]["row_key"] == "25"
    crm_pg.execute("UPDATE customers SET name = 'Renamed' WHERE id = 7")
    assert nightly("n2") == 0
    counts = json.loads((tmp_path / "n2" / "summary.json").read_text())
    assert (counts["created"], counts["updated"], counts["unchanged"]) == (0, 1, 24)
    renamed = next(c for c in box.contacts() if c["phone_number"] == phone(7))
    assert renamed["name"] == "Renamed"
    assert renamed["metadata"]["joined"] == "2024-01-08"
    assert renamed["metadata"]["vip"] == "false"
    assert main(["history", "--state", str(journal), "--json"]) == 0
    out, err = capsys.readouterr()
    record = json.loads(out.splitlines()[-1])
    assert record["file"] == f"SQL query on {crm_pg.uri.replace(':' + PG_PASSWORD, '')}"
    for text in (out, err, everything_written(tmp_path)):
        assert PG_PASSWORD not in text


def test_postgres_through_the_api(crm_pg: Postgres, box: Sandbox, tmp_path: Path) -> None:
    planned = importer.plan(sql=NIGHTLY, default_region="ID", report_dir=tmp_path / "p")
    assert planned.ok
    assert planned.counts["valid"] == 25
    result = importer.run(
        sql="SELECT phone, name FROM customers WHERE id <= 10", db_uri=crm_pg.uri,
        default_region="ID", report_dir=tmp_path / "r", state=tmp_path / "j.sqlite",
        base_url=box.base_url, api_key=box.token,
    )  # fmt: skip
    assert result.ok
    assert result.counts["created"] == 10
    with pytest.raises(importer.InputError, match=r"CAST\(phone AS TEXT\)"):
        importer.plan(sql="SELECT msisdn AS phone FROM customers", report_dir=tmp_path / "x")


def test_postgres_errors_are_clear_and_keep_the_password_out(
    crm_pg: Postgres, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    code = main(["plan", "--sql", "SELECT phone FROM no_such_table", "--report-dir",
                 str(tmp_path / "a")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert 'relation "no_such_table" does not exist' in err
    assert PG_PASSWORD not in err
    code = main(["plan", "--sql", "SELECT msisdn AS phone FROM customers", "--report-dir",
                 str(tmp_path / "b")])  # fmt: skip
    assert code == 2
    assert "(numeric)" in capsys.readouterr().err
    monkeypatch.setenv("KIRIM_SOURCE_DB", crm_pg.uri.replace(PG_PASSWORD, "wrong-pw"))
    code = main(["plan", "--sql", NIGHTLY, "--report-dir", str(tmp_path / "c")])
    assert code == 2
    err = capsys.readouterr().err
    assert "password authentication failed" in err
    assert "wrong-pw" not in err


def test_a_query_mirrors_a_label_and_names_detached_rows_under_the_row_key(
    crm_sqlite: Path, box: Sandbox, tmp_path: Path
) -> None:
    """--sync-label with --row-key: results.csv's detached rows (no input row: no key) keep
    every column in its place."""
    def nightly(night: str, *extra: str) -> tuple[int, list[dict[str, str]]]:
        code = main(["run", "--sql", "SELECT crm_id, phone, name FROM customers ORDER BY crm_id",
                     "--row-key", "crm_id", "--sync-label", "Active", "--on-existing", "update",
                     "--default-region", "ID", "--base-url", box.base_url, "--state",
                     str(tmp_path / "j.sqlite"), "--report-dir", str(tmp_path / night),
                     *extra])  # fmt: skip
        return code, results(tmp_path / night)

    assert nightly("n1")[0] == 1  # C-bad
    with sqlite3.connect(crm_sqlite) as db:
        db.execute("DELETE FROM customers WHERE crm_id IN ('C0000002', 'C0000005')")
    code, rows = nightly("n2", "--max-detach", "2")  # 2 of 8 is more than 10%
    assert code == 1
    detached = [r for r in rows if r["status"] == "detached"]
    assert [(r["row_key"], r["row_number"], r["phone_number"], r["labels"]) for r in detached] == [
        ("", "", phone(2), "Active"), ("", "", phone(5), "Active"),
    ]  # fmt: skip
    assert all(r["contact_id"].startswith("ctc_") for r in detached)
    assert [r["row_key"] for r in rows if r["status"] != "detached"] == [
        "C-bad", *(f"C{i:07d}" for i in (1, 3, 4, 6, 7, 8)),
    ]  # fmt: skip
    summary = json.loads((tmp_path / "n2" / "summary.json").read_text())
    assert summary["detached"] == 2
    assert summary["guards"]["last_finished_valid_rows"] == 8  # the same source as night 1


def test_postgres_a_rotated_password_is_still_the_same_source(
    crm_pg: Postgres, box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal knows a query by its text and its URI without the password: after the
    reader's password is rotated, the run key, the shrink guard's baseline and the mirror's
    members are still this source's."""
    crm_pg.execute(
        "DROP ROLE IF EXISTS crm_reader", "CREATE ROLE crm_reader LOGIN PASSWORD 'Monday-pw'",
        "GRANT SELECT ON customers TO crm_reader",
    )  # fmt: skip
    host = crm_pg.uri.rsplit("@", 1)[1]

    def nightly(night: str, password: str) -> dict[str, Any]:
        monkeypatch.setenv("KIRIM_SOURCE_DB", f"postgresql://crm_reader:{password}@{host}")
        code = main(["run", "--sql", NIGHTLY, "--sync-label", "Active", "--max-detach", "1",
                     "--on-existing", "update", "--default-region", "ID", "--base-url",
                     box.base_url, "--state", str(tmp_path / "j.sqlite"), "--report-dir",
                     str(tmp_path / night)])  # fmt: skip
        assert code == 0
        data: dict[str, Any] = json.loads((tmp_path / night / "summary.json").read_text())
        return data

    try:
        assert nightly("n1", "Monday-pw")["created"] == 25
        crm_pg.execute("ALTER ROLE crm_reader PASSWORD 'Tuesday-pw'",
                       "DELETE FROM customers WHERE id = 25")  # fmt: skip
        second = nightly("n2", "Tuesday-pw")
    finally:
        crm_pg.execute("DROP OWNED BY crm_reader", "DROP ROLE crm_reader")
    assert (second["unchanged"], second["detached"]) == (24, 1)
    assert second["guards"]["last_finished_valid_rows"] == 25
    with sqlite3.connect(tmp_path / "j.sqlite") as journal:
        assert len(journal.execute("SELECT DISTINCT fingerprint FROM runs").fetchall()) == 1
    assert "-pw" not in everything_written(tmp_path)


def test_a_drivers_message_that_quotes_the_uri_keeps_its_password_out() -> None:
    """Some drivers (ConnectorX's, say) quote their connection string in an error: what is
    printed never holds the URI's password (as written or decoded) or its query string."""
    from importer.read.query import _first_line

    uri = "mysql://crm:P%40ss-9q@db.internal:3306/crm?ssl-key=/k.pem"
    said = _first_line(RuntimeError(f"cannot connect to {uri}: P@ss-9q refused\nmore"), uri)
    assert said == "cannot connect to mysql://crm:[redacted]@db.internal:3306/crm?[redacted]: " \
        "[redacted] refused"
