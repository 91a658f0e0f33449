"""A URL as the source, against real servers: moto's S3 (IAM enforced) and a loopback HTTPS
server with a throwaway CA. Through ``main(argv)`` and ``importer.run/plan``."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

import importer
from importer.cli import main
from importer.read import remote
from importer.sandbox import Sandbox
from tests.sources.conftest import BUCKET, LOCKED, S3, Https, contact_rows, csv_bytes
from tests.test_run import summary


def copies() -> set[Path]:
    """The download folders in the temporary directory (another process's may be there)."""
    return set(Path(tempfile.gettempdir()).glob(f"{remote.PREFIX}*"))


def everything_written(folder: Path) -> str:
    """Every file under ``folder`` (reports, journal), as text, to look for secrets in."""
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()
    )


def cli(box: Sandbox, source: str, tmp: Path, *extra: str, command: str = "run") -> int:
    more = ["--base-url", box.base_url, "--state", str(tmp / "journal.sqlite")]
    return main(
        [command, source, "--report-dir", str(tmp / "report"), "--default-region", "ID",
         *(more if command == "run" else []), *extra]
    )  # fmt: skip


@pytest.mark.parametrize(
    "key", ["contacts.csv", "nightly/contacts.csv.gz", "contacts.parquet", "contacts.xlsx"]
)
def test_each_format_from_s3_runs_as_a_local_file_would(
    s3: S3, box: Sandbox, tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = copies()
    assert cli(box, f"s3://{BUCKET}/{key}", tmp_path) == 0
    out = capsys.readouterr().out
    assert f"Input: s3://{BUCKET}/{key} (" in out
    assert summary(tmp_path / "report")["rows_total"] == 30
    assert len(box.contacts()) == 30
    assert not copies() - before, "the private copy was left behind"


def test_s3_through_the_api_plan_and_run(s3: S3, box: Sandbox, tmp_path: Path) -> None:
    planned = importer.plan(f"s3://{BUCKET}/contacts.parquet", default_region="ID",
                            report_dir=tmp_path / "plan")  # fmt: skip
    assert planned.exit_code == 0
    assert planned.counts["valid"] == 30
    result = importer.run(
        f"s3://{BUCKET}/nightly/contacts.csv.gz", default_region="ID",
        report_dir=tmp_path / "run", state=tmp_path / "j.sqlite",
        base_url=box.base_url, api_key=box.token,
    )  # fmt: skip
    assert result.ok
    assert result.counts["created"] == 30


def test_text_that_is_not_utf8_is_decoded_as_from_disk(
    s3: S3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", f"s3://{BUCKET}/cp1252.csv", "--report-dir", str(tmp_path / "r"),
                 "--default-region", "ID"])  # fmt: skip
    assert code == 0
    assert "encoding='cp1252'" in capsys.readouterr().out
    assert "Zoë" in (tmp_path / "r" / "results.csv").read_text("utf-8-sig")


