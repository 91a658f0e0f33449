"""Pre-flight errors, answers that stop a run, input errors and key redaction."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import httpx
import pytest

from importer import pipeline
from importer.cli import main
from importer.options import InputOptions, RunOptions
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import contacts_file, phone

ROUTE = "/v1/{phone_number_id}/contacts"


@pytest.fixture
def keyed(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox, with its key exported in KIRIM_API_KEY as a user would."""
    monkeypatch.setenv("KIRIM_API_KEY", sandbox.token)
    return sandbox


def argv(box: Sandbox, file: Path, tmp: Path, *extra: str) -> list[str]:
    return [
        "run",
        str(file),
        "--base-url",
        box.base_url,
        "--report-dir",
        str(tmp / "r"),
        "--state",
        str(tmp / "j.sqlite"),
        *extra,
    ]


def test_a_bad_key_stops_before_anything_is_sent(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = "kc_live_" + "x" * 24
    monkeypatch.setenv("KIRIM_API_KEY", bad)
    code = main(argv(sandbox, contacts_file(tmp_path / "in.csv", 3), tmp_path))
    assert code == 3
    out, err = capsys.readouterr()
    assert "401" in err
    assert "invalid_api_key" in err
    assert bad not in err
    assert sandbox.request_count("POST", ROUTE) == 0
    assert "Stopped early" in out
    assert "to resume" not in out  # no run in the journal: nothing to resume
    assert not (tmp_path / "j.sqlite").exists()  # nor an empty journal left by its lock
    # a stop like any other: every row reported, retryable, none sent
    with (tmp_path / "r" / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["status"], r["error_code"]) for r in rows] == [("failed", "not_attempted")] * 3
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert (summary["exit_code"], summary["failed"]) == (3, 3)
    assert "invalid_api_key" in summary["stopped"]


