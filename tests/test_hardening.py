"""A server that misbehaves the way real networks do, a disk that fills, a shared host: every
case through ``main(argv)`` against the sandbox, whose faults are switched on and off while it
runs. Exactly-once holds across each failure and the rerun after it."""

from __future__ import annotations

import contextlib
import csv
import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from importer.cli import main
from importer.sandbox import Sandbox
from tests.conftest import contacts_file, phone, write_contacts
from tests.test_run import results, summary


def run(box: Sandbox, file: Path, reports: Path, state: Path, *extra: str) -> int:
    return main(
        ["run", str(file), "--base-url", box.base_url, "--report-dir", str(reports),
         "--state", str(state), "--default-region", "ID", *extra]
    )  # fmt: skip


def posts(box: Sandbox) -> int:
    return sum(r["count"] for r in box.stats()["requests"] if r["method"] == "POST")


def test_html_200s_leave_rows_pending_and_the_rerun_creates_exactly_those(
    box: Sandbox, tmp_path: Path
) -> None:
    file = contacts_file(tmp_path / "in.csv", 30)
    state = tmp_path / "journal.sqlite"
    box.set_faults(html_rate=0.4)
    code = run(box, file, tmp_path / "first", state, "--max-attempts", "1")
    first = results(tmp_path / "first")
    blocked = {r["phone_number"] for r in first if r["status"] == "failed"}
    assert code == 1
    assert 3 <= len(blocked) <= 27  # seeded: some rows met the gateway page
    assert {r["error_code"] for r in first if r["status"] == "failed"} == {"unreadable_answer"}
    assert {r["status"] for r in first} == {"created", "failed"}
    assert all(r["contact_id"] == "" for r in first if r["status"] == "failed")
    assert box.injected()["html"] == len(blocked)
    with sqlite3.connect(state) as db:  # never done without proof
        pending = {p for (p,) in db.execute("SELECT phone FROM contacts WHERE state='pending'")}
    assert pending == blocked

    box.set_faults(html_rate=0.0)
    assert run(box, file, tmp_path / "second", state) == 0
    second = results(tmp_path / "second")
    assert {r["phone_number"] for r in second if r["status"] == "created"} == blocked
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 31)}


def test_an_answer_past_the_cap_is_unanswered_not_a_success(box: Sandbox, tmp_path: Path) -> None:
    file = contacts_file(tmp_path / "in.csv", 3)
    box.set_faults(oversize_rate=1.0, oversize_bytes=3 * 1024 * 1024)
    code = run(box, file, tmp_path / "r", tmp_path / "j.sqlite", "--max-attempts", "1")
    rows = results(tmp_path / "r")
    assert code == 1
    assert {r["status"] for r in rows} == {"failed"}
    assert {r["attempts"] for r in rows} == {"2"}  # the lookup, then the create
    assert all("answer of more than 1024 KiB" in r["error_message"] for r in rows)
    box.set_faults(oversize_rate=0.0)
    assert run(box, file, tmp_path / "again", tmp_path / "j.sqlite") == 0
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 4)}


def test_an_endless_answer_ends_at_the_timeout(box: Sandbox, tmp_path: Path) -> None:
    file = contacts_file(tmp_path / "in.csv", 2)
    box.set_faults(endless_rate=1.0)
    code = run(
        box, file, tmp_path / "r", tmp_path / "j.sqlite", "--max-attempts", "1", "--timeout", "0.5"
    )  # a real half-second wait: what is tested is the clock running out
    assert code == 1
    assert {r["error_code"] for r in results(tmp_path / "r")} == {"read_timeout"}


def test_a_huge_retry_after_stops_the_run_at_once_and_says_so(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "in.csv", 5)
    box.set_faults(retry_after_s=100_000_000)
    code = run(box, file, tmp_path / "r", tmp_path / "j.sqlite")
    out = capsys.readouterr().out
    assert code == 3
    assert "Kirim asks to wait 100000000 s" in out
    assert "rerun later" in out
    assert summary(tmp_path / "r")["rows_total"] == 5
    box.set_faults(retry_after_s=None)
    assert run(box, file, tmp_path / "again", tmp_path / "j.sqlite") == 0
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 6)}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": {"organization": [1, 2]}}, "data.organization is [1, 2]"),
        ({"data": {"organization": {"id": ""}}}, "data.organization.id is ''"),
        (
            {"data": {"organization": {"id": "org_1"}, "rate_limits": {"write_per_minute": -5}}},
            "data.rate_limits.write_per_minute is -5",
        ),
        ({"data": {"organization": {"id": "org_1"}, "rate_limits": "fast"}}, "data.rate_limits"),
    ],
)
def test_a_malformed_me_answer_names_the_field_and_sends_nothing(
    box: Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: dict[str, Any],
    field: str,
) -> None:
    box.set_faults(me_body=body)
    code = run(box, contacts_file(tmp_path / "in.csv", 2), tmp_path / "r", tmp_path / "j.sqlite")
    err = capsys.readouterr().err
    assert code == 3
    assert field in err
    assert "Traceback" not in err
    assert posts(box) == 0


