"""The guard rails on a file with an account column (two issues built apart): rows whose
account Kirim does not list are invalid for ``--max-invalid`` and are not valid rows for the
shrink guard, so another customer's export, routed to accounts this organisation lacks, is
refused before anything is sent, through ``main(argv)`` and ``importer.run``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import importer
from importer.cli import main
from importer.errors import Refused
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import UNLIMITED, phone, write_contacts
from tests.test_accounts import ACCOUNTS, BRANCH, MAIN
from tests.test_run import summary


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(seed=5, accounts=ACCOUNTS, **UNLIMITED)) as running:
        monkeypatch.setenv("KIRIM_API_KEY", running.token)
        yield running


def _sheet(path: Path, accounts: list[str]) -> Path:
    rows = [{"Phone": phone(n), "Akun": a} for n, a in enumerate(accounts, start=1)]
    return write_contacts(path, rows)


def test_unknown_accounts_count_as_invalid_for_max_invalid(org: Sandbox, tmp_path: Path) -> None:
    other = _sheet(tmp_path / "other.csv", [MAIN] + ["777777777"] * 4)  # another customer's
    argv = ["run", str(other), "--base-url", org.base_url, "--state", str(tmp_path / "j"),
            "--report-dir", str(tmp_path / "a"), "--max-invalid", "40%"]  # fmt: skip
    assert main(argv) == 2
    with pytest.raises(Refused) as caught:
        importer.run(other, base_url=org.base_url, state=tmp_path / "j",
                     report_dir=tmp_path / "b", max_invalid="40%")  # fmt: skip
    assert caught.value.facts == {"invalid": 4, "rows_total": 5, "allowed": 2}
    assert org.contacts() == []  # nothing sent


def test_the_shrink_guard_counts_only_rows_that_reach_an_account(
    org: Sandbox, tmp_path: Path
) -> None:
    file = tmp_path / "branches.csv"
    _sheet(file, [MAIN, BRANCH, MAIN, BRANCH])
    argv = ["run", str(file), "--base-url", org.base_url, "--state", str(tmp_path / "j"),
            "--account", MAIN, "--report-dir"]  # fmt: skip
    assert main([*argv, str(tmp_path / "a")]) == 0
    _sheet(file, [MAIN, "777777777", "777777777", "777777777"])  # 1 of the 4 still routes
    assert main([*argv, str(tmp_path / "b")]) == 2
    with pytest.raises(Refused) as caught:
        importer.run(file, base_url=org.base_url, state=tmp_path / "j", account=MAIN,
                     report_dir=tmp_path / "c")  # fmt: skip
    assert (caught.value.guard, caught.value.facts["valid_rows"]) == ("shrink", 1)
    assert summary(tmp_path / "a")["created"] == 4
    assert len(org.contacts()) == 4  # nothing more sent
