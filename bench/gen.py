"""Seeded generator of realistic contact CSVs for the benchmarks.

    .venv/bin/python bench/gen.py --rows 100000 [--seed 1] [--clean] [--out FILE]

Columns ``Phone,Name,Email,City``. The default mix, per row:

- phones: ~55% Indonesian national (``0812...``, ``0812-3456-7890``, ``(0812) 3456 7890``,
  ``62812...``), ~15% Indonesian international (``+62 812 ...``, ``0062...``), ~30% other
  countries (MY, SG, US, GB, AU, IN, DE), in messy formatting (spaces, dashes, brackets);
- ~15% in-file duplicates after normalisation (an earlier row's number, re-rendered in
  another format, so only E.164 normalisation finds them);
- ~10% invalid rows: ~6% bad phones (too short, letters, scientific notation, empty,
  unknown country code), ~4% bad emails (``budi@``, ``a b@x.com``, ``x@@y.com``);
- ~30% of emails empty, a few with upper-case domains or surrounding spaces.

``--clean`` makes every row valid and every number distinct (used where the number of
creates must equal the number of rows, e.g. the goodput benchmark).

Numbers are unique by construction (an affine permutation of a per-country counter), so no
set of seen numbers is kept: memory stays flat for any ``--rows``. Files land in
``bench/data/`` (git-ignored) unless ``--out`` says otherwise, and are reused when present.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
HEADER = ("Phone", "Name", "Email", "City")

# (country code, national trunk prefix or "", leading digits choices, subscriber digits, weight)
_ID_PREFIXES = (
    "811", "812", "813", "821", "822", "852", "853", "857", "858", "877", "878",
    "881", "882", "883", "895", "896", "897", "898", "899",
)  # fmt: skip
_FOREIGN = (
    # cc, trunk, leading choices, subscriber digits, weight
    ("60", "0", ("12", "16", "19"), 7, 6),  # MY mobile
    ("65", "", ("81", "82", "83", "87", "88", "91", "93", "96", "97", "98"), 6, 5),  # SG mobile
    ("1", "", ("2127", "4157", "6467", "3127", "6177", "7187"), 6, 5),  # US, exchange 7xx
    ("44", "0", ("74", "75", "78"), 8, 5),  # GB mobile
    ("61", "0", ("40", "41", "42", "43"), 7, 3),  # AU mobile
    ("91", "", ("98", "97", "70", "81", "88"), 8, 4),  # IN mobile
    ("49", "0", ("160", "170", "171", "176"), 7, 2),  # DE mobile
)
_FIRST = (
    "Budi", "Siti", "Agus", "Dewi", "Rina", "Andi", "Putri", "Wahyu", "Ayu", "Eko", "Fitri",
    "Hendra", "Indah", "Joko", "Kartika", "Lestari", "Made", "Nur", "Rizki", "Sri", "Teguh",
    "Yusuf", "María", "Liam", "Sofía", "Chen", "Priya", "Ahmad", "Nguyễn", "Lukas", "Olivia",
)  # fmt: skip
_LAST = (
    "Santoso", "Wijaya", "Pratama", "Saputra", "Lestari", "Hidayat", "Kusuma", "Siregar",
    "Nasution", "Halim", "Gunawan", "Setiawan", "Tan", "Lim", "Müller", "Silva", "Okafor",
    "Sharma", "Nair", "Smith", "Wong", "", "",
)  # fmt: skip
_CITIES = (
    "Jakarta", "Surabaya", "Bandung", "Medan", "Semarang", "Makassar", "Yogyakarta",
    "Denpasar", "Palembang", "Malang", "Kuala Lumpur", "Singapore", "New York", "London",
    "Sydney", "Mumbai", "Berlin", "",
)  # fmt: skip
_DOMAINS = ("gmail.com", "yahoo.co.id", "contoh.co.id", "example.com", "mail.id", "outlook.com")
_BAD_PHONES = (
    "0812345", "0812-ABC-7890", "6.28123E+11", "", "+999 1234 5678", "12", "n/a",
    "+62 812", "08123456789012345678", "tel: call me",
)  # fmt: skip
_BAD_EMAILS = ("budi@", "a b@example.com", "x@@y.com", "siti.example.com", "@gmail.com", "j@x")
_A = 2_654_435_761  # odd multiplier: i -> (A*i + B) mod 10^k is a permutation


@dataclass(frozen=True, slots=True)
class Row:
    phone: str
    name: str
    email: str
    city: str
    e164: str | None  # what a correct normaliser gives; None for a bad phone
    valid: bool  # phone and email both fine
    duplicate: bool  # same E.164 as an earlier row


class Generator:
    """Deterministic for a given seed; yields ``Row`` values."""

    def __init__(
        self, *, seed: int = 1, clean: bool = False, dup_rate: float = 0.15,
        bad_phone_rate: float = 0.06, bad_email_rate: float = 0.04,
    ) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self.clean = clean
        self.dup_rate = 0.0 if clean else dup_rate
        self.bad_phone_rate = 0.0 if clean else bad_phone_rate
        self.bad_email_rate = 0.0 if clean else bad_email_rate
        self.counters: dict[str, int] = {}
        self.recent: list[tuple[str, str, str]] = []  # ring of (cc, trunk, nsn) for duplicates
        self.ring = 20_000
        self.seed_offset = seed * 7919

    def _unique(self, key: str, digits: int) -> str:
        i = self.counters.get(key, 0)
        self.counters[key] = i + 1
        mod = 10**digits
        if i >= mod:
            raise ValueError(f"number space of {key} exhausted")
        return str((_A * i + self.seed_offset) % mod).zfill(digits)

    def _new_number(self) -> tuple[str, str, str]:
        r = self.rng.random()
        if r < 0.70:  # Indonesian
            prefix = self.rng.choice(_ID_PREFIXES)
            nsn = prefix + self._unique("62" + prefix, 8)
            return "62", "0", nsn
        weights = [w for *_, w in _FOREIGN]
        cc, trunk, leads, digits, _ = self.rng.choices(_FOREIGN, weights)[0]
        lead = self.rng.choice(leads)
        sub = self._unique(cc + lead, digits)
        return cc, trunk, lead + sub

    def _render(self, cc: str, trunk: str, nsn: str) -> str:
        rng = self.rng
        if cc == "62":
            style = rng.random()
            if style < 0.35:
                return "0" + nsn
            if style < 0.55:
                return f"0{nsn[:3]}-{nsn[3:7]}-{nsn[7:]}"
            if style < 0.65:
                return f"(0{nsn[:3]}) {nsn[3:7]} {nsn[7:]}"
            if style < 0.78:
                return "62" + nsn
            if style < 0.95:
                return f"+62 {nsn[:3]} {nsn[3:7]} {nsn[7:]}"
            return f"0062{nsn}"
        style = rng.random()
        if style < 0.5:
            return f"+{cc} {nsn[:3]} {nsn[3:6]} {nsn[6:]}".strip()
        if style < 0.8:
            return f"+{cc}-{nsn}"
        if style < 0.9:
            return f"+{cc}{nsn}"
        return f"00{cc} {nsn}"

    def rows(self, n: int) -> Iterator[Row]:
        rng = self.rng
        for _ in range(n):
            first = rng.choice(_FIRST)
            last = rng.choice(_LAST)
            name = f"{first} {last}".strip()
            if rng.random() < 0.05:
                name = f"  {first}   {last} "
            city = rng.choice(_CITIES)
            roll = rng.random()
            duplicate = False
            e164: str | None
            if roll < self.bad_phone_rate:
                phone, e164 = rng.choice(_BAD_PHONES), None
            else:
                if roll < self.bad_phone_rate + self.dup_rate and self.recent:
                    cc, trunk, nsn = rng.choice(self.recent)
                    duplicate = True
                else:
                    cc, trunk, nsn = self._new_number()
                    if len(self.recent) < self.ring:
                        self.recent.append((cc, trunk, nsn))
                    else:
                        self.recent[rng.randrange(self.ring)] = (cc, trunk, nsn)
                phone, e164 = self._render(cc, trunk, nsn), f"+{cc}{nsn}"
            email_roll = rng.random()
            bad_email = False
            if email_roll < self.bad_email_rate:
                email, bad_email = rng.choice(_BAD_EMAILS), True
            elif email_roll < 0.30:
                email = ""
            else:
                local = f"{first}.{last or 'x'}{rng.randrange(10_000)}".lower()
                local = local.encode("ascii", "ignore").decode() or "user"
                domain = rng.choice(_DOMAINS)
                if rng.random() < 0.05:
                    domain = domain.upper()
                email = f"{local}@{domain}"
                if rng.random() < 0.03:
                    email = f" {email} "
            yield Row(phone, name, email, city, e164, e164 is not None and not bad_email,
                      duplicate)  # fmt: skip


def default_path(rows: int, seed: int, clean: bool) -> Path:
    return DATA / f"contacts-{rows}-s{seed}{'-clean' if clean else ''}.csv"


def write_csv(path: Path, rows: int, *, seed: int = 1, clean: bool = False) -> dict[str, int]:
    """Write the file (atomically) and a ``.meta.json`` with the expected counts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    counts = {"rows": 0, "valid_unique": 0, "duplicates": 0, "invalid": 0}
    with tmp.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for r in Generator(seed=seed, clean=clean).rows(rows):
            w.writerow((r.phone, r.name, r.email, r.city))
            counts["rows"] += 1
            if not r.valid:
                counts["invalid"] += 1
            elif r.duplicate:
                counts["duplicates"] += 1
            else:
                counts["valid_unique"] += 1
    os.replace(tmp, path)
    path.with_suffix(".meta.json").write_text(json.dumps(counts) + "\n")
    return counts


