"""Reading an account's contacts back in pages, against the sandbox over real HTTP: a first
sync that pages instead of looking up (``run --adopt``, automatic on a first sync), counted
at the sandbox; ``kirim-import export`` of 2,500 contacts, interrupted by a transport that
fails midway and a spool written past its state (a kill), resumed, every contact once; the
output read back as an import source with no mapping flags."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

import importer
from importer.cli import main
from importer.exporter import spool_of, state_of
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import UNLIMITED, contacts_file, phone
from tests.test_nightly import Requests
from tests.test_run import results, summary

LIST = ("GET", "/v1/{phone_number_id}/contacts")
CREATE = ("POST", "/v1/{phone_number_id}/contacts")
PATCH = ("PATCH", "/v1/{phone_number_id}/contacts/{contact_id}")


def hold(box: Sandbox, numbers: range, **changes: Any) -> dict[str, str]:
    """The account holds these contacts already (made in Kirim's app, say), with the bodies
    ``contacts_file`` gives its rows; ``changes``: number -> another name. Phone -> id."""
    store = box.state.store
    ids = {}
    for i in numbers:
        made = store.create_contact(
            account=box.account_id, account_phone=None, phone=phone(i),
            name=changes.get(str(i), f"Contact {i}"), email=f"c{i}@example.com",
            metadata={"City": "Jakarta"},
        )  # fmt: skip
        ids[phone(i)] = made["id"]
    return ids


def test_a_first_sync_pages_the_account_instead_of_looking_every_row_up(
    box: Sandbox, tmp_path: Path
) -> None:
    held = hold(box, range(1, 8001), **{"5": "An old name"})
    file = contacts_file(tmp_path / "crm.csv", 10_000)
    seen = Requests(box)
    code = main(["run", str(file), "--base-url", box.base_url, "--report-dir",
                 str(tmp_path / "r"), "--state", str(tmp_path / "journal.sqlite"),
                 "--default-region", "ID", "--on-existing", "update"])  # fmt: skip
    assert code == 0
    sent = seen.since()
    # 80 pages of 100 instead of 8,000 lookups; the 2,000 new phones are looked up, as always
    assert sent[LIST] == 80 + 2_000
    assert sent[CREATE] == 2_000
    assert sent[PATCH] == 1  # the one Kirim holds another name for, straight to its id
    s = summary(tmp_path / "r")
    assert (s["unchanged"], s["updated"], s["created"], s["exists"]) == (7_999, 1, 2_000, 0)
    assert s["adopted"] == {"reads": 80, "contacts": 8_000, "complete": True, "asked": False}
    rows = {r["phone_number"]: r for r in results(tmp_path / "r")}
    assert rows[phone(5)]["contact_id"] == held[phone(5)]
    assert rows[phone(7)]["contact_id"] == held[phone(7)]
    assert all(n == 1 for n in box.creations_by_phone().values())  # nothing doubled
    assert len(box.contacts()) == 10_000


def test_adopt_through_the_api_and_plan_says_which_way_is_cheaper(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hold(box, range(1, 51))
    file = contacts_file(tmp_path / "crm.csv", 50)  # too few to page by itself
    code = main(["plan", str(file), "--default-region", "ID", "--adopt",
                 "--report-dir", str(tmp_path / "p")])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "looking rows up costs 50 reads" in out
    assert "one read per 100 contacts" in out
    assert "a run pages by itself only for more than 100 rows" in out
    seen = Requests(box)
    result = importer.run(file, base_url=box.base_url, state=tmp_path / "journal.sqlite",
                          default_region="ID", adopt=True, report_dir=tmp_path / "r")  # fmt: skip
    assert result.ok
    assert result.counts["exists"] == 50
    sent = seen.since()
    assert sent[LIST] == 1
    assert sent[CREATE] == 0
    plan = importer.plan(file, default_region="ID", adopt=True, state=tmp_path / "journal.sqlite",
                         report_dir=tmp_path / "p2")  # fmt: skip
    assert plan.summary["first_sync"] == {
        "lookups": 0, "journal_knows": 50, "reads_if_account_holds_these": 1,
    }  # fmt: skip
    capsys.readouterr()
    code = main(["plan", str(file), "--default-region", "ID", "--adopt", "--report-dir",
                 str(tmp_path / "p3"), "--state", str(tmp_path / "journal.sqlite")])  # fmt: skip
    assert code == 0
    assert "First sync: the journal knows all 50 rows: no lookup" in capsys.readouterr().out


class FailsAfter(httpx.AsyncBaseTransport):
    """A real transport whose network goes away after ``pages`` contact pages: the seam for
    an export interrupted midway."""

    def __init__(self, pages: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.left = pages

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/contacts"):
            if self.left == 0:
                raise httpx.ConnectError("the network went away", request=request)
            self.left -= 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def no_wait(seconds: float) -> None:
    return None


def test_an_export_of_2500_contacts_is_killed_resumed_and_holds_every_contact_once(
    box: Sandbox, tmp_path: Path
) -> None:
    held = hold(box, range(1, 2501), **{"9": '=HYPERLINK("http://x")'})
    out = tmp_path / "backup" / "contacts.csv"
    seen = Requests(box)
    first = importer.export(out, base_url=box.base_url, transport=FailsAfter(10), sleep=no_wait)
    assert first.exit_code == 3
    assert first.stopped
    assert first.contacts == 1_000
    assert not out.exists()
    assert spool_of(out).exists()
    assert seen.since()[LIST] == 10
    # a kill after a page reached the spool but before its cursor did: a page twice over
    with spool_of(out).open("a", encoding="utf-8") as spool:
        spool.write(json.dumps({"id": "ctc_X", "phone_number": phone(1), "name": None,
                                "email": None, "metadata": {}}) + "\n")  # fmt: skip
    second = importer.export(out, base_url=box.base_url)
    assert second.ok
    assert second.resumed
    assert second.pages == 15
    assert seen.since()[LIST] == 15  # from the cursor on: 25 pages in all
    assert not spool_of(out).exists()
    assert not state_of(out).exists()
    assert out.stat().st_mode & 0o777 == 0o600
    assert out.parent.stat().st_mode & 0o777 == 0o700
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["phone_number"] for r in rows] == list(held)  # every contact once, in order
    assert rows[0] == {"phone_number": phone(1), "name": "Contact 1",
                       "email": "c1@example.com", "City": "Jakarta"}  # fmt: skip
    assert rows[8]["name"].startswith("'=")  # formula-safe; the reader undoes it
    # the export reads back with no mapping flags, and Kirim holds exactly it: nothing to send
    seen.since()
    again = importer.run(out, base_url=box.base_url, state=tmp_path / "fresh.sqlite",
                         on_existing="update", report_dir=tmp_path / "r")  # fmt: skip
    assert again.ok
    assert again.counts["unchanged"] == 2_500
    sent = seen.since()
    assert sent[LIST] == 25
    assert sent[CREATE] == sent[PATCH] == 0


def test_export_through_the_command_line_one_label_to_parquet(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = hold(box, range(1, 301))
    store = box.state.store
    vip = store.create_label(name="VIP", color=None, team_id=None)
    assert vip is not None
    chosen = [held[phone(i)] for i in range(1, 301, 3)]  # 100 of them
    store.bulk_label(contact_ids=chosen, label_id=vip["id"], attach=True,
                     account_teams=box.state.account_teams)  # fmt: skip
    out = tmp_path / "vip.parquet"
    code = main(["export", "--output", str(out), "--label", "VIP", "--base-url", box.base_url])
    assert code == 0
    assert "Exported 100 contacts" in capsys.readouterr().out
    frame = pl.read_parquet(out)
    assert frame.columns == ["phone_number", "name", "email", "City"]
    assert sorted(frame["phone_number"]) == sorted(phone(i) for i in range(1, 301, 3))
    assert out.stat().st_mode & 0o777 == 0o600
    code = main(["export", "--output", str(tmp_path / "x.csv"), "--label", "Nope",
                 "--base-url", box.base_url])  # fmt: skip
    assert code == 3
    assert "no label of that name" in capsys.readouterr().err
    code = main(["plan", str(out), "--report-dir", str(tmp_path / "p")])
    assert code == 0
    assert Counter(r["status"] for r in results(tmp_path / "p")) == {"valid": 100}


def test_an_export_whose_saved_cursor_kirim_refuses_starts_over_once(
    box: Sandbox, tmp_path: Path
) -> None:
    held = hold(box, range(1, 351))
    out = tmp_path / "contacts.csv"
    first = importer.export(out, base_url=box.base_url, transport=FailsAfter(2), sleep=no_wait)
    assert first.exit_code == 3
    state = json.loads(state_of(out).read_text())
    state_of(out).write_text(json.dumps({**state, "cursor": "Zm9yZ2Vk"}))  # an expired cursor
    second = importer.export(out, base_url=box.base_url)
    assert second.ok
    assert not second.resumed
    assert second.pages == 4
    with out.open(encoding="utf-8") as handle:
        assert [r["phone_number"] for r in csv.DictReader(handle)] == list(held)


def test_an_export_of_an_empty_account_is_a_header(box: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "none.csv"
    result = importer.export(out, base_url=box.base_url)
    assert result.ok
    assert result.contacts == 0
    assert out.read_text(encoding="utf-8").splitlines() == ["phone_number,name,email"]


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("max_wait", -1, "--max-wait must be 0 or more"),
        ("timeout", 0, "--timeout must be positive"),
        ("max_attempts", 51, "--max-attempts must be between 1 and 50"),
    ],
)
def test_export_checks_the_options_it_shares_with_run_as_run_does(
    option: str, value: int, said: str, box: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "contacts.csv"
    with pytest.raises(importer.UsageError, match=said):
        importer.export(out, base_url=box.base_url, **{option: value})
    with pytest.raises(importer.UsageError, match=said):
        importer.run(contacts_file(tmp_path / "in.csv", 1), base_url=box.base_url,
                     report_dir=tmp_path / "r", **{option: value})  # fmt: skip
    assert not out.exists()
    assert box.contacts() == []


@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["kill", "ctrl-c", "term"]
)
def test_an_export_process_killed_or_interrupted_midway_resumes_every_contact_once(
    tmp_path: Path, signum: int
) -> None:
    """``kirim-import export`` as a child process, stopped for real once pages have reached
    the spool: a kill leaves the spool and cursor, Ctrl-C too and says so (exit 3); the same
    command then writes every contact once."""
    config = SandboxConfig(seed=3, latency_ms=(100.0, 100.0), **UNLIMITED)
    with Sandbox(config) as box:
        held = hold(box, range(1, 2501))
        out = tmp_path / "contacts.csv"
        env = {**os.environ, "KIRIM_API_KEY": box.token}
        cmd = [sys.executable, "-m", "importer", "export", "--output", str(out),
               "--base-url", box.base_url]  # fmt: skip
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while not state_of(out).exists() or json.loads(state_of(out).read_text())["contacts"] < 300:
            assert child.poll() is None, "the export ended before it was stopped"
            assert time.monotonic() < deadline, "no page came"
            time.sleep(0.02)
        child.send_signal(signum)
        _, err = child.communicate(timeout=60)
        if signum != signal.SIGKILL:
            assert child.returncode == 3, err
            said = "(Ctrl-C)" if signum == signal.SIGINT else "by SIGTERM"
            assert f"Export stopped: interrupted {said}" in err
            assert "rerun the same command to resume" in err
            assert "Traceback" not in err
        assert not out.exists()
        assert json.loads(state_of(out).read_text())["finished"] is False
        final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120,
                               check=False)  # fmt: skip
        assert final.returncode == 0, final.stderr
        assert "(resumed)" in final.stdout
        with out.open(encoding="utf-8") as handle:
            assert [r["phone_number"] for r in csv.DictReader(handle)] == list(held)
