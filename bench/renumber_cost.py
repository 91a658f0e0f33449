"""What noting and comparing phone cells (``send.renumber``) costs a nightly job: nights 2 and 3
of ``nightly.py``, this tree against the importer at ``--base REV``, taking turns.

    .venv/bin/python bench/renumber_cost.py --base REV [--rows 100000] [--repeat 4]

Night 1 is imported once, by this tree, into one unlimited sandbox (0 ms); each night 2 (the
same export) and night 3 (1% renamed, 0.5% new) then runs on a fresh copy of that journal, the
base and this tree in turn, so both meet the same sandbox and the same load. Night 3 is run
once first, so that every measured night 3 finds the same contacts. Also timed: this tree's
night 2 under ``--default-region DE``, which compares every row and refuses (exit 2). Printed:
the median (and every value) of summary.json's ``elapsed_s``, and the child's CPU seconds,
steadier than wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

from common import ROOT, Sandbox, checkout, copy, importer_run, program, table
from nightly import exports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the importer to compare with (a git rev)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    got: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="renumber-cost-") as tmp:
        work = Path(tmp)
        trees = {args.base: checkout(args.base, work), "this tree": ROOT}
        night1, night3 = exports(args.rows, 0.01, 0.005, work)
        with Sandbox(unlimited=True, latency_ms="0") as box:

            def night(file: Path, name: str, tree: Path, journal: Path, *extra: str) -> None:
                print(f"[renumber_cost] {name} ...", flush=True)
                res = importer_run(
                    box, file, workdir=work / name, on_existing="update", concurrency=128,
                    state_db=journal, program=program(tree), extra=extra,
                )  # fmt: skip
                elapsed = res.summary.get("elapsed_s", res.child.wall_s)
                got[name.rsplit("-", 1)[0]].append((elapsed, res.child.cpu_s))

            first = work / "night1.sqlite"
            night(night1, "night 1-0", ROOT, first)
            night(night3, "warm-up-0", ROOT, copy(first, work / "warm.sqlite"))
            for i in range(args.repeat):
                for who, tree in trees.items():
                    for n, file in ((2, night1), (3, night3)):
                        journal = copy(first, work / f"{n}-{i}-{tree.name}.sqlite")
                        night(file, f"night {n}, {who}-{i}", tree, journal)
                journal = copy(first, work / f"de-{i}.sqlite")
                night(night1, f"night 2 under DE, refused-{i}", ROOT, journal,
                      "--default-region", "DE")  # fmt: skip
    rows = []
    for name, values in got.items():
        elapsed, cpu = [v[0] for v in values], [v[1] for v in values]
        rows.append([
            name, len(values), statistics.median(elapsed), " ".join(f"{e:.2f}" for e in elapsed),
            statistics.median(cpu), " ".join(f"{c:.2f}" for c in cpu),
        ])  # fmt: skip
    table(
        ["night", "runs", "elapsed s (median)", "each", "CPU s (median)", "each"], rows,
        title=f"renumber cost: {args.rows} rows, --on-existing update, unlimited sandbox at 0 ms",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
