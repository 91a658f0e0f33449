"""The config file and the options the other issues added (guard rails, the time window,
notifications, JSON logs, ``--sync-label``/``--max-detach``/``--adopt``, ``--sql``/
``--sql-file``/``--db-uri-env``/``--row-key``, plan's ``--account``/``--base-url``): each is a
key that gives the same options through ``--config`` (``main``) as through
``importer.run(config=...)``/``importer.plan(config=...)``, and the runs behave alike."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import importer
from importer import api, cli, configfile
from importer.cli import main
from importer.errors import Refused
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import UNLIMITED, contacts_file, phone, write_contacts
from tests.receiver import Receiver
from tests.test_accounts import ACCOUNTS, MAIN
from tests.test_jsonlog import parsed
from tests.test_run import results, summary

EVERY_KEY = """
max_invalid = "20%"
min_share = "30%"
max_failed = 5
max_duration = "2h"
until = "23:59"
notify = ["https://hooks.example.com/services/T0/B0/token"]
notify_on = "always"
log_format = "json"
row_key = "Name"
account = "106540352242922"
base_url = "http://127.0.0.1:9/v1"
report_dir = "{tmp}/r"
state = "{tmp}/j.sqlite"

[profiles.mirror]
sync_label = ["active", "vip"]
max_detach = "20%"
adopt = true
allow_shrink = true
"""


def _cli_options(argv: list[str]) -> object:
    """What ``main`` hands the pipeline for ``argv``: parsed, the file laid under the flags,
    checked by ``configure``."""
    args = cli.build_parser().parse_args(argv)
    loaded = configfile.apply(args, argv)
    assert isinstance(loaded, configfile.Loaded)
    args.api_key_env = loaded.key_env
    return cli.run_options(args)


def test_every_added_option_is_a_key_read_alike_by_the_command_line_and_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIRIM_API_KEY", "kdv_test_" + "k" * 24)
    config = tmp_path / "every.toml"
    config.write_text(EVERY_KEY.format(tmp=tmp_path), encoding="utf-8")
    file = contacts_file(tmp_path / "in.csv", 2)
    for profile in (None, "mirror"):
        chosen = [] if profile is None else ["--profile", profile]
        from_cli = _cli_options(["run", str(file), "--config", str(config), *chosen])
        keywords: dict[str, object] = {"config": config, "profile": profile}
        from_api = api.run_options(file, keywords)
        assert from_cli == from_api, profile
    options = from_api
    assert options.max_invalid is not None
    assert options.max_invalid.percent == 20
    assert options.max_failed is not None
    assert options.max_failed.count == 5
    assert (options.min_share, options.max_duration_s, options.until) == (0.3, 7200, "23:59")
    assert options.notify == ("https://hooks.example.com/services/T0/B0/token",)
    assert (options.notify_on, options.log_format) == ("always", "json")
    assert (options.input.row_key, options.account) == ("Name", MAIN)
    assert options.sync_labels == ("active", "vip")  # sync_label, the API's sync_labels
    assert (options.max_detach, options.max_detach_percent) == (20.0, True)
    assert (options.adopt, options.allow_shrink) == (True, True)


def test_the_api_takes_every_key_the_command_line_has() -> None:
    """Each option of ``run`` and ``plan`` reaches ``configure`` under a name it takes (the
    parser's dest, or its API name): a key added to the command line works from Python too."""
    import inspect

    from importer import configure

    parser = cli.build_parser()
    reading = set(inspect.signature(configure.input_options).parameters)
    for command, build in (("run", configure.run_options), ("plan", configure.plan_options)):
        taken = set(inspect.signature(build).parameters) | reading
        for key, action in configfile.command_actions(parser, command).items():
            name = configfile.API_NAMES.get(action.dest, action.dest)
            assert name in taken, (command, key, name)


def _mirror_config(tmp: Path, box: Sandbox) -> Path:
    path = tmp / "mirror.toml"
    path.write_text(
        f'base_url = "{box.base_url}"\ndefault_region = "ID"\nstate = "{tmp / "j.sqlite"}"\n'
        'sync_label = ["active"]\nmax_detach = 0\nallow_shrink = true\n',
        encoding="utf-8",
    )
    return path


def test_sync_label_and_max_detach_from_the_file_through_main_and_the_api(
    box: Sandbox, tmp_path: Path
) -> None:
    config = _mirror_config(tmp_path, box)
    file = tmp_path / "segment.csv"
    contacts_file(file, 4)
    argv = ["run", str(file), "--config", str(config), "--report-dir"]
    assert main([*argv, str(tmp_path / "a")]) == 0
    assert summary(tmp_path / "a")["sync_labels"]["active"]["members_before"] == 0
    assert summary(tmp_path / "a")["labels"]["attached"] == 4
    result = importer.run(file, config=config, report_dir=tmp_path / "b")
    assert result.exit_code == 0
    assert result.summary["sync_labels"]["active"]["members_before"] == 4
    contacts_file(file, 2)  # two left the segment; max_detach = 0 in the file refuses
    with pytest.raises(Refused) as caught:
        importer.run(file, config=config, report_dir=tmp_path / "c")
    assert caught.value.guard == "max_detach"
    assert caught.value.facts == {"sync_labels": {"active": {"members": 4, "leaving": 2}}}
    assert main([*argv, str(tmp_path / "d")]) == 2
    assert main([*argv, str(tmp_path / "e"), "--max-detach", "2"]) == 0  # a flag wins
    assert summary(tmp_path / "e")["detached"] == 2


@pytest.fixture
def crm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CRM's SQLite database, its URI in the variable the config file names."""
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id TEXT, phone TEXT, name TEXT)")
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)",
            [(f"C-{i}", phone(i), f"Contact {i}") for i in range(1, 4)],
        )
    db.close()
    monkeypatch.setenv("CRM_DB", f"sqlite:///{path}")
    return path