def ensure(rows: int, *, seed: int = 1, clean: bool = False, out: Path | None = None) -> Path:
    """The generated file for these parameters, generating it only when missing."""
    path = out or default_path(rows, seed, clean)
    if not path.exists() or not path.with_suffix(".meta.json").exists():
        started = time.perf_counter()
        counts = write_csv(path, rows, seed=seed, clean=clean)
        took = time.perf_counter() - started
        print(f"[gen] wrote {path} ({counts}) in {took:.1f} s", flush=True)
    return path


def meta(path: Path) -> dict[str, int]:
    data: dict[str, int] = json.loads(path.with_suffix(".meta.json").read_text())
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clean", action="store_true", help="all valid, all distinct")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    args = parser.parse_args()
    path = args.out or default_path(args.rows, args.seed, args.clean)
    if args.force and path.exists():
        path.unlink()
    path = ensure(args.rows, seed=args.seed, clean=args.clean, out=path)
    counts = meta(path)
    print(f"{'file':<50} {'rows':>9} {'valid_uniq':>10} {'dups':>8} {'invalid':>8}")
    print(
        f"{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path!s:<50} "
        f"{counts['rows']:>9} {counts['valid_unique']:>10} {counts['duplicates']:>8} "
        f"{counts['invalid']:>8}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
