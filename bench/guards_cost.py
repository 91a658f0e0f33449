"""What the guard rails cost a nightly job: night 2 of ``nightly.py`` (the same export,
``--on-existing update``) with the shrink guard armed (the journal holds a finished run of the
file: the whole file is validated and spooled before the first request) against the same night
with ``--allow-shrink`` (nothing armed: streamed as before), taking turns.

    .venv/bin/python bench/guards_cost.py [--rows 100000] [--repeat 3]

Night 1 is imported once into one unlimited sandbox (0 ms); each measured night runs on a
fresh copy of its journal. Printed: the median (and every value) of summary.json's
``elapsed_s``, and the child's CPU seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

from common import Sandbox, copy, importer_run, table
from nightly import exports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    got: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="guards-cost-") as tmp:
        work = Path(tmp)
        night1, _ = exports(args.rows, 0.01, 0.005, work)
        with Sandbox(unlimited=True, latency_ms="0") as box:

            def night(name: str, journal: Path, *extra: str) -> None:
                print(f"[guards_cost] {name} ...", flush=True)
                res = importer_run(
                    box, night1, workdir=work / name, on_existing="update", concurrency=128,
                    state_db=journal, extra=extra,
                )  # fmt: skip
                assert res.child.returncode in (0, 1), res.child.output[-2000:]
                elapsed = res.summary.get("elapsed_s", res.child.wall_s)
                got[name.rsplit("-", 1)[0]].append(
                    (elapsed, res.child.cpu_s, res.child.max_rss_mib)
                )

            first = work / "night1.sqlite"
            night("night 1-0", first)
            for i in range(args.repeat):
                night(f"night 2, shrink guard armed (counted, spooled)-{i}",
                      copy(first, work / f"armed-{i}.sqlite"))  # fmt: skip
                night(f"night 2, --allow-shrink (streamed)-{i}",
                      copy(first, work / f"off-{i}.sqlite"), "--allow-shrink")  # fmt: skip
    rows = []
    for name, values in got.items():
        elapsed, cpu, rss = ([v[k] for v in values] for k in range(3))
        rows.append([
            name, len(values), statistics.median(elapsed), " ".join(f"{e:.2f}" for e in elapsed),
            statistics.median(cpu), statistics.median(rss),
        ])  # fmt: skip
    table(
        ["night", "runs", "elapsed s (median)", "each", "CPU s (median)", "peak RSS MiB"], rows,
        title=f"guards cost: {args.rows} rows, --on-existing update, unlimited sandbox at 0 ms",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
