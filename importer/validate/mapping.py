"""Decide which input columns feed phone_number, name, email and metadata.

Headers are matched against the alias table of ``read.headers`` (which also finds the phone
columns and the columns ``--map`` names).
``--map field=Header`` (and ``--mapping FILE``, merged by the caller into
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
import tomllib
from pathlib import Path

from importer.errors import InputError
from importer.options import InputOptions
from importer.read.headers import FAX_WORDS, choose, normalise_header, one, quoted
from importer.records import FIELDS
from importer.validate.records import ColumnMapping

# Words of a phone's type (Google's "Phone 1 - Label") that make it a mobile
_MOBILE_TYPE_WORDS = frozenset({"mobile", "cell", "cellular", "cellphone", "celular", "movil",
                                "telemovel", "handphone", "hp", "ponsel", "seluler", "whatsapp",
                                "wa"})  # fmt: skip


def _type_columns(phones: tuple[str, ...], columns: tuple[str, ...]) -> dict[str, str]:
    """Google's typed numbers: ``Phone 1 - Value`` -> ``Phone 1 - Label`` (or ``- Type``)."""
    by_words = {normalise_header(c): c for c in columns}
    found = {}
    for phone in phones:
        words = normalise_header(phone).split()
        if len(words) > 1 and words[-1] == "value":
            for word in ("type", "label"):
                typed = by_words.get(" ".join([*words[:-1], word]))
                if typed is not None and typed not in phones:
                    found[phone] = typed
                    break
    return found


def phone_type(cell: str | None) -> str:
    """A phone's type cell (Google's ``Mobile``, ``* Work``, ``Work Fax``, ``Mobile ::: Home``)
    as ``"mobile"`` (any of its types a mobile or WhatsApp), ``"fax"`` (all of them faxes) or
    ``"other"``."""
    parts = [set(normalise_header(p).split()) for p in (cell or "").split(":::")]
    parts = [p for p in parts if p]
    if parts and all(p & FAX_WORDS for p in parts):
        return "fax"
    if any(p & _MOBILE_TYPE_WORDS for p in parts):
        return "mobile"
    return "other"


def resolve(
    *, columns: tuple[str, ...], options: InputOptions
) -> ColumnMapping:
    """Map the file's headers to API fields; ``InputError`` when it cannot be decided."""
    found = choose(columns=columns, field_map=options.field_map)
    chosen, how = dict(found.columns), dict(found.how)
    free, kinds = list(found.free), found.phone_kinds
    types = _type_columns(chosen["phone_number"], columns)
    for field in ("email", "labels", "account"):  # one column each, found by alias
        if field not in chosen:
            column = one(field, field, free)
            if field == "email" and column is None:  # "Work Email" when there is no other
                column = one("other email", field, free)
            chosen[field] = (column,) if column else ()
            if column:
                how[field] = f"alias {column!r}"
                free.remove(column)
    if "name" not in chosen:
        chosen["name"] = _name_by_alias(free)
        if chosen["name"]:
            how["name"] = "alias " + " + ".join(repr(c) for c in chosen["name"])
            free = [c for c in free if c not in chosen["name"]]
    metadata, how["metadata"] = _metadata(options, columns, free)
    return ColumnMapping(
        phone=chosen["phone_number"][0],
        phone_fallbacks=chosen["phone_number"][1:],
        name=chosen["name"],
        email=chosen["email"][0] if chosen["email"] else None,
        metadata=metadata,
        how=how,
        labels=chosen["labels"][0] if chosen["labels"] else None,
        phone_kinds=kinds,
        phone_types=types,
        account=chosen["account"][0] if chosen["account"] else None,
    )


def _name_by_alias(free: list[str]) -> tuple[str, ...]:
    full = one("name", "name", free)
    first = one("first", "name", free)
    last = one("last", "name", free)
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
            f"--metadata: no column {quoted(missing)}; the columns are {quoted(columns)}"
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

    phone = line("phone_number", (mapping.phone,))
    if mapping.phone_fallbacks:
        phone += (
            f"; where it is empty or holds several numbers: {quoted(mapping.phone_fallbacks)},"
            " in that order"
        )
    if mapping.phone_types:
        types = tuple(mapping.phone_types.values())
        phone += f"; typed by {quoted(types)}: a mobile first, a fax never"
    lines = [
        phone,
        line("name", mapping.name),
        line("email", (mapping.email,) if mapping.email else ()),
    ]
    if mapping.labels:
        lines.append(line("labels", (mapping.labels,)))
    if mapping.account:
        lines.append(line("account", (mapping.account,)))
    meta = mapping.how.get("metadata", "")
    if mapping.metadata:
        lines.append(f"metadata <- {quoted(mapping.metadata)} ({meta})")
    else:
        lines.append(f"metadata <- (no columns{', ' + meta if meta else ''})")
    return lines


def load_mapping_file(path: Path) -> dict[str, str]:
    """Read ``--mapping FILE``: TOML or JSON ``{"phone_number": "Header", ...}``.

    ``name`` may also be a list of headers (joined into the comma form).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the mapping file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: the mapping file is not UTF-8 text") from None
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
