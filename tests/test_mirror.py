"""Kirim as a mirror of the source (``--sync-label``, ``--max-detach``) against the sandbox over
real HTTP, through ``main(argv)`` and ``importer.run``/``importer.plan``: three nights of a
source that loses and gains members, the label's members at the sandbox equal to the source's
rows after each; a label set by hand left alone; a truncated source refused before anything
is sent."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

import importer
from importer.cli import main
from importer.sandbox import Sandbox
from tests.conftest import phone, write_contacts
from tests.test_nightly import Requests, night
from tests.test_run import results, summary

BULK = ("POST", "/v1/{phone_number_id}/contacts/bulk_label")
WRITES = ("POST", "PATCH", "PUT", "DELETE")


def source(path: Path, members: list[int]) -> Path:
    rows = [{"Phone": phone(i), "Name": f"Contact {i}", "City": "Jakarta"} for i in members]
    return write_contacts(path, rows)


def members(box: Sandbox, label: str) -> set[str]:
    ids = {x["id"] for x in box.state.store.labels() if x["name"] == label}
    return {c["phone_number"] for c in box.contacts() if ids & set(c["labels"])}


def hand_labelled(box: Sandbox, label: str, n: int) -> str:
    """A contact made in Kirim's app with ``label`` set by hand: no journal knows it."""
    store = box.state.store
    made = store.create_label(name=label, color=None, team_id=None)
    assert made is not None
    contact = store.create_contact(
        account=box.account_id, account_phone=None, phone=phone(n), name="By hand",
        email=None, metadata=None,
    )  # fmt: skip
    store.bulk_label(
        contact_ids=[contact["id"]], label_id=made["id"], attach=True,
        account_teams=box.state.account_teams,
    )  # fmt: skip
    return phone(n)


def test_three_nights_the_label_follows_the_source_and_a_hand_set_label_stays(
    box: Sandbox, tmp_path: Path
) -> None:
    by_hand = hand_labelled(box, "Active", 999)
    nights = [
        list(range(1, 41)),  # 40 members
        [*range(1, 37), *range(41, 45)],  # 37..40 leave, 41..44 join
        [*range(1, 35), 37, *range(41, 47)],  # 35 and 36 leave, 37 comes back, 45, 46 join
    ]
    detached_each = [0, 4, 2]
    seen = Requests(box)
    for n, (rows, gone) in enumerate(zip(nights, detached_each, strict=True), start=1):
        file = source(tmp_path / "export.csv", rows)  # the same path: the same source
        code, reports = night(box, file, tmp_path, f"n{n}", "--sync-label", "Active")
        assert code == 0, (reports / "summary.json").read_text()
        assert members(box, "Active") == {phone(i) for i in rows} | {by_hand}
        s = summary(reports)
        assert s["detached"] == gone
        assert s["sync_labels"]["Active"]["detached"] == gone
        detached = [r for r in results(reports) if r["status"] == "detached"]
        assert len(detached) == gone
        assert all(r["labels"] == "Active" and r["contact_id"].startswith("ctc_") for r in detached)
        assert s["rows_total"] == len(rows)  # detached contacts are no input rows
        sent = seen.since()
        assert sent[("DELETE", "/v1/{phone_number_id}/contacts/{contact_id}")] == 0
    # nobody was deleted: every contact ever imported is still there, and the hand one
    assert len(box.contacts()) == 47 + 1 - 1  # 1..46 and the hand-made one
    assert (tmp_path / "n3" / "results.csv").stat().st_mode & 0o777 == 0o600
    page = (tmp_path / "n3" / "report.html").read_text()
    assert "detached" in page


