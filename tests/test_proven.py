"""Every outcome proven: an answer counts only when it shows *this* contact, and a replayed
answer proves the past, not the present. Each case runs ``main(argv)`` against the sandbox
behaving as the contract allows, and counts contacts at the sandbox, not in the report."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from importer.cli import main
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import contacts_file, phone
from tests.test_run import results, summary

ROUTE = "/v1/{phone_number_id}/contacts"


def run(box: Sandbox, file: Path, tmp: Path, name: str, *extra: str, state: str = "j") -> int:
    return main(
        [
            "run", str(file), "--base-url", box.base_url, "--report-dir", str(tmp / name),
            "--state", str(tmp / f"{state}.sqlite"), *extra,
        ]
    )  # fmt: skip


def live(box: Sandbox) -> dict[str, list[str]]:
    """Phone -> the ids of the contacts the sandbox holds now."""
    found: dict[str, list[str]] = {}
    for contact in box.contacts():
        found.setdefault(contact["phone_number"], []).append(contact["id"])
    return found


def journalled(state: Path) -> dict[str, tuple[str, str | None, int]]:
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT phone, state, contact_id, needs_lookup FROM contacts")
        return {p: (s, c, n) for p, s, c, n in rows}


def test_deleted_in_kirim_then_imported_again_the_same_day_is_created_again(
    box: Sandbox, tmp_path: Path
) -> None:
    """Kirim keeps keys 24 h after a delete and replays the deleted contact's 201: the
    importer confirms a replay with a lookup and creates the vanished contact again."""
    file = contacts_file(tmp_path / "in.csv", 20)
    assert run(box, file, tmp_path, "first") == 0
    gone = {c["phone_number"]: c["id"] for c in box.contacts()[:5]}
    for contact_id in gone.values():
        assert box.delete_contact(contact_id)
    # someone deletes a wrong import in the dashboard and reruns the file with a new journal
    assert run(box, file, tmp_path, "again", state="fresh") == 0
    now = live(box)
    assert {p: len(ids) for p, ids in now.items()} == {phone(i): 1 for i in range(1, 21)}
    assert all(now[p][0] != old for p, old in gone.items())  # new contacts, not the gone ones
    rows = {r["phone_number"]: r for r in results(tmp_path / "again")}
    for p, old in gone.items():
        assert rows[p]["status"] == "created"
        assert rows[p]["contact_id"] == now[p][0]
        assert old in rows[p]["warning"]
        assert "deleted" in rows[p]["warning"]
    assert summary(tmp_path / "again")["created"] == 5
    assert summary(tmp_path / "again")["exists"] == 15
    assert journalled(tmp_path / "fresh.sqlite")[phone(1)][0] == "done"
    # the re-made contacts are created exactly once: a third run creates nothing
    creations = box.creations_by_phone()
    assert run(box, file, tmp_path, "third", state="fresh") == 0
    assert box.creations_by_phone() == creations
    assert {r["status"] for r in results(tmp_path / "third")} == {"exists"}


def test_a_replay_in_create_mode_is_confirmed_too(box: Sandbox, tmp_path: Path) -> None:
    file = contacts_file(tmp_path / "in.csv", 6)
    assert run(box, file, tmp_path, "first", "--on-existing", "create") == 0
    victim = box.contacts()[0]
    box.delete_contact(victim["id"])
    assert run(box, file, tmp_path, "again", "--on-existing", "create", state="fresh") == 0
    assert {p: len(ids) for p, ids in live(box).items()} == {phone(i): 1 for i in range(1, 7)}
    statuses = sorted(r["status"] for r in results(tmp_path / "again"))
    # the five alive were replayed and confirmed: made by an earlier run, so they exist; the
    # one deleted is created again (as skip mode reports the same file)
    assert statuses == ["created"] + ["exists"] * 5


@pytest.mark.parametrize("kind", ["other", "madeup"])
def test_a_2xx_with_another_contact_proves_nothing(
    box: Sandbox, tmp_path: Path, kind: str
) -> None:
    others = contacts_file(tmp_path / "others.csv", 3)
    assert run(box, others, tmp_path, "others") == 0
    before = {c["id"]: dict(c) for c in box.contacts()}
    rows = [{"Phone": phone(100 + i), "Name": f"New {i}"} for i in range(1, 11)]
    file = tmp_path / "new.csv"
    file.write_text("Phone,Name\n" + "".join(f"{r['Phone']},{r['Name']}\n" for r in rows))
    box.set_faults(wrong_contact_rate=1.0, wrong_contact=kind)
    assert run(box, file, tmp_path, "wrong", "--max-attempts", "2") == 1
    got = results(tmp_path / "wrong")
    assert {(r["status"], r["error_code"]) for r in got} == {("failed", "answer_mismatch")}
    assert all(r["contact_id"] == "" for r in got)
    assert len(box.contacts()) == 3  # nothing was created, and nothing claims it was
    assert {p: s for p, (s, _, _) in journalled(tmp_path / "j.sqlite").items()
            if p >= phone(101)} == {phone(100 + i): "pending" for i in range(1, 11)}  # fmt: skip
    # now Kirim answers right: every row is created exactly once, with its own id
    box.set_faults(wrong_contact_rate=0.0)
    assert run(box, file, tmp_path, "right") == 0
    made = live(box)
    assert box.creations_by_phone() == {**{phone(i): 1 for i in range(1, 4)},
                                        **{phone(100 + i): 1 for i in range(1, 11)}}  # fmt: skip
    for r in results(tmp_path / "right"):
        assert r["contact_id"] == made[r["phone_number"]][0]
    assert {c["id"]: c for c in box.contacts() if c["id"] in before} == before


def test_creates_that_land_but_are_answered_with_another_contact(
    box: Sandbox, tmp_path: Path
) -> None:
    """The contact is made, the answer shows someone else's: unproven, so nothing is
    journalled done from it; the next run finds each one (ours: created), makes none twice,
    and never patches the contact the wrong answer named."""
    others = contacts_file(tmp_path / "others.csv", 3)
    assert run(box, others, tmp_path, "others") == 0
    before = {c["id"]: dict(c) for c in box.contacts()}
    file = tmp_path / "new.csv"
    file.write_text("Phone,Name\n" + "".join(f"{phone(100 + i)},New {i}\n" for i in range(1, 9)))
    box.set_faults(wrong_contact_rate=1.0, wrong_contact="other", wrong_contact_effect=True)
    assert run(box, file, tmp_path, "wrong", "--on-existing", "update", "--max-attempts", "2") == 1
    assert {r["error_code"] for r in results(tmp_path / "wrong")} == {"answer_mismatch"}
    assert len(box.contacts()) == 3 + 8  # made, each once, though no answer proved it
    box.set_faults(wrong_contact_rate=0.0, wrong_contact_effect=False)
    assert run(box, file, tmp_path, "right", "--on-existing", "update") == 0
    got = results(tmp_path / "right")
    assert {r["status"] for r in got} == {"created"}  # made by the run before, never reported
    made = live(box)
    assert all(r["contact_id"] == made[r["phone_number"]][0] for r in got)
    assert {p: n for p, n in box.creations_by_phone().items() if p >= phone(101)} == {
        phone(100 + i): 1 for i in range(1, 9)
    }
    assert {c["id"]: c for c in box.contacts() if c["id"] in before} == before  # untouched


def test_a_wrong_answer_to_a_patch_never_renames_anyone(box: Sandbox, tmp_path: Path) -> None:
    """When a PATCH's answer carried another person's contact, the next night's PATCH went to
    that person: now only ids from checked answers are journalled and patched."""
    file = contacts_file(tmp_path / "in.csv", 8)
    assert run(box, file, tmp_path, "night1", "--on-existing", "update") == 0
    snapshot = {c["id"]: dict(c) for c in box.contacts()}
    edited = file.read_text().replace("Contact 2,", "Contact Two,")
    file.write_text(edited)
    box.set_faults(wrong_contact_rate=1.0, wrong_contact="other")
    assert run(box, file, tmp_path, "night2", "--on-existing", "update", "--max-attempts", "2") == 1
    row2 = next(r for r in results(tmp_path / "night2") if r["phone_number"] == phone(2))
    assert (row2["status"], row2["error_code"]) == ("failed", "answer_mismatch")
    box.set_faults(wrong_contact_rate=0.0)
    assert run(box, file, tmp_path, "night3", "--on-existing", "update") == 0
    after = {c["id"]: c for c in box.contacts()}
    assert after.keys() == snapshot.keys()
    for contact_id, contact in after.items():
        expected = "Contact Two" if contact["phone_number"] == phone(2) else (
            snapshot[contact_id]["name"]
        )
        assert contact["name"] == expected
    assert journalled(tmp_path / "j.sqlite")[phone(2)][1] == live(box)[phone(2)][0]


@pytest.mark.parametrize("code", ["idempotency_key_reuse", "idempotency_conflict"])
@pytest.mark.parametrize("mode", ["skip", "create"])
def test_an_idempotency_conflict_after_a_lost_answer_is_looked_up_not_failed(
    box: Sandbox, tmp_path: Path, code: str, mode: str
) -> None:
    """The create lands, its answer is lost, the retry meets 422/409 for the used key: only a
    lookup can tell, and it finds the contact this run made."""
    file = contacts_file(tmp_path / "in.csv", 12)
    box.set_faults(ambiguous_rate=1.0, replay_conflict=code)
    assert run(box, file, tmp_path, "r", "--on-existing", mode) == 0
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 13)}
    got = results(tmp_path / "r")
    assert {r["status"] for r in got} == {"created"}
    assert all(r["contact_id"] == live(box)[r["phone_number"]][0] for r in got)
    box.set_faults(ambiguous_rate=0.0, replay_conflict=None)
    assert run(box, file, tmp_path, "again", "--on-existing", mode) == 0
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 13)}


def test_verify_recreates_what_was_deleted_behind_the_journals_back(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "in.csv", 10)
    assert run(box, file, tmp_path, "n1", "--on-existing", "update") == 0
    victims = [c["id"] for c in box.contacts()[:3]]
    for contact_id in victims:
        box.delete_contact(contact_id)
    # without --verify the journal's word stands: unchanged, and nothing is sent
    posts = box.request_count("POST", ROUTE)
    assert run(box, file, tmp_path, "n2", "--on-existing", "update") == 0
    assert {r["status"] for r in results(tmp_path / "n2")} == {"unchanged"}
    assert box.request_count("POST", ROUTE) == posts
    # with it: each row looked up once; the three gone are created again, once
    gets = box.request_count("GET", ROUTE)
    assert run(box, file, tmp_path, "n3", "--on-existing", "update", "--verify") == 0
    assert box.request_count("GET", ROUTE) - gets >= 10
    assert {p: len(ids) for p, ids in live(box).items()} == {phone(i): 1 for i in range(1, 11)}
    got = results(tmp_path / "n3")
    assert sorted(r["status"] for r in got) == ["created"] * 3 + ["unchanged"] * 7
    assert all("deleted in Kirim" in r["warning"] for r in got if r["status"] == "created")
    assert run(box, file, tmp_path, "n4", "--on-existing", "update") == 0
    assert {r["status"] for r in results(tmp_path / "n4")} == {"unchanged"}
    capsys.readouterr()
    assert main(["plan", str(file), "--verify", "--report-dir", str(tmp_path / "p")]) == 0
    assert "--verify: at most 10 lookups" in capsys.readouterr().out


def _child(box: Sandbox, file: Path, tmp: Path, reports: Path) -> list[str]:
    return [
        sys.executable, "-m", "importer", "run", str(file), "--base-url", box.base_url,
        "--state", str(tmp / "journal.sqlite"), "--report-dir", str(reports),
        "--concurrency", "16", "--quiet",
    ]  # fmt: skip


def test_a_kill_while_the_report_is_written_leaves_the_run_to_finish(tmp_path: Path) -> None:
    """The report's summary is a FIFO nobody reads: the run blocks writing it, exactly where
    a kill must not lose the counts. The rerun completes the same run and counts every
    contact the killed invocation made as created."""
    config = SandboxConfig(seed=3, write_per_minute=600_000, read_per_minute=6_000_000)
    with Sandbox(config) as box:
        file = contacts_file(tmp_path / "in.csv", 200)
        reports = tmp_path / "reports"
        reports.mkdir(mode=0o700)
        os.mkfifo(reports / "summary.json.partial", 0o600)
        env = {**os.environ, "KIRIM_API_KEY": box.token}
        child = subprocess.Popen(
            _child(box, file, tmp_path, reports), env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while len(box.creations_by_phone()) < 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # the journal closes, then the report blocks on the FIFO
        assert child.poll() is None, "the run ended without writing its summary"
        child.kill()
        child.wait(timeout=30)
        (reports / "summary.json.partial").unlink()
        final = subprocess.run(
            _child(box, file, tmp_path, tmp_path / "again"), env=env, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip
        assert final.returncode == 0, final.stdout + final.stderr
        assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 201)}
        assert "Resuming the unfinished run" not in final.stdout  # --quiet
        again = summary(tmp_path / "again")
        assert (again["created"], again["exists"], again["rows_total"]) == (200, 0, 200)
        assert again["requests_sent"] == 2  # the pre-flight's two reads: nothing else to send


def test_a_contact_created_again_gets_its_labels_again(box: Sandbox, tmp_path: Path) -> None:
    """The journal's labels belong to the deleted contact: the new one gets them attached,
    and the row keeps both its warnings."""
    file = contacts_file(tmp_path / "in.csv", 5)
    night = ("--on-existing", "update", "--label", "VIP")
    assert run(box, file, tmp_path, "n1", *night) == 0
    gone = next(c for c in box.contacts() if c["phone_number"] == phone(3))
    box.delete_contact(gone["id"])
    assert run(box, file, tmp_path, "n2", *night, "--verify") == 0
    back = next(c for c in box.contacts() if c["phone_number"] == phone(3))
    labels = {label["id"]: label["name"] for label in box.state.store.labels()}
    assert {labels[i] for i in back["labels"]} == {"VIP"}
    row = next(r for r in results(tmp_path / "n2") if r["phone_number"] == phone(3))
    assert (row["status"], row["labels"]) == ("created", "VIP")
    assert gone["id"] in row["warning"]
    assert run(box, file, tmp_path, "n3", *night) == 0  # and the journal knows it now
    assert {r["status"] for r in results(tmp_path / "n3")} == {"unchanged"}
