"""Several accounts in one file: an account column routes each row to the account it names,
through ``main(argv)`` and ``importer.run``/``importer.plan`` against a sandbox with two
connected accounts, a disconnected one and one still onboarding."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import importer
from importer.cli import main
from importer.records import Account
from importer.sandbox import Sandbox, SandboxConfig
from importer.sandbox.config import Account as SandboxAccount
from importer.validate.accounts import Routing, numbers
from tests.conftest import UNLIMITED, phone, write_contacts
from tests.test_nightly import Requests
from tests.test_run import results, summary

MAIN, BRANCH, OLD = "106540352242922", "106540352242924", "106540352242923"
ACCOUNTS = (
    SandboxAccount(MAIN, "+15550100001", "Main", "connected"),
    SandboxAccount(BRANCH, "+15550100003", "Branch", "connected"),
    SandboxAccount(OLD, "+15550100002", "Old Number", "disconnected"),
    SandboxAccount(None, "+15550100004", "Onboarding", "onboarding"),
)
ACCOUNTS_ROUTE = ("GET", "/v1/accounts")


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """An unlimited sandbox whose organisation has the four accounts above; its key in
    KIRIM_API_KEY."""
    with Sandbox(SandboxConfig(seed=5, accounts=ACCOUNTS, **UNLIMITED)) as running:
        monkeypatch.setenv("KIRIM_API_KEY", running.token)
        yield running


def sheet(path: Path, cells: list[tuple[int, str]], header: str = "Akun") -> Path:
    """One row per (phone number n, account cell)."""
    rows = [{"Phone": phone(n), "Name": f"Contact {n}", header: cell} for n, cell in cells]
    return write_contacts(path, rows)


def per_account(box: Sandbox) -> Counter[tuple[str, str]]:
    """(account's WhatsApp number, phone) -> contacts the sandbox holds."""
    return Counter(
        (c["whatsapp_account"]["phone_number"], c["phone_number"]) for c in box.contacts()
    )


def run(box: Sandbox, file: Path, tmp: Path, name: str, *extra: str) -> tuple[int, Path]:
    reports = tmp / name
    argv = ["run", str(file), "--base-url", box.base_url, "--report-dir", str(reports),
            "--state", str(tmp / "journal.sqlite"), *extra]  # fmt: skip
    return main(argv), reports


MIXED = [
    (1, MAIN),  # by phone_number_id
    (2, "+1 555-010-0003"),  # by the account's WhatsApp number, as a person writes it
    (1, "15550100003"),  # the same phone under the other account: another contact
    (3, "0015550100001"),  # 00 international prefix
    (4, "999999999"),  # no such account
    (5, OLD),  # disconnected
    (6, "+15550100004"),  # onboarding: no phone_number_id yet
    (7, ""),  # empty: the default account, if any
    (1, " 106540352242922 "),  # the same phone and account as row 1: a duplicate
]


def test_rows_go_to_the_account_their_column_names(org: Sandbox, tmp_path: Path) -> None:
    seen = Requests(org)
    code, reports = run(org, sheet(tmp_path / "mixed.csv", MIXED), tmp_path, "r1")
    assert code == 1  # invalid rows
    rows = results(reports)
    got = [(r["status"], r["error_code"], r["account"]) for r in rows]
    assert got == [
        ("created", "", MAIN),
        ("created", "", BRANCH),
        ("created", "", BRANCH),
        ("created", "", MAIN),
        ("invalid", "unknown_account", ""),
        ("invalid", "account_not_connected", ""),
        ("invalid", "account_not_connected", ""),
        ("invalid", "missing_account", ""),  # two connected: no default without --account
        ("duplicate_in_file", "duplicate_in_file", MAIN),
    ]
    assert (
        "'999999999' is neither the phone_number_id nor the WhatsApp number"
        in (rows[4]["error_message"])
    )
    assert "column 'Akun'" in rows[5]["error_message"]
    assert "disconnected" in rows[5]["error_message"]
    assert "--account" in rows[7]["error_message"]
    assert rows[8]["duplicate_of"] == "1"
    # Kirim holds each contact under its account; one phone under two accounts is two contacts
    assert per_account(org) == Counter({
        ("+15550100001", phone(1)): 1, ("+15550100003", phone(2)): 1,
        ("+15550100003", phone(1)): 1, ("+15550100001", phone(3)): 1,
    })  # fmt: skip
    sent = seen.since()
    assert sent[("GET", "/v1/me")] == 1
    assert sent[ACCOUNTS_ROUTE] == 1
    assert sent[("POST", "/v1/{phone_number_id}/contacts")] == 4
    s = summary(reports)
    assert s["accounts"][MAIN] == {
        "created": 2, "updated": 0, "unchanged": 0, "exists": 0, "duplicate_in_file": 1,
        "invalid": 0, "failed": 0,
    }  # fmt: skip
    assert s["accounts"][BRANCH]["created"] == 2
    assert s["accounts"][""]["invalid"] == 4  # rows that go to no account
    assert sum(sum(c.values()) for c in s["accounts"].values()) == s["rows_total"] == 9
    assert s["reasons"]["unknown_account"] == 1
    assert s["reasons"]["account_not_connected"] == 2
    page = (reports / "report.html").read_text()
    assert f'data-account-count="{MAIN} created">2<' in page
    assert f'data-account-count="{BRANCH} created">2<' in page

    # a rerun sends nothing new: the journal keys every contact by its account
    code, again = run(org, sheet(tmp_path / "mixed.csv", MIXED), tmp_path, "r2")
    assert code == 1
    assert [r["status"] for r in results(again)][:4] == ["exists"] * 4  # a new run: known
    assert seen.since()[("POST", "/v1/{phone_number_id}/contacts")] == 0
    assert sum(per_account(org).values()) == 4


def test_account_is_the_default_for_empty_cells_and_an_unknown_default_stops(
    org: Sandbox, tmp_path: Path
) -> None:
    file = sheet(tmp_path / "a.csv", [(1, ""), (2, MAIN), (3, "")], header="sender")
    code, reports = run(org, file, tmp_path, "r1", "--account", BRANCH)
    assert code == 0
    assert [r["account"] for r in results(reports)] == [BRANCH, MAIN, BRANCH]
    assert per_account(org) == Counter({
        ("+15550100003", phone(1)): 1, ("+15550100001", phone(2)): 1,
        ("+15550100003", phone(3)): 1,
    })  # fmt: skip
    code, reports = run(org, file, tmp_path, "r2", "--account", "106540352242999")
    assert code == 3  # a mistyped --account is a stop before anything is sent, as always
    assert "account 106540352242999 not found" in summary(reports)["stopped"]


def test_a_mapped_account_column_with_labels_through_the_api(org: Sandbox, tmp_path: Path) -> None:
    rows = [
        {"HP": phone(1), "Nama": "A", "Cabang": "+15550100001", "Tags": "VIP"},
        {"HP": phone(1), "Nama": "A", "Cabang": "+15550100003", "Tags": "VIP"},
        {"HP": phone(2), "Nama": "B", "Cabang": "+15550100003", "Tags": "Jakarta"},
    ]
    file = write_contacts(tmp_path / "cabang.csv", rows)
    result = importer.run(
        file, map={"account": "Cabang"}, base_url=org.base_url, api_key=org.token,
        report_dir=tmp_path / "api", state=tmp_path / "journal.sqlite", labels=["Imported"],
    )  # fmt: skip
    assert result.ok, result.summary
    assert result.counts["created"] == 3
    assert set(result.summary["accounts"]) == {MAIN, BRANCH}
    names = {label["id"]: label["name"] for label in org.state.store.labels()}
    got = {
        (c["whatsapp_account"]["phone_number"], c["phone_number"]): {names[i] for i in c["labels"]}
        for c in org.contacts()
    }
    assert got == {
        ("+15550100001", phone(1)): {"VIP", "Imported"},
        ("+15550100003", phone(1)): {"VIP", "Imported"},
        ("+15550100003", phone(2)): {"Jakarta", "Imported"},
    }
    # the next night: labels in place and bodies unchanged cost nothing, in both accounts
    seen = Requests(org)
    again = importer.run(
        file, map={"account": "Cabang"}, base_url=org.base_url, api_key=org.token,
        report_dir=tmp_path / "api2", state=tmp_path / "journal.sqlite", labels=["Imported"],
        on_existing="update",
    )  # fmt: skip
    assert again.ok
    sent = seen.since()
    assert sent[("POST", "/v1/{phone_number_id}/contacts/bulk_label")] == 0
    assert sent[("POST", "/v1/{phone_number_id}/contacts")] == 0


def test_a_file_without_an_account_column_sends_as_before(org: Sandbox, tmp_path: Path) -> None:
    file = write_contacts(tmp_path / "plain.csv", [{"Phone": phone(1), "Name": "A"}])
    seen = Requests(org)
    code = main(["plan", str(file), "--report-dir", str(tmp_path / "p")])
    assert code == 0
    assert sum(seen.since().values()) == 0  # a plan stays offline, key or not
    assert "accounts" not in summary(tmp_path / "p")
    code, reports = run(org, file, tmp_path, "r", "--account", MAIN)
    assert code == 0
    assert seen.since()[ACCOUNTS_ROUTE] == 1
    s = summary(reports)
    assert "accounts" not in s
    assert s["account"] == MAIN
    assert [r["account"] for r in results(reports)] == [""]


def test_plan_checks_accounts_when_a_key_is_set_and_says_when_it_cannot(
    org: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    file = sheet(tmp_path / "mixed.csv", MIXED)
    seen = Requests(org)
    code = main(
        ["plan", str(file), "--base-url", org.base_url, "--report-dir", str(tmp_path / "p1")]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "account <- 'Akun' (alias)" in out
    assert "Accounts: accounts checked against GET /v1/accounts: 4 listed, 2 connected" in out
    assert seen.since()[ACCOUNTS_ROUTE] == 1
    planned = [(r["status"], r["error_code"]) for r in results(tmp_path / "p1")]
    assert planned[4:] == [
        ("invalid", "unknown_account"), ("invalid", "account_not_connected"),
        ("invalid", "account_not_connected"), ("invalid", "missing_account"),
        ("duplicate_in_file", "duplicate_in_file"),
    ]  # fmt: skip
    assert summary(tmp_path / "p1")["accounts_checked"] is True
    assert summary(tmp_path / "p1")["accounts"][MAIN]["valid"] == 2

    monkeypatch.setenv("KIRIM_API_KEY", "kc_live_" + "x" * 24)  # an old product's: refused
    plan = importer.plan(file, base_url=org.base_url, report_dir=tmp_path / "p2")
    assert plan.summary["accounts_checked"] is False
    assert re.search(r"accounts not checked: GET /v1/accounts failed: 401", plan.summary[
        "accounts_checked_how"])  # fmt: skip
    assert "x" * 24 not in (tmp_path / "p2" / "summary.json").read_text()

    assert seen.since()[ACCOUNTS_ROUTE] == 1  # refused once (a 401 is not retried)
    monkeypatch.delenv("KIRIM_API_KEY")
    plan = importer.plan(file, report_dir=tmp_path / "p3", account=BRANCH)
    assert plan.summary["accounts_checked"] is False
    assert "no KIRIM_API_KEY" in plan.summary["accounts_checked_how"]
    statuses = [r["status"] for r in results(tmp_path / "p3")]
    # unchecked: every row with an account cell is valid, duplicates still per account
    assert statuses == ["valid"] * 8 + ["duplicate_in_file"]
    assert seen.since()[ACCOUNTS_ROUTE] == 0


def test_cells_are_compared_in_e164() -> None:
    accounts = [
        Account(MAIN, "+62 812-0000-0001", "Jakarta", "connected"),
        Account(BRANCH, "+6281200000002", "Bandung", "degraded"),
        Account(OLD, "+6281200000003", "Old", "disconnected"),
    ]
    routing = Routing(column="Akun", default=None, region="ID", accounts=accounts)
    for cell in ("+6281200000001", "6281200000001", "081200000001", "0062 812 0000 0001", MAIN):
        assert routing.route(cell).account == MAIN, cell
    assert routing.route("081200000002").account == BRANCH  # degraded still takes contacts
    assert routing.route("081200000003").code == "account_not_connected"
    assert routing.route("081200000009").code == "unknown_account"
    assert numbers("081200000001", None) == set()  # national without a region: no number
    unchecked = Routing(column="Akun", default=None, region="ID")
    assert unchecked.route("0812-0000-0001").account == "+6281200000001"
    assert unchecked.route(MAIN).account == MAIN


def test_lost_answers_in_two_accounts_never_double_a_contact(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every create takes effect and its answer is lost (a 502 or a dropped connection): the
    rows stay pending in their account's journal entries, and the rerun looks each phone up
    under its own account instead of creating it again."""
    config = SandboxConfig(seed=9, accounts=ACCOUNTS, ambiguous_rate=1.0, **UNLIMITED)
    cells = [(1, MAIN), (1, BRANCH), (2, "+15550100003"), (3, "")]
    with Sandbox(config) as box:
        monkeypatch.setenv("KIRIM_API_KEY", box.token)
        file = sheet(tmp_path / "lost.csv", cells)
        code, first = run(box, file, tmp_path, "r1", "--account", MAIN, "--max-attempts", "1")
        assert code == 1
        assert {r["status"] for r in results(first)} == {"failed"}
        assert sum(per_account(box).values()) == 4  # each create landed; no answer said so
        box.set_faults(ambiguous_rate=0.0)
        code, second = run(box, file, tmp_path, "r2", "--account", MAIN)
        assert code == 0
        assert [(r["status"], r["account"]) for r in results(second)] == [
            ("created", MAIN), ("created", BRANCH), ("created", BRANCH), ("created", MAIN),
        ]  # fmt: skip
        assert per_account(box) == Counter({
            ("+15550100001", phone(1)): 1, ("+15550100003", phone(1)): 1,
            ("+15550100003", phone(2)): 1, ("+15550100001", phone(3)): 1,
        })  # fmt: skip


def test_every_account_draws_on_the_organisations_one_write_bucket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Kirim's budget is the organisation's: 620 creates split over two accounts at 600
    writes/min need the one bucket's burst and two seconds more (a bucket per account would
    send all 620 at once, and 20 would meet the server's limit)."""
    config = SandboxConfig(seed=3, accounts=ACCOUNTS, write_per_minute=600, read_per_minute=60_000)
    with Sandbox(config) as box:
        monkeypatch.setenv("KIRIM_API_KEY", box.token)
        cells = [(n, MAIN if n % 2 else BRANCH) for n in range(1, 621)]
        code, reports = run(
            box, sheet(tmp_path / "many.csv", cells), tmp_path, "r", "--on-existing", "create"
        )
        assert code == 0
        s = summary(reports)
        assert s["created"] == 620
        # a bucket per account overshoots the server's by the 20 writes past its burst; the
        # one bucket meets at most a 429 or two when a loaded machine skews its clock
        assert s["http_429"] == box.rate_limited < 5
        assert s["accounts"][MAIN]["created"] == s["accounts"][BRANCH]["created"] == 310


def test_plan_tells_a_default_account_a_run_would_refuse(org: Sandbox, tmp_path: Path) -> None:
    file = sheet(tmp_path / "a.csv", [(1, ""), (2, MAIN)])
    plan = importer.plan(
        file, base_url=org.base_url, api_key=org.token, account=OLD, report_dir=tmp_path / "p"
    )
    assert plan.summary["accounts_checked"] is True
    assert (
        f"--account {OLD} is no connected account: a run would stop"
        in (plan.summary["accounts_checked_how"])
    )
    code, reports = run(org, file, tmp_path, "r", "--account", OLD)
    assert code == 3
    assert f"account {OLD} is disconnected" in summary(reports)["stopped"]
    assert org.contacts() == []


def test_an_empty_map_turns_the_column_back_into_metadata(org: Sandbox, tmp_path: Path) -> None:
    file = sheet(tmp_path / "crm.csv", [(1, "ACC-001"), (2, "ACC-002")], header="Account")
    code, reports = run(org, file, tmp_path, "r", "--map", "account=", "--account", MAIN)
    assert code == 0
    assert [r["status"] for r in results(reports)] == ["created", "created"]
    assert {c["metadata"]["Account"] for c in org.contacts()} == {"ACC-001", "ACC-002"}
    assert "accounts" not in summary(reports)


@pytest.mark.parametrize("option", ["--sync-label=Active", "--adopt"])
def test_mirroring_options_are_refused_with_an_account_column(
    org: Sandbox, tmp_path: Path, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--sync-label and --adopt work on one account: refused, exit 2, before any request, by
    run and plan alike (a plan does not promise what a run refuses), and by the API."""
    seen = Requests(org)
    file = sheet(tmp_path / "mixed.csv", [(1, MAIN), (2, BRANCH)])
    code, reports = run(org, file, tmp_path, "r", option)
    assert code == 2
    err = capsys.readouterr().err
    assert "column 'Akun' routes rows to several accounts" in err
    assert "split the source by account" in err
    assert "Nothing was sent." in err
    assert not any(seen.since().values())  # not even the pre-flight
    assert org.contacts() == []
    assert not reports.exists() or not list(reports.iterdir())  # no partial report left
    assert main(["plan", str(file), "--report-dir", str(tmp_path / "p"), option]) == 2
    assert "split the source by account" in capsys.readouterr().err
    name, value = ("sync_labels", ["Active"]) if option.startswith("--sync") else ("adopt", True)
    with pytest.raises(importer.InputError, match="routes rows to several accounts"):
        importer.run(file, base_url=org.base_url, state=tmp_path / "j.sqlite",
                     report_dir=tmp_path / "api", **{name: value})  # fmt: skip
    with pytest.raises(importer.InputError, match="routes rows to several accounts"):
        importer.plan(file, report_dir=tmp_path / "api-plan", **{name: value})
