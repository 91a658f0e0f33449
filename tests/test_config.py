"""``--config FILE`` / ``importer.run(config=...)``: a TOML file of options with profiles; flags
win over the file, the profile over its top table, the file over the defaults; mistakes are
named with their file, line and key; ``kirim-import config`` shows where each value came
from, never a secret."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

import importer
from importer import configfile
from importer.cli import build_parser, main
from importer.sandbox import Sandbox
from tests.conftest import contacts_file
from tests.test_run import summary


def _config(tmp: Path, box: Sandbox) -> Path:
    path = tmp / "nightly.toml"
    path.write_text(
        f"""# the nightly import
base_url = "{box.base_url}"
default_region = "ID"
api_key_env = "ACME_KIRIM_KEY"
state = "{tmp / 'journal.sqlite'}"
limit = 1

[profiles.small]
limit = 2
report_dir = "{tmp / 'small'}"
state = "{tmp / 'small.sqlite'}"
label = ["nightly"]

[profiles."big one"]
limit = 3
report_dir = "{tmp / 'big'}"
state = "{tmp / 'big.sqlite'}"
on_existing = "update"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def keyed(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The key only in the variable the file names."""
    monkeypatch.delenv("KIRIM_API_KEY")
    monkeypatch.setenv("ACME_KIRIM_KEY", box.token)
    return box


def test_two_profiles_and_a_flag_over_them_through_main(keyed: Sandbox, tmp_path: Path) -> None:
    config = _config(tmp_path, keyed)
    file = contacts_file(tmp_path / "in.csv", 6)
    assert main(["run", str(file), "--config", str(config), "--profile", "small"]) == 0
    small = summary(tmp_path / "small")
    assert (small["created"], small["reasons"]) == (2, {"limit_reached": 4})  # the profile's 2
    assert main(["run", str(file), "--config", str(config), "--profile", "big one"]) == 0
    big = summary(tmp_path / "big")
    assert big["created"] + big["exists"] == 3  # "big one"'s limit, its own report folder
    flagged = tmp_path / "flagged"
    code = main([
        "run", str(file), "--config", str(config), "--profile", "small", "--limit", "5",
        "--report-dir", str(flagged), "--state", str(tmp_path / "f"),
    ])  # fmt: skip
    assert code == 0
    assert summary(flagged)["reasons"] == {"limit_reached": 1}  # the flag's 5, not 2
    assert summary(flagged)["journal"] == str(tmp_path / "f")


def test_the_top_table_alone_and_the_key_from_the_named_variable(
    keyed: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config = _config(tmp_path, keyed)
    file = contacts_file(tmp_path / "in.csv", 3)
    report = tmp_path / "top"
    assert main(["run", str(file), "--config", str(config), "--report-dir", str(report)]) == 0
    assert summary(report)["created"] == 1  # limit = 1 from the top table
    assert summary(report)["journal"] == str(tmp_path / "journal.sqlite")
    monkeypatch.delenv("ACME_KIRIM_KEY")
    with pytest.raises(SystemExit):
        main(["run", str(file), "--config", str(config), "--report-dir", str(tmp_path / "x")])
    assert "set ACME_KIRIM_KEY to your Kirim API key" in capsys.readouterr().err


def test_two_profiles_and_a_keyword_over_them_through_the_api(
    keyed: Sandbox, tmp_path: Path
) -> None:
    config = _config(tmp_path, keyed)
    file = contacts_file(tmp_path / "in.csv", 6)
    small = importer.run(file, config=config, profile="small")
    assert small.counts["created"] == 2
    assert small.report_dir == tmp_path / "small"
    big = importer.run(file, config=config, profile="big one")
    assert big.report_dir == tmp_path / "big"
    assert big.summary["rows_total"] == 6
    assert big.counts["created"] + big.counts["exists"] == 3
    over = importer.run(file, config=config, profile="small", limit=4,
                        report_dir=tmp_path / "kw", state=tmp_path / "kw.sqlite")  # fmt: skip
    assert over.summary["reasons"] == {"limit_reached": 2}
    planned = importer.plan(file, config=config, profile="small")  # run's keys left out
    assert planned.report_dir == tmp_path / "small"
    assert planned.counts["valid"] == 6


def _write(tmp: Path, text: str) -> Path:
    path = tmp / "bad.toml"
    path.write_text(text, encoding="utf-8")
    return path


BAD_KEY = """default_region = "ID"
notes = '''
on_exsting = "fake, inside a string"
'''
[profiles.a]
# a comment
on_exsting = "update"
"""
BAD_TYPE = """default_region = "ID"
[profiles.a]
limit = 3

[profiles.b]
concurrency = "ten"
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BAD_KEY, ":2: unknown key 'notes'"),
        (BAD_KEY.replace("notes", "label"), ":7: unknown key 'on_exsting' in [profiles.a] "
         "(did you mean on_existing?)"),
        (BAD_TYPE, ":6: concurrency in [profiles.b]: expected a whole number"),
        ('on_existing = "sometimes"\n', ":1: on_existing: expected one of skip, update, create"),
        ("verify = 1\n", ":1: verify: expected a boolean"),
        ("max_rate = true\n", ":1: max_rate: expected a number"),
        ("label = [1]\n", ":1: label: expected a string"),
        ('default_region = ["ID"]\n', ":1: default_region: expected a string, not a list"),
        ("[profiles.a]\n[profiles.a.profiles.b]\nx = 1\n", ":2: profiles in [profiles.a]"),
    ],
)
def test_a_wrong_key_or_type_is_named_with_its_file_and_line(
    text: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("KIRIM_API_KEY", "kdv_test_abc")
    config = _write(tmp_path, text)
    file = contacts_file(tmp_path / "in.csv", 1)
    with pytest.raises(SystemExit) as exited:  # whichever profile is chosen: all are checked
        main(["run", str(file), "--config", str(config), "--report-dir", str(tmp_path / "r")])
    assert exited.value.code == 2
    assert f"{config}{expected}" in capsys.readouterr().err
    with pytest.raises(importer.UsageError) as raised:
        importer.run(file, config=config, report_dir=tmp_path / "r2")
    assert f"{config}{expected}" in str(raised.value)
    assert not (tmp_path / "r").exists()  # refused before anything, nothing sent


def test_a_key_in_the_file_is_refused_without_being_repeated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "kdv_live_" + "Q" * 24
    config = _write(tmp_path, f'default_region = "ID"\n\n[profiles.x]\napi_key = "{secret}"\n')
    file = contacts_file(tmp_path / "in.csv", 1)
    with pytest.raises(SystemExit):
        main(["plan", str(file), "--config", str(config)])
    err = capsys.readouterr().err
    assert f"{config}:4: profiles.x.api_key holds what looks like a Kirim API key" in err
    assert secret not in err
    assert "api_key_env" in err
    config = _write(tmp_path, f'[profiles."a b"]\n{secret} = 1\n')
    with pytest.raises(importer.UsageError) as raised:
        importer.plan(file, config=config)
    assert ':2: a key in [profiles."a b"] looks like a Kirim API key' in str(raised.value)
    assert secret not in str(raised.value)
    config = _write(tmp_path, 'api_key = "${SOMETHING}"\n')
    with pytest.raises(importer.UsageError, match=":1: api_key: the key is never in the file"):
        importer.plan(file, config=config)


def test_an_unknown_profile_names_those_there_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(tmp_path, "[profiles.a]\n[profiles.b]\n")
    with pytest.raises(SystemExit):
        main(["plan", str(tmp_path / "in.csv"), "--config", str(config), "--profile", "c"])
    assert "no [profiles.c] (its profiles: a, b)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plan", str(tmp_path / "in.csv"), "--profile", "a"])
    assert "--profile needs --config FILE" in capsys.readouterr().err
    with pytest.raises(importer.UsageError, match=r"no \[profiles.c\] \(its profiles: a, b\)"):
        importer.plan(tmp_path / "in.csv", config=config, profile="c")
    with pytest.raises(importer.UsageError, match="profile= needs config="):
        importer.plan(tmp_path / "in.csv", profile="c")