def test_a_missing_object_is_a_clear_error_and_nothing_is_sent(
    s3: S3, box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(box, f"s3://{BUCKET}/gone.csv", tmp_path) == 2
    err = capsys.readouterr().err
    assert f"s3://{BUCKET}/gone.csv: no such object" in err
    assert "Nothing was sent." in err
    assert "Traceback" not in err
    assert box.contacts() == []


def test_a_bucket_the_key_cannot_read_is_access_denied(
    s3: S3, box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(box, f"s3://{LOCKED}/contacts.csv", tmp_path) == 2
    err = capsys.readouterr().err
    assert f"s3://{LOCKED}/contacts.csv: access denied" in err
    assert s3.reader["AWS_SECRET_ACCESS_KEY"] not in err
    assert box.contacts() == []
    with pytest.raises(importer.InputError, match="access denied"):
        importer.plan(f"s3://{LOCKED}/contacts.csv", report_dir=tmp_path / "p")


def test_a_plain_http_endpoint_off_loopback_is_refused(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://s3.example.com:9000")
    code = main(["plan", f"s3://{BUCKET}/contacts.csv", "--report-dir", str(tmp_path / "r")])
    assert code == 2
    assert "plain http is only allowed to loopback" in capsys.readouterr().err


# --- HTTPS ----------------------------------------------------------------------------------


def test_https_with_credentials_in_the_url_never_shows_them(
    https: Https, box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = https.base.removeprefix("https://")
    url = f"https://exporter:Hunter2-pw@{host}/private/contacts.csv"
    assert cli(box, url, tmp_path) == 0
    assert len(box.contacts()) == 12
    assert https.seen[0][1] is not None  # basic auth went to the URL's own host
    assert main(["history", "--state", str(tmp_path / "journal.sqlite")]) == 0
    out, err = capsys.readouterr()
    assert f"Input: {https.base}/private/contacts.csv (" in out
    assert f"{https.base}/private/contacts.csv" in out.splitlines()[-1]  # history's line
    for text in (out, err, everything_written(tmp_path)):
        assert "Hunter2-pw" not in text
        assert "exporter:" not in text


def test_a_presigned_query_string_is_never_shown(
    https: Https, box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signature = "X-Amz-Signature=0f9e8d7c6b5a4f3e2d1c"
    url = f"{https.base}/presigned/contacts.csv?X-Amz-Expires=3600&{signature}"
    result = importer.run(url, default_region="ID", report_dir=tmp_path / "report",
                          state=tmp_path / "journal.sqlite", base_url=box.base_url,
                          api_key=box.token)  # fmt: skip
    assert result.ok
    assert result.counts["created"] == 12
    assert main(["history", "--state", str(tmp_path / "journal.sqlite"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert record["file"] == f"{https.base}/presigned/contacts.csv?[redacted]"
    assert "0f9e8d7c6b5a4f3e2d1c" not in everything_written(tmp_path)


def test_a_redirect_to_another_host_is_followed_without_the_credentials(
    https: Https, box: Sandbox, tmp_path: Path
) -> None:
    host = https.base.removeprefix("https://")
    assert cli(box, f"https://exporter:Hunter2-pw@{host}/moved/contacts.csv", tmp_path) == 0
    assert len(box.contacts()) == 12
    (first, auth1), (second, auth2) = https.seen
    assert first.startswith(host)
    assert auth1 is not None
    assert second.startswith("localhost:")
    assert auth2 is None


def test_a_redirect_to_plain_http_is_not_followed(
    https: Https, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", f"{https.base}/insecure/contacts.csv", "--report-dir", str(tmp_path)])
    assert code == 2
    assert "redirected to http://example.com/contacts.csv" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("path", "says"),
    [("/nothing/contacts.csv", "HTTP 404 Not Found"), ("/cut/contacts.csv", "cut short")],
)
def test_a_404_or_a_body_cut_short_exits_2_and_sends_nothing(
    https: Https, box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    path: str, says: str,
) -> None:  # fmt: skip
    before = copies()
    assert cli(box, f"{https.base}{path}", tmp_path) == 2
    err = capsys.readouterr().err
    assert says in err
    assert "Nothing was sent." in err
    assert "Traceback" not in err
    assert box.contacts() == []
    assert not copies() - before


def test_a_url_without_a_known_extension_needs_format(
    https: Https, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", f"{https.base}/export", "--report-dir", str(tmp_path / "a")])
    assert code == 2
    assert "unknown file type ''" in capsys.readouterr().err
    assert https.seen == []  # refused before any download
    code = main(["plan", f"{https.base}/export", "--format", "csv", "--report-dir",
                 str(tmp_path / "b"), "--default-region", "ID"])  # fmt: skip
    assert code == 0
    assert "Input: " + https.base + "/export (csv" in capsys.readouterr().out


def test_plain_http_is_only_for_loopback(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["plan", "http://crm.example.com/contacts.csv", "--report-dir", str(tmp_path)])
    assert exited.value.code == 2
    with pytest.raises(importer.UsageError, match="plain http is only allowed to loopback"):
        importer.plan("http://crm.example.com/contacts.csv", report_dir=tmp_path)


# --- the private copy -----------------------------------------------------------------------


def test_the_copy_is_private_and_a_killed_runs_copy_is_removed_by_the_next(
    https: Https, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f"{remote.PREFIX}stale"
    stale.mkdir()
    (stale / "pid").write_text(gone.stdout.strip())
    (stale / "contacts.csv").write_text("phone\n+6281200000001\n")
    live = tmp_path / f"{remote.PREFIX}live"
    live.mkdir()
    (live / "pid").write_text(str(os.getppid()))  # a process that is running
    folder, copy = remote.download(f"{https.base}/contacts.csv", name="contacts.csv")
    try:
        assert not stale.exists()
        assert live.exists()
        assert copy.stat().st_mode & 0o777 == 0o600
        assert Path(folder.name).stat().st_mode & 0o777 == 0o700
        assert copy.read_bytes().startswith(b"crm_id,phone,name,email")
    finally:
        folder.cleanup()
    assert not copy.exists()


def test_a_temporary_folder_that_cannot_be_used_is_a_clear_error(
    https: Https, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    code = main(["plan", f"{https.base}/contacts.csv", "--report-dir", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot make a private folder for the download" in err
    assert "set TMPDIR" in err
    assert "Traceback" not in err


# --- one source night after night -----------------------------------------------------------


def test_a_presigned_url_signed_anew_each_night_is_one_source_for_journal_guard_and_mirror(
    https: Https, box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each night the CRM hands out a freshly signed URL (and a key of its own in the query):
    the journal's run fingerprint, the shrink guard's baseline and --sync-label's members are
    the same source's, and the key is in no message, report or journal."""
    def night(n: int, rows: int, *extra: str) -> tuple[int, Path]:
        https.live["/nightly/active.csv"] = csv_bytes(contact_rows(rows))
        url = (f"{https.base}/nightly/active.csv?api_key=Sekr1t-Key&X-Amz-Date=2026120{n}"
               f"&X-Amz-Signature=sig{n}0f9e8d")  # fmt: skip
        reports = tmp_path / f"n{n}"
        code = main(["run", url, "--sync-label", "Active", "--on-existing", "update",
                     "--default-region", "ID", "--base-url", box.base_url, "--state",
                     str(tmp_path / "journal.sqlite"), "--report-dir", str(reports),
                     *extra])  # fmt: skip
        return code, reports

    def read(reports: Path) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((reports / "summary.json").read_text())
        return data

    assert night(1, 40)[0] == 0
    code, reports = night(2, 36)  # four left the segment
    assert code == 0
    second = read(reports)
    assert second["detached"] == 4  # the mirror: night 1's members are this source's
    assert second["guards"]["last_finished_valid_rows"] == 40  # the shrink guard: the same
    capsys.readouterr()
    code, _ = night(3, 10)  # cut short: refused by the shrink guard, before anything is sent
    assert code == 2
    assert "fewer than 50% of the 36 this source had" in capsys.readouterr().err
    code, _ = night(4, 10, "--allow-shrink")  # then by --max-detach
    assert code == 2
    err = capsys.readouterr().err
    assert f"from {https.base}/nightly/active.csv?[redacted] (more than" in err
    with sqlite3.connect(tmp_path / "journal.sqlite") as journal:
        fingerprints = journal.execute("SELECT DISTINCT fingerprint FROM runs").fetchall()
    assert len(fingerprints) == 1  # the journal's run key: one source
    assert len(box.contacts()) == 40
    out, err = capsys.readouterr()
    for text in (out, err, everything_written(tmp_path)):
        assert "Sekr1t-Key" not in text
        assert "0f9e8d" not in text
