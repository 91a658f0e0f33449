"""``--log-format json``: every line on standard error is one JSON object with ``ts``,
``level``, ``event``, ``message`` and the fields the README's table documents for its event;
redacted as the text log is."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from importer.cli import main
from importer.progress import Progress, logging_to
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import UNLIMITED, contacts_file, phone
from tests.fakes import FakeClock
from tests.receiver import Receiver

README = Path(__file__).resolve().parents[1] / "README.md"
BASE = ("ts", "level", "event", "message")


def documented() -> dict[str, set[str]]:
    """The README's table of JSON events: each event's documented fields."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### JSON logs") :]
    section = section[: section.index("\n### ")]
    events: dict[str, set[str]] = {}
    for row in re.finditer(r"^\| `(\w+)` \| (\w+) \|[^|]*\|([^|]*)\|$", section, re.M):
        fields = set(re.findall(r"`(\w+)`", row.group(3)))
        fields.discard("count")
        events[row.group(1)] = fields - {"created", "updated", "unchanged", "exists",
                                         "duplicate_in_file", "invalid", "failed"}  # fmt: skip
    return events


def parsed(err: str) -> list[dict[str, Any]]:
    lines = [line for line in err.splitlines() if line.strip()]
    out = []
    for line in lines:
        record = json.loads(line)  # every line is JSON: a text line fails here
        assert isinstance(record, dict)
        out.append(record)
    return out


def check(records: list[dict[str, Any]]) -> None:
    table = documented()
    for record in records:
        for key in BASE:
            assert isinstance(record[key], str), (key, record)
        when = dt.datetime.fromisoformat(record["ts"])
        assert record["ts"].endswith("Z")
        assert when.utcoffset() == dt.timedelta(0)
        assert abs((dt.datetime.now(dt.UTC) - when).total_seconds()) < 300
        assert record["level"] in ("debug", "info", "warning", "error")
        assert record["event"] in table, record["event"]
        missing = table[record["event"]] - set(record)
        assert not missing, (record["event"], missing)


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(seed=3, fault_rate=0.5, **UNLIMITED)) as box:
        monkeypatch.setenv("KIRIM_API_KEY", box.token)
        yield box


def test_the_readme_documents_the_events() -> None:
    table = documented()
    assert {"run_started", "progress", "row_failed", "wait", "stopped", "summary",
            "notify_sent", "notify_failed", "error", "log"} <= set(table)  # fmt: skip
    assert {"rows_done", "rows_total", "rate_per_s", "eta_s", "counts"} <= table["progress"]
    assert {"exit_code", "reasons", "report_dir"} <= table["summary"]


def test_every_line_of_a_json_run_parses_with_the_documented_fields(
    faulty: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "in.csv", 12, invalid=1)
    with Receiver() as receiver:
        code = main([
            "run", str(file), "--base-url", faulty.base_url, "--default-region", "ID",
            "--report-dir", str(tmp_path / "r"), "--state", str(tmp_path / "j.sqlite"),
            "--max-attempts", "1", "--log-format", "json",
            "--notify", f"{receiver.base}/hook/abc", "--notify", f"{receiver.base}/fail",
        ])  # fmt: skip
    assert code == 1
    captured = capsys.readouterr()
    records = parsed(captured.err)
    check(records)
    events = [r["event"] for r in records]
    assert events[0] == "run_started"
    assert records[0]["account"].isdigit()  # an identifier, not masked as a phone would be
    assert "row_failed" in events
    assert {"summary", "notify_sent", "notify_failed"} <= set(events)
    [summary] = [r for r in records if r["event"] == "summary"]
    assert summary["exit_code"] == 1
    assert summary["failed"] == events.count("row_failed") > 0
    assert summary["created"] + summary["failed"] + summary["invalid"] == summary["rows_total"]
    failed = [r for r in records if r["event"] == "row_failed"]
    assert all(isinstance(r["row_number"], int) and r["retryable"] for r in failed)
    for i in range(1, 13):  # phones masked, the key never shown
        assert phone(i) not in captured.err
    assert faulty.token not in captured.err
    assert "Requests:" in captured.out  # the closing lines stay on standard output


def test_a_stop_and_a_refusal_are_json_lines_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "in.csv", 3)
    with Sandbox(SandboxConfig(seed=5)) as box:
        monkeypatch.setenv("KIRIM_API_KEY", "kdv_test_" + "W" * 20)  # not the sandbox's
        code = main([
            "run", str(file), "--base-url", box.base_url, "--report-dir", str(tmp_path / "r"),
            "--log-format", "json", "--default-region", "ID",
        ])  # fmt: skip
    assert code == 3
    records = parsed(capsys.readouterr().err)
    check(records)
    [stopped] = [r for r in records if r["event"] == "stopped"]
    assert stopped["level"] == "error"
    assert stopped["exit_code"] == 3
    assert "W" * 20 not in json.dumps(records)
    assert [r["event"] for r in records][-1] == "summary"
    # refused before anything is sent: a missing file, a config mistake
    assert main(["run", str(tmp_path / "gone.csv"), "--log-format", "json"]) == 2
    config = tmp_path / "c.toml"
    config.write_text("concurrency = 'ten'\n", encoding="utf-8")
    assert main(["run", str(file), "--config", str(config), "--log-format", "json"]) == 2
    records = parsed(capsys.readouterr().err)
    check(records)
    assert [(r["event"], r["exit_code"]) for r in records] == [("error", 2), ("error", 2)]
    assert f"{config}:1: concurrency" in records[1]["message"]


def test_log_format_may_come_from_the_config_file(
    faulty: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'log_format = "json"\nquiet = true\nbase_url = "{faulty.base_url}"\n'
                      'default_region = "ID"\nmax_attempts = 1\n', encoding="utf-8")  # fmt: skip
    file = contacts_file(tmp_path / "in.csv", 8)
    code = main(["run", str(file), "--config", str(config), "--report-dir", str(tmp_path / "r")])
    assert code == 1
    records = parsed(capsys.readouterr().err)
    check(records)
    # quiet: warnings and errors, and the summary; no run_started (info)
    assert {r["event"] for r in records} == {"row_failed", "summary"}


def test_progress_events_carry_counts_rate_and_eta() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    with logging_to(stream=stream, verbose=False, log_format="json") as logger:
        progress = Progress(stream=stream, total=100, logger=logger, every_s=10, clock=clock)
        progress.advance("created", 10)
        clock.now += 10
        progress.advance("created", 30)
        progress.advance("failed", 1)  # within the 10 s: no line
        clock.now += 10
        progress.advance("exists", 9)
    records = parsed(stream.getvalue())
    check(records)
    assert [r["event"] for r in records] == ["progress", "progress"]
    first, second = records
    assert (first["rows_done"], first["rows_total"], first["rate_per_s"]) == (40, 100, 4.0)
    assert first["eta_s"] == 15.0  # 60 rows left at 4 a second
    assert second["counts"] == {"created": 40, "exists": 9, "failed": 1}
    assert second["rows_done"] == 50
    assert second["eta_s"] == 20.0