def test_config_shows_each_value_and_where_it_came_from_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACME_KIRIM_KEY", "kdv_live_" + "Z" * 20)
    config = _write(tmp_path, """default_region = "ID"
api_key_env = "ACME_KIRIM_KEY"
notify = ["https://hooks.slack.com/services/T0/B0/s3cr3tWebhookToken"]

[profiles.acme]
on_existing = "update"
concurrency = 8
""")  # fmt: skip
    argv = ["config", str(config), "--profile", "acme", "--concurrency", "3", "-q"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = {line.split("=")[0].strip(): line for line in out.splitlines()[1:]}
    assert lines["default_region"].rstrip().endswith(f"file {config}:1")
    assert '"https://hooks.slack.com/…"' in lines["notify"]
    assert f"{config}:3" in lines["notify"]
    assert lines["on_existing"].rstrip().endswith(f"file {config}:6 [profiles.acme]")
    assert "concurrency = 3" in lines["concurrency"]
    assert lines["concurrency"].endswith("flag")
    assert "quiet = true" in lines["quiet"]
    assert lines["quiet"].endswith("flag")
    assert "timeout = (not set)" in lines["timeout"]
    assert lines["timeout"].endswith("default")
    assert '"ACME_KIRIM_KEY"  (the key: set in the environment)' in lines["api_key_env"]
    assert "s3cr3tWebhookToken" not in out
    assert "ZZZZ" not in out
    assert main(["config", str(config), "--command", "plan"]) == 0
    out = capsys.readouterr().out
    assert "write_per_minute" in out
    assert "on_existing" not in out


def test_every_option_of_the_parser_is_a_key(tmp_path: Path) -> None:
    """Keys come from the parser: every run and plan option is accepted with a value of its
    kind, so an option added to the command line needs nothing more here."""
    parser = build_parser()
    for command in configfile.COMMANDS:
        actions = configfile.command_actions(parser, command)
        assert {"default_region", "on_existing" if command == "run" else "write_per_minute"} <= set(
            actions
        )
        body = "\n".join(f"{key} = {_sample(action)}" for key, action in actions.items())
        loaded = configfile.load(_write(tmp_path, body), command=command)
        assert set(loaded.settings) == set(actions)


def _sample(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "true"
    if action.choices is not None:
        return json.dumps(str(next(iter(action.choices))))
    if action.type is int:
        return "2"
    if action.type is float:
        return "2.5"
    value = "phone_number=HP" if action.dest == "map" else "x"
    if action.dest == "notify":
        value = "https://example.com/hook"
    return f'["{value}"]' if isinstance(action, argparse._AppendAction) else f'"{value}"'


TRICKY = '''# comment with key = 1
"quoted key" = 'v'   # trailing
dotted.inner.leaf = 1
arr = [
  1,  # a comment in an array
  [2, 3],
  { a = 1, b = "x,y]" },
]
ml = """
fake = 1
[fake_table]
"""
lit = \'\'\'
also = 2\'\'\'
date = 1979-05-27T07:32:00Z
float = 3.14
inline = { x = { y = 1 }, "z w" = 2 }

[profiles."night run"]
limit = 5
escaped = "a \\" = b"
[[tables]]
n = 1
[[tables]]
n = 2
'''


def test_key_lines_finds_every_key_of_a_tricky_document() -> None:
    lines = configfile.key_lines(TRICKY)
    expected = {
        ("quoted key",): 2, ("dotted", "inner", "leaf"): 3, ("dotted",): 3, ("arr",): 4,
        ("ml",): 9, ("lit",): 13, ("date",): 15, ("float",): 16, ("inline",): 17,
        ("inline", "x", "y"): 17, ("inline", "z w"): 17, ("profiles", "night run"): 19,
        ("profiles", "night run", "limit"): 20, ("profiles", "night run", "escaped"): 21,
        ("tables", "n"): 23,
    }  # fmt: skip
    for path, line in expected.items():
        assert lines.get(path) == line, path
    assert ("fake",) not in lines
    assert ("fake_table",) not in lines
    assert ("also",) not in lines

    def leaves(value: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        if isinstance(value, dict):
            return [p for k, v in value.items() for p in leaves(v, (*path, k))]
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return [p for v in value for p in leaves(v, path)]
        return [path]

    for path in leaves(tomllib.loads(TRICKY), ()):  # every key tomllib sees has its line
        assert path in lines, path


def test_the_readmes_example_file_loads_for_each_profile(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = text.index("# /etc/kirim-import/nightly.toml")
    config = _write(tmp_path, text[start : text.index("```", start)])
    acme = configfile.load(config, profile="acme")
    assert acme.key_env == "KIRIM_KEY_ACME"
    assert acme.settings["label"].value == ["nightly", "acme"]
    assert acme.settings["on_existing"].value == "update"
    globex = configfile.load(config, profile="globex")
    assert (globex.key_env, globex.settings["max_rate"].value) == ("KIRIM_KEY_GLOBEX", 60.0)
    assert globex.settings["default_region"].line == 16
    plan = configfile.load(config, profile="globex", command="plan")
    assert "max_rate" not in plan.settings
    assert plan.settings["default_region"].value == "MY"


def test_a_number_is_the_flags_text_for_an_option_that_reads_text(tmp_path: Path) -> None:
    """``max_invalid = 100`` is ``--max-invalid 100``; a list item stays strict."""
    body = 'max_invalid = 100\nmax_duration = 90\nsheet = 2\nmin_share = "40%"\n'
    loaded = configfile.load(_write(tmp_path, body), command="run")
    assert {k: loaded.settings[k].value for k in ("max_invalid", "max_duration", "sheet")} == {
        "max_invalid": "100", "max_duration": "90", "sheet": "2",
    }  # fmt: skip
    with pytest.raises(importer.UsageError, match=":1: label: expected a string"):
        configfile.load(_write(tmp_path, "label = [1]\n"), command="run")


def test_config_into_a_reader_that_left_exits_0_quietly(tmp_path: Path) -> None:
    """``kirim-import config FILE | head -1``: the reader gone, no "internal error", exit 0."""
    import os
    import subprocess
    import sys

    config = _write(tmp_path, 'default_region = "ID"\n')
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before the first line: every write meets EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "importer", "config", str(config)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
                              check=False)  # fmt: skip
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
