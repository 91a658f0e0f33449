"""Which headers are which: the header alias table, and the columns ``--map`` names and the
phone columns it finds, before anything else is mapped.

Headers are matched against the alias table after normalising them (accents stripped,
camelCase and letters-digits split, lowercase, every run of non-alphanumerics one space):
``"No. HP"``, ``"no hp"``, ``"NO_HP"`` and ``"NoHP"`` are the same header, and ``"phone1"`` is
``"phone 1"``. When no phone column is found, the error names the headers that look like one.

The reading stage's own: a query (``read.query``) refuses a numeric phone column before any
row is read, and ``validate.mapping`` maps the rest of the columns from here.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from importer.errors import InputError
from importer.read.records import SOURCE_ROW
from importer.records import FIELDS

# Phone columns by kind, in the order a phone is picked when a file has several (exports from
# Google Contacts and Outlook carry four or more): a WhatsApp column, then a mobile one, then a
# "primary" one, then the first of the others in the file. Where the chosen column's cell is
# empty, the next column's is used (with a warning on the row). A number in a header ("Phone 1
# - Value", "Home Phone 2") orders columns of one kind; two columns of the same kind and number
# ("Phone" and "Telephone") are an error that asks for --map.
_WHATSAPP = """whatsapp; whatsapp number; whatsapp no; whatsapp phone; whatsapp phone number;
whatsapp mobile; wa; wa number; wa no; no wa; nomor wa; nomor whatsapp; no whatsapp; no telp wa;
nomor telepon whatsapp; numero de whatsapp; numero whatsapp; numero do whatsapp;
telefono whatsapp; telefone whatsapp; hp wa; no hp wa; nomor hp wa; wa hp"""
_MOBILE = """mobile; mobile phone; mobile number; mobile no; mobile phone number; mobile phone no;
phone mobile; mobile telephone; personal mobile; work mobile; business mobile; cell; cell phone;
cellphone; cell number; cell no; cell phone number; cellphone number; no hp; nohp; nomor hp;
nomorhp; hp no; no handphone; nomor handphone; handphone; handphone no; hp; seluler;
no seluler; nomor seluler; telepon seluler; nomor telepon seluler; celular; numero celular;
telefono celular; tel celular; movil; telefono movil; tel movil; numero de movil;
numero de celular; numero de telefono movil; numero de telefono celular; telemovel;
numero de telemovel; telefone celular; numero do celular; ponsel; no ponsel; nomor ponsel"""
_PRIMARY = "primary phone"
_PHONE = """phone; phone number; phone no; phonenumber; phoneno; telephone; telephone number;
telephone no; tel; tel no; tel number; msisdn; contact no; contact number; contact phone;
contact phone number; contact phone no; no kontak; nomor kontak; no telp kontak; nomor telepon;
no telepon; no telp; nomor telp; telepon; telp; no telp hp; tlp; no tlp; nomor tlp; telpon;
no telpon; nomor telpon; telefon; telefon no; telefono; telefone; fone; numero de telefono;
numero telefono; numero de telefone; numero telefone; numero do telefone; main phone"""
_OTHER_PHONES = """home phone; business phone; company main phone; other phone; car phone;
work phone; office phone; telefono trabajo; telefone comercial; telepon kantor; telepon rumah"""
# A header that names a phone only when nothing else does ("Contact" may be a name, "Nomor"
# a row number): such a column is the phone only in a file without any other phone column.
_PHONE_WEAK = "contact; kontak; number; nomor; nomer; numero"
_NAME = """name; full name; fullname; contact name; customer name; display name; nama;
nama lengkap; nama pelanggan; nama kontak; nama customer; nama konsumen; nama member;
nama anggota; nombre; nombre completo; nome; nome completo; nombre y apellido;
nombre y apellidos"""
_FIRST = "first name; firstname; given name; forename; nama depan; primer nombre; primeiro nome"
_LAST = """last name; lastname; surname; family name; nama belakang; apellido; apellidos;
sobrenome; ultimo nome"""
# Email columns in the order one is picked: a plain or primary one, then a work or home one.
_EMAIL = """email; e mail; email address; e mail address; e mail value; mail; primary email;
primary e mail; contact email; contact e mail; personal email; personal e mail; surel;
alamat email; alamat e mail; alamat surel; email pribadi; correo; correo electronico;
email direccion; direccion de correo; endereco de email; endereco de e mail; email pessoal"""
_OTHER_EMAILS = """work email; work e mail; business email; business e mail; office email;
home email; home e mail; other email; other e mail; email kantor; correo trabajo;
email comercial; email do trabalho"""
_LABELS = """labels; label; tags; tag; etiquetas; etiqueta; rotulos; rotulo; marcadores;
kategori; penanda; grup label"""
# The account a row goes to: a phone_number_id or the account's WhatsApp number
_ACCOUNT = """account; phone number id; whatsapp account; sender; akun; cuenta; conta"""
# Words of a header that looks like a phone column (a hint when none is known), by prefix
# or, for the short ones, whole; fax and pager columns never are.
_LOOKS_LIKE_PHONE = ("phon", "fone", "tel", "tlp", "tlf", "tfno", "mobil", "cell", "celu",
                     "movil", "whats", "ponsel", "selul", "handphone", "msisdn")  # fmt: skip
_LOOKS_LIKE_PHONE_WORDS = frozenset({"hp", "wa", "cel", "tf", "ph", "mob"})
_LOOKS_LIKE_NUMBER_WORDS = frozenset({"no", "nr", "nomor", "nomer", "number", "numero", "num",
                                      "contact", "kontak", "contacto", "contato"})  # fmt: skip
FAX_WORDS = frozenset({"fax", "faks", "telefax", "facsimile"})
_NOT_PHONE_WORDS = FAX_WORDS | {"pager", "telex", "telegram", "phonetic"}


_SPLIT = re.compile(  # camelCase, ABCWord, letters1, 1letters
    r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])"
)


def normalise_header(header: str) -> str:
    """Accent-, case- and punctuation-insensitive form of a header, camelCase and numbers
    split: ``"No. HP"`` -> ``"no hp"``, ``"PhoneNumber"`` -> ``"phone number"``,
    ``"phone1"`` -> ``"phone 1"`` (``"WhatsApp"`` stays ``"whatsapp"``)."""
    text = unicodedata.normalize("NFKD", header)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _SPLIT.sub(" ", text).casefold()
    text = re.sub(r"[\W_]+", " ", text).strip()
    return re.sub(r"\bwhats app\b", "whatsapp", text)


def _table(words: str) -> frozenset[str]:
    return frozenset(normalise_header(w) for w in words.split(";"))


PHONE_KINDS: dict[str, frozenset[str]] = {  # in the order of preference
    "whatsapp": _table(_WHATSAPP),
    "mobile": _table(_MOBILE),
    "primary": _table(_PRIMARY),
    "phone": _table(_PHONE) | _table(_OTHER_PHONES),
}
ALIASES: dict[str, frozenset[str]] = {
    "phone": frozenset().union(*PHONE_KINDS.values()),
    "name": _table(_NAME),
    "first": _table(_FIRST),
    "last": _table(_LAST),
    "email": _table(_EMAIL),
    "other email": _table(_OTHER_EMAILS),
    "labels": _table(_LABELS),
    "account": _table(_ACCOUNT),
    "weak phone": _table(_PHONE_WEAK),
}


def quoted(headers: tuple[str, ...] | list[str]) -> str:
    return ", ".join(repr(h) for h in headers)


def _find(header: str, columns: tuple[str, ...], field: str) -> str:
    if header in columns:
        return header
    wanted = header.strip().casefold()
    hits = [c for c in columns if c.casefold() == wanted]
    if len(hits) == 1:
        return hits[0]
    raise InputError(
        f"--map {field}={header}: there is no column {header!r}; the columns are {quoted(columns)}"
    )


def _mapped(field: str, value: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    if not value.strip():
        if field == "phone_number":
            raise InputError("--map phone_number= needs a column: the phone is required")
        return ()
    if field == "name" and "," in value and value not in columns:
        return tuple(_find(part.strip(), columns, field) for part in value.split(","))
    return (_find(value, columns, field),)


def _numbered(header: str) -> tuple[str, int]:
    """(the header without its number and Google's "- Value", the number or 0):
    ``"Phone 2 - Value"`` -> ``("phone", 2)``; ``"E-mail 2 Address"`` -> ``("e mail address",
    2)``."""
    words = normalise_header(header).split()
    numbers = [w for w in words if w.isdigit()]
    if len(numbers) != 1:
        return " ".join(words), 0
    rest = [w for w in words if not w.isdigit()]
    if rest[-1:] == ["value"] and len(rest) > 1:
        rest.pop()
    return " ".join(rest), int(numbers[0])


def _by_alias(kind: str, columns: list[str]) -> list[str]:
    return [c for c in columns if _numbered(c)[0] in ALIASES[kind]]


def _phones(columns: list[str]) -> dict[str, str]:
    """The phone columns in the order of preference, each with its kind; ``InputError`` on two
    of one kind."""
    ranked: list[tuple[int, int, int, int, str, str]] = []
    seen: dict[tuple[str, int], str] = {}
    first: dict[str, int] = {}  # where a kind's first column is: "Home Phone 2" follows it
    for position, column in enumerate(columns):
        base, number = _numbered(column)
        for rank, (kind, aliases) in enumerate(PHONE_KINDS.items()):
            if base in aliases:
                # generic phones share a kind; "Home Phone" and "Business Phone" do not
                group = kind if kind != "phone" or base in _table(_PHONE) else base
                if (group, number) in seen:
                    raise InputError(
                        f"columns {seen[group, number]!r} and {column!r} could each be the "
                        "phone_number; pick one with --map phone_number=HEADER"
                    )
                seen[group, number] = column
                at = first.setdefault(group, position)
                ranked.append((rank, at, number, position, column, kind))
                break
    return {column: kind for *_, column, kind in sorted(ranked)}


def _weak_phone(columns: list[str]) -> dict[str, str]:
    """The one column named only like a phone (``Contact``, ``Nomor``), in a file without
    another phone column."""
    column = one("weak phone", "phone_number", columns)
    return {column: "phone"} if column else {}


def _no_phone(columns: tuple[str, ...], free: list[str]) -> str:
    """Why there is no phone column, naming the headers that look like one."""
    message = f"no phone column found among {quoted(columns)}"
    likely = _looks_like_phone(free)
    if not likely:
        return message + "; name it with --map phone_number=HEADER"
    what = f"{likely[0]!r} looks like one" if len(likely) == 1 else (
        f"{quoted(likely)} look like one"
    )  # fmt: skip
    return f"{message}; {what}: name it with --map {shlex.quote('phone_number=' + likely[0])}"


def _looks_like_phone(columns: list[str]) -> list[str]:
    """The headers that look like a phone column (a phone word first, then a number word),
    fax and pager columns never."""
    phone, number = [], []
    for column in columns:
        words = normalise_header(column).split()
        if any(w in _NOT_PHONE_WORDS for w in words):
            continue
        if any(w in _LOOKS_LIKE_PHONE_WORDS or w.startswith(_LOOKS_LIKE_PHONE) for w in words):
            phone.append(column)
        elif any(w in _LOOKS_LIKE_NUMBER_WORDS for w in words):
            number.append(column)
    return phone + number


def one(kind: str, field: str, columns: list[str]) -> str | None:
    hits = _by_alias(kind, columns)
    numbers = [_numbered(h)[1] for h in hits]
    if len(hits) > 1 and len(set(numbers)) == len(hits):  # "E-mail 1 - Value", "E-mail 2 - Value"
        return min(zip(numbers, range(len(hits)), hits, strict=True))[2]
    if len(hits) > 1:
        raise InputError(
            f"columns {quoted(hits)} could each be the {field}; pick one with --map {field}=HEADER"
        )
    return hits[0] if hits else None


@dataclass(frozen=True, slots=True)
class Chosen:
    """The columns ``--map`` names and the phone columns (``--map``'s or found by alias)."""

    columns: Mapping[str, tuple[str, ...]]  # field -> its columns; phone_number always
    how: Mapping[str, str]  # field -> "--map" | "alias 'Header'"
    free: tuple[str, ...]  # the columns nothing claimed, in the file's order
    phone_kinds: Mapping[str, str]  # phone column -> its kind, when found by alias


def choose(*, columns: tuple[str, ...], field_map: Mapping[str, str]) -> Chosen:
    """``--map``'s columns, then the phone columns in the order of preference; ``InputError``
    when they cannot be decided."""
    for key in field_map:
        if key not in FIELDS:
            raise InputError(f"--map {key}=...: unknown field; use one of {', '.join(FIELDS)}")
    chosen: dict[str, tuple[str, ...]] = {}
    how: dict[str, str] = {}
    for field, value in field_map.items():
        chosen[field] = _mapped(field, value, columns)
        how[field] = "--map"
    used = {c for cols in chosen.values() for c in cols}
    free = [c for c in columns if c not in used and c != SOURCE_ROW]

    if "phone_number" not in chosen:
        phones = _phones(free) or _weak_phone(free)
        if not phones:
            raise InputError(_no_phone(columns, free))
        first = next(iter(phones))
        chosen["phone_number"], how["phone_number"] = tuple(phones), f"alias {first!r}"
        kinds = phones
        free = [c for c in free if c not in phones]
    else:
        kinds = {}
    return Chosen(columns=chosen, how=how, free=tuple(free), phone_kinds=kinds)
