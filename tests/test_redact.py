"""The log's redaction: keys always; phones and emails masked, and nothing else that has
digits (counts, durations, dates, identifiers) taken for a phone."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from importer.cli import main
from importer.progress import logging_to, redacting
from importer.redact import redact
from importer.sandbox import Sandbox
from tests.conftest import contacts_file, phone


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("row 7 +6281234567890 failed", "row 7 +628…90 failed"),
        ("cell '0812-3456-7890' is too long", "cell '0812…90' is too long"),
        ("phone 6281234567890 exists", "phone 6281…90 exists"),
        ("call +62 (812) 3456 7890 now", "call +62 …90 now"),
        ("1234567 rows (312/s): created 1234567", "1234567 rows (312/s): created 1234567"),
        ("12345678 rows in 1234.5 s", "12345678 rows in 1234.5 s"),
        ("waiting 86400 s, 3600000 ms", "waiting 86400 s, 3600000 ms"),
        ("started 2026-11-30 15:36:42, run 1234567", "started 2026-11-30 15:36:42, run 1234567"),
        ("ids ctc_01234567890123 req_0123456789", "ids ctc_01234567890123 req_0123456789"),
    ],
)  # fmt: skip
def test_only_phone_values_are_masked(text: str, shown: str) -> None:
    assert redact(text, mask_contacts=True) == shown
    assert redact(text) == text  # files keep them: masking is the log's


def test_a_log_line_keeps_its_counts_and_masks_its_phones() -> None:
    stream = io.StringIO()
    with (
        logging_to(stream=stream, verbose=False) as logger,
        redacting(secrets=("sekrit",), mask_contacts=True),
    ):
        logger.info("progress: %s", "1234567 rows (5120/s): created 1234560, failed 7")
        logger.warning("row %d %s failed: %s", 1234567, "+6281234567890", "key sekrit")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("progress: 1234567 rows (5120/s): created 1234560, failed 7")
    assert lines[1].endswith("row 1234567 +628…90 failed: key [redacted]")


def test_a_run_logs_counts_as_they_are_and_phones_masked(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box.set_faults(error_message=f"{phone(9)} refused: 1234567 contacts, quota 2500000 reached")
    code = main(
        ["run", str(contacts_file(tmp_path / "in.csv", 1)), "--base-url", box.base_url,
         "--report-dir", str(tmp_path / "r"), "--state", str(tmp_path / "j.sqlite"),
         "--default-region", "ID"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "+628…01 failed" in err  # the row's own phone
    assert "(+628…09 refused: 1234567 contacts, quota 2500000 reached)" in err
