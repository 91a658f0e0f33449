"""A new user's ordinary mistakes on 0.5.0's commands: each a clear message naming the option
or file, the right exit code, never a traceback; files and folders made private."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import importer
from importer.cli import main
from importer.sandbox import Sandbox
from tests.conftest import contacts_file


@pytest.mark.parametrize(
    ("output", "extra", "said"),
    [
        (".", [], "--output '.': a folder, not a file"),
        ("{tmp}", [], "a folder, not a file"),
        ("{tmp}/contacts.xlsx", [], "export writes CSV or Parquet; name the file .csv or .parquet"),
        ("{tmp}/contacts.csv.gz", [], "(a .gz file would not read back)"),
        ("{tmp}/contacts.parquet", ["--format", "csv"], "--format csv into a .parquet file"),
        ("{tmp}/contacts.csv", ["--format", "parquet"], "--format parquet into a .csv file"),
    ],
)
def test_export_to_a_folder_or_a_misnamed_file_is_a_usage_error_before_anything_is_read(
    output: str, extra: list[str], said: str, box: Sandbox, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = output.replace("{tmp}", str(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit) as exited:
        main(["export", "--output", out, *extra, "--base-url", box.base_url])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert said in err
    assert "internal error" not in err
    assert "Traceback" not in err
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(importer.UsageError, match="--output"):
        importer.export(out, base_url=box.base_url, format=extra[1] if extra else None)


def test_export_to_a_csv_or_parquet_file_in_a_new_folder_is_fine(
    box: Sandbox, tmp_path: Path
) -> None:
    for name in ("a.csv", "a.txt", "a.parquet", "a.pq", "backup-2026.12.07"):
        result = importer.export(tmp_path / "new" / name, base_url=box.base_url)
        assert result.ok, name
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700


def test_the_default_reports_folder_is_made_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = contacts_file(tmp_path / "in.csv", 3)
    was = os.umask(0o022)  # a shared cron host's
    try:
        assert main(["plan", str(source)]) == 0
    finally:
        os.umask(was)
    assert (tmp_path / "reports").stat().st_mode & 0o777 == 0o700
    (folder,) = (tmp_path / "reports").iterdir()
    assert folder.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('until = "25:00"\n', "nightly.toml:2: until '25:00': expected a local time HH:MM"),
        ('notify = ["ftp://x"]\n', "nightly.toml:2: notify ftp://x: expected https://host/path"),
        ('max_invalid = "150%"\n', "nightly.toml:2: max_invalid 150%: a share between 0 and 100%"),
        ('sync_label = [""]\n', "nightly.toml:2: sync_label '': a label name has 1 to 50"),
        ("concurrency = 0\n", "nightly.toml:2: concurrency must be between 1 and 1024"),
        ('[profiles.acme]\ndefault_region = "XX"\n',
         "nightly.toml:3: default_region in [profiles.acme] 'XX' is not an ISO country code"),
    ],
)
def test_a_value_the_option_refuses_in_the_config_file_is_named_at_its_line(
    text: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("KIRIM_API_KEY", "not-checked-before-the-options")
    config = tmp_path / "nightly.toml"
    config.write_text("quiet = true\n" + text, encoding="utf-8")
    source = contacts_file(tmp_path / "in.csv", 1)
    profile = ["--profile", "acme"] if "acme" in text else []
    with pytest.raises(SystemExit) as exited:
        main(["run", str(source), "--config", str(config), *profile, "--base-url",
              "http://127.0.0.1:9/v1", "--report-dir", str(tmp_path / "r")])  # fmt: skip
    assert exited.value.code == 2
    assert f"{tmp_path}/{said}" in capsys.readouterr().err
    with pytest.raises(importer.UsageError) as raised:
        importer.run(source, config=config, profile="acme" if profile else None,
                     base_url="http://127.0.0.1:9/v1", api_key="k", report_dir=tmp_path / "r")
    assert f"{tmp_path}/{said}" in str(raised.value)
    if "default_region" in said or "max_invalid" in said:  # plan's options too
        with pytest.raises(importer.UsageError) as raised:
            importer.plan(source, config=config, profile="acme" if profile else None,
                          report_dir=tmp_path / "p")
        assert f"{tmp_path}/{said}" in str(raised.value)


def test_a_flag_that_overrides_the_file_is_named_as_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIRIM_API_KEY", "not-checked-before-the-options")
    config = tmp_path / "nightly.toml"
    config.write_text('until = "06:00"\n', encoding="utf-8")
    source = contacts_file(tmp_path / "in.csv", 1)
    with pytest.raises(SystemExit):
        main(["run", str(source), "--config", str(config), "--until", "25:00",
              "--base-url", "http://127.0.0.1:9/v1"])  # fmt: skip
    assert "error: --until '25:00'" in capsys.readouterr().err
    with pytest.raises(importer.UsageError, match=r"^--until '25:00'"):
        importer.run(source, config=config, until="25:00", base_url="http://127.0.0.1:9/v1",
                     api_key="k")


def test_a_folder_given_as_the_source_is_named_as_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "exports.csv"
    folder.mkdir()
    for source in (tmp_path, folder):
        assert main(["plan", str(source), "--report-dir", str(tmp_path / "r")]) == 2
        assert f"error: {source}: a folder, not a file" in capsys.readouterr().err
        with pytest.raises(importer.InputError, match="a folder, not a file"):
            importer.plan(source, report_dir=tmp_path / "r")


def test_an_empty_query_is_named_whether_typed_or_in_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIRIM_SOURCE_DB", f"sqlite:///{tmp_path / 'crm.db'}")
    empty = tmp_path / "query.sql"
    empty.write_text("  \n", encoding="utf-8")
    for flags, said in (
        (["--sql", ""], "error: --sql: the query is empty"),
        (["--sql-file", str(empty)], f"error: --sql-file {empty}: the query is empty"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(["plan", *flags, "--report-dir", str(tmp_path / "r")])
        assert exited.value.code == 2
        assert said in capsys.readouterr().err
    with pytest.raises(importer.UsageError, match="--sql: the query is empty"):
        importer.plan(sql="", report_dir=tmp_path / "r")


@pytest.mark.parametrize(
    "flags",
    [
        ["run", "in.csv", "--report-dir", ""],
        ["run", "in.csv", "--state", ""],
        ["plan", "in.csv", "--mapping", ""],
        ["run", "in.csv", "--config", ""],
        ["history", "--state", ""],
        ["export", "--output", ""],
    ],
)
def test_an_empty_path_is_a_usage_error_not_the_working_folder(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # where an empty path would have written
    contacts_file(tmp_path / "in.csv", 1)
    with pytest.raises(SystemExit) as exited:
        main([*flags, "--base-url", "http://127.0.0.1:9/v1"] if flags[0] == "export" else flags)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flags[-2]}" in err
    assert "expected a path, not an empty string" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_an_empty_report_dir_or_state_through_the_api_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = contacts_file(tmp_path / "in.csv", 1)
    with pytest.raises(importer.UsageError, match="--report-dir '': expected a folder"):
        importer.run(source, report_dir="", base_url="http://127.0.0.1:9/v1", api_key="k")
    with pytest.raises(importer.UsageError, match="--state '': expected a path"):
        importer.run(source, state="", report_dir=tmp_path / "r",
                     base_url="http://127.0.0.1:9/v1", api_key="k")  # fmt: skip
    with pytest.raises(importer.UsageError, match="--state '': expected a path"):
        importer.plan(source, state="", report_dir=tmp_path / "p")
    assert not (tmp_path / "results.csv").exists()


def test_config_refuses_a_flag_the_command_does_not_take(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "nightly.toml"
    config.write_text('default_region = "ID"\n', encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["config", str(config), "--concurency", "8"])  # a typo in the crontab line
    assert exited.value.code == 2
    assert "run has no such arguments: --concurency 8" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["config", str(config), "--command", "plan", "--on-existing", "update"])
    assert "plan has no such arguments: --on-existing update" in capsys.readouterr().err
    assert main(["config", str(config), "exports/customers.csv", "--concurrency", "8"]) == 0
    assert "concurrency = 8" in capsys.readouterr().out


def test_an_unknown_keyword_to_export_is_a_usage_error_as_for_run(tmp_path: Path) -> None:
    with pytest.raises(importer.UsageError, match="unknown option"):
        importer.run(contacts_file(tmp_path / "in.csv", 1), lable="vip", api_key="k",
                     base_url="http://127.0.0.1:9/v1", report_dir=tmp_path / "r")  # fmt: skip
    with pytest.raises(importer.UsageError, match=r"unknown option\(s\): lable"):
        importer.export(tmp_path / "out.csv", lable="vip")
    assert not (tmp_path / "out.csv").exists()
