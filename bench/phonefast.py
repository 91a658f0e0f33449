"""``plan`` with phonefast's two shortcuts on, against phonenumbers alone, in one run.

    .venv/bin/python bench/phonefast.py [--rows 300000] [--repeat 2]

Both in this process, one parser process (``workers=1``: the shortcuts' switch is this
process's), taking turns, best of ``--repeat``: ``phonefast.FAST`` on (``quick_parse`` in
place of ``phonenumbers.parse`` for plain digits, ``region_and_type`` on patterns compiled
once) and off (phonenumbers decides every number, as it does when the installed version is
not the one the shortcuts are held equal to). Same file, same options (``--default-region
ID``), the seeded ``bench/gen.py`` rows.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import table
from gen import ensure

from importer import configure, pipeline
from importer.validate import phonefast


def plan_once(file: Path, fast: bool) -> float:
    phonefast.FAST = fast
    with tempfile.TemporaryDirectory(prefix="phonefast-") as tmp:
        options = configure.plan_options(
            source=file, report_dir=Path(tmp) / "r", default_region="ID"
        )
        options = replace(options, input=replace(options.input, workers=1))
        started = time.perf_counter()
        pipeline.plan(options=options, out=io.StringIO())
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    file = ensure(args.rows)
    best = {True: float("inf"), False: float("inf")}
    for _ in range(args.repeat):
        for fast in (True, False):
            print(f"[phonefast] plan, shortcuts {'on' if fast else 'off'} ...", flush=True)
            best[fast] = min(best[fast], plan_once(file, fast))
    phonefast.FAST = phonefast.held_equal(phonefast.phonenumbers.__version__)
    table(
        ["phones decided by", "rows", "plan s (best)", "x phonenumbers alone"],
        [["phonefast + phonenumbers", args.rows, best[True], best[True] / best[False]],
         ["phonenumbers alone", args.rows, best[False], 1.0]],
        title=f"plan on {args.rows} rows, one parser process, best of {args.repeat}",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
