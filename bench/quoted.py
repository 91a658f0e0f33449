"""``plan`` on a quoted export against the same rows unquoted, at 20 and 77 columns.

    .venv/bin/python bench/quoted.py [--rows 300000] [--columns 20,77] [--repeat 1]

For each width, two files of the same seeded rows (``gen.Generator``: Phone, Name, Email,
City, then ``Field 5`` ... columns, about a third of them filled, as contact exports are):

- *quoted*: every field quoted (``csv.QUOTE_ALL``), as Google Contacts, Outlook and Excel
  write them; one in 20 filled extra cells holds a comma and one in 40 a line break;
- *plain*: the same cells with those commas and line breaks written as spaces, no quote at
  all (so polars' quick path reads it);
- *quoted, no line breaks*: the quoted file with its line breaks written as spaces (commas
  kept). It tells reading apart from validation: a batch holding a control character (a
  line break in a cell) makes ``validate/rows.json_string`` escape control characters too
  (one ``replace_many`` pass over every metadata column).

Each file is planned by ``python -m importer plan FILE --default-region ID`` as a child
process (wall time, CPU seconds, peak RSS from ``wait4``), plain then quoted, back to back in
one run. Targets (issue 19): quoted within 1.5x the time and 1.2x the peak memory of plain.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
from pathlib import Path
from typing import Any

from common import DATA, PY, run_child, table, workdir
from gen import HEADER, Generator

_WORDS = ("Jl. Merdeka", "Blok C", "RT 03", "Kec. Cibinong", "PT Maju", "Lantai 2", "S.Pd")


def _cells(rng: random.Random, width: int) -> list[tuple[str, str]]:
    """(quoted text, plain text) of the extra cells of one row (the quoted file without line
    breaks writes the quoted text with its line breaks as spaces)."""
    out = []
    for _ in range(width - len(HEADER)):
        roll = rng.random()
        if roll > 0.33:
            out.append(("", ""))
            continue
        a, b = rng.choice(_WORDS), rng.choice(_WORDS)
        if roll < 0.33 / 20:
            out.append((f"{a}, {b}", f"{a}  {b}"))
        elif roll < 0.33 / 20 + 0.33 / 40:
            out.append((f"{a}\n{b}", f"{a} {b}"))
        else:
            out.append((f"{a} {b}", f"{a} {b}"))
    return out


def ensure(rows: int, width: int, seed: int) -> tuple[Path, Path, Path]:
    """The quoted, plain and quoted-without-line-breaks files, written when missing."""
    quoted = DATA / f"quoted-{rows}-{width}c-s{seed}.csv"
    plain = DATA / f"plain-{rows}-{width}c-s{seed}.csv"
    flat = DATA / f"quoted-flat-{rows}-{width}c-s{seed}.csv"
    if quoted.exists() and plain.exists() and flat.exists():
        return quoted, plain, flat
    DATA.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed * 31 + width)
    header = [*HEADER, *(f"Field {i}" for i in range(len(HEADER) + 1, width + 1))]
    tmp_q, tmp_p, tmp_f = (p.with_suffix(".tmp") for p in (quoted, plain, flat))
    with (
        tmp_q.open("w", encoding="utf-8", newline="") as fq,
        tmp_p.open("w", encoding="utf-8", newline="") as fp,
        tmp_f.open("w", encoding="utf-8", newline="") as ff,
    ):
        wq = csv.writer(fq, quoting=csv.QUOTE_ALL)
        wp = csv.writer(fp, quoting=csv.QUOTE_NONE, escapechar=None)
        wf = csv.writer(ff, quoting=csv.QUOTE_ALL)
        for w in (wq, wp, wf):
            w.writerow(header)
        for r in Generator(seed=seed).rows(rows):
            extra = _cells(rng, width)
            base = [r.phone, r.name, r.email, r.city]
            wq.writerow([*base, *(q for q, _ in extra)])
            wp.writerow([*base, *(p for _, p in extra)])
            wf.writerow([*base, *(q.replace("\n", " ") for q, _ in extra)])
    for tmp, path in ((tmp_q, quoted), (tmp_p, plain), (tmp_f, flat)):
        os.replace(tmp, path)
    return quoted, plain, flat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--columns", default="20,77")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best is tabled")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows: list[list[Any]] = []
    for width in (int(c) for c in args.columns.split(",") if c):
        quoted, plain, flat = ensure(args.rows, width, args.seed)
        files = {"plain": plain, "quoted": quoted, "quoted, no line breaks": flat}
        best: dict[str, Any] = {}
        for _ in range(args.repeat):
            for kind, path in files.items():
                print(f"[quoted] plan {path.name} ...", flush=True)
                with workdir("quoted-") as tmp:
                    child = run_child([PY, "-m", "importer", "plan", str(path),
                                       "--default-region", "ID",
                                       "--report-dir", str(Path(tmp) / "report")])  # fmt: skip
                if child.returncode not in (0, 1):
                    print(child.output[-3000:])
                    raise SystemExit(f"plan on {path} exited {child.returncode}")
                if kind not in best or child.wall_s < best[kind].wall_s:
                    best[kind] = child
        p = best["plain"]
        for kind, c in best.items():
            size = files[kind].stat().st_size / 2**20
            rows.append([f"{width} columns, {kind}", args.rows, size, c.wall_s, c.cpu_s,
                         c.max_rss_mib, c.wall_s / p.wall_s, c.cpu_s / p.cpu_s,
                         c.max_rss_mib / p.max_rss_mib])  # fmt: skip
    table(
        ["file", "rows", "MiB", "wall s", "CPU s", "peak RSS MiB", "time x plain",
         "CPU x plain", "RSS x plain"],
        rows,
        title="plan on a quoted export vs the same rows unquoted (targets: time <= 1.5x, "
        f"peak RSS <= 1.2x); best of {args.repeat}",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
