"""The time window: ``--max-duration`` and ``--until`` parsed and turned into one deadline;
a window that closes mid-run stops it cleanly (exit 3, "time window closed", nothing half
done), and the next run resumes with every phone created once at the sandbox. The closing
is driven by an injected clock (``pipeline.run(clock=...)``) where it can be; the command
line and the API, which have no seam, get a real two-second window on a sandbox slowed by its
own latency. ``plan`` says how many runs of a window a file needs."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import importer
from importer import configure, pipeline
from importer.cli import main
from importer.errors import UsageError
from importer.sandbox import Sandbox, SandboxConfig
from importer.send.stop import Stop, Why
from importer.window import (
    Window,
    describe,
    parse_duration,
    parse_until,
    runs_needed,
    seconds_until,
)
from tests.conftest import UNLIMITED, contacts_file, phone
from tests.test_run import results, summary

SLOW = {"latency_ms": (30.0, 40.0), **UNLIMITED}  # ~70 ms a row at one in flight


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("90m", 5400), ("5h30m", 19800), ("1h15m30s", 4530), ("2H", 7200),
     ("1.5h", 5400), (30, 30), (0.5, 0.5)],
)  # fmt: skip
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "h", "5x", "-5m", "0s", "5m5h", " ", "1d"])
def test_durations_that_are_not(text: str) -> None:
    with pytest.raises(UsageError, match="--max-duration"):
        parse_duration(text)


def test_until_is_hh_mm_and_the_next_such_local_moment() -> None:
    assert parse_until("6:00") == "06:00"
    assert parse_until("23:59") == "23:59"
    for bad in ("24:00", "6", "06:60", "6pm", "06:00:00"):
        with pytest.raises(UsageError, match="--until"):
            parse_until(bad)
    now = time.time()
    for hhmm in ("00:00", "06:00", time.strftime("%H:%M", time.localtime(now))):
        left = seconds_until(hhmm, now)
        assert 0 < left <= 25 * 3600  # today's, else tomorrow's (a DST day is 25 h at most)
        assert time.strftime("%H:%M", time.localtime(now + left)) == hhmm
    this_minute = time.strftime("%H:%M", time.localtime(now))  # already begun: tomorrow's
    assert seconds_until(this_minute, now) > 23 * 3600


def test_the_window_is_the_earlier_of_the_two_and_closes_on_the_clock() -> None:
    now = [100.0]
    window = Window.opening(max_duration_s=60, until=None, started=100.0, clock=lambda: now[0])
    assert window is not None
    assert (window.deadline, window.reason) == (
        160.0, "time window closed (--max-duration 1m)"
    )
    later = Window.opening(max_duration_s=10**9, until="06:00", started=0.0, clock=lambda: 0.0)
    assert later is not None
    assert "--until 06:00" in later.reason
    assert Window.opening(max_duration_s=None, until=None, started=0.0) is None

    stop, slept = Stop(), []

    async def sleep(seconds: float) -> None:  # a fake clock's: time passes when slept
        slept.append(seconds)
        now[0] += seconds

    asyncio.run(window.watch(stop, sleep))
    assert stop.why is Why.WINDOW
    assert stop.reason == window.reason
    assert now[0] >= 160.0
    assert len(slept) == 240


def test_a_stop_for_another_reason_ends_the_watch() -> None:
    stop = Stop()
    stop.request(Why.SIGNAL, "interrupted")
    window = Window(deadline=0.0, reason="x", clock=lambda: 10.0)
    asyncio.run(window.watch(stop, asyncio.sleep))
    assert stop.reason == "interrupted"  # the first reason wins


def test_plans_sentence() -> None:
    assert runs_needed(100_000, 60, 5 * 3600) == (
        "at 60 writes/min, 100,000 creates need 27.8 h: 6 runs of 5h"
    )
    assert runs_needed(1_000, 600, None) == "at 600 writes/min, 1,000 creates need 40 s"
    assert runs_needed(10, 600, 90) == (
        "at 600 writes/min, 10 creates need no wait (the bucket's first burst): 1 run of 1m30s"
    )
    assert describe(19800) == "5h30m"


def test_plan_says_how_many_runs_of_the_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "a.csv", 300)
    argv = ["plan", str(file), "--default-region", "ID", "--report-dir", str(tmp_path / "p"),
            "--write-per-minute", "60", "--max-duration", "90s"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Time window (--max-duration 90s): at 60 writes/min, 300 creates need 4.0 min: " in out
    assert ": 3 runs of 1m30s." in out
    planned = importer.plan(file, report_dir=tmp_path / "q", default_region="ID",
                            write_per_minute=60, until="06:00")  # fmt: skip
    assert planned.ok


def _closes_after(box: Sandbox, creates: int) -> Callable[[], float]:
    """A clock that stands still until the sandbox has ``creates`` contacts, then jumps a day."""
    return lambda: 0.0 if len(box.contacts()) < creates else 86_400.0


def test_a_window_closing_mid_run_stops_it_cleanly_and_the_next_run_resumes(
    tmp_path: Path,
) -> None:
    with Sandbox(SandboxConfig(seed=5, **SLOW)) as box:
        file = contacts_file(tmp_path / "a.csv", 40, invalid=2)
        options = configure.run_options(
            source=file, base_url=box.base_url, api_key=box.token, report_dir=tmp_path / "r1",
            state=tmp_path / "j.sqlite", default_region="ID", max_duration="5h30m",
            concurrency=1,
        )  # fmt: skip
        out = io.StringIO()
        code = asyncio.run(pipeline.run(options=options, out=out, err=io.StringIO(),
                                        signals=False, clock=_closes_after(box, 12)))  # fmt: skip
        assert code == 3
        first = summary(tmp_path / "r1")
        assert first["stopped"] == "time window closed (--max-duration 5h30m)"
        assert first["stop_kind"] == "window"
        assert 12 <= first["created"] < 40
        assert first["reasons"]["not_attempted"] == 40 - first["created"]
        assert "Rerun the same command to resume" in out.getvalue()
        rows = results(tmp_path / "r1")
        assert {r["status"] for r in rows} == {"created", "failed", "invalid"}

        options = configure.run_options(
            source=file, base_url=box.base_url, api_key=box.token, report_dir=tmp_path / "r2",
            state=tmp_path / "j.sqlite", default_region="ID", concurrency=8,
        )  # fmt: skip
        code = asyncio.run(pipeline.run(options=options, out=io.StringIO(), err=io.StringIO(),
                                        signals=False))  # fmt: skip
        assert code == 1  # the two invalid rows
        second = summary(tmp_path / "r2")
        assert (second["created"], second["failed"], second["stopped"]) == (40, 0, None)
        assert second["run_id"] == first["run_id"]  # resumed, not begun again
        assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 41)}


def test_a_two_second_window_through_the_command_line_then_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with Sandbox(SandboxConfig(seed=6, **SLOW)) as box:
        monkeypatch.setenv("KIRIM_API_KEY", box.token)
        file = contacts_file(tmp_path / "a.csv", 60)  # ~4 s of work at one in flight
        argv = ["run", str(file), "--base-url", box.base_url, "--state", str(tmp_path / "j"),
                "--default-region", "ID", "--concurrency", "1", "--max-duration", "2s",
                "--report-dir", str(tmp_path / "cli")]  # fmt: skip
        assert main(argv) == 3
        err = capsys.readouterr().err
        assert "kirim-import: stopped: time window closed (--max-duration 2s)" in err
        done = summary(tmp_path / "cli")["created"]
        assert 0 < done < 60

        result = importer.run(file, base_url=box.base_url, state=tmp_path / "j",
                              default_region="ID", report_dir=tmp_path / "api",
                              max_duration=2, concurrency=1)  # fmt: skip
        assert result.exit_code == 3
        assert result.stopped is not None
        assert result.stopped.startswith("time window closed")
        assert done <= result.counts["created"] < 60  # its report counts every row of the run
        result = importer.run(file, base_url=box.base_url, state=tmp_path / "j",
                              default_region="ID", report_dir=tmp_path / "last")  # fmt: skip
        assert (result.exit_code, result.counts["created"]) == (0, 60)
        assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 61)}
