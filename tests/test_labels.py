"""Labels through ``main(argv)`` against the sandbox: ``--label`` on what the import wrote, a
``labels`` column on every row's contact, chunks of at most 1,000, labels already
in place costing nothing the next night, and a label call that fails never undoing a row."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from importer.cli import main
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import UNLIMITED, phone, write_contacts
from tests.test_nightly import Requests
from tests.test_run import results, summary

BULK = ("POST", "/v1/{phone_number_id}/contacts/bulk_label")
LABELS = "/v1/labels"


def export(path: Path, n: int, *, tags: dict[int, str] | None = None, rename: int = 0) -> Path:
    rows = []
    for i in range(1, n + 1):
        row = {"Phone": phone(i), "Name": f"Contact {i}" + (" Jr" if i == rename else "")}
        if tags is not None:
            row["Tags"] = tags.get(i, "")
        rows.append(row)
    return write_contacts(path, rows)


def run(box: Sandbox, file: Path, tmp: Path, name: str, *extra: str) -> tuple[int, Path]:
    reports = tmp / name
    argv = ["run", str(file), "--base-url", box.base_url, "--report-dir", str(reports),
            "--state", str(tmp / "journal.sqlite"), "--default-region", "ID", *extra]  # fmt: skip
    return main(argv), reports


def labels_by_phone(box: Sandbox) -> dict[str, set[str]]:
    names = {label["id"]: label["name"] for label in box.state.store.labels()}
    return {c["phone_number"]: {names[i] for i in c["labels"]} for c in box.contacts()}


def test_flag_labels_go_on_what_the_import_wrote_and_cost_nothing_the_next_night(
    box: Sandbox, tmp_path: Path
) -> None:
    seen = Requests(box)
    flags = ("--label", "VIP", "--label", "Imported 2026-11", "--on-existing", "update")
    code, first = run(box, export(tmp_path / "a.csv", 30), tmp_path, "n1", *flags)
    assert code == 0
    sent = seen.since()
    assert sent[("GET", LABELS)] == 1  # listed once
    assert sent[("POST", LABELS)] == 2  # each made once
    assert sent[BULK] == 2  # one chunk per label
    assert all(v == {"VIP", "Imported 2026-11"} for v in labels_by_phone(box).values())
    assert {r["labels"] for r in results(first)} == {"VIP; Imported 2026-11"}
    assert summary(first)["labels"]["attached"] == 60

    code, second = run(box, export(tmp_path / "b.csv", 30, rename=7), tmp_path, "n2", *flags)
    assert code == 0
    sent = seen.since()
    assert sent[("PATCH", "/v1/{phone_number_id}/contacts/{contact_id}")] == 1
    assert sent[BULK] == 0  # the updated contact has both already: the journal knows
    assert summary(second)["labels"] == {
        "attached": 0, "already_in_place": 60, "failed": 0, "failed_by_reason": {}
    }  # fmt: skip
    statuses = Counter(r["status"] for r in results(second))
    assert statuses == {"unchanged": 29, "updated": 1}


def test_a_labels_column_attaches_to_every_row_and_a_gained_label_alone(
    box: Sandbox, tmp_path: Path
) -> None:
    tags = {1: "Gold; Jakarta", 2: "jakarta, Jakarta", 3: ""}
    assert run(box, export(tmp_path / "a.csv", 4, tags=tags), tmp_path, "n1")[0] == 0
    have = labels_by_phone(box)
    assert have[phone(1)] == {"Gold", "Jakarta"}
    assert have[phone(2)] == {"jakarta", "Jakarta"}  # names are exact, as Kirim keeps them
    assert have[phone(3)] == have[phone(4)] == set()

    seen = Requests(box)
    tags[4] = "Gold"  # row 4 gains a label; its contact is otherwise the same
    code, second = run(
        box, export(tmp_path / "b.csv", 4, tags=tags), tmp_path, "n2", "--on-existing", "update"
    )
    assert code == 0
    sent = seen.since()
    assert sent[BULK] == 1  # just that attach
    assert sent[("POST", LABELS)] == 0
    rows = results(second)
    assert [r["status"] for r in rows] == ["unchanged"] * 4  # labels are not the body
    assert rows[3]["labels"] == "Gold"
    assert labels_by_phone(box)[phone(4)] == {"Gold"}


def test_labels_go_in_chunks_of_at_most_1000(box: Sandbox, tmp_path: Path) -> None:
    seen = Requests(box)
    code, _ = run(
        box, export(tmp_path / "a.csv", 2500), tmp_path, "r", "--label", "Big", "--on-existing",
        "create",
    )  # fmt: skip
    assert code == 0
    assert seen.since()[BULK] == 3  # 1000 + 1000 + 500 (the sandbox refuses more than 1000)
    assert sum(v == {"Big"} for v in labels_by_phone(box).values()) == 2500


def test_a_label_call_that_fails_leaves_the_row_and_warns(box: Sandbox, tmp_path: Path) -> None:
    box.set_faults(label_status=503)
    file = export(tmp_path / "a.csv", 3)
    code, first = run(box, file, tmp_path, "n1", "--label", "VIP", "--max-attempts", "1")
    assert code == 1  # the contacts are there, but a wanted label is not: a job must hear it
    assert summary(first)["labels"] == {
        "attached": 0, "already_in_place": 0, "failed": 3, "failed_by_reason": {"call_failed": 3}
    }  # fmt: skip
    page = (first / "report.html").read_text()
    assert '<span class="n" data-labels="failed">3</span>' in page
    assert '<td class="num" data-label-reason="call_failed">3</td>' in page
    assert "exit 1: <bdi>Some labels could not be attached" in page
    rows = results(first)
    assert [r["status"] for r in rows] == ["created"] * 3
    assert all("label 'VIP' not attached: the call failed (503" in r["warning"] for r in rows)
    assert all(r["labels"] == "" for r in rows)
    assert box.injected()["label_status"] == 3  # labels have their own three quick tries

    box.set_faults(label_status=None)
    seen = Requests(box)
    code, second = run(box, file, tmp_path, "n2", "--label", "VIP", "--on-existing", "update")
    assert code == 0
    rows = results(second)
    assert [(r["status"], r["labels"]) for r in rows] == [("unchanged", "VIP")] * 3
    assert summary(second)["labels"]["attached"] == 3
    assert seen.since()[BULK] == 1  # the journal knew they lacked it: one attach, no writes
    assert all(v == {"VIP"} for v in labels_by_phone(box).values())


def test_a_row_kirim_answers_exists_for_without_an_id_says_its_labels_are_not_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    with Sandbox(SandboxConfig(seed=32, on_duplicate_phone="conflict", **UNLIMITED)) as box:
        monkeypatch.setenv("KIRIM_API_KEY", box.token)
        with httpx.Client(
            base_url=box.base_url + "/", headers={"Authorization": f"Bearer {box.token}"}
        ) as api:  # someone made row 2's contact already
            api.post(f"{box.account_id}/contacts", json={"phone_number": phone(2)})
        code, reports = run(
            box, export(tmp_path / "a.csv", 3, tags={2: "VIP"}), tmp_path, "r",
            "--on-existing", "create",
        )  # fmt: skip
    assert code == 1
    assert summary(reports)["labels"]["failed_by_reason"] == {"no_contact_id": 1}
    row = results(reports)[1]
    assert (row["status"], row["contact_id"], row["labels"]) == ("exists", "", "")
    assert "labels not attached" in row["warning"]


def test_a_label_on_the_second_page_of_the_list_is_found_not_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sandbox(SandboxConfig(seed=33, label_page_size=2, **UNLIMITED)) as box:
        monkeypatch.setenv("KIRIM_API_KEY", box.token)
        for name in ("Gold", "Silver", "VIP"):  # VIP is the first of page two
            box.state.store.create_label(name=name, color=None, team_id=None)
        seen = Requests(box)
        file, update = export(tmp_path / "a.csv", 3), ("--on-existing", "update")
        for night in ("n1", "n2"):
            code, reports = run(box, file, tmp_path, night, "--label", "VIP", *update)
            assert code == 0
            sent = seen.since()
            assert sent[("GET", LABELS)] == 2  # both pages, every night
            assert sent[("POST", LABELS)] == 0  # never made again, never "already exists"
            assert all(not r["warning"] for r in results(reports))
        assert [label["name"] for label in box.state.store.labels()] == ["Gold", "Silver", "VIP"]
        assert all(v == {"VIP"} for v in labels_by_phone(box).values())


def journal_labels(tmp: Path) -> dict[str, tuple[str, int, str | None]]:
    """Phone -> (state, needs_lookup, labels) as the journal holds them."""
    with sqlite3.connect(tmp / "journal.sqlite") as db:
        rows = db.execute("SELECT phone, state, needs_lookup, labels FROM contacts").fetchall()
    return {p: (state, lookup, labels) for p, state, lookup, labels in rows}


def test_one_contact_deleted_in_kirim_inside_a_1000_contact_chunk_is_the_only_one_warned(
    box: Sandbox, tmp_path: Path
) -> None:
    file = export(tmp_path / "a.csv", 1000)
    assert run(box, file, tmp_path, "n1", "--on-existing", "create")[0] == 0
    gone = next(c for c in box.contacts() if c["phone_number"] == phone(500))
    assert box.delete_contact(gone["id"])  # someone deleted it in Kirim's app
    store = box.state.store

    seen = Requests(box)
    night = ("--label", "VIP", "--on-existing", "update")
    code, second = run(box, file, tmp_path, "n2", *night)
    assert code == 1  # one wanted label could not be attached
    assert summary(second)["labels"] == {
        "attached": 999, "already_in_place": 0, "failed": 1,
        "failed_by_reason": {"deleted_in_kirim": 1},
    }  # fmt: skip
    sent = seen.since()
    assert 1 < sent[BULK] <= 1 + 10  # the chunk, then halving down to the one it skipped
    assert sent[("GET", "/v1/{phone_number_id}/contacts")] == 1  # its reason: one lookup
    have = labels_by_phone(box)
    assert len(have) == 999
    assert all(v == {"VIP"} for v in have.values())
    vip = next(label["id"] for label in store.labels())
    journal = journal_labels(tmp_path)
    assert [p for p, (_, _, labels) in journal.items() if labels == f'["{vip}"]'] == [
        phone(i) for i in range(1, 1001) if i != 500
    ]  # the 999 that got it are journalled
    assert journal[phone(500)] == ("pending", 1, None)  # no longer claimed: looked up next
    rows = results(second)
    warned = [r for r in rows if r["warning"]]
    assert [r["phone_number"] for r in warned] == [phone(500)]
    assert "deleted in Kirim since" in warned[0]["warning"]
    assert "organisation" not in warned[0]["warning"]
    assert warned[0]["labels"] == ""
    assert {r["labels"] for r in rows if r is not warned[0]} == {"VIP"}

    asked = store.label_asks()
    code, _ = run(box, file, tmp_path, "n3", *night)
    assert code == 0
    again = Counter(store.label_asks()) - Counter(asked)
    assert not set(again) & {c["id"] for c in box.contacts() if c["phone_number"] != phone(500)}
    assert seen.since()[BULK] <= 1  # at most the deleted phone's contact, looked up again
    # and that contact is made again (Kirim replays the deleted one's 201: confirmed, then
    # created under a key of its own), once, with the label
    back = [c for c in box.contacts() if c["phone_number"] == phone(500)]
    assert len(back) == 1
    assert back[0]["id"] != gone["id"]
    assert box.creations_by_phone()[phone(500)] == 2
    assert labels_by_phone(box)[phone(500)] == {"VIP"}


def test_a_deleted_contact_is_not_sent_again_for_the_next_label_of_the_run(
    box: Sandbox, tmp_path: Path
) -> None:
    file = export(tmp_path / "a.csv", 4)
    assert run(box, file, tmp_path, "n1")[0] == 0
    gone = next(c for c in box.contacts() if c["phone_number"] == phone(2))
    assert box.delete_contact(gone["id"])
    seen = Requests(box)
    code, second = run(box, file, tmp_path, "n2", "--label", "A", "--label", "B", "--on-existing",
                       "update")  # fmt: skip
    assert code == 1
    assert summary(second)["labels"]["failed_by_reason"] == {"deleted_in_kirim": 2}
    # A: rows 1-4, then 1-2 (3-4 inferred from the difference), then 1 (so 2 is the one); B: 1, 3, 4
    assert seen.since()[BULK] == 3 + 1
    assert box.state.store.label_asks()[gone["id"]] == 2  # in A's first two calls only
    row = results(second)[1]
    assert row["warning"].count("deleted in Kirim since") == 2  # for A and for B
    assert all(v == {"A", "B"} for v in labels_by_phone(box).values())


def test_a_label_of_another_team_skips_the_whole_chunk_with_that_reason_and_no_search(
    box: Sandbox, tmp_path: Path
) -> None:
    box.state.store.create_label(name="Team", color=None, team_id="team_other")
    seen = Requests(box)
    code, reports = run(box, export(tmp_path / "a.csv", 5), tmp_path, "r", "--label", "Team")
    assert code == 1
    assert summary(reports)["labels"]["failed_by_reason"] == {"team_mismatch": 5}
    sent = seen.since()
    assert sent[BULK] == 1  # skipped whole: nothing to search
    assert sent[("GET", "/v1/{phone_number_id}/contacts")] == 5  # the rows' own lookups only
    assert all("the label's team does not include this account" in r["warning"]
               for r in results(reports))  # fmt: skip
    assert all(v == set() for v in labels_by_phone(box).values())


def test_a_skip_mended_in_kirim_is_labelled_the_next_night_not_answered_from_the_past(
    box: Sandbox, tmp_path: Path
) -> None:
    box.state.store.create_label(name="Team", color=None, team_id="team_a")
    file, night = export(tmp_path / "a.csv", 3), ("--label", "Team", "--on-existing", "update")
    code, first = run(box, file, tmp_path, "n1", *night)
    assert code == 1
    assert all("team does not include" in r["warning"] for r in results(first))
    box.state.account_teams[box.account_id] = "team_a"  # someone puts the account in the team
    code, second = run(box, file, tmp_path, "n2", *night)  # the same call, minutes later
    assert code == 0
    assert [(r["labels"], r["warning"]) for r in results(second)] == [("Team", "")] * 3
    assert all(v == {"Team"} for v in labels_by_phone(box).values())
def test_label_names_with_control_zero_width_or_bidi_characters_are_refused_with_a_warning(
    box: Sandbox, tmp_path: Path
) -> None:
    flipped, hidden, broken = "VIP\u202egnp.exe", "Gold\u200b", "Line\u2028Two"
    file = export(tmp_path / "a.csv", 3, tags={1: f"Silver; {hidden}", 2: broken, 3: "Silver"})
    code, reports = run(box, file, tmp_path, "n1", "--label", flipped, "--label", "Imported")
    assert code == 1  # the refused names are wanted labels not attached
    assert summary(reports)["labels"] == {
        "attached": 5, "already_in_place": 0, "failed": 5,
        "failed_by_reason": {"refused_name": 5},
    }  # fmt: skip
    assert {label["name"] for label in box.state.store.labels()} == {"Silver", "Imported"}
    assert labels_by_phone(box) == {
        phone(1): {"Silver", "Imported"}, phone(2): {"Imported"}, phone(3): {"Silver", "Imported"}
    }  # fmt: skip
    rows = results(reports)
    assert [r["labels"] for r in rows] == ["Imported; Silver", "Imported", "Imported; Silver"]
    assert "label 'VIP\\u202egnp.exe': refused: the name holds U+202E (right-to-left override)" in (
        rows[0]["warning"]
    )
    assert "'Gold\\u200b': refused: the name holds U+200B (zero width space)" in rows[0]["warning"]
    assert "'Line\\u2028Two': refused: the name holds U+2028" in rows[1]["warning"]
    assert all(flipped not in r["warning"] for r in rows)  # shown escaped, never as it reads


def test_through_the_api_a_refused_label_is_exit_1_and_counted(
    box: Sandbox, tmp_path: Path
) -> None:
    import importer

    box.set_faults(label_status=500)
    result = importer.run(
        export(tmp_path / "a.csv", 4), base_url=box.base_url, report_dir=tmp_path / "r",
        state=tmp_path / "journal.sqlite", default_region="ID", labels=["VIP"], max_attempts=1,
        on_existing="update",
    )  # fmt: skip
    assert (result.exit_code, result.ok, result.stopped) == (1, False, None)
    assert result.counts["created"] == 4
    assert result.summary["labels"] == {
        "attached": 0, "already_in_place": 0, "failed": 4, "failed_by_reason": {"call_failed": 4}
    }  # fmt: skip
    box.set_faults(label_status=None)
    again = importer.run(
        export(tmp_path / "a.csv", 4), base_url=box.base_url, report_dir=tmp_path / "r2",
        state=tmp_path / "journal.sqlite", default_region="ID", labels=["VIP"],
        on_existing="update",
    )  # fmt: skip
    assert (again.exit_code, again.summary["labels"]["attached"]) == (0, 4)
