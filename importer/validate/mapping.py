"""Decide which input columns feed phone_number, name, email and metadata.

Headers are matched against a built-in alias table after normalising them (accents stripped,
lowercase, every run of non-alphanumerics one space): ``"No. HP"``, ``"no hp"`` and ``"NO_HP"``
are the same header. ``--map field=Header`` (and ``--mapping FILE``, merged by the caller into
``InputOptions.field_map``) wins over aliases. For ``name`` the value may list several headers
separated by commas (``--map "name=First,Last"``), joined with a space in that order; a header
that itself contains a comma is matched whole first. An empty value (``--map email=``) means
"no column" for name and email.

Two columns claiming one field by alias is an error, never a silent pick. A full-name column
wins over first/last-name columns (those then go to metadata). A last-name column with a plain
name column (``Nombre`` + ``Apellido``) gives name = ``Nombre Apellido``.
"""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
from pathlib import Path

from importer.errors import InputError
from importer.options import InputOptions
from importer.read.records import SOURCE_ROW
from importer.validate.records import ColumnMapping

FIELDS = ("phone_number", "name", "email")

_PHONE = """phone; phone number; phone no; telephone; telephone number; tel; mobile; mobile phone;
mobile number; mobile no; cell; cell phone; cellphone; cell number; whatsapp; whatsapp number;
wa; wa number; msisdn; contact number; no hp; nomor hp; no handphone; nomor handphone; handphone;
hp; no wa; nomor wa; nomor whatsapp; no whatsapp; nomor telepon; no telepon; no telp; nomor telp;
telepon; telp; telefono; telefone; celular; movil; telefono movil; numero de telefono;
numero de celular; numero de whatsapp; numero whatsapp; telemovel"""
_NAME = """name; full name; fullname; contact name; customer name; display name; nama;
nama lengkap; nama pelanggan; nama kontak; nombre; nombre completo; nome; nome completo;
nombre y apellido; nombre y apellidos"""
_FIRST = "first name; firstname; given name; forename; nama depan; primer nombre; primeiro nome"
_LAST = """last name; lastname; surname; family name; nama belakang; apellido; apellidos;
sobrenome; ultimo nome"""
_EMAIL = """email; e mail; email address; e mail address; mail; surel; alamat email;
alamat e mail; alamat surel; correo; correo electronico; email direccion; endereco de email;
endereco de e mail"""


def normalise_header(header: str) -> str:
    """Accent-, case- and punctuation-insensitive form of a header: ``"No. HP"`` -> ``"no hp"``."""
    text = unicodedata.normalize("NFKD", header)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return re.sub(r"[\W_]+", " ", text).strip()


def _table(words: str) -> frozenset[str]:
    return frozenset(normalise_header(w) for w in words.split(";"))


ALIASES: dict[str, frozenset[str]] = {
    "phone": _table(_PHONE),
    "name": _table(_NAME),
    "first": _table(_FIRST),
    "last": _table(_LAST),
    "email": _table(_EMAIL),
}


def _quoted(headers: tuple[str, ...] | list[str]) -> str:
    return ", ".join(repr(h) for h in headers)


def _find(header: str, columns: tuple[str, ...], field: str) -> str:
    if header in columns:
        return header
    wanted = header.strip().casefold()
    hits = [c for c in columns if c.casefold() == wanted]
    if len(hits) == 1:
        return hits[0]
    raise InputError(
        f"--map {field}={header}: there is no column {header!r}; the columns are {_quoted(columns)}"
    )


