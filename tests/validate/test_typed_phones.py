"""Phone cells as people type them, and phone columns as contact exports carry them."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest

from importer.cli import main
from importer.options import InputOptions
from importer.validate.mapping import describe, resolve
from importer.validate.phones import parse_phone
from importer.validate.rows import validate_batches


def _phone(raw: str, region: str | None = "ID") -> tuple[str | None, str | None]:
    result = parse_phone(raw, default_region=region, require_mobile=False)
    return result.e164, result.code


@pytest.mark.parametrize(
    "raw",
    [
        "tel:+62-812-3456-7890",
        "TEL:081234567890",
        "https://wa.me/6281234567890",
        "wa.me/6281234567890?text=Halo",
        "https://api.whatsapp.com/send?phone=6281234567890&text=x",
        "+62\u00a0812\u00a03456\u00a07890",  # no-break spaces
        "+62\u202f812\u202f3456\u20097890",  # narrow no-break, thin
        "0812\u20073456\u20077890",  # figure spaces
    ],
)
def test_links_and_unusual_spaces_read_as_the_number(raw: str) -> None:
    assert _phone(raw) == ("+6281234567890", None)


def test_float_artefact_read_with_a_warning() -> None:
    result = parse_phone("6281234567890.0", default_region="ID", require_mobile=False)
    assert (result.e164, result.code) == ("+6281234567890", None)
    assert result.warning == "'6281234567890.0' was read as 6281234567890 (a number cell)"
    assert parse_phone("6281234567890", default_region="ID", require_mobile=False).warning is None


@pytest.mark.parametrize(
    "raw",
    ["+62 812 3456 7890 ext. 12", "0812345678 x12", "021-555-0123 #12", "+1 415 555 2671 ext 3"],
)
def test_extension_is_invalid(raw: str) -> None:
    result = parse_phone(raw, default_region="ID", require_mobile=False)
    assert result.code == "has_extension"
    assert result.problem == "has an extension (a WhatsApp number has none); keep the number alone"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("0812-3456-7890 / 0813-1111-2222", "'0812-3456-7890', '0813-1111-2222'"),
        ("+62 812 3456 7890 ::: +62 813 1111 2222", "'+62 812 3456 7890', '+62 813 1111 2222'"),
        ("081234567890; 081311112222", "'081234567890', '081311112222'"),
        ("081234567890,081311112222", "'081234567890', '081311112222'"),
        ("0812 3456 7890\n0813 1111 2222", "'0812 3456 7890', '0813 1111 2222'"),
        ("0812 3456 7890\r\n+62 813 1111 2222", "'0812 3456 7890', '+62 813 1111 2222'"),
    ],
)
def test_several_numbers_show_both(raw: str, shown: str) -> None:
    result = parse_phone(raw, default_region="ID", require_mobile=False)
    assert result.code == "several_numbers"
    assert result.problem == f"holds several numbers ({shown}); keep one per row"


def test_an_area_code_slash_is_one_number() -> None:
    assert _phone("021/5550123") == ("+62215550123", None)


def _validate(frame: pl.DataFrame, **kw: object) -> pl.DataFrame:
    options = InputOptions(path=Path("x.csv"), default_region="ID", **kw)  # type: ignore[arg-type]
    columns = tuple(c for c in frame.columns if c != "row_number")
    mapping = resolve(columns=columns, options=options)
    out = list(validate_batches(batches=[frame], mapping=mapping, options=options))
    return pl.concat([b.rows for b in out])


def test_float_cells_in_a_batch_are_not_a_strangers_number() -> None:
    # the whole-column key must not turn "...890.0" into "...8900"
    frame = pl.DataFrame(
        {"row_number": [1, 2], "Phone": ["6281234567890.0", "6281234567891"]},
        schema_overrides={"row_number": pl.Int64},
    )
    rows = _validate(frame)
    assert rows["phone_number"].to_list() == ["+6281234567890", "+6281234567891"]
    assert rows["warning"].to_list() == [
        "column 'Phone': '6281234567890.0' was read as 6281234567890 (a number cell)",
        None,
    ]


OUTLOOK = ["First Name", "Last Name", "E-mail Address", "E-mail 2 Address", "Primary Phone",
           "Home Phone", "Home Phone 2", "Mobile Phone", "Business Phone"]  # fmt: skip
GOOGLE = ["Name", "Given Name", "Family Name", "E-mail 1 - Type", "E-mail 1 - Value",
          "E-mail 2 - Value", "Phone 1 - Type", "Phone 1 - Value", "Phone 2 - Type",
          "Phone 2 - Value"]  # fmt: skip


def _resolve(columns: list[str]) -> object:
    return resolve(columns=tuple(columns), options=InputOptions(path=Path("x.csv")))


def test_outlook_priority_mobile_then_primary_then_the_rest() -> None:
    colmap = resolve(columns=tuple(OUTLOOK), options=InputOptions(path=Path("x.csv")))
    assert colmap.phone == "Mobile Phone"
    assert colmap.phone_fallbacks == (
        "Primary Phone",
        "Home Phone",
        "Home Phone 2",
        "Business Phone",
    )
    assert colmap.email == "E-mail Address"
    assert colmap.name == ("First Name", "Last Name")
    assert describe(colmap)[0] == (
        "phone_number <- 'Mobile Phone' (alias); where it is empty or holds several numbers: "
        "'Primary Phone', 'Home Phone', 'Home Phone 2', 'Business Phone', in that order"
    )


def test_google_priority_and_full_name() -> None:
    colmap = resolve(columns=tuple(GOOGLE), options=InputOptions(path=Path("x.csv")))
    assert (colmap.phone, colmap.phone_fallbacks) == ("Phone 1 - Value", ("Phone 2 - Value",))
    assert colmap.email == "E-mail 1 - Value"
    assert colmap.name == ("Name",)
    assert "E-mail 2 - Value" in colmap.metadata


@pytest.mark.parametrize(
    "header",
    ["HP/WA", "No HP/WA", "No Telp/HP", "No. Ponsel", "Nomor WhatsApp", "WhatsApp No.",
     "Phone 1", "Contact Phone Number", "Primary Phone", "Phone 1 - Value"],
)  # fmt: skip
def test_new_phone_aliases(header: str) -> None:
    assert resolve(columns=("Id", header), options=InputOptions(path=Path("x.csv"))).phone == header


def test_whatsapp_column_wins_and_empty_cells_fall_back_with_a_warning() -> None:
    frame = pl.DataFrame(
        {
            "row_number": [1, 2, 3],
            "Phone": ["0813 1111 2222", "0813 1111 3333", None],
            "No WA": ["0812 3456 7890", " ", None],
            "Mobile": [None, None, ""],
        },
        schema_overrides={"row_number": pl.Int64},
    )
    rows = _validate(frame)
    assert rows["phone_number"].to_list() == ["+6281234567890", "+6281311113333", None]
    assert rows["warning"].to_list() == [
        None,
        "column 'No WA' is empty: the phone is from 'Phone'",
        None,
    ]
    assert rows["error_message"].to_list() == [
        None,
        None,
        "columns 'No WA', 'Mobile', 'Phone' are all empty",
    ]


def test_a_fallback_phones_error_names_its_column() -> None:
    frame = pl.DataFrame(
        {"row_number": [1], "Mobile": [None], "Phone": ["0812"]},
        schema_overrides={"row_number": pl.Int64, "Mobile": pl.String},
    )
    rows = _validate(frame)
    assert rows["error_message"].to_list() == ["column 'Phone': '0812' is too short for ID (+62)"]


def test_two_numbers_on_two_lines_of_an_excel_cell_are_several_numbers(
    tmp_path: Path,
) -> None:
    # Excel writes a cell with a line break (Alt+Enter) quoted, the break as LF, rows as CRLF
    path = tmp_path / "excel.csv"
    path.write_bytes(
        b'Nama,No HP\r\nAni,"0812 3456 7890\n0813 1111 2222"\r\nBudi,0812 3456 7891\r\n'
    )
    reports = tmp_path / "r"
    assert main(["plan", str(path), "--default-region", "ID", "--report-dir", str(reports)]) == 1
    with (reports / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["error_code"], r["phone_number"]) for r in rows] == [
        ("several_numbers", ""),
        ("", "+6281234567891"),
    ]
    assert rows[0]["error_message"] == (
        "column 'No HP': '0812 3456 7890\\n0813 1111 2222' holds several numbers "
        "('0812 3456 7890', '0813 1111 2222'); keep one per row"
    )