def test_a_truncated_source_is_refused_before_anything_is_sent(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = night(box, source(tmp_path / "a.csv", list(range(1, 101))), tmp_path, "n1",
                    "--sync-label", "Active")  # fmt: skip
    assert code == 0
    capsys.readouterr()
    seen = Requests(box)
    truncated = source(tmp_path / "a.csv", list(range(1, 61)))  # tonight's export, cut short
    code, _ = night(box, truncated, tmp_path, "n2", "--sync-label", "Active")
    assert code == 2
    err = capsys.readouterr().err
    assert "would detach 40 of the 100 contacts" in err
    assert "--max-detach 10%" in err
    assert "the 10 " in err
    sent = seen.since()
    assert not [k for k in sent if k[0] in WRITES]  # nothing written, no label call
    assert set(sent) <= {("GET", "/v1/me"), ("GET", "/v1/accounts")}  # the pre-flight only
    assert len(members(box, "Active")) == 100
    journal = sqlite3.connect(tmp_path / "journal.sqlite")
    assert journal.execute("SELECT COUNT(*) FROM synced").fetchone() == (100,)
    # a count, then a share, large enough: the run goes through and detaches the 40
    code, _ = night(box, truncated, tmp_path, "n3", "--sync-label", "Active", "--max-detach", "39")
    assert code == 2
    code, reports = night(box, truncated, tmp_path, "n4", "--sync-label", "Active",
                          "--max-detach", "40%")  # fmt: skip
    assert code == 0
    assert summary(reports)["detached"] == 40
    assert members(box, "Active") == {phone(i) for i in range(1, 61)}


def test_only_what_this_source_labelled_is_detached(box: Sandbox, tmp_path: Path) -> None:
    """Two sources sync one label: each detaches only the contacts it put it on."""
    a, b = list(range(1, 21)), list(range(21, 41))
    assert night(box, source(tmp_path / "a.csv", a), tmp_path, "a1", "--sync-label", "X")[0] == 0
    assert night(box, source(tmp_path / "b.csv", b), tmp_path, "b1", "--sync-label", "X")[0] == 0
    code, reports = night(box, source(tmp_path / "a.csv", a[:-2]), tmp_path, "a2",
                          "--sync-label", "X")  # fmt: skip
    assert code == 0
    assert summary(reports)["detached"] == 2
    assert members(box, "X") == {phone(i) for i in [*a[:-2], *b]}


def test_the_api_mirrors_and_plan_counts_what_would_be_attached_and_detached(
    box: Sandbox, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite"
    common = {"base_url": box.base_url, "state": journal, "default_region": "ID",
              "on_existing": "update", "sync_labels": ["Active"]}  # fmt: skip
    first = importer.run(source(tmp_path / "a.csv", list(range(1, 51))), **common,
                         report_dir=tmp_path / "r1")  # fmt: skip
    assert first.ok
    assert first.summary["detached"] == 0
    smaller = source(tmp_path / "a.csv", [*range(1, 46), 51, 52])
    plan = importer.plan(smaller, default_region="ID", state=journal, sync_labels=["Active"],
                         report_dir=tmp_path / "p")  # fmt: skip
    assert plan.summary["sync_labels"]["Active"] == {
        "members_before": 50, "would_attach": 2, "left_source": 5, "max_detach_allows": 5,
    }  # fmt: skip
    strict = importer.plan(smaller, default_region="ID", state=journal, sync_labels=["Active"],
                           max_detach=4, report_dir=tmp_path / "p4")  # fmt: skip
    assert strict.summary["sync_labels"]["Active"]["max_detach_allows"] == 4
    with pytest.raises(importer.InputError, match="would detach 5 of the 50"):
        importer.run(smaller, **common, max_detach=4, report_dir=tmp_path / "r2")
    with pytest.raises(importer.UsageError, match="--max-detach"):
        importer.run(smaller, **common, max_detach="ten", report_dir=tmp_path / "r3")
    second = importer.run(smaller, **common, report_dir=tmp_path / "r4")
    assert second.ok
    assert second.summary["detached"] == 5
    assert second.counts["created"] == 2
    assert second.counts["unchanged"] == 45
    assert members(box, "Active") == {phone(i) for i in [*range(1, 46), 51, 52]}
    lines = json.loads((tmp_path / "r4" / "summary.json").read_text())
    assert lines["sync_labels"]["Active"]["members_before"] == 50


def test_plan_through_the_command_line_shows_the_counts(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert night(box, source(tmp_path / "a.csv", list(range(1, 31))), tmp_path, "n1",
                 "--sync-label", "Active")[0] == 0  # fmt: skip
    capsys.readouterr()
    file = source(tmp_path / "a.csv", [*range(1, 28), 31])
    code = main(["plan", str(file), "--default-region", "ID", "--state",
                 str(tmp_path / "journal.sqlite"), "--sync-label", "Active",
                 "--report-dir", str(tmp_path / "p")])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "--sync-label: 'Active' would attach 1, would detach 3" in out
    assert "a run would refuse" not in out  # 3 of 30 is within the default 10%
    assert Counter(r["status"] for r in results(tmp_path / "p")) == {"valid": 28}
    # a plan says when a run would refuse to detach that many (--max-detach, or the default)
    config = tmp_path / "nightly.toml"
    config.write_text('sync_label = ["Active"]\nmax_detach = 2\ndefault_region = "ID"\n')
    code = main(["plan", str(file), "--config", str(config), "--report-dir",
                 str(tmp_path / "p2"), "--state", str(tmp_path / "journal.sqlite")])  # fmt: skip
    assert code == 0  # a plan shows it; only a run refuses
    assert ("--sync-label 'Active': a run would refuse: it would detach 3 of the 30 contacts "
            "the journal labelled from this source, more than the 2 --max-detach 2 allows"
            ) in capsys.readouterr().out  # fmt: skip


def test_detaching_goes_in_chunks_of_at_most_1000(box: Sandbox, tmp_path: Path) -> None:
    store = box.state.store
    for i in range(1, 1102):  # held already: the first sync pages them in, no lookups
        store.create_contact(
            account=box.account_id, account_phone=None, phone=phone(i), name=f"Contact {i}",
            email=None, metadata={"City": "Jakarta"},
        )  # fmt: skip
    file = source(tmp_path / "a.csv", list(range(1, 1102)))
    seen = Requests(box)
    assert night(box, file, tmp_path, "n1", "--sync-label", "Active")[0] == 0
    assert seen.since()[BULK] == 2  # 1,101 attached: 1,000 and 101
    assert len(members(box, "Active")) == 1_101
    file = source(tmp_path / "a.csv", list(range(1, 101)))
    code, reports = night(box, file, tmp_path, "n2", "--sync-label", "Active",
                          "--max-detach", "100%", "--allow-shrink")  # fmt: skip
    assert code == 0
    assert seen.since()[BULK] == 2  # 1,001 detached: 1,000 and 1; nothing attached
    assert summary(reports)["detached"] == 1_001
    assert members(box, "Active") == {phone(i) for i in range(1, 101)}
    assert len(box.contacts()) == 1_101


def test_a_detach_that_fails_is_counted_and_tried_again_the_next_night(
    box: Sandbox, tmp_path: Path
) -> None:
    assert night(box, source(tmp_path / "a.csv", list(range(1, 21))), tmp_path, "n1",
                 "--sync-label", "Active")[0] == 0  # fmt: skip
    file = source(tmp_path / "a.csv", list(range(1, 19)))
    box.set_faults(label_status=503)
    code, reports = night(box, file, tmp_path, "n2", "--sync-label", "Active")
    assert code == 1  # every row fine; two contacts keep a label they should not have
    s = summary(reports)
    assert s["detached"] == 0
    assert s["sync_labels"]["Active"]["detach_failed"] == 2
    assert s["reasons"]["detach_failed"] == 2
    assert len(members(box, "Active")) == 20
    box.set_faults(label_status=None)
    code, reports = night(box, file, tmp_path, "n3", "--sync-label", "Active")
    assert code == 0
    assert summary(reports)["detached"] == 2
    assert members(box, "Active") == {phone(i) for i in range(1, 19)}