def _mapped(field: str, value: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    if not value.strip():
        if field == "phone_number":
            raise InputError("--map phone_number= needs a column: the phone is required")
        return ()
    if field == "name" and "," in value and value not in columns:
        return tuple(_find(part.strip(), columns, field) for part in value.split(","))
    return (_find(value, columns, field),)


def _by_alias(kind: str, columns: list[str]) -> list[str]:
    return [c for c in columns if normalise_header(c) in ALIASES[kind]]


def _one(kind: str, field: str, columns: list[str]) -> str | None:
    hits = _by_alias(kind, columns)
    if len(hits) > 1:
        raise InputError(
            f"columns {_quoted(hits)} could each be the {field}; pick one with --map {field}=HEADER"
        )
    return hits[0] if hits else None


def resolve(
    *, columns: tuple[str, ...], options: InputOptions, mapping_file: Path | None = None
) -> ColumnMapping:
    """Map the file's headers to API fields; ``InputError`` when it cannot be decided."""
    field_map = dict(options.field_map)
    if mapping_file is not None:
        field_map = {**load_mapping_file(mapping_file), **field_map}
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
        phone = _one("phone", "phone_number", free)
        if phone is None:
            raise InputError(
                f"no phone column found among {_quoted(columns)}; "
                "name it with --map phone_number=HEADER"
            )
        chosen["phone_number"], how["phone_number"] = (phone,), f"alias {phone!r}"
        free.remove(phone)
    if "email" not in chosen:
        email = _one("email", "email", free)
        chosen["email"] = (email,) if email else ()
        if email:
            how["email"] = f"alias {email!r}"
            free.remove(email)
    if "name" not in chosen:
        chosen["name"] = _name_by_alias(free)
        if chosen["name"]:
            how["name"] = "alias " + " + ".join(repr(c) for c in chosen["name"])
            free = [c for c in free if c not in chosen["name"]]
    metadata, how["metadata"] = _metadata(options, columns, free)
    return ColumnMapping(
        phone=chosen["phone_number"][0],
        name=chosen["name"],
        email=chosen["email"][0] if chosen["email"] else None,
        metadata=metadata,
        how=how,
    )


def _name_by_alias(free: list[str]) -> tuple[str, ...]:
    full = _one("name", "name", free)
    first = _one("first", "name", free)
    last = _one("last", "name", free)
    if full and last and not first:  # Nombre + Apellido
        return (full, last)
    if full:
        return (full,)
    return tuple(c for c in (first, last) if c)


def _metadata(
    options: InputOptions, columns: tuple[str, ...], free: list[str]
) -> tuple[tuple[str, ...], str]:
    policy = options.metadata
    if policy == "all":
        return tuple(free), "all other columns"
    if policy == "none":
        return (), "none (--metadata none)"
    missing = [h for h in policy if h not in columns]
    if missing:
        raise InputError(
            f"--metadata: no column {_quoted(missing)}; the columns are {_quoted(columns)}"
        )
    return tuple(dict.fromkeys(policy)), "--metadata"


def describe(mapping: ColumnMapping) -> list[str]:
    """Human lines for the plan output, e.g. ``phone_number <- 'No HP' (alias)``."""

    def line(field: str, cols: tuple[str, ...]) -> str:
        if not cols:
            return f"{field} <- (no column)"
        how = mapping.how.get(field, "")
        kind = how.split(" ", 1)[0] if how.startswith("alias") else how
        return f"{field} <- {' + '.join(repr(c) for c in cols)} ({kind})"

    lines = [
        line("phone_number", (mapping.phone,)),
        line("name", mapping.name),
        line("email", (mapping.email,) if mapping.email else ()),
    ]
    meta = mapping.how.get("metadata", "")
    if mapping.metadata:
        lines.append(f"metadata <- {_quoted(mapping.metadata)} ({meta})")
    else:
        lines.append(f"metadata <- (no columns{', ' + meta if meta else ''})")
    return lines


def load_mapping_file(path: Path) -> dict[str, str]:
    """Read ``--mapping FILE``: TOML or JSON ``{"phone_number": "Header", ...}``.

    ``name`` may also be a list of headers (joined into the comma form).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the mapping file: {exc}") from exc
    try:
        if path.suffix.lower() == ".toml":
            data: object = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise InputError(f"{path}: not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f'{path}: expected an object like {{"phone_number": "No HP"}}')
    out: dict[str, str] = {}
    for key, value in data.items():
        if key not in FIELDS:
            raise InputError(f"{path}: unknown field {key!r}; use one of {', '.join(FIELDS)}")
        if key == "name" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ",".join(value)
        if not isinstance(value, str):
            raise InputError(f"{path}: {key} must be a column name (text), not {value!r}")
        out[key] = value
    return out
