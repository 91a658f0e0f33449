"""Write the sample inputs beside this script (seeded, deterministic): ``python make_samples.py``.

- contacts.csv          the clean one (the README's quick start): English headers,
                        international (+CC) numbers from several countries, a few duplicates.
- pelanggan_excel.csv   Indonesian Excel export: UTF-8 BOM, ';', CRLF, national 0812... numbers
                        next to +62 ones -> plan/run it with ``--default-region ID``.
- clientes.xlsx         Spanish/Portuguese headers, some phones as numeric cells (no '+').
                        -> ``--default-region MX`` (the Brazilian ones carry +55 or 0055).
- contacts.parquet      phone as an int64 column (country code, no '+')
                        -> ``--default-region ID`` (62... digits are read as +62...).
- google_contacts.csv   a Google Contacts export ("Google CSV", the published column list):
                        UTF-8, "Phone 1 - Value" / "Phone 2 - Value", " ::: " between two
                        values in one cell, a quoted multi-line note, a stray quote in a
                        nickname -> ``--default-region ID``.
- outlook_contacts.csv  an Outlook export (the published column list): cp1252 (as Outlook
                        writes CSV on Windows), CRLF, four phone columns (Mobile, Primary,
                        Home, Business...) -> ``--default-region ID``.
The others mix valid rows, invalid rows (too short, letters, scientific notation, bad email) and
duplicates that only show after normalisation (0812-3456-7890 vs +62 812 3456 7890).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import polars as pl
import xlsxwriter

HERE = Path(__file__).resolve().parent
rng = random.Random(20240611)

FIRST = ["Budi", "Siti", "Agus", "Dewi", "Rina", "Joko", "Ana", "Luis", "María", "João",
         "Emma", "Liam", "Olivia", "Noah", "Chidi", "Aisha", "Priya", "Arjun", "Lukas",
         "Sofía"]  # fmt: skip
LAST = ["Santoso", "Wijaya", "Pratama", "Lestari", "García", "Silva", "Smith", "Okafor",
        "Sharma", "Müller", "Hernández", "Souza"]  # fmt: skip


def _digits(n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def contacts_csv() -> None:
    phones = [
        "+62 812-3456-7890", "+1 (415) 555-2671", "+44 7911 123456", "+49 1512 3456789",
        "+55 11 98765-4321", "+52 55 1234 5678", "+91 98765 43210", "+234 803 123 4567",
        "+6281234567890", "+14155552671", "0044 7911 123456", "+61 412 345 678",
        "+33 6 12 34 56 78", "+34 612 34 56 78", "+39 312 345 6789", "+81 90-1234-5678",
        "+1 212 555 0100", "+62 813 1111 2222", "+27 82 123 4567", "+65 8123 4567",
        "+971 50 123 4567", "+90 532 123 45 67",
        "+1 415 555 2671",  # duplicate of row 2 after normalisation
    ]  # fmt: skip
    rows = ["phone,name,email,company,notes"]
    for i, phone in enumerate(phones):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = f"{name.split()[0].lower()}.{i}@example.com" if i % 4 else ""
        note = '"likes ""quotes"", commas"' if i == 3 else ("=HYPERLINK(x)" if i == 7 else "")
        rows.append(f'{phone},{name},{email},"Acme, Inc.",{note}')
    (HERE / "contacts.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def pelanggan_csv() -> None:
    lines = ["No HP;Nama;Surel;Kota"]
    cities = ["Jakarta", "Bandung", "Surabaya", "Medan", "Yogyakarta", "Denpasar"]
    for i in range(24):
        local = "8" + rng.choice(["12", "13", "21", "52", "57", "77"]) + _digits(8)
        style = i % 4
        phone = ["0" + local, f"+62 {local[:3]} {local[3:7]} {local[7:]}", "62" + local,
                 f"0{local[:3]}-{local[3:7]}-{local[7:]}"][style]  # fmt: skip
        email = f"pelanggan{i}@contoh.co.id" if i % 3 else ""
        lines.append(f"{phone};{rng.choice(FIRST)} {rng.choice(LAST)};{email};"
                     f"{rng.choice(cities)}")  # fmt: skip
    lines += [
        "0812-3456-7890;Budi Santoso;budi@contoh.co.id;Jakarta",
        "+62 812 3456 7890;Budi S.;BUDI@CONTOH.CO.ID;Jakarta",  # duplicate after normalising
        "0812;Pendek;;Bogor",  # too short
        "6,28123E+11;Rusak Excel;;Bekasi",  # scientific notation with a decimal comma
        "021 5550 1234;Kantor Pusat;kantor@contoh;Jakarta",  # landline; bad email
        ";Tanpa Nomor;tanpa@contoh.co.id;Depok",  # missing phone
        ";;;",  # Excel's empty row: skipped
    ]
    text = "\r\n".join(lines) + "\r\n"
    (HERE / "pelanggan_excel.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))


def clientes_xlsx() -> None:
    workbook = xlsxwriter.Workbook(str(HERE / "clientes.xlsx"))
    sheet = workbook.add_worksheet("Clientes")
    sheet.write_row(0, 0, ["Teléfono", "Nombre", "Apellido", "Correo electrónico", "Ciudad"])
    rows: list[list[object]] = []
    for i in range(20):
        kind = i % 4
        if kind == 0:
            phone: object = int("5255" + _digits(8))  # numeric cell: 52 + national, no "+"
        elif kind == 1:
            phone = "+55 11 9" + _digits(4) + "-" + _digits(4)
        elif kind == 2:
            phone = "55 " + _digits(4) + " " + _digits(4)  # national MX (CDMX)
        else:
            phone = "0055 21 9" + _digits(8)
        email = f"cliente{i}@ejemplo.com.mx" if i % 5 else "correo@invalido"
        rows.append([phone, rng.choice(FIRST), rng.choice(LAST), email,
                     rng.choice(["CDMX", "São Paulo", "Rio", "Monterrey"])])  # fmt: skip
    rows += [
        [6.28123e11, "Dañado", "Excel", "", "CDMX"],  # a damaged number: too short/invalid
        ["+55 11 98765-4321", "João", "Souza", "joao@exemplo.com.br", "São Paulo"],
        [5511987654321, "João", "Souza", "", "São Paulo"],  # no '+': read as national MX
        ["+5511987654321", "João", "Souza", "", "São Paulo"],  # duplicate of the +55 row
        ["abc", "Sin", "Número", "", "Puebla"],
    ]
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if value != "":
                sheet.write(r, c, value)
    workbook.close()


def contacts_parquet() -> None:
    phones = [int("62" + "81" + _digits(9)) for _ in range(16)]
    phones += [6281234567890, 6281234567890, 62812, 14155552671]  # dup, too short, US w/o '+'
    frame = pl.DataFrame(
        {
            "phone_number": pl.Series(phones, dtype=pl.Int64),
            "full_name": [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in phones],
            "email": [f"user{i}@example.org" if i % 3 else None for i in range(len(phones))],
            "score": [rng.randrange(100) / 4 for _ in phones],
        }
    )
    frame.write_parquet(HERE / "contacts.parquet")


GOOGLE = [
    "First Name",
    "Middle Name",
    "Last Name",
    "Phonetic First Name",
    "Phonetic Middle Name",
    "Phonetic Last Name",
    "Name Prefix",
    "Name Suffix",
    "Nickname",
    "File As",
    "Organization Name",
    "Organization Title",
    "Organization Department",
    "Birthday",
    "Notes",
    "Photo",
    "Labels",
    "E-mail 1 - Label",
    "E-mail 1 - Value",
    "E-mail 2 - Label",
    "E-mail 2 - Value",
    "Phone 1 - Label",
    "Phone 1 - Value",
    "Phone 2 - Label",
    "Phone 2 - Value",
    "Address 1 - Label",
    "Address 1 - Formatted",
    "Address 1 - Street",
    "Address 1 - City",
    "Address 1 - PO Box",
    "Address 1 - Region",
    "Address 1 - Postal Code",
    "Address 1 - Country",
    "Address 1 - Extended Address",
    "Website 1 - Label",
    "Website 1 - Value",
]
OUTLOOK = [
    "First Name",
    "Middle Name",
    "Last Name",
    "Title",
    "Suffix",
    "Nickname",
    "Given Yomi",
    "Surname Yomi",
    "E-mail Address",
    "E-mail 2 Address",
    "E-mail 3 Address",
    "Home Phone",
    "Home Phone 2",
    "Business Phone",
    "Business Phone 2",
    "Mobile Phone",
    "Car Phone",
    "Other Phone",
    "Primary Phone",
    "Pager",
    "Business Fax",
    "Home Fax",
    "Other Fax",
    "Company Main Phone",
    "Callback",
    "Radio Phone",
    "Telex",
    "TTY/TDD Phone",
    "IMAddress",
    "Job Title",
    "Department",
    "Company",
    "Office Location",
    "Manager's Name",
    "Assistant's Name",
    "Assistant's Phone",
    "Company Yomi",
    "Business Street",
    "Business City",
    "Business State",
    "Business Postal Code",
    "Business Country/Region",
    "Home Street",
    "Home City",
    "Home State",
    "Home Postal Code",
    "Home Country/Region",
    "Other Street",
    "Other City",
    "Other State",
    "Other Postal Code",
    "Other Country/Region",
    "Personal Web Page",
    "Spouse",
    "Schools",
    "Hobby",
    "Location",
    "Web Page",
    "Birthday",
    "Anniversary",
    "Notes",
]


def _export(header: list[str], rows: list[dict[str, str]]) -> list[list[str]]:
    return [header, *([row.get(h, "") for h in header] for row in rows)]


def google_csv() -> None:
    """Eight contacts as Google Contacts exports them."""
    rows = [
        {"First Name": "Budi", "Last Name": "Santoso", "Labels": "* myContacts",
         "E-mail 1 - Label": "* Home", "E-mail 1 - Value": "budi@contoh.co.id",
         "Phone 1 - Label": "Mobile", "Phone 1 - Value": "+62 812-3456-7801"},
        {"First Name": "Siti", "Last Name": "Wijaya", "Nickname": 'Bu"Siti',
         "Labels": "* myContacts ::: Pelanggan", "Phone 1 - Label": "Work Fax",
         "Phone 1 - Value": "021-5550-1234", "Phone 2 - Label": "* Mobile",
         "Phone 2 - Value": "0812-3456-7802"},
        {"First Name": "Agus", "Last Name": "Pratama", "Phone 1 - Label": "Mobile ::: Work",
         "Phone 1 - Value": "+62 812-3456-7803 ::: +62 813-1111-2222"},
        {"First Name": "Dewi", "Last Name": "Lestari", "Notes": "Pelanggan lama,\nsuka diskon",
         "Phone 2 - Label": "Mobile", "Phone 2 - Value": "0812 3456 7804",
         "E-mail 1 - Value": "dewi@contoh.co.id", "E-mail 2 - Value": "dewi@kantor.co.id"},
        {"First Name": "Joko", "Last Name": "Widodo", "Birthday": "1961-06-21",
         "Phone 1 - Label": "Mobile", "Phone 1 - Value": "tel:+6281234567805"},
        {"First Name": "Rina", "Organization Name": "Toko Maju", "Phone 1 - Label": "Mobile",
         "Phone 1 - Value": "0812-3456"},
        {"First Name": "María", "Last Name": "García", "Phone 1 - Label": "Mobile",
         "Phone 1 - Value": "+52 1 55 1234 5678", "Address 1 - City": "Ciudad de México"},
        {"First Name": "Andi", "Phone 1 - Label": "Mobile", "Phone 1 - Value": "+62 812-3456-7801"},
    ]  # fmt: skip
    with (HERE / "google_contacts.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(_export(GOOGLE, rows))


def outlook_csv() -> None:
    """Eight contacts as Outlook exports them (cp1252, CRLF, every column quoted)."""
    rows = [
        {"First Name": "Budi", "Last Name": "Santoso", "E-mail Address": "budi@contoh.co.id",
         "Mobile Phone": "+62 812 3456 7811", "Business Phone": "+62 21 5550 1234"},
        {"First Name": "José", "Last Name": "Müller", "Primary Phone": "0812 3456 7812",
         "Home Phone": "021 5550 1235", "Company": "Café Größe"},
        {"First Name": "Siti", "Last Name": "Wijaya", "Home Phone": "0812-3456-7813",
         "E-mail Address": "siti@contoh.co.id", "E-mail 2 Address": "siti@kantor.co.id"},
        {"First Name": "Agus", "Mobile Phone": "+62 812 3456 7814 ext. 12"},
        {"First Name": "Dewi", "Mobile Phone": "0812 3456 7815", "Notes": "VIP; \"emas\""},
        {"First Name": "Eko", "Mobile Phone": "12345"},
        {"First Name": "Rina", "Business Phone": "+62 812 3456 7816", "Birthday": "1/15/1990"},
        {"First Name": "Nur", "Mobile Phone": "+62 812 3456 7811"},
    ]  # fmt: skip
    with (HERE / "outlook_contacts.csv").open("w", newline="", encoding="cp1252") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerows(_export(OUTLOOK, rows))


if __name__ == "__main__":
    contacts_csv()
    pelanggan_csv()
    clientes_xlsx()
    contacts_parquet()
    google_csv()
    outlook_csv()