def test_a_malformed_accounts_answer_names_the_field(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box.set_faults(accounts_body={"data": [{"phone_number_id": 12345678, "status": "connected"}]})
    code = run(box, contacts_file(tmp_path / "in.csv", 2), tmp_path / "r", tmp_path / "j.sqlite")
    assert code == 3
    assert "data[0].phone_number_id is 12345678" in capsys.readouterr().err
    assert posts(box) == 0


@contextlib.contextmanager
def tiny_disk(path: Path, size: str = "24k") -> Iterator[None]:
    """A real filesystem that fills: a small tmpfs where the test may mount one (root on
    Linux), else a folder whose report files are links to /dev/full (writes fail ENOSPC)."""
    path.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if not mounted:
        for name in ("results.csv.partial", "failures.csv.partial"):
            (path / name).symlink_to("/dev/full")
    try:
        yield
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=False)


def test_a_full_report_disk_stops_the_run_cleanly_and_the_rerun_doubles_nothing(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "in.csv", 400)
    state = tmp_path / "j.sqlite"
    with tiny_disk(tmp_path / "full"):
        code = run(box, file, tmp_path / "full" / "r", state)
        captured = capsys.readouterr()
    assert code == 3
    assert "cannot write the report in" in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err
    assert run(box, file, tmp_path / "again", state) == 0
    again = summary(tmp_path / "again")
    assert again["rows_total"] == 400
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 401)}


def test_reports_and_the_journal_are_private_under_umask_022(box: Sandbox, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        state = tmp_path / "state" / "journal.sqlite"
        reports = tmp_path / "reports" / "r"
        assert run(box, contacts_file(tmp_path / "in.csv", 3), reports, state) == 0
    finally:
        os.umask(old)
    for folder in (reports, reports.parent, state.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    files = [*reports.iterdir(), *state.parent.iterdir()]
    assert {f.name for f in files} >= {"results.csv", "failures.csv", "summary.json"}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


@pytest.mark.parametrize(
    "args",
    [
        ["--account", "kdv_live_" + "Q" * 24],
        ["--base-url", "http://kdv_live_" + "Q" * 24 + "@127.0.0.1:9/v1"],
        ["--map", "name=kdv_test_" + "Q" * 24],
    ],
)
def test_a_key_given_as_an_argument_is_refused_and_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    file = contacts_file(tmp_path / "in.csv", 1)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(file), "--report-dir", str(tmp_path / "r"), *args])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    assert "Q" * 24 not in captured.out + captured.err
    assert "looks like a Kirim API key" in captured.err


def test_credentials_in_the_base_url_are_refused(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = box.base_url.replace("http://", "http://admin:hunter2@")
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(contacts_file(tmp_path / "in.csv", 1)), "--base-url", url])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "credentials" in err
    assert "hunter2" not in err


