"""Guard rails through ``main(argv)`` and ``importer.run``/``plan`` against the sandbox: a
shrunk source and an invalid-heavy one refused before anything is sent (exit 2, the numbers in
the message; the sandbox sees only the read-only pre-flight), ``--allow-shrink`` sending it and
becoming the new baseline, ``--max-failed`` stopping a run against a sandbox that refuses every
create, and ``plan`` showing the comparisons."""

from __future__ import annotations

from pathlib import Path

import pytest

import importer
from importer.cli import main
from importer.errors import Refused
from importer.guards import Spool, last_finished, source_identity
from importer.options import InputOptions
from importer.pipeline import prepare
from importer.sandbox import Sandbox
from tests.conftest import contacts_file, phone
from tests.test_nightly import Requests
from tests.test_run import results, summary

PREFLIGHT = {("GET", "/v1/me"), ("GET", "/v1/accounts")}  # read only


def run(box: Sandbox, file: Path, tmp: Path, name: str, *extra: str) -> tuple[int, Path]:
    reports = tmp / name
    argv = ["run", str(file), "--base-url", box.base_url, "--report-dir", str(reports),
            "--state", str(tmp / "journal.sqlite"), "--default-region", "ID", *extra]  # fmt: skip
    return main(argv), reports


def api(box: Sandbox, tmp: Path, name: str, **extra: object) -> dict[str, object]:
    return {
        "base_url": box.base_url, "api_key": box.token, "report_dir": tmp / name,
        "state": tmp / "journal.sqlite", "default_region": "ID", **extra,
    }  # fmt: skip


def only_preflight(seen: Requests) -> None:
    sent = {k for k, v in seen.since().items() if v}
    assert sent <= PREFLIGHT, sent  # nothing past the read-only pre-flight


def test_a_shrunk_source_is_refused_with_nothing_sent_then_allowed_and_remembered(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "customers.csv"
    assert run(box, contacts_file(file, 40), tmp_path, "n1")[0] == 0
    capsys.readouterr()
    contacts_file(file, 10)  # tonight's export, cut short
    seen = Requests(box)
    code, reports = run(box, file, tmp_path, "n2")
    assert code == 2
    err = capsys.readouterr().err
    assert "10 valid rows, fewer than 50% of the 40 this source had in its last finished run" in (
        err
    )
    assert "run #1" in err
    assert "--allow-shrink" in err
    assert "Nothing was sent." in err
    only_preflight(seen)
    assert not (reports / "summary.json").exists()

    assert run(box, file, tmp_path, "n3", "--min-share", "25%")[0] == 0  # 10 >= 25% of 40
    assert summary(tmp_path / "n3")["guards"]["last_finished_valid_rows"] == 40
    contacts_file(file, 4)
    assert run(box, file, tmp_path, "n4")[0] == 2  # 4 < 50% of 10: the last finished run's
    code, allowed = run(box, file, tmp_path, "n5", "--allow-shrink")
    assert code == 0
    assert [r["status"] for r in results(allowed)] == ["exists"] * 4
    assert last_finished(tmp_path / "journal.sqlite", source_identity(InputOptions(path=file)))
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 41)}


def test_the_api_raises_refused_naming_the_guard_and_its_numbers(
    box: Sandbox, tmp_path: Path
) -> None:
    file = tmp_path / "customers.csv"
    assert importer.run(contacts_file(file, 30), **api(box, tmp_path, "a")).exit_code == 0
    contacts_file(file, 3)
    seen = Requests(box)
    with pytest.raises(importer.InputError) as caught:
        importer.run(file, **api(box, tmp_path, "b"))
    assert isinstance(caught.value, Refused)
    assert caught.value.guard == "shrink"
    assert caught.value.facts["valid_rows"] == 3
    assert caught.value.facts["last_finished_valid_rows"] == 30
    only_preflight(seen)
    planned = importer.plan(file, report_dir=tmp_path / "p", state=tmp_path / "journal.sqlite",
                            default_region="ID")  # fmt: skip
    assert planned.summary["guards"]["would_refuse"] is True
    assert planned.summary["guards"]["last_finished_valid_rows"] == 30


def test_an_invalid_heavy_source_is_refused_with_nothing_sent(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "moved.csv", 20, invalid=10)  # a third of the phones bad
    seen = Requests(box)
    code, _ = run(box, file, tmp_path, "r", "--max-invalid", "5%")
    assert code == 2
    err = capsys.readouterr().err
    assert "10 of 30 rows are invalid (33.3%), more than --max-invalid 5% allows (2 rows)" in err
    only_preflight(seen)
    assert box.contacts() == []

    with pytest.raises(Refused) as caught:
        importer.run(file, **api(box, tmp_path, "a", max_invalid=9))
    assert (caught.value.guard, caught.value.facts["allowed"]) == ("max_invalid", 9)
    only_preflight(seen)

    code, reports = run(box, file, tmp_path, "ok", "--max-invalid", "10")  # at most 10: fine
    assert code == 1
    assert summary(reports)["created"] == 20
    assert summary(reports)["guards"]["valid_rows"] == 20