def test_no_key_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox
) -> None:
    monkeypatch.delenv("KIRIM_API_KEY", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(argv(sandbox, contacts_file(tmp_path / "in.csv", 3), tmp_path))
    assert exc.value.code == 2


def test_a_key_is_trimmed_and_one_with_a_line_break_inside_is_refused_unshown(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    file = contacts_file(tmp_path / "in.csv", 2)
    monkeypatch.setenv("KIRIM_API_KEY", sandbox.token + "\r\n")  # from a CRLF .env file
    assert main(argv(sandbox, file, tmp_path)) == 0
    broken = sandbox.token[:8] + "\r\nX-Injected: 1"
    monkeypatch.setenv("KIRIM_API_KEY", broken)
    with pytest.raises(SystemExit) as exc:
        main(argv(sandbox, file, tmp_path / "again"))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "control characters" in err
    assert sandbox.token[:8] not in err


def test_plain_http_is_refused_except_to_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIRIM_API_KEY", "kdv_live_" + "a" * 24)
    file = contacts_file(tmp_path / "in.csv", 1)
    with pytest.raises(SystemExit) as exc:
        main(["run", str(file), "--base-url", "http://api.kirim.chat/v1"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("account", "message"),
    [
        ("999999999", "not found"),
        (None, None),
    ],
)
def test_account_checks(
    keyed: Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    account: str | None,
    message: str | None,
) -> None:
    sandbox = keyed
    extra = ["--account", account] if account else []
    code = main(argv(sandbox, contacts_file(tmp_path / "in.csv", 2), tmp_path, *extra))
    if message is None:
        assert code == 0  # the only connected account is chosen
    else:
        assert code == 3
        assert message in capsys.readouterr().err
        assert sandbox.request_count("POST", ROUTE) == 0


def test_an_account_that_is_not_connected_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with Sandbox(SandboxConfig(seed=1)) as box:
        monkeypatch.setenv("KIRIM_API_KEY", box.token)
        me = httpx.get(box.base_url + "/accounts", headers={"Authorization": f"Bearer {box.token}"})
        other = next(a for a in me.json()["data"] if a["status"] == "disconnected")
        code = main(
            argv(
                box,
                contacts_file(tmp_path / "in.csv", 2),
                tmp_path,
                "--account",
                other["phone_number_id"],
            )
        )
        assert code == 3
        assert "not connected" in capsys.readouterr().err
        assert box.request_count("POST", ROUTE) == 0


def test_an_input_error_exits_2_and_sends_nothing(
    keyed: Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = keyed
    bad = tmp_path / "ragged.csv"
    bad.write_text("Phone,Name\n+6281200000001,A\n+6281200000002,B,extra\n", encoding="utf-8")
    code = main(argv(sandbox, bad, tmp_path))
    assert code == 2
    err = capsys.readouterr().err
    assert "ragged.csv" in err
    assert "Traceback" not in err
    assert sum(sandbox.status_counts().values()) == 0


def test_a_journal_that_cannot_be_opened_exits_2_before_any_create(
    keyed: Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = keyed
    file = contacts_file(tmp_path / "in.csv", 3)
    (tmp_path / "state").mkdir()  # --state names a directory, not a file
    code = main([*argv(sandbox, file, tmp_path), "--state", str(tmp_path / "state")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"the journal {tmp_path / 'state'}: Is a directory" in err
    assert "Traceback" not in err
    assert sandbox.request_count("POST", ROUTE) == 0


class StopAfter:
    """A Kirim double behind httpx's transport seam: answers 401 from the nth create on."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.creates = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/me"):
            return httpx.Response(
                200,
                json={
                    "data": {
                        "organization": {"id": "org_x", "name": "X"},
                        "rate_limits": {
                            "tier": "pro",
                            "write_per_minute": 600,
                            "read_per_minute": 6000,
                        },
                    }
                },
            )
        if path.endswith("/accounts"):
            return httpx.Response(
                200,
                json={
                    "data": [
                        {
                            "phone_number_id": "1000001",
                            "phone_number": "+62800",
                            "status": "connected",
                        }
                    ]
                },
            )
        self.creates += 1
        if self.creates >= self.n:
            return httpx.Response(
                401,
                json={
                    "error": {
                        "type": "authentication_error",
                        "code": "expired_api_key",
                        "message": "The API key has expired.",
                    }
                },
            )
        body = json.loads(request.content)
        return httpx.Response(201, json={"data": {"id": f"ctc_{self.creates}", **body}})


@pytest.mark.parametrize("batch_size", [50_000, 4], ids=["one-batch", "rows-never-read"])
def test_a_401_mid_run_stops_it_and_every_row_is_still_reported(
    tmp_path: Path, batch_size: int
) -> None:
    file = contacts_file(tmp_path / "in.csv", 30)
    options = RunOptions(
        input=InputOptions(path=file, batch_size=batch_size),
        report_dir=tmp_path / "r",
        state=tmp_path / "j.sqlite",
        base_url="https://api.test/v1",
        api_key="kdv_live_" + "k" * 24,
        on_existing="create",
        concurrency=4,
    )
    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(
        pipeline.run(
            options=options, out=out, err=err, transport=httpx.MockTransport(StopAfter(10))
        )
    )
    assert code == 3
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["rows_total"] == 30
    assert s["created"] == 9
    assert s["failed"] == 21
    assert "expired_api_key" in s["stopped"]
    with (tmp_path / "r" / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["row_number"]) for r in rows] == list(range(1, 31))
    assert [r["status"] for r in rows].count("created") == 9
    with (tmp_path / "r" / "failures.csv").open(encoding="utf-8") as handle:
        failures = list(csv.DictReader(handle))
    assert len(failures) == 21
    assert {f["retryable"] for f in failures} == {"true"}
    assert all(f["Phone"].startswith("+62") for f in failures)  # the original cells
    text = out.getvalue()
    assert "Rerun the same command to resume" in text
    assert "k" * 24 not in text + err.getvalue()


def test_a_stopped_sandbox_run_never_says_rerun_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--sandbox`` starts a fresh server each time: what a stopped run made is gone with it,
    so its closing lines never offer a resume. (Stopped here by its results.csv, which
    cannot be written: a link to /dev/full.)"""
    monkeypatch.delenv("KIRIM_API_KEY", raising=False)
    reports = tmp_path / "r"
    reports.mkdir()
    (reports / "results.csv.partial").symlink_to("/dev/full")
    file = contacts_file(tmp_path / "in.csv", 400)
    code = main(["run", str(file), "--sandbox", "--report-dir", str(reports)])
    out = capsys.readouterr().out
    assert code == 3
    assert "Stopped early: cannot write the report" in out
    assert "to resume" not in out


def test_the_key_never_reaches_logs_or_reports(
    keyed: Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = keyed
    file = contacts_file(tmp_path / "in.csv", 5, invalid=2)
    main(argv(sandbox, file, tmp_path, "-v"))
    captured = capsys.readouterr()
    everything = captured.out + captured.err
    for path in (tmp_path / "r").iterdir():
        everything += path.read_text(encoding="utf-8")
    assert sandbox.token not in everything
    assert sandbox.token[-24:] not in everything
    assert phone(1) in everything  # the reports do carry the contacts themselves


def test_two_connected_accounts_need_a_choice_and_a_degraded_one_may_be_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from importer.sandbox import Account

    accounts = (
        Account("1000001", "+15550100001", "Main", "connected"),
        Account("1000002", "+15550100002", "Second", "connected"),
        Account("1000003", "+15550100003", "Shaky", "degraded"),
    )
    with Sandbox(SandboxConfig(seed=2, accounts=accounts)) as box:
        monkeypatch.setenv("KIRIM_API_KEY", box.token)
        file = contacts_file(tmp_path / "in.csv", 2)
        assert main(argv(box, file, tmp_path)) == 3
        err = capsys.readouterr().err
        assert "choose one with --account" in err
        assert "1000001" in err
        assert "1000002" in err
        assert box.request_count("POST", ROUTE) == 0
        assert main(argv(box, file, tmp_path, "--account", "1000003")) == 0
        assert len(box.creations_by_phone()) == 2
