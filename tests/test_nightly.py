"""Nightly sync through ``main(argv)`` against the sandbox: the same export every night, mostly
unchanged. ``--on-existing update`` sends only the difference (the journal's fingerprint of
the body Kirim last accepted), one run holds a journal at a time, and ``--quiet`` suits cron."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from importer.cli import main
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import UNLIMITED, phone, write_contacts
from tests.test_run import results, summary

CONTACTS = "/v1/{phone_number_id}/contacts"
CONTACT = "/v1/{phone_number_id}/contacts/{contact_id}"


def export(path: Path, n: int, *, names: dict[int, str] | None = None, new: int = 0) -> Path:
    """The night's export: rows 1..n (+ ``new`` more), names as given (else ``Contact i``)."""
    names = names or {}
    rows = [
        {"Phone": phone(i), "Name": names.get(i, f"Contact {i}"), "City": "Jakarta"}
        for i in range(1, n + new + 1)
    ]
    return write_contacts(path, rows)


def night(box: Sandbox, file: Path, tmp: Path, name: str, *extra: str) -> tuple[int, Path]:
    reports = tmp / name
    argv = ["run", str(file), "--base-url", box.base_url, "--report-dir", str(reports),
            "--state", str(tmp / "journal.sqlite"), "--default-region", "ID",
            "--on-existing", "update", *extra]  # fmt: skip
    return main(argv), reports


