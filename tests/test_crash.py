"""Crashes and signals, for real: the importer runs as a child process and is killed."""

from __future__ import annotations

import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import contacts_file, phone

ROUTE = "/v1/{phone_number_id}/contacts"


def command(box: Sandbox, file: Path, tmp: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "importer",
        "run",
        str(file),
        "--base-url",
        box.base_url,
        "--state",
        str(tmp / "journal.sqlite"),
        "--report-dir",
        str(tmp / "reports"),
        "--concurrency",
        "16",
    ]


def wait_for_posts(box: Sandbox, more_than: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while box.request_count("POST", ROUTE) <= more_than:
        assert time.monotonic() < deadline, "the importer never started sending"
        time.sleep(0.01)


def test_sigkill_at_random_moments_then_rerun_loses_and_doubles_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261124)
    config = SandboxConfig(
        seed=9, latency_ms=(5.0, 20.0), write_per_minute=600_000, read_per_minute=6_000_000
    )
    with Sandbox(config) as box:
        file = contacts_file(tmp_path / "in.csv", 1000)
        env = {**os.environ, "KIRIM_API_KEY": box.token}
        cmd = command(box, file, tmp_path)
        kills = 0
        for _ in range(4):
            before = box.request_count("POST", ROUTE)
            child = subprocess.Popen(
                cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            wait_for_posts(box, before)
            time.sleep(rng.uniform(0.0, 0.3))
            if child.poll() is None:
                child.kill()
                kills += 1
            child.wait(timeout=30)
        assert kills >= 2  # the test is about kills; make sure they happened
        with sqlite3.connect(tmp_path / "journal.sqlite") as db:
            pending = {p for (p,) in db.execute("SELECT phone FROM contacts WHERE state='pending'")}
        # a kill landed between an intent and its outcome for a contact Kirim had created:
        # the case exactly-once is about (the rerun must look it up, not create it again)
        assert pending & set(box.creations_by_phone())
        lookups = box.request_count("GET", ROUTE)
        final = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert final.returncode == 0, final.stdout + final.stderr
        assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 1001)}
        assert box.request_count("GET", ROUTE) - lookups >= len(pending)  # each looked up
        with (tmp_path / "reports" / "results.csv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert [int(r["row_number"]) for r in rows] == list(range(1, 1001))
        # every invocation was the same run: the contacts the killed ones made are created,
        # never "exists" (the journal knows which run sent each create)
        assert {r["status"] for r in rows} == {"created"}


@pytest.mark.parametrize(
    ("signum", "group", "rows"),
    [
        (signal.SIGINT, False, 2000),
        (signal.SIGTERM, False, 2000),
        # a terminal's Ctrl-C reaches the whole process group, validation workers included
        (signal.SIGINT, True, 30_000),
    ],
    ids=["SIGINT", "SIGTERM", "SIGINT-to-the-process-group"],
)
def test_a_signal_stops_cleanly_reports_and_exits_3(
    tmp_path: Path, signum: int, group: bool, rows: int
) -> None:
    config = SandboxConfig(
        seed=4, latency_ms=(20.0, 20.0), write_per_minute=600_000, read_per_minute=6_000_000
    )
    with Sandbox(config) as box:
        file = contacts_file(tmp_path / "in.csv", rows)
        env = {**os.environ, "KIRIM_API_KEY": box.token}
        child = subprocess.Popen(
            command(box, file, tmp_path),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=group,
        )
        wait_for_posts(box, 20)
        if group:
            os.killpg(child.pid, signum)
        else:
            child.send_signal(signum)
        out, err = child.communicate(timeout=60)
        assert child.returncode == 3, out + err
        assert f"interrupted by {signal.Signals(signum).name}" in out
        assert "Rerun the same command to resume" in out
        assert "Traceback" not in err
        with (tmp_path / "reports" / "results.csv").open(encoding="utf-8") as handle:
            reported = list(csv.DictReader(handle))
        assert [int(r["row_number"]) for r in reported] == list(range(1, rows + 1))
        created = sum(r["status"] == "created" for r in reported)
        assert created == len(box.creations_by_phone())
        assert 0 < created < rows
