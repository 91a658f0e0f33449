"""``--notify``: a real HTTP receiver on loopback gets one JSON document at the end of a run,
when the rule says so; never the key or a row's data; a receiver that fails or hangs costs at
most the bound and never changes the exit code."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import importer
from importer import notify
from importer.cli import main
from importer.redact import KEY_SHAPE
from importer.sandbox import Sandbox
from tests.conftest import contacts_file, phone
from tests.proxy import ForwardProxy
from tests.receiver import Receiver

TOKEN = "T0AAA/B0BBB/s3cr3tWebhookToken"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def _run(box: Sandbox, tmp: Path, file: Path, *extra: str) -> int:
    return main([
        "run", str(file), "--base-url", box.base_url, "--default-region", "ID",
        "--report-dir", str(tmp / "r"), "--state", str(tmp / "j.sqlite"), *extra,
    ])  # fmt: skip


def _no_row_data(raw: bytes, token: str, n: int) -> None:
    text = raw.decode()
    assert token not in text
    assert not KEY_SHAPE.search(text)
    for i in range(1, n + 1):
        digits = phone(i)[1:]
        for shown in (digits, digits[2:], "0" + digits[2:]):  # 62812..., 812..., 0812...
            assert shown not in text
        assert f"Contact {i}" not in text
        assert f"c{i}@example.com" not in text


def test_a_failed_run_is_notified_with_counts_and_no_key_or_row_data(
    box: Sandbox, receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "in.csv", 4, invalid=1)
    url = f"{receiver.base}/hook/{TOKEN}"
    assert _run(box, tmp_path, file, "--notify", url) == 1  # invalid rows: exit 1, unchanged
    [got] = receiver.received
    assert got.path == f"/hook/{TOKEN}"
    assert got.headers["Content-Type"] == "application/json"
    doc = got.json
    assert doc["exit_code"] == 1
    assert doc["failed"] is True
    assert doc["stopped"] is None
    assert doc["summary"]["created"] == 4
    assert doc["summary"]["invalid"] == 1
    assert doc["summary"]["rows_total"] == 5
    assert doc["summary"]["reasons"] == {"too_short": 1}
    assert doc["source"] == str(file)
    assert doc["report_dir"] == str(tmp_path / "r")
    assert isinstance(doc["run_id"], int)
    assert doc["account"]
    assert "\n" not in doc["text"]
    assert "FAILED" in doc["text"]
    assert "exit 1" in doc["text"]
    assert "created 4" in doc["text"]
    assert "invalid 1" in doc["text"]
    _no_row_data(got.raw, box.token, 5)
    err = capsys.readouterr().err
    assert TOKEN.split("/")[-1] not in err  # the webhook's token is never logged


def test_a_fine_run_is_not_notified_on_failure_but_is_with_always(
    box: Sandbox, receiver: Receiver, tmp_path: Path
) -> None:
    file = contacts_file(tmp_path / "in.csv", 3)
    url = f"{receiver.base}/hook/{TOKEN}"
    assert _run(box, tmp_path / "a", file, "--notify", url) == 0
    assert receiver.received == []  # --notify-on failure is the default
    assert _run(box, tmp_path / "b", file, "--notify", url, "--notify-on", "always") == 0
    [got] = receiver.received
    assert got.json["exit_code"] == 0
    assert got.json["failed"] is False
    assert got.json["summary"]["exists"] == 3  # the second run found them
    assert got.json["text"].startswith("kirim-import ok: ")
    _no_row_data(got.raw, box.token, 3)


def test_a_failed_run_is_notified_with_always_too(
    box: Sandbox, receiver: Receiver, tmp_path: Path
) -> None:
    file = contacts_file(tmp_path / "in.csv", 2, invalid=2)
    url = f"{receiver.base}/hook/{TOKEN}"
    assert _run(box, tmp_path, file, "--notify", url, "--notify-on", "always") == 1
    assert [r.json["exit_code"] for r in receiver.received] == [1]


def test_the_api_notifies_and_a_refused_run_is_notified_too(
    box: Sandbox, receiver: Receiver, tmp_path: Path
) -> None:
    file = contacts_file(tmp_path / "in.csv", 2, invalid=1)
    url = f"{receiver.base}/hook/{TOKEN}"
    common = {"base_url": box.base_url, "api_key": box.token, "default_region": "ID",
              "state": tmp_path / "j.sqlite", "notify": [url]}  # fmt: skip
    result = importer.run(file, report_dir=tmp_path / "r1", **common)
    assert result.exit_code == 1
    assert receiver.received[-1].json["run_id"] == result.run_id
    # refused before anything is sent (exit 2 on the command line): someone hears of it
    missing = tmp_path / "gone.csv"
    with pytest.raises(importer.InputError):
        importer.run(missing, report_dir=tmp_path / "r2", **common)
    doc = receiver.received[-1].json
    assert doc["exit_code"] == 2
    assert doc["stopped"].startswith("refused: ")
    assert len(receiver.received) == 2


def test_a_failing_receiver_is_retried_then_only_a_warning(
    box: Sandbox, receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "in.csv", 1, invalid=1)
    assert _run(box, tmp_path, file, "--notify", f"{receiver.base}/fail") == 1
    assert len(receiver.received) == notify.ATTEMPTS
    err = capsys.readouterr().err
    assert "notification to http://127.0.0.1:" in err
    assert "HTTP 500 after 3 tries" in err
    assert "exit code is unchanged" in err


def test_an_unreachable_url_costs_at_most_its_bound(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("importer")
    payload = {"text": "x"}
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="importer"):
        sent = asyncio.run(
            notify.send([f"{receiver.base}/hang"], payload, logger=logger, bound_s=1.0)
        )
    elapsed = time.monotonic() - started
    assert sent == {f"{receiver.base}/hang": False}
    assert 1.0 <= elapsed < 1.8  # the bound, and the client's closing
    assert "no answer within the 1 s bound" in caplog.text
    # a port nobody listens on: refused at once, three tries with their short pauses
    started = time.monotonic()
    closed = f"http://127.0.0.1:{_free_port()}/hook/x"
    sent = asyncio.run(notify.send([closed], payload, logger=logger, bound_s=5.0))
    assert sent == {closed: False}
    assert time.monotonic() - started < sum(notify.BACKOFF_S) + 1.0


def test_the_cli_bound_holds_for_a_hanging_receiver_with_the_exit_code_kept(
    box: Sandbox, receiver: Receiver, tmp_path: Path
) -> None:
    """Through main(): a hanging receiver costs the whole bound (30 s), not more: too slow to
    run in full here, so the refused port stands in; the bound itself is tested above."""
    file = contacts_file(tmp_path / "in.csv", 1, invalid=1)
    started = time.monotonic()
    code = _run(box, tmp_path, file, "--notify", f"http://127.0.0.1:{_free_port()}/h")
    assert code == 1
    assert time.monotonic() - started < notify.BOUND_S


def test_notifications_go_through_the_environments_proxy(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        url = f"{receiver.base}/hook/{TOKEN}"
        sent = asyncio.run(notify.send([url], {"text": "hi"}, logger=logging.getLogger("t")))
    assert sent == {url: True}
    assert [(s.method, s.target, s.path) for s in proxy.seen] == [
        ("POST", f"127.0.0.1:{receiver.port}", f"/hook/{TOKEN}")
    ]
    assert receiver.received[0].json == {"text": "hi"}


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.com/services/T0/B0/s3cr3tWebhookToken", "only allowed to loopback"),
        ("ftp://hooks.example.com/s3cr3tWebhookToken", "expected https://host/path"),
        ("https://user:s3cr3tWebhookToken@hooks.example.com/x", "credentials"),
    ],
)
def test_a_notify_url_is_checked_and_never_shown_whole(
    url: str, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("KIRIM_API_KEY", "kdv_test_abc")
    file = contacts_file(tmp_path / "in.csv", 1)
    with pytest.raises(SystemExit) as exited:
        main(["run", str(file), "--notify", url, "--report-dir", str(tmp_path / "r")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert why in err
    assert "s3cr3tWebhookToken" not in err
    with pytest.raises(importer.UsageError, match=why) as raised:
        importer.run(file, notify=[url], report_dir=tmp_path / "r2")
    assert "s3cr3tWebhookToken" not in str(raised.value)


def test_masked_url_keeps_scheme_host_and_port_only() -> None:
    assert notify.masked_url("https://hooks.slack.com/services/T/B/x") == "https://hooks.slack.com/…"
    assert notify.masked_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert notify.masked_url("https://h.example/?token=x") == "https://h.example/…"
    assert notify.masked_url("http://[::1]:9/a") == "http://[::1]:9/…"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_notify_from_the_config_file_with_a_flag_over_its_rule(
    box: Sandbox, receiver: Receiver, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'notify = ["{receiver.base}/hook/{TOKEN}"]\nnotify_on = "always"\n', encoding="utf-8"
    )
    file = contacts_file(tmp_path / "in.csv", 2)
    assert _run(box, tmp_path / "a", file, "--config", str(config)) == 0
    assert len(receiver.received) == 1  # always, from the file
    assert _run(box, tmp_path / "b", file, "--config", str(config), "--notify-on", "failure") == 0
    assert len(receiver.received) == 1  # the flag wins: a fine run is not notified
    result = importer.run(file, config=config, base_url=box.base_url, default_region="ID",
                          report_dir=tmp_path / "c", state=tmp_path / "c.sqlite")  # fmt: skip
    assert result.exit_code == 0
    assert receiver.received[-1].json["run_id"] == result.run_id
    assert len(receiver.received) == 2
