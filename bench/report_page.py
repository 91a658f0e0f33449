"""The README's picture of a run's report page, made by the headless browser the tests use.

    .venv/bin/python bench/report_page.py [--out docs/report-page.png] [--rows 900]

Imports a generated file (valid phones written as +62, 0062 and 0812, a fixed line, a few
invalid rows, one named like an HTML tag, and duplicates) into the sandbox in this process, at
600 writes/min with 30-90 ms latency and 1% server faults; 12 s in, the sandbox answers every
write 429 for 2 s, as if another integration had spent the budget. Then it screenshots the
run's report.html with chromium (tests/browser.py) and prints the paths and the summary.
About 40 s. Loopback only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import tempfile
import threading
from pathlib import Path

from common import ROOT

from importer.cli import main
from importer.sandbox import Sandbox, SandboxConfig
from tests import browser


def contacts(path: Path, rows: int) -> Path:
    rng = random.Random(15)
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["No HP", "Nama", "Kota"])
        for i in range(rows):
            nsn = f"812{i:08d}"
            written = rng.choice([f"+62{nsn}", f"0{nsn}", f"0{nsn}", f"0062{nsn}"])
            out.writerow([written, f"Pelanggan {i}", rng.choice(["Jakarta", "Bandung", "Medan"])])
        out.writerow(["+62215550123", "Kantor Jakarta", "Jakarta"])  # a fixed line
        for bad in ("0812", "12345", "6,28123E+11", "", "not a phone"):
            out.writerow([bad, "Salah", "Bogor"])
        out.writerow(["0812-9", "<img src=x onerror=alert(1)>", "Bogor"])
        for i in range(4):
            out.writerow([f"+62812{i:08d}", "Lagi", "Jakarta"])
    return path


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report-page.png")
    parser.add_argument("--rows", type=int, default=900)
    args = parser.parse_args()
    chromium = browser.find()
    if chromium is None:
        raise SystemExit("no chromium on PATH (apt-get install chromium, or set CHROMIUM)")
    config = SandboxConfig(write_per_minute=600, latency_ms=(30.0, 90.0), fault_rate=0.01, seed=15)
    with tempfile.TemporaryDirectory() as tmp, Sandbox(config) as box:
        work = Path(tmp)
        file = contacts(work / "pelanggan.csv", args.rows)
        os.environ["KIRIM_API_KEY"] = box.token
        busy = threading.Timer(12.0, lambda: box.set_faults(retry_after_s=2))
        calm = threading.Timer(14.0, lambda: box.set_faults(retry_after_s=None))
        busy.start()
        calm.start()
        reports = work / "reports" / "pelanggan-run"
        code = main(
            ["run", str(file), "--base-url", box.base_url, "--default-region", "ID",
             "--report-dir", str(reports), "--state", str(work / "journal.sqlite")]
        )  # fmt: skip
        busy.cancel()
        calm.cancel()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        browser.screenshot(chromium, reports / "report.html", args.out, width=1100, height=1480)
        summary = json.loads((reports / "summary.json").read_text())
    print(f"exit {code}; screenshot: {args.out}")
    print(json.dumps({k: summary[k] for k in list(summary)[:12]}))


if __name__ == "__main__":
    main_()
