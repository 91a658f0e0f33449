"""Where ``plan`` spends its time on a generated file: read, plan (sequential vs pool), report.

    .venv/bin/python bench/plan_profile.py [--rows 1000000] [--seed 1] [--modes pool,seq]

Stages, each timed in this process (wall, and CPU seconds of this process and of the worker
processes it waited for): ``read`` (``open_source`` and every batch), ``plan pool`` and
``plan seq`` (``rows.validate_batches`` drained, with worker processes as in ``plan``, and
with them turned off), and ``plan+report`` (``python -m importer plan`` as a child process,
what a person runs). Counts are printed so the modes can be checked to agree.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import PY, run_child, table, workdir
from gen import ensure

from importer.options import InputOptions
from importer.read import source
from importer.validate import mapping, rows


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    (c0, k0), t0 = _cpu(), time.perf_counter()
    out = fn()
    (c1, k1), t1 = _cpu(), time.perf_counter()
    return out, t1 - t0, c1 - c0, k1 - k0


def _plan(opts: InputOptions) -> collections.Counter[str]:
    reader = source.open_source(options=opts)
    colmap = mapping.resolve(columns=reader.info.columns, options=opts)
    counts: collections.Counter[str] = collections.Counter()
    for pb in rows.validate_batches(batches=reader.batches(), mapping=colmap, options=opts):
        counts.update(pb.rows["status"].to_list())
    return counts


def _read(opts: InputOptions) -> int:
    return sum(b.height for b in source.open_source(options=opts).batches())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", default="pool,seq,cli", help="of: pool, seq, cli")
    args = parser.parse_args()
    file = ensure(args.rows, seed=args.seed)
    opts = InputOptions(path=Path(file), default_region="ID")
    modes = args.modes.split(",")
    print(f"[plan_profile] {file.name} on {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    rows = []
    n, wall, cpu, kids = _timed(lambda: _read(opts))
    rows.append(["read", n, wall, cpu, kids])
    for mode in ("pool", "seq"):
        if mode not in modes:
            continue
        mode_opts = opts if mode == "pool" else dataclasses.replace(opts, pool_threshold=1 << 62)
        counts, wall, cpu, kids = _timed(lambda o=mode_opts: _plan(o))  # type: ignore[misc]
        rows.append([f"plan {mode}", sum(counts.values()), wall, cpu, kids])
        print(f"[plan_profile] plan {mode}: {dict(sorted(counts.items()))}", flush=True)
    if "cli" in modes:
        with workdir("plan-profile-") as tmp:
            argv = [PY, "-m", "importer", "plan", str(file), "--default-region", "ID",
                    "--report-dir", str(Path(tmp) / "report")]  # fmt: skip
            child = run_child(argv)
        rows.append(["plan+report (CLI)", args.rows, child.wall_s, child.cpu_s, None])
    table(["stage", "rows", "wall s", "CPU s", "workers CPU s"], rows,
          title=f"plan profile, load average at end {os.getloadavg()[0]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
