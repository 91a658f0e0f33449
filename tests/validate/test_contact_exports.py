"""Google Contacts and Outlook exports, all of it: typed numbers (mobile first, fax never) and
a cell with several numbers falling back to the next phone column (issue 19, item 3)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from importer.cli import main
from importer.options import InputOptions
from importer.validate.mapping import describe, phone_type, resolve

SAMPLES = Path(__file__).resolve().parent.parent.parent / "sample_data"

# Google Contacts' "Google CSV" export, as Google writes its header (the new export names the
# type "Label" instead of "Type": sample_data/google_contacts.csv).
GOOGLE_CSV = [
    "Name", "Given Name", "Additional Name", "Family Name", "Yomi Name", "Given Name Yomi",
    "Additional Name Yomi", "Family Name Yomi", "Name Prefix", "Name Suffix", "Initials",
    "Nickname", "Short Name", "Maiden Name", "Birthday", "Gender", "Location",
    "Billing Information", "Directory Server", "Mileage", "Occupation", "Hobby", "Sensitivity",
    "Priority", "Subject", "Notes", "Language", "Photo", "Group Membership", "E-mail 1 - Type",
    "E-mail 1 - Value", "E-mail 2 - Type", "E-mail 2 - Value", "Phone 1 - Type",
    "Phone 1 - Value", "Phone 2 - Type", "Phone 2 - Value", "Phone 3 - Type", "Phone 3 - Value",
    "Address 1 - Type", "Address 1 - Formatted", "Address 1 - Street", "Address 1 - City",
    "Address 1 - PO Box", "Address 1 - Region", "Address 1 - Postal Code", "Address 1 - Country",
    "Address 1 - Extended Address", "Organization 1 - Type", "Organization 1 - Name",
    "Organization 1 - Yomi Name", "Organization 1 - Title", "Organization 1 - Department",
    "Organization 1 - Symbol", "Organization 1 - Location", "Organization 1 - Job Description",
    "Website 1 - Type", "Website 1 - Value",
]  # fmt: skip


def _phones(*pairs: tuple[str, str]) -> dict[str, str]:
    out = {}
    for n, (kind, value) in enumerate(pairs, start=1):
        out[f"Phone {n} - Type"], out[f"Phone {n} - Value"] = kind, value
    return out


GOOGLE_ROWS = [  # as Google writes them: "* " marks the primary, " ::: " joins several
    {"Name": "Fax First", **_phones(("Work Fax", "021-5550-1234"), ("Mobile", "0812-3456-7801"))},
    {"Name": "Two Mobiles", **_phones(("Mobile", "0812-3456-7802 ::: 0813-1111-2222"),
                                      ("Work", "021-5550-1235"))},
    {"Name": "Primary Mobile", **_phones(("Work", "021-5550-1236"), ("* Mobile", "0812 3456 7803"),
                                         ("Home", "021-5550-1237"))},
    {"Name": "Only A Fax", **_phones(("Home Fax", "021-5550-1238"))},
    {"Name": "Only Work", **_phones(("Work", "021-5550-1239"))},
    {"Name": "Several Only", **_phones(("Mobile", "0812-3456-7804 ::: 0812-3456-7805"))},
]  # fmt: skip


def _write(
    path: Path, header: list[str], rows: list[dict[str, str]], *, outlook: bool = False
) -> Path:
    """Google writes UTF-8, quoting where needed; Outlook cp1252, CRLF, every field quoted."""
    with path.open("w", newline="", encoding="cp1252" if outlook else "utf-8") as handle:
        if outlook:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        else:
            writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([row.get(h, "") for h in header] for row in rows)
    return path


def _plan(path: Path, tmp_path: Path) -> tuple[int, list[dict[str, str]], str]:
    reports = tmp_path / "reports"
    code = main(["plan", str(path), "--default-region", "ID", "--report-dir", str(reports)])
    with (reports / "results.csv").open(encoding="utf-8") as handle:
        return code, list(csv.DictReader(handle)), (reports / "summary.json").read_text()


def test_google_typed_numbers_mobile_first_fax_never_several_fall_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "contacts.csv", GOOGLE_CSV, GOOGLE_ROWS)
    code, rows, summary = _plan(path, tmp_path)
    assert code == 1
    got = [(r["name"], r["phone_number"], r["error_code"], r["warning"]) for r in rows]
    assert got == [
        ("Fax First", "+6281234567801", "", ""),  # the fax in Phone 1 is never the phone
        ("Two Mobiles", "+622155501235", "", "column 'Phone 1 - Value' holds several numbers: "
         "the phone is from 'Phone 2 - Value'"),
        ("Primary Mobile", "+6281234567803", "", ""),  # the mobile, wherever it is
        ("Only A Fax", "", "missing_phone", ""),
        ("Only Work", "+622155501239", "", ""),  # no mobile: the others still count
        ("Several Only", "", "several_numbers", ""),  # nowhere to fall back: refused
    ]  # fmt: skip
    assert rows[3]["error_message"] == (
        "column 'Phone 1 - Value' holds a fax number, never a WhatsApp number; the other "
        "phone columns are empty"
    )
    assert rows[5]["error_message"].startswith("column 'Phone 1 - Value': '0812-3456-7804 ::: ")
    assert json.loads(summary)["reasons"] == {"missing_phone": 1, "several_numbers": 1}
    mapping = capsys.readouterr().out.split("Mapping:\n", 1)[1].splitlines()[0]
    assert mapping == (
        "  phone_number <- 'Phone 1 - Value' (alias); where it is empty or holds several "
        "numbers: 'Phone 2 - Value', 'Phone 3 - Value', in that order; typed by "
        "'Phone 1 - Type', 'Phone 2 - Type', 'Phone 3 - Type': a mobile first, a fax never"
    )


def test_google_label_export_sample(tmp_path: Path) -> None:
    """The new export's "Phone N - Label" columns type the numbers the same way."""
    _, rows, _ = _plan(SAMPLES / "google_contacts.csv", tmp_path)
    siti = rows[1]  # Phone 1: a Work Fax; Phone 2: "* Mobile"
    assert (siti["name"], siti["phone_number"], siti["warning"]) == (
        "Siti Wijaya", "+6281234567802", ""
    )  # fmt: skip


