"""What the account column costs: the client's CPU per created row of ``run --on-existing
create`` on a file without an account column, this tree against the importer at ``--base
REV`` (the column must cost such files nothing), and this tree on the same file with an
account column naming one account (what routing costs when it is used). Taking turns.

    .venv/bin/python bench/accounts_cost.py --base REV [--rows 20000] [--repeat 4]

Each run gets a fresh unlimited sandbox (own process, 0 ms, its default organisation: one
connected account) and ``--concurrency 128``. Printed per variant: the median (and every value)
of the child's CPU per created row (user + system from ``wait4``: steadier than wall time on
a shared machine) and of summary.json's ``elapsed_s``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import polars as pl
from common import ROOT, Sandbox, checkout, importer_run, program, table
from gen import ensure

ACCOUNT = "106540352242922"  # the sandbox's connected account


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="the importer to compare with (a git rev)")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    plain = ensure(args.rows, seed=args.seed, clean=True)
    with tempfile.TemporaryDirectory(prefix="accounts-cost-") as tmp:
        work = Path(tmp)
        column = work / "with-account.csv"
        frame = pl.read_csv(plain, infer_schema_length=0)
        frame.with_columns(pl.lit(ACCOUNT).alias("account")).write_csv(column)
        base = checkout(args.base, work)
        variants = {
            f"{args.base}, no account column": (program(base), plain),
            "this tree, no account column": (program(ROOT), plain),
            "this tree, an account column": (program(ROOT), column),
        }
        cpu: dict[str, list[float]] = defaultdict(list)
        wall: dict[str, list[float]] = defaultdict(list)
        for turn in range(args.repeat):
            order = list(variants.items())
            for name, (prog, file) in order if turn % 2 == 0 else reversed(order):
                with Sandbox(unlimited=True) as box:
                    run_dir = work / f"{turn}-{len(cpu[name])}-{abs(hash(name))}"
                    run_dir.mkdir()
                    done = importer_run(
                        box, file, workdir=run_dir, concurrency=128, program=prog
                    )
                created = done.summary.get("created", 0)
                assert created == args.rows, (name, done.summary)
                cpu[name].append(done.child.cpu_s / created * 1e6)
                wall[name].append(done.summary["elapsed_s"])
                print(f"[accounts_cost] {name}: {cpu[name][-1]:.0f} us/created row", flush=True)
    rows = [
        (
            name,
            f"{statistics.median(cpu[name]):.0f}",
            ", ".join(f"{v:.0f}" for v in cpu[name]),
            f"{statistics.median(wall[name]):.2f}",
        )
        for name in variants
    ]
    table(
        ("variant", "CPU us/created (median)", "each", "elapsed s (median)"),
        rows,
        title=f"run --on-existing create, {args.rows} rows, unlimited sandbox, 0 ms",
    )


if __name__ == "__main__":
    main()