class Requests:
    """The sandbox's request counts by (method, route) since the last ``since()``."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box
        self.before = self.now()

    def now(self) -> Counter[tuple[str, str]]:
        return Counter(
            {(r["method"], r["route"]): r["count"] for r in self.box.stats()["requests"]}
        )

    def since(self) -> Counter[tuple[str, str]]:
        now = self.now()
        delta = now - self.before
        self.before = now
        return delta


def test_three_nights_send_only_the_difference(box: Sandbox, tmp_path: Path) -> None:
    seen = Requests(box)
    code, first = night(box, export(tmp_path / "n1.csv", 40), tmp_path, "n1")
    assert code == 0
    assert summary(first)["created"] == 40
    seen.since()

    code, second = night(box, export(tmp_path / "n2.csv", 40), tmp_path, "n2")
    assert code == 0
    assert summary(second)["unchanged"] == 40
    assert {r["status"] for r in results(second)} == {"unchanged"}
    sent = seen.since()
    assert set(sent) == {("GET", "/v1/me"), ("GET", "/v1/accounts")}  # no contact request

    changed = {3: "Ana Changed", 17: "Budi Changed"}
    code, third = night(box, export(tmp_path / "n3.csv", 40, names=changed, new=1), tmp_path, "n3")
    assert code == 0
    s = summary(third)
    assert (s["updated"], s["created"], s["unchanged"]) == (2, 1, 38)
    sent = seen.since()
    assert sent[("PATCH", CONTACT)] == 2  # straight to the journal's contact ids
    assert sent[("GET", CONTACTS)] == 1  # only the new phone is looked up
    assert sent[("POST", CONTACTS)] == 1
    by_phone = {c["phone_number"]: c for c in box.contacts()}
    assert by_phone[phone(3)]["name"] == "Ana Changed"
    assert by_phone[phone(17)]["name"] == "Budi Changed"
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 42)}

    code, fourth = night(box, export(tmp_path / "n4.csv", 40, names=changed, new=1), tmp_path, "n4")
    assert code == 0
    assert summary(fourth)["unchanged"] == 41
    assert set(seen.since()) == {("GET", "/v1/me"), ("GET", "/v1/accounts")}


def test_a_contact_deleted_in_kirim_is_found_missing_and_created_again(
    box: Sandbox, tmp_path: Path
) -> None:
    assert night(box, export(tmp_path / "n1.csv", 5), tmp_path, "n1")[0] == 0
    gone = next(c for c in box.contacts() if c["phone_number"] == phone(4))
    assert box.delete_contact(gone["id"])
    code, second = night(box, export(tmp_path / "n2.csv", 5, names={4: "Dewi"}), tmp_path, "n2")
    assert code == 0
    row = results(second)[3]
    assert (row["status"], row["phone_number"]) == ("created", phone(4))
    assert row["contact_id"] != gone["id"]
    now = {c["phone_number"]: c for c in box.contacts()}
    assert now[phone(4)]["name"] == "Dewi"
    assert len(now) == 5


def test_a_row_edited_twice_between_runs_ends_as_its_last_edit(
    box: Sandbox, tmp_path: Path
) -> None:
    for i, name in enumerate(["First", "Second", "Third"]):
        code, reports = night(
            box, export(tmp_path / f"n{i}.csv", 3, names={2: name}), tmp_path, f"n{i}"
        )
        assert code == 0
        assert results(reports)[1]["status"] == ("created" if i == 0 else "updated")
    assert {c["phone_number"]: c["name"] for c in box.contacts()}[phone(2)] == "Third"
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 4)}


def test_a_journal_from_0_2_0_looks_rows_up_once_then_is_incremental(
    box: Sandbox, tmp_path: Path
) -> None:
    assert night(box, export(tmp_path / "n1.csv", 6), tmp_path, "n1")[0] == 0
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:  # as 0.2.0 wrote it
        db.execute("ALTER TABLE contacts DROP COLUMN body_hash")
        db.execute("ALTER TABLE contacts DROP COLUMN labels")
    seen = Requests(box)
    code, upgraded = night(box, export(tmp_path / "n2.csv", 6), tmp_path, "n2")
    assert code == 0
    assert summary(upgraded)["exists"] == 6  # found and equal: no write
    sent = seen.since()
    assert (sent[("GET", CONTACTS)], sent[("PATCH", CONTACT)]) == (6, 0)
    code, after = night(box, export(tmp_path / "n3.csv", 6), tmp_path, "n3")
    assert summary(after)["unchanged"] == 6
    assert set(seen.since()) == {("GET", "/v1/me"), ("GET", "/v1/accounts")}


def test_a_crash_in_the_middle_of_a_night_then_a_rerun_applies_every_change_once(
    tmp_path: Path,
) -> None:
    config = SandboxConfig(seed=5, latency_ms=(5.0, 15.0), **UNLIMITED)
    with Sandbox(config) as box:
        env = {**os.environ, "KIRIM_API_KEY": box.token}

        def command(file: Path, name: str) -> list[str]:
            return [sys.executable, "-m", "importer", "run", str(file), "--base-url",
                    box.base_url, "--report-dir", str(tmp_path / name), "--state",
                    str(tmp_path / "journal.sqlite"), "--on-existing", "update",
                    "--concurrency", "8"]  # fmt: skip

        first = subprocess.run(
            command(export(tmp_path / "n1.csv", 300), "n1"), env=env, capture_output=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert first.returncode == 0, first.stderr
        names = {i: f"Renamed {i}" for i in range(1, 301, 2)}
        changed = export(tmp_path / "n2.csv", 300, names=names, new=20)
        child = subprocess.Popen(
            command(changed, "killed"), env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while box.request_count("PATCH", CONTACT) < 30:
            assert time.monotonic() < deadline, "the night never started patching"
            time.sleep(0.005)
        child.kill()
        child.wait(timeout=30)
        rerun = subprocess.run(
            command(changed, "rerun"), env=env, capture_output=True, timeout=120, check=False
        )
        assert rerun.returncode == 0, rerun.stderr
        patches = box.request_count("PATCH", CONTACT)
        contacts = {c["phone_number"]: c["name"] for c in box.contacts()}
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 321)}
    assert contacts == {phone(i): names.get(i, f"Contact {i}") for i in range(1, 321)}
    assert 150 <= patches <= 150 + 8  # each change once; at most those in flight at the kill
    with (tmp_path / "rerun" / "results.csv").open(encoding="utf-8") as handle:
        statuses = Counter(r["status"] for r in csv.DictReader(handle))
    assert sum(statuses.values()) == 320
    assert set(statuses) <= {"updated", "unchanged", "created", "exists"}


def hold(journal: Path) -> subprocess.Popen[str]:
    """Another process that holds the journal's lock (until it is killed)."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from importer.send.lock import journal_lock\n"
         "with journal_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
         str(journal)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_two_runs_on_one_journal_the_second_gives_way(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from importer.send.lock import journal_lock

    seen = Requests(box)
    with journal_lock(tmp_path / "journal.sqlite"):  # a run in progress holds it
        code, _ = night(box, export(tmp_path / "n.csv", 3), tmp_path, "second")
    err = capsys.readouterr().err
    assert code == 2
    assert f"pid {os.getpid()} on " in err
    assert "is in use by another run" in err
    assert not seen.since()  # gave way before the pre-flight: nothing sent
    assert night(box, export(tmp_path / "n.csv", 3), tmp_path, "after")[0] == 0


@pytest.mark.parametrize("name", ["symlink", "hard link"])
def test_another_name_for_the_journal_meets_the_same_lock(
    box: Sandbox, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "journal.sqlite"
    assert night(box, export(tmp_path / "n.csv", 3), tmp_path, "first")[0] == 0  # it exists
    other = tmp_path / "elsewhere" / "other.sqlite"
    other.parent.mkdir()
    if name == "symlink":
        other.symlink_to(Path("..") / "journal.sqlite")
    else:
        os.link(journal, other)
    holder = hold(journal)  # the first run
    try:
        seen = Requests(box)
        capsys.readouterr()
        argv = ["run", str(export(tmp_path / "n2.csv", 5)), "--base-url", box.base_url,
                "--report-dir", str(tmp_path / "second"), "--state", str(other),
                "--default-region", "ID"]  # fmt: skip
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2
        assert f"is in use by another run (pid {holder.pid} on " in err
        assert not seen.since()  # gave way before the pre-flight: nothing sent
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 4)}


def test_a_lock_left_by_a_killed_run_is_taken_over(box: Sandbox, tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    holder = hold(journal)
    holder.kill()
    holder.wait(timeout=10)
    code, reports = night(box, export(tmp_path / "n.csv", 3), tmp_path, "after")
    assert code == 0
    assert summary(reports)["created"] == 3


def test_quiet_prints_only_the_closing_lines(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, reports = night(box, export(tmp_path / "n.csv", 3), tmp_path, "q", "--quiet")
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[0] == (
        "3 rows: 3 created, 0 updated, 0 unchanged, 0 exists, 0 duplicate in file, 0 invalid, "
        "0 failed"
    )
    assert lines[-1] == f"Reports: {reports}"
    assert not any(line.startswith(("Input:", "Mapping:", "Account ")) for line in lines)