def test_google_labels_without_its_own_groups(tmp_path: Path) -> None:
    """The new export's "Labels" ("* myContacts ::: Pelanggan") gives the user's labels
    only: never a Kirim label named "* myContacts" on every contact."""
    _, rows, _ = _plan(SAMPLES / "google_contacts.csv", tmp_path)
    assert [r["labels"] for r in rows[:3]] == ["", "Pelanggan", ""]


def _outlook_header() -> list[str]:
    with (SAMPLES / "outlook_contacts.csv").open(encoding="cp1252", newline="") as handle:
        return next(csv.reader(handle))


def test_outlook_several_numbers_fall_back_and_fax_columns_never_count(tmp_path: Path) -> None:
    header = _outlook_header()  # the full published list, as sample_data's export has it
    rows = [
        {"First Name": "Ani", "Mobile Phone": "0812 3456 7811 / 0813 1111 2223",
         "Business Phone": "021 5550 1240"},
        {"First Name": "Budi", "Business Fax": "021 5550 1241", "Home Phone": "0812 3456 7812"},
        {"First Name": "Citra", "Business Fax": "021 5550 1242", "Home Fax": "021 5550 1243"},
    ]  # fmt: skip
    path = _write(tmp_path / "outlook.csv", header, rows, outlook=True)
    _, got, _ = _plan(path, tmp_path)
    assert [(r["phone_number"], r["error_code"], r["warning"]) for r in got] == [
        ("+622155501240", "", "column 'Mobile Phone' holds several numbers: the phone is from "
         "'Business Phone'"),
        ("+6281234567812", "", "column 'Mobile Phone' is empty: the phone is from 'Home Phone'"),
        ("", "missing_phone", ""),
    ]  # fmt: skip
    colmap = resolve(columns=tuple(header), options=InputOptions(path=path))
    assert not {"Business Fax", "Home Fax", "Other Fax"} & {colmap.phone, *colmap.phone_fallbacks}
    assert describe(colmap)[0].startswith("phone_number <- 'Mobile Phone' (alias); where it is")


@pytest.mark.parametrize(
    ("cell", "kind"),
    [("Mobile", "mobile"), ("* Mobile", "mobile"), ("Work Mobile", "mobile"),
     ("Mobile ::: Work", "mobile"), ("Work Fax", "fax"), ("Home Fax ::: Work Fax", "fax"),
     ("Work", "other"), ("Pager", "other"), ("", "other"), (None, "other"),
     ("Seluler", "mobile"), ("Celular", "mobile"), ("Móvil", "mobile")],
)  # fmt: skip
def test_phone_types(cell: str | None, kind: str) -> None:
    assert phone_type(cell) == kind