def test_a_server_message_holding_the_key_is_redacted_in_every_report(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box.set_faults(error_message=f"field rejected for key {box.token}")
    code = run(box, contacts_file(tmp_path / "in.csv", 2), tmp_path / "r", tmp_path / "j.sqlite")
    captured = capsys.readouterr()
    assert code == 1
    written = "".join(p.read_text() for p in (tmp_path / "r").iterdir())
    assert "field rejected for key [redacted]" in written
    assert box.token not in written + captured.out + captured.err


def test_a_key_echoed_as_the_request_id_reaches_no_file(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that answers with the request's Authorization header as its request id (in
    ``X-Request-Id`` and the body's ``request_id``): every report and the journal hold it
    redacted."""
    box.set_faults(echo_header="Authorization")
    code = run(box, contacts_file(tmp_path / "in.csv", 3), tmp_path / "r", tmp_path / "j.sqlite")
    captured = capsys.readouterr()
    assert code == 0
    assert box.injected()["echo_header"] >= 5  # me, accounts and the three rows' requests
    assert {r["request_id"] for r in results(tmp_path / "r")} == {"Bearer [redacted]"}
    written = b"".join(p.read_bytes() for p in (tmp_path / "r").iterdir())
    written += b"".join(p.read_bytes() for p in tmp_path.glob("j.sqlite*"))
    assert box.token.encode() not in written
    assert box.token not in captured.out + captured.err
    with sqlite3.connect(tmp_path / "j.sqlite") as db:
        assert {r for (r,) in db.execute("SELECT request_id FROM contacts")} == {
            "Bearer [redacted]"
        }


def test_header_cells_are_formula_safe_in_failures_csv_and_a_reimport_maps_them_back(
    box: Sandbox, tmp_path: Path
) -> None:
    """failures.csv repeats the input's own header: cells a spreadsheet would run (``=``,
    ``+``, ``@``) get the same leading ``'`` as any cell, and feeding the file back reads
    them as the original names."""
    link, plus, at = '=HYPERLINK("https://evil.test","x")', "+x", "@x"
    rows = [
        {"Phone": phone(1), "Name": "Ana", link: "a", plus: "b", at: "c"},
        {"Phone": "12", "Name": "Budi", link: "d", plus: "e", at: "f"},
    ]
    first = tmp_path / "first"
    assert run(box, write_contacts(tmp_path / "in.csv", rows), first, tmp_path / "j.sqlite") == 1
    with (first / "failures.csv").open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[:5] == ["Phone", "Name", "'" + link, "'+x", "'@x"]
    for name in ("failures.csv", "results.csv"):
        with (first / name).open(encoding="utf-8", newline="") as handle:
            for line in csv.reader(handle):
                assert not any(c[:1] in ("=", "+", "@") and c != phone(1) for c in line), line
    fixed = (first / "failures.csv").read_text(encoding="utf-8").replace("\n12,", f"\n{phone(2)},")
    (tmp_path / "fixed.csv").write_text(fixed, encoding="utf-8")
    second = tmp_path / "second"
    assert run(box, tmp_path / "fixed.csv", second, tmp_path / "j.sqlite") == 0
    made = {c["phone_number"]: c["metadata"] for c in box.contacts()}
    assert made[phone(2)] == {link: "d", plus: "e", at: "f"}  # the names as first written
    assert made[phone(1)] == {link: "a", plus: "b", at: "c"}
    assert [r["source_row"] for r in results(second)] == ["2"]


@pytest.mark.parametrize("kind", ["aiohttp", "plain"])
def test_an_answer_the_http_stack_cannot_parse_is_a_value_and_never_shows_the_key(
    tmp_path: Path, kind: str
) -> None:
    """Whatever the layers under httpx raise (here the aiohttp adapter's own error for a
    malformed answer, which it does not map to httpx's), the row is unanswered, the run ends
    cleanly, and no message carries the headers with the key."""
    import asyncio
    import io

    import aiohttp
    import httpx

    from importer import pipeline
    from importer.options import InputOptions, RunOptions

    key = "kdv_live_" + "S" * 24

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/me"):
            return httpx.Response(200, json={"data": {"organization": {"id": "org_1"}}})
        if request.url.path.endswith("/accounts"):
            return httpx.Response(
                200, json={"data": [{"phone_number_id": "1065403522", "status": "connected"}]}
            )
        told = f"Invalid Content-Length; headers {dict(request.headers)}"
        if kind == "plain":
            raise RuntimeError(told)
        # what aiohttp raises when it cannot parse an answer: status 400 is its parser's
        raise aiohttp.ClientResponseError(None, (), status=400, message=told)  # type: ignore[arg-type]

    options = RunOptions(
        input=InputOptions(path=contacts_file(tmp_path / "in.csv", 3), default_region="ID"),
        report_dir=tmp_path / "r", state=tmp_path / "j.sqlite", base_url="https://kirim.test/v1",
        api_key=key, max_attempts=1,
    )  # fmt: skip
    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(
        pipeline.run(options=options, out=out, err=err, transport=httpx.MockTransport(handler))
    )
    rows = results(tmp_path / "r")
    written = out.getvalue() + err.getvalue()
    written += "".join(p.read_text() for p in (tmp_path / "r").iterdir())
    assert key not in written
    if kind == "plain":  # not the network's failure: a bug, which stops the run, untried again
        assert code == 3
        assert rows[0]["error_code"] == "internal_error"
        assert "RuntimeError" in rows[0]["error_message"]
        assert "Bearer [redacted]" in rows[0]["error_message"]
        assert {r["error_code"] for r in rows[1:]} <= {"internal_error", "not_attempted"}
    else:  # aiohttp's parser refusing the answer: a protocol failure, never Kirim's 400
        assert code == 1
        assert [(r["status"], r["error_code"]) for r in rows] == [("failed", "protocol_error")] * 3
        assert rows[0]["http_status"] == ""
        assert rows[0]["error_message"].startswith("no answer from Kirim: what came back is not")
        assert "400" not in rows[0]["error_message"]
