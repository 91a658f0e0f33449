"""What a blind nightly job hears of the paths the other issues added, through ``main(argv)``
and ``importer.run``: JSON log events for an adoption, the detaches of ``--sync-label``, an
account column's routing, a ``--max-failed`` stop and a guard rail's refusal (each line JSON,
each event and its fields in the README's table); notifications carrying ``stop_kind``, the
guard that refused and the labels' count, a label failure and a refusal both notified under
``--notify-on failure``."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import importer
from importer import configure, pipeline
from importer.cli import main
from importer.errors import Refused
from importer.jsonlog import JsonFormatter
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import UNLIMITED, contacts_file, phone, write_contacts
from tests.receiver import Receiver
from tests.test_accounts import ACCOUNTS, BRANCH, MAIN
from tests.test_jsonlog import check, parsed
from tests.test_window import SLOW, _closes_after


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _argv(box: Sandbox, tmp: Path, file: Path, name: str, *extra: str) -> list[str]:
    return [
        "run", str(file), "--base-url", box.base_url, "--default-region", "ID",
        "--report-dir", str(tmp / name), "--state", str(tmp / "j.sqlite"), *extra,
    ]  # fmt: skip


def _api(box: Sandbox, tmp: Path, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": box.base_url, "api_key": box.token, "default_region": "ID",
        "report_dir": tmp / name, "state": tmp / "j.sqlite", **extra,
    }  # fmt: skip


def _events(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == name]


def test_adoption_detaches_and_a_max_detach_refusal_are_documented_json_events(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "segment.csv"
    contacts_file(file, 5)
    json_run = ("--sync-label", "active", "--adopt", "--log-format", "json")
    assert main(_argv(box, tmp_path, file, "a", *json_run)) == 0
    contacts_file(file, 3)  # two left the segment
    assert main(_argv(box, tmp_path, file, "b", *json_run, "--allow-shrink")) == 2
    assert main(_argv(box, tmp_path, file, "c", *json_run, "--max-detach", "2")) == 0
    records = parsed(capsys.readouterr().err)
    check(records)  # every line JSON, every event with its documented fields
    adopted = _events(records, "adopted")
    assert [(a["complete"], a["asked"]) for a in adopted] == [(True, True), (True, True)]
    assert adopted[1]["contacts"] == 5  # the second run paged in what the first made
    detached = _events(records, "detached")
    assert [d["detached"] for d in detached] == [0, 2]
    assert detached[1]["sync_labels"]["active"]["left_source"] == 2
    [refused] = _events(records, "error")
    assert (refused["exit_code"], refused["guard"]) == (2, "max_detach")
    assert refused["facts"] == {"sync_labels": {"active": {"members": 5, "leaving": 2}}}
    assert all(r["guard"] is None for r in _events(records, "error") if r is not refused)


def test_the_api_logs_the_same_events_to_the_importer_logger(box: Sandbox, tmp_path: Path) -> None:
    """A host's own handler with ``importer.jsonlog.JsonFormatter`` writes what the command
    line writes: every line JSON, the documented events and fields, the key never in them."""
    file = contacts_file(tmp_path / "segment.csv", 4)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("importer")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        options = _api(box, tmp_path, "a", sync_labels=["active"], adopt=True, log_format="json")
        assert importer.run(file, **options).exit_code == 0
        contacts_file(file, 1)
        with pytest.raises(Refused) as caught:  # 3 of 4 would leave: more than 10%
            importer.run(file, **{**options, "report_dir": tmp_path / "b", "allow_shrink": True})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert caught.value.guard == "max_detach"
    records = parsed(stream.getvalue())
    check(records)
    assert [r["event"] for r in records] == ["run_started", "adopted", "detached", "summary"]
    assert records[-1]["stop_kind"] is None
    assert box.token not in stream.getvalue()


def test_an_account_columns_routing_is_in_run_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write_contacts(tmp_path / "in.csv", [
        {"Phone": phone(1), "Akun": MAIN}, {"Phone": phone(2), "Akun": BRANCH},
    ])  # fmt: skip
    with Sandbox(SandboxConfig(seed=5, accounts=ACCOUNTS, **UNLIMITED)) as org:
        monkeypatch.setenv("KIRIM_API_KEY", org.token)
        argv = _argv(org, tmp_path, file, "a", "--log-format", "json")
        assert main(argv) == 0
        plain = contacts_file(tmp_path / "plain.csv", 1)
        argv = _argv(org, tmp_path, plain, "b", "--log-format", "json", "--account", MAIN)
        assert main(argv) == 0
    records = parsed(capsys.readouterr().err)
    check(records)
    routed, single = _events(records, "run_started")
    assert (routed["account_column"], routed["accounts"]) == ("Akun", [MAIN, BRANCH])
    assert (single["account_column"], single["accounts"]) == (None, None)


def test_a_max_failed_stop_carries_its_kind_in_the_log_and_the_notification(
    box: Sandbox, receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box.set_faults(error_message="refused")  # every create: 400
    file = contacts_file(tmp_path / "in.csv", 10)
    hook = f"{receiver.base}/hook/t"
    extra = ("--max-failed", "2", "--concurrency", "1", "--log-format", "json", "--notify", hook)
    assert main(_argv(box, tmp_path, file, "a", *extra)) == 3
    records = parsed(capsys.readouterr().err)
    check(records)
    [stopped] = _events(records, "stopped")
    [summary] = _events(records, "summary")
    assert stopped["stop_kind"] == summary["stop_kind"] == "failures"
    doc = receiver.received[-1].json
    assert (doc["exit_code"], doc["failed"], doc["stop_kind"], doc["guard"]) == (
        3, True, "failures", None
    )  # fmt: skip
    result = importer.run(file, **_api(box, tmp_path, "b", max_failed=2, concurrency=1,
                                       notify=[hook]))  # fmt: skip
    assert (result.exit_code, result.summary["stop_kind"]) == (3, "failures")
    assert receiver.received[-1].json["stop_kind"] == "failures"
    assert len(receiver.received) == 2


def test_a_guard_refusal_is_notified_with_the_guard_and_its_numbers(
    box: Sandbox, receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "in.csv", 3, invalid=2)
    hook = f"{receiver.base}/hook/t"
    extra = ("--max-invalid", "1", "--log-format", "json", "--notify", hook)
    assert main(_argv(box, tmp_path, file, "a", *extra)) == 2
    [error] = _events(parsed(capsys.readouterr().err), "error")
    assert (error["guard"], error["facts"]) == (
        "max_invalid", {"invalid": 2, "rows_total": 5, "allowed": 1}
    )  # fmt: skip
    with pytest.raises(Refused):
        importer.run(file, **_api(box, tmp_path, "b", max_invalid=1, notify=[hook]))
    for got in receiver.received:  # --notify-on failure: a refusal is a failure
        doc = got.json
        assert (doc["exit_code"], doc["failed"], doc["guard"]) == (2, True, "max_invalid")
        assert doc["summary"]["guards"] == {"invalid": 2, "rows_total": 5, "allowed": 1}
        assert doc["stopped"].startswith("refused: 2 of 5 rows are invalid")
    assert len(receiver.received) == 2
    assert box.contacts() == []  # nothing sent


def test_a_label_failure_is_notified_as_a_failure_with_its_count(
    box: Sandbox, receiver: Receiver, tmp_path: Path
) -> None:
    box.set_faults(label_status=500)
    file = contacts_file(tmp_path / "in.csv", 3)
    hook = f"{receiver.base}/hook/t"
    extra = ("--label", "VIP", "--max-attempts", "1", "--notify", hook, "--on-existing", "update")
    assert main(_argv(box, tmp_path, file, "a", *extra)) == 1  # every row created, no label
    result = importer.run(file, **_api(box, tmp_path, "b", labels=["VIP"], max_attempts=1,
                                       notify=[hook], on_existing="update"))  # fmt: skip
    assert (result.exit_code, result.counts["failed"]) == (1, 0)
    assert result.counts["unchanged"] == 3  # the label is tried again, and fails again
    assert len(receiver.received) == 2  # --notify-on failure: both runs failed
    for got in receiver.received:
        doc = got.json
        assert (doc["exit_code"], doc["failed"], doc["stop_kind"]) == (1, True, None)
        assert doc["summary"]["failed"] == 0
        assert doc["summary"]["labels"]["failed"] == 3
        assert doc["summary"]["labels"]["failed_by_reason"] == {"call_failed": 3}
        assert "exit 1 (rows invalid or failed, or labels)" in doc["text"]
        assert "labels not attached: 3" in doc["text"]


def test_a_window_closing_is_a_json_stop_of_kind_window_and_notified(
    receiver: Receiver, tmp_path: Path
) -> None:
    with Sandbox(SandboxConfig(seed=5, **SLOW)) as box:
        file = contacts_file(tmp_path / "a.csv", 30)
        options = configure.run_options(
            source=file, base_url=box.base_url, api_key=box.token, report_dir=tmp_path / "r",
            state=tmp_path / "j.sqlite", default_region="ID", max_duration="5h", concurrency=1,
            log_format="json", notify=[f"{receiver.base}/hook/t"],
        )  # fmt: skip
        err = io.StringIO()
        code = asyncio.run(pipeline.run(options=options, out=io.StringIO(), err=err,
                                        signals=False, clock=_closes_after(box, 5)))  # fmt: skip
    assert code == 3
    records = parsed(err.getvalue())
    check(records)
    [stopped] = _events(records, "stopped")
    assert (stopped["stop_kind"], stopped["reason"]) == (
        "window", "time window closed (--max-duration 5h)"
    )  # fmt: skip
    assert _events(records, "summary")[0]["stop_kind"] == "window"
    [got] = receiver.received
    assert (got.json["stop_kind"], got.json["exit_code"]) == ("window", 3)
