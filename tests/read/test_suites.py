"""Outside CSV edge-case suites (csv-spectrum, RFC 4180's examples), each file read through
the importer's reader and compared with the suite's expected parse; see suites/README.md."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from importer.errors import InputError
from importer.options import InputOptions
from importer.read.source import open_source

SUITES = Path(__file__).parent / "suites"
SPECTRUM = sorted((SUITES / "csv_spectrum" / "csvs").glob("*.csv"))
RFC = json.loads((SUITES / "rfc4180" / "expected.json").read_text())


def _rows(path: Path) -> list[dict[str, str]]:
    reader = open_source(options=InputOptions(path=path))
    frames = list(reader.batches())
    if not frames:
        return []
    frame = pl.concat(frames).drop("row_number")
    return [{k: v or "" for k, v in row.items()} for row in frame.iter_rows(named=True)]


def test_the_suites_are_there() -> None:
    assert len(SPECTRUM) == 12
    assert len(RFC) == 7


@pytest.mark.parametrize("path", SPECTRUM, ids=lambda p: p.stem)
def test_csv_spectrum(path: Path) -> None:
    expected = json.loads((path.parent.parent / "json" / f"{path.stem}.json").read_text())
    if isinstance(expected, dict):
        expected = [expected]
    if path.stem == "location_coordinates":  # the suite's JSON has another phone than its CSV
        assert expected[0]["Contact Phone Number"] == "1234567890"
        expected[0]["Contact Phone Number"] = "2095257564"
    assert _rows(path) == expected


@pytest.mark.parametrize("name", sorted(RFC))
def test_rfc4180_examples(name: str) -> None:
    path = SUITES / "rfc4180" / name
    expected = RFC[name]
    if isinstance(expected, dict):
        with pytest.raises(InputError, match=expected["error"]):
            _rows(path)
        return
    assert _rows(path) == expected
