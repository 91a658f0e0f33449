"""Header aliases across languages, --map overrides, --metadata, and mapping errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from importer.errors import InputError
from importer.options import InputOptions
from importer.validate.mapping import describe, load_mapping_file, normalise_header, resolve
from importer.validate.records import ColumnMapping


def _resolve(columns: list[str], **kw: object) -> ColumnMapping:
    opts = InputOptions(path=Path("x.csv"), **kw)  # type: ignore[arg-type]
    return resolve(columns=tuple(columns), options=opts)


@pytest.mark.parametrize(
    "header",
    ["Phone", "phone_number", "Mobile Phone", "Cell", "WhatsApp", "WA Number", "MSISDN",
     "Contact Number", "No HP", "No. HP", "NO_HP", "No WA", "No. WA", "Nomor HP",
     "Nomor Telepon", "Nomor WhatsApp", "Telepon", "HP", "WA", "Teléfono", "TELEFONE",
     "Celular", "Móvil", "Movil", "Phone Number", "mobile"],
)  # fmt: skip
def test_phone_aliases(header: str) -> None:
    colmap = _resolve(["Id", header])
    assert colmap.phone == header
    assert colmap.how["phone_number"] == f"alias {header!r}"
    assert colmap.metadata == ("Id",)


@pytest.mark.parametrize(
    "header",
    ["Name", "Full Name", "Contact Name", "Nama", "Nama Lengkap", "Nombre", "Nome", "NAMA LENGKAP"],
)
def test_name_aliases(header: str) -> None:
    assert _resolve(["HP", header]).name == (header,)


@pytest.mark.parametrize(
    "header",
    ["Email", "E-mail", "e_mail", "Email Address", "Surel", "Alamat Email", "Correo",
     "Correo electrónico", "CORREO ELECTRONICO"],
)  # fmt: skip
def test_email_aliases(header: str) -> None:
    assert _resolve(["HP", header]).email == header


@pytest.mark.parametrize(
    ("first", "last"),
    [("First Name", "Last Name"), ("Nama Depan", "Nama Belakang"), ("Nombre", "Apellido"),
     ("Nome", "Sobrenome"), ("first_name", "surname")],
)  # fmt: skip
def test_first_and_last_joined_in_order(first: str, last: str) -> None:
    colmap = _resolve([last, "Phone", first, "Kota"])
    assert colmap.name == (first, last)
    assert colmap.metadata == ("Kota",)


def test_full_name_wins_over_first_last() -> None:
    colmap = _resolve(["Phone", "First Name", "Full Name"])
    assert colmap.name == ("Full Name",)
    assert colmap.metadata == ("First Name",)


def test_normalise_header() -> None:
    assert normalise_header("  Nº. Teléfono  (Móvil) ") == "no telefono movil"


@pytest.mark.parametrize(
    ("first", "second"), [("Phone", "Telephone"), ("Mobile", "HP"), ("WhatsApp", "No WA")]
)
def test_two_phone_columns_of_one_kind_is_an_error(first: str, second: str) -> None:
    with pytest.raises(
        InputError, match=rf"'{first}' and '{second}' could each.*--map phone_number=HEADER"
    ):
        _resolve([first, "Name", second])


def test_no_phone_column_lists_headers() -> None:
    with pytest.raises(InputError, match=r"no phone column found among 'Name', 'City'"):
        _resolve(["Name", "City"])


def test_map_overrides_and_resolves_ambiguity() -> None:
    colmap = _resolve(["Phone", "Mobile", "Name"], field_map={"phone_number": "Mobile"})
    assert (colmap.phone, colmap.how["phone_number"]) == ("Mobile", "--map")
    assert colmap.metadata == ("Phone",)
    assert describe(colmap)[0] == "phone_number <- 'Mobile' (--map)"


def test_map_name_list_and_empty_email() -> None:
    colmap = _resolve(["HP", "A", "B", "Email"], field_map={"name": "B, A", "email": ""})
    assert colmap.name == ("B", "A")
    assert colmap.email is None
    assert colmap.metadata == ("Email",)


def test_map_unknown_header_lists_available() -> None:
    with pytest.raises(InputError, match=r"no column 'Telp'; the columns are 'HP', 'Nama'"):
        _resolve(["HP", "Nama"], field_map={"phone_number": "Telp"})
    with pytest.raises(InputError, match="unknown field"):
        _resolve(["HP"], field_map={"phone": "HP"})


def test_metadata_policies() -> None:
    assert _resolve(["HP", "A", "B"], metadata="none").metadata == ()
    assert _resolve(["HP", "A", "B"], metadata=("B",)).metadata == ("B",)
    with pytest.raises(InputError, match=r"--metadata: no column 'C'"):
        _resolve(["HP", "A"], metadata=("C",))


def test_describe() -> None:
    colmap = _resolve(["No HP", "Nama Depan", "Nama Belakang", "Kota"])
    assert describe(colmap) == [
        "phone_number <- 'No HP' (alias)",
        "name <- 'Nama Depan' + 'Nama Belakang' (alias)",
        "email <- (no column)",
        "metadata <- 'Kota' (all other columns)",
    ]


def test_load_mapping_file(tmp_path: Path) -> None:
    toml = tmp_path / "m.toml"
    toml.write_text('phone_number = "No HP"\nname = ["Depan", "Belakang"]\n')
    assert load_mapping_file(toml) == {"phone_number": "No HP", "name": "Depan,Belakang"}
    js = tmp_path / "m.json"
    js.write_text(json.dumps({"email": "Surel"}))
    assert load_mapping_file(js) == {"email": "Surel"}
    js.write_text('{"phone": "x"}')
    with pytest.raises(InputError, match=r"m\.json: unknown field 'phone'"):
        load_mapping_file(js)
    js.write_text("{nope")
    with pytest.raises(InputError, match=r"m\.json: not valid JSON"):
        load_mapping_file(js)


# Issue 19: the phone headers of 9 of 36 real contact exports, refused for the name alone.
REAL_PHONE_HEADERS = ["phone1", "PhoneNumber", "PhoneNo", "MobileNo", "NoHP", "Kontak",
                      "No Kontak", "nomor", "number", "Contact", "Contact No", "Contact Phone",
                      "Telefon", "Mobile Phone Number", "Phone (Mobile)"]  # fmt: skip
# ... and the email headers that went to metadata, so contacts were created without their email
REAL_EMAIL_HEADERS = ["Contact E-mail", "EmailAddress", "Primary Email", "Work Email"]


@pytest.mark.parametrize("header", REAL_PHONE_HEADERS)
def test_every_phone_header_of_the_real_files_is_found(header: str) -> None:
    colmap = _resolve(["Nama", header, "Kota"])
    assert (colmap.phone, colmap.name) == (header, ("Nama",))
    assert colmap.metadata == ("Kota",)


@pytest.mark.parametrize("header", REAL_EMAIL_HEADERS)
def test_every_email_header_of_the_real_files_is_found(header: str) -> None:
    colmap = _resolve(["Name", "PhoneNumber", header])
    assert colmap.email == header
    assert colmap.metadata == ()


@pytest.mark.parametrize(
    "header",
    ["phone_number", "mobile_phone_number", "mobilePhoneNumber", "MOBILE_NO", "whatsAppNumber",
     "WhatsAppNo", "Whats App", "noHp", "nomorHP", "no_wa", "HP1", "Telp 1", "Tlp", "No. Telpon",
     "Nomor Seluler", "Telefono Celular", "Número de Móvil", "Telefone Celular",
     "Número do WhatsApp", "Cell Phone Number", "Tel. No.", "Telephone No"],
)  # fmt: skip
def test_snake_camel_numbered_and_language_forms(header: str) -> None:
    assert _resolve(["Id", header]).phone == header


def test_numbered_phones_are_ordered_by_their_number() -> None:
    colmap = _resolve(["phone2", "Name", "phone1", "phone3"])
    assert (colmap.phone, colmap.phone_fallbacks) == ("phone1", ("phone2", "phone3"))


def test_a_column_named_only_like_a_phone_yields_to_a_phone_column() -> None:
    colmap = _resolve(["Contact", "Phone", "Nomor"])  # "Contact" a person, "Nomor" the row
    assert (colmap.phone, colmap.phone_fallbacks) == ("Phone", ())
    assert colmap.metadata == ("Contact", "Nomor")


def test_a_work_email_yields_to_a_plain_one() -> None:
    colmap = _resolve(["Phone", "Work Email", "Email"])
    assert colmap.email == "Email"
    assert colmap.metadata == ("Work Email",)


def test_fax_and_pager_are_never_phones() -> None:
    with pytest.raises(InputError, match="no phone column"):
        _resolve(["Name", "Business Fax", "Pager", "Fax Number"])


@pytest.mark.parametrize(
    ("columns", "hint"),
    [
        (["Nama", "Tlf Pribadi", "Kota"], "'Tlf Pribadi' looks like one: name it with "
         "--map 'phone_number=Tlf Pribadi'"),
        (["Name", "Tfno.", "Fax"], "'Tfno.' looks like one: name it with --map phone_number=Tfno."),
        (["Phonetic Name", "Num Pelanggan", "Mob. Pribadi"], "'Mob. Pribadi', 'Num Pelanggan' "
         "look like one: name it with --map 'phone_number=Mob. Pribadi'"),
    ],
)  # fmt: skip
def test_no_phone_column_names_the_likely_one(columns: list[str], hint: str) -> None:
    with pytest.raises(InputError) as caught:
        _resolve(columns)
    among = ", ".join(map(repr, columns))
    assert str(caught.value) == f"no phone column found among {among}; {hint}"
