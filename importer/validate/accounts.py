"""Which WhatsApp account each row goes to, from the file's account column.

A cell names an account by its ``phone_number_id`` or by its WhatsApp number as
``GET /v1/accounts`` lists it: both are compared in E.164 (``+62 812-...``, ``62812...``,
``0812...`` with ``--default-region``), so the way a person wrote the number does not matter.
An empty cell takes the default (``--account``, else the only connected account). A row whose
cell names no account of the organisation is ``unknown_account``; one whose account cannot
take contacts (disconnected, onboarding) ``account_not_connected``; an empty cell without a
default ``missing_account``. Those are row outcomes, never a stop.

Without Kirim's list (a ``plan`` without a key, or whose request failed) nothing is checked:
a cell is kept as its ``phone_number_id`` or its number in E.164 (``route`` without
``accounts``), so in-file duplicates are still told apart per account as written.

Only the distinct cells of a batch are routed (a file names a handful of accounts), then
joined back: the cost per row is a join.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers
import polars as pl

from importer.records import ACCOUNT_ID, Account

_SEPARATORS = re.compile(r"[\s().\-\u00a0]")
MISSING, UNKNOWN, NOT_CONNECTED = "missing_account", "unknown_account", "account_not_connected"


def _quote(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def numbers(cell: str, region: str | None) -> set[str]:
    """The E.164 numbers a cell can mean: as written with ``+`` or ``00``; else its digits
    with their country code (wa.me style) and as a national number of ``region``."""
    text = _SEPARATORS.sub("", cell.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    tries = [(text, None)] if text.startswith("+") else [("+" + text, None), (text, region)]
    found = set()
    for candidate, where in tries:
        if where is None and not candidate.startswith("+"):
            continue
        try:
            number = phonenumbers.parse(candidate, where)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):  # compared with a list: no need to be valid
            found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return found


@dataclass(frozen=True, slots=True)
class Routed:
    """Where one cell's rows go: ``account`` (a phone_number_id; unchecked: the cell
    normalised), or why they cannot (``code`` and ``message``)."""

    account: str | None
    code: str | None = None
    message: str | None = None


class Routing:
    """Routes account cells: against ``accounts`` (Kirim's list) when given, else unchecked.
    ``default`` is the account of an empty cell (``--account``, or the only connected one)."""

    def __init__(
        self,
        *,
        column: str,
        default: str | None,
        region: str | None,
        accounts: Sequence[Account] | None = None,
    ) -> None:
        self.column = column
        self.default = default
        self.region = region
        self.accounts = None if accounts is None else tuple(accounts)
        self._cache: dict[str, Routed] = {}
        self._by_number: dict[str, list[Account]] = {}
        for account in self.accounts or ():
            for number in numbers(account.phone_number or "", None):
                self._by_number.setdefault(number, []).append(account)

    @property
    def checked(self) -> bool:
        """Whether cells are checked against Kirim's list of accounts."""
        return self.accounts is not None

    def route(self, cell: str) -> Routed:
        """Where a (stripped, non-empty) cell's rows go."""
        if (known := self._cache.get(cell)) is None:
            known = self._cache[cell] = self._route(cell)
        return known

    def _route(self, cell: str) -> Routed:
        if self.accounts is None:  # unchecked: the id as written, a number in E.164
            if ACCOUNT_ID.fullmatch(cell) and not cell.startswith("0"):
                return Routed(cell)
            found = numbers(cell, self.region)
            return Routed(min(found) if len(found) == 1 else cell)
        hits = [a for a in self.accounts if a.phone_number_id == cell]
        if not hits:
            hits = list(
                {
                    id(a): a for n in numbers(cell, self.region) for a in self._by_number.get(n, ())
                }.values()
            )
        where = f"column {self.column!r}: {_quote(cell)}"
        if not hits:
            listed = "; ".join(a.describe() for a in self.accounts) or "none"
            return Routed(
                None,
                UNKNOWN,
                f"{where} is neither the phone_number_id nor the WhatsApp number of an "
                f"account of this organisation (accounts: {listed})",
            )
        if len(hits) > 1:
            return Routed(
                None, UNKNOWN, f"{where} could be any of the accounts "
                + "; ".join(a.describe() for a in hits) + ": name it by its phone_number_id",
            )  # fmt: skip
        account = hits[0]
        if not account.usable:
            return Routed(
                None,
                NOT_CONNECTED,
                f"{where} is the account {account.phone_number_id} ({account.phone_number}, "
                f"{account.name!r}), {account.status}: it takes no contacts until it is connected",
            )
        return Routed(account.phone_number_id)

    def frame(self, cells: pl.Series) -> pl.DataFrame:
        """``_account_cell`` (each distinct stripped cell of ``cells``, null for an empty one)
        with ``_account``, ``_acode`` and ``_amsg``."""
        distinct = cells.unique(maintain_order=True).to_list()
        rows: list[tuple[str | None, str | None, str | None, str | None]] = []
        for cell in distinct:
            if cell is None:
                if self.default is not None or not self.checked:
                    rows.append((None, self.default, None, None))
                else:
                    listed = sum(1 for a in self.accounts or () if a.usable)
                    rows.append((None, None, MISSING, (
                        f"column {self.column!r} is empty and there is no default account "
                        f"({listed} connected): fill it in, or pass --account"
                    )))  # fmt: skip
                continue
            routed = self.route(cell)
            rows.append((cell, routed.account, routed.code, routed.message))
        return pl.DataFrame(
            rows,
            schema={
                "_account_cell": pl.String, "_account": pl.String, "_acode": pl.String,
                "_amsg": pl.String,
            },
            orient="row",
        )  # fmt: skip


def cell_expr(column: str) -> pl.Expr:
    """An account cell, trimmed; empty -> null."""
    text = pl.col(column).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text).alias("_account_cell")