def test_max_failed_stops_a_run_that_kirim_refuses_row_after_row(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box.set_faults(error_message="phone_number is not a WhatsApp number")  # every create: 400
    file = contacts_file(tmp_path / "a.csv", 30)
    code, reports = run(box, file, tmp_path, "r", "--max-failed", "5", "--concurrency", "1")
    assert code == 3
    s = summary(reports)
    assert s["stop_kind"] == "failures"
    assert s["stopped"].startswith("5 rows failed (--max-failed 5)")
    assert s["reasons"] == {"invalid_field_value": 5, "not_attempted": 25}
    assert box.injected()["error_message"] == 5  # one row at a time: the sixth never left
    assert "Stopped early: 5 rows failed" in capsys.readouterr().out

    box.set_faults(error_message=None)  # Kirim mended: the rerun sends every row
    code, again = run(box, file, tmp_path, "r2")
    assert code == 0
    assert {r["status"] for r in results(again)} == {"created"}
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 31)}


def test_max_failed_as_a_share_of_the_valid_rows_through_the_api(
    box: Sandbox, tmp_path: Path
) -> None:
    box.set_faults(error_message="refused")
    file = contacts_file(tmp_path / "a.csv", 40, invalid=5)
    result = importer.run(file, **api(box, tmp_path, "r", max_failed="10%", concurrency=1))
    assert result.exit_code == 3
    assert result.summary["guards"]["max_failed_rows"] == 4  # 10% of 40 valid rows
    assert result.stopped is not None
    assert result.stopped.startswith("4 rows failed")
    assert result.counts["failed"] == 40
    assert result.counts["invalid"] == 5


def test_plan_shows_the_shrink_comparison_and_max_invalid(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "customers.csv"
    assert run(box, contacts_file(file, 20), tmp_path, "n1")[0] == 0
    contacts_file(file, 8, invalid=2)
    capsys.readouterr()
    argv = ["plan", str(file), "--default-region", "ID", "--report-dir", str(tmp_path / "p"),
            "--state", str(tmp_path / "journal.sqlite"), "--max-invalid", "1"]  # fmt: skip
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "--max-invalid 1: 2 of 10 rows invalid (20.0%), 1 allowed: a run would refuse." in out
    assert (
        "Shrink guard: 8 valid rows against 20 in the last finished run of this source (run #1, "
    ) in out
    assert "40.0%, below 50%: a run would refuse unless --allow-shrink." in out


def test_a_stopped_run_leaves_the_baseline_alone(box: Sandbox, tmp_path: Path) -> None:
    box.set_faults(error_message="refused")
    file = contacts_file(tmp_path / "a.csv", 10)
    assert run(box, file, tmp_path, "r", "--max-failed", "1")[0] == 3
    assert last_finished(tmp_path / "journal.sqlite", source_identity(InputOptions(path=file))) is (
        None
    )


def test_the_spool_sends_the_same_batches_it_counted(tmp_path: Path) -> None:
    file = contacts_file(tmp_path / "a.csv", 2500, invalid=30, duplicates=4)
    options = InputOptions(path=file, default_region="ID", batch_size=1000)
    plain = list(prepare(options).batches)
    with Spool() as spool:
        spooled, counted = spool.count(prepare(options))
        again = list(spooled.batches)
    assert (counted.rows_total, counted.valid, counted.invalid, counted.duplicates) == (
        2534, 2500, 30, 4
    )
    assert len(again) == len(plain) > 2
    for a, b in zip(plain, again, strict=True):
        assert a.rows.equals(b.rows)
        assert a.original.equals(b.original)


def test_source_identity_is_the_resolved_path_and_none_for_standard_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert source_identity(InputOptions(path=Path("a.csv"))) == str(tmp_path / "a.csv")
    assert source_identity(InputOptions(path=Path("-"))) is None
    # a URL or a query is the same source whatever the stand-in path: the journal's one name
    url = InputOptions(path=Path("-"), url="https://u:secret@crm.example/x.csv?sig=1&gid=2")
    assert source_identity(url) == "https://crm.example/x.csv?gid=2"
    query = InputOptions(path=Path("-"), sql="SELECT 1", db_uri="postgresql://r:pw@db/crm")
    named = source_identity(query) or ""
    assert "pw" not in named
    assert "SELECT 1" in named


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max-invalid", "ten", "expected a number of rows (N) or a share (P%)"),
        ("--max-invalid", "120%", "a share between 0 and 100%"),
        ("--max-failed", "0", "at least 1"),
        ("--max-failed", "0%", "a share between 0 (excluded) and 100%"),
        ("--min-share", "150%", "a share from 0% to 100%"),
    ],
)
def test_guard_values_that_cannot_be_used_are_usage_errors(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str,
    message: str,
) -> None:  # fmt: skip
    file = contacts_file(tmp_path / "a.csv", 2)
    with pytest.raises(SystemExit) as exited:
        run(box, file, tmp_path, "r", flag, value)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    with pytest.raises(importer.UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        importer.run(file, **api(box, tmp_path, "a", **{flag[2:].replace("-", "_"): value}))