def test_a_query_from_the_file_through_main_and_the_api(
    box: Sandbox, crm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = tmp_path / "customers.sql"
    query.write_text("SELECT id, phone, name FROM customers ORDER BY id\n", encoding="utf-8")
    config = tmp_path / "crm.toml"
    with Receiver() as receiver:
        config.write_text(
            f'base_url = "{box.base_url}"\nstate = "{tmp_path / "j.sqlite"}"\n'
            f'sql_file = "{query}"\ndb_uri_env = "CRM_DB"\nrow_key = "id"\n'
            f'notify = ["{receiver.base}/hook/t"]\nnotify_on = "always"\nlog_format = "json"\n',
            encoding="utf-8",
        )
        assert main(["run", "--config", str(config), "--report-dir", str(tmp_path / "a")]) == 0
        result = importer.run(config=config, report_dir=tmp_path / "b")
    rows = results(tmp_path / "a")
    assert [(r["row_key"], r["status"]) for r in rows] == [
        ("C-1", "created"), ("C-2", "created"), ("C-3", "created")
    ]  # fmt: skip
    assert (result.exit_code, result.counts["exists"]) == (0, 3)
    assert [r["row_key"] for r in results(tmp_path / "b")] == ["C-1", "C-2", "C-3"]
    shown = f"SQL query on sqlite:///{crm}"  # what the source is, as the Input line says
    assert [got.json["source"] for got in receiver.received] == [shown, shown]
    [started] = [r for r in parsed(capsys.readouterr().err) if r["event"] == "run_started"]
    assert started["source"] == shown
    planned = importer.plan(config=config, report_dir=tmp_path / "p")
    assert planned.counts["valid"] == 3
    assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 4)}


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """Two connected accounts; the key only in the variable the config file names."""
    with Sandbox(SandboxConfig(seed=5, accounts=ACCOUNTS, **UNLIMITED)) as running:
        monkeypatch.delenv("KIRIM_API_KEY", raising=False)
        monkeypatch.setenv("ACME_KEY", running.token)
        yield running


