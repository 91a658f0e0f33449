"""``kirim-import plan`` through ``main()``, on the shipped samples and on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from importer.cli import main
from importer.sandbox import Sandbox, SandboxConfig

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"


@pytest.mark.parametrize(
    ("name", "region", "code"),
    [
        ("contacts.csv", None, 0),
        ("pelanggan_excel.csv", "ID", 1),
        ("clientes.xlsx", "MX", 1),
        ("contacts.parquet", "ID", 1),
    ],
)
def test_plan_on_every_sample(
    name: str, region: str | None, code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--default-region", region] if region else []
    assert main(["plan", str(SAMPLES / name), "--report-dir", str(tmp_path), *extra]) == code
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rows_total"] == (
        summary["valid"] + summary["invalid"] + summary["duplicate_in_file"] + summary["failed"]
    )
    assert summary["rows_total"] > 10
    out = capsys.readouterr().out
    assert "phone_number <- " in out  # the mapping used is shown
    assert "would create" in out
    assert out.rstrip().endswith(f"Reports: {tmp_path}")


def test_plan_sends_nothing_and_needs_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KIRIM_API_KEY", raising=False)
    with Sandbox(SandboxConfig(seed=2)) as box:  # a server it could reach, were it to try
        monkeypatch.setenv("KIRIM_BASE_URL", box.base_url)
        assert main(["plan", str(SAMPLES / "contacts.csv"), "--report-dir", str(tmp_path)]) == 0
        assert box.stats()["requests"] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"Name,Email\nAna,ana@example.com\n", "phone"),
        (b"Phone,Name\n+6281200000001,A,extra\n", "line 2"),
    ],
)
def test_input_errors_exit_2_with_the_file_named(
    content: bytes, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    assert main(["plan", str(path), "--report-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err
    assert message in err.lower()
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--default-region", "XX"],
        ["--map", "phone=Phone"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", str(SAMPLES / "contacts.csv"), *argv])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--delimiter", ";;"], "--delimiter must be one character"),
        (["--encoding", "no-such-codec"], "unknown encoding 'no-such-codec'"),
    ],
)
def test_reading_options_are_checked_where_the_file_is_read(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", str(SAMPLES / "contacts.csv"), "--report-dir", str(tmp_path), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err