def test_plan_checks_an_account_column_with_the_files_key_variable_account_and_base_url(
    org: Sandbox, tmp_path: Path
) -> None:
    file = write_contacts(tmp_path / "in.csv", [
        {"Phone": phone(1), "Akun": MAIN}, {"Phone": phone(2), "Akun": "999999999"},
        {"Phone": phone(3), "Akun": ""},
    ])  # fmt: skip
    config = tmp_path / "plan.toml"
    config.write_text(
        f'[profiles.acme]\napi_key_env = "ACME_KEY"\nbase_url = "{org.base_url}"\n'
        f'account = "{MAIN}"\n',
        encoding="utf-8",
    )
    argv = ["plan", str(file), "--config", str(config), "--profile", "acme"]
    assert main([*argv, "--report-dir", str(tmp_path / "a")]) == 1  # one unknown account
    planned = importer.plan(file, config=config, profile="acme", report_dir=tmp_path / "b")
    for s in (summary(tmp_path / "a"), planned.summary):
        assert s["accounts_checked"] is True, s["accounts_checked_how"]
        assert s["reasons"] == {"unknown_account": 1}
        assert s["accounts"][MAIN]["valid"] == 2  # the empty cell: the file's account


def test_config_shows_the_added_keys_and_where_they_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "every.toml"
    config.write_text(EVERY_KEY.format(tmp=tmp_path), encoding="utf-8")
    assert main(["config", str(config), "--profile", "mirror", "--max-failed", "10%"]) == 0
    out = capsys.readouterr().out
    shown = {line.split(" = ")[0].strip(): line for line in out.splitlines()[1:]}
    assert shown["sync_label"].split()[2:4] == ['["active",', '"vip"]']
    assert "[profiles.mirror]" in shown["max_detach"]
    assert shown["max_failed"].split()[2:] == ['"10%"', "flag"]
    assert shown["notify"].split()[2] == '["https://hooks.example.com/…"]'
    assert "token" not in out
    assert main(["config", str(config), "--command", "plan"]) == 0
    out = capsys.readouterr().out
    assert 'account = "106540352242922"' in out
    assert "notify" not in out  # run's alone


def test_a_plan_shares_the_runs_file_before_its_journal_exists(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "nightly.sqlite"
    config = tmp_path / "nightly.toml"
    config.write_text(
        f'default_region = "ID"\nstate = "{journal}"\nbase_url = "{box.base_url}"\n'
        'on_existing = "update"\n',
        encoding="utf-8",
    )
    file = contacts_file(tmp_path / "in.csv", 3)
    plan = ["plan", str(file), "--config", str(config), "--report-dir"]
    assert main([*plan, str(tmp_path / "p1")]) == 0  # no journal yet: nothing to compare with
    assert "Shrink guard: no journal yet" in capsys.readouterr().out
    assert importer.plan(file, config=config, report_dir=tmp_path / "p2").ok
    assert (
        main(["run", str(file), "--config", str(config), "--report-dir", str(tmp_path / "r")]) == 0
    )
    assert journal.is_file()
    contacts_file(file, 1)  # the journal exists now: the plan compares with it
    assert main([*plan, str(tmp_path / "p3")]) == 0
    assert "Shrink guard: 1 valid rows against 3" in capsys.readouterr().out
    planned = importer.plan(file, config=config, report_dir=tmp_path / "p4")
    assert planned.summary["guards"]["last_finished_valid_rows"] == 3
    missing = ["--state", str(tmp_path / "typo.sqlite")]  # a flag must name a journal
    with pytest.raises(SystemExit) as usage:
        main([*plan, str(tmp_path / "p5"), *missing])
    assert usage.value.code == 2
