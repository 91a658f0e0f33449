"""Helpers shared by the benchmark scripts: the sandbox in its own process, its state, running
the importer as a child process (wall time, CPU seconds and peak RSS from ``wait4``), another
tree's importer (a git rev) and a journal's copy to compare against, request bodies built like
the importer builds them, and plain-table printing.

Everything talks to loopback only.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
_VENV_PY = ROOT / ".venv" / "bin" / "python"
PY = str(_VENV_PY if _VENV_PY.exists() else Path(sys.executable))
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
UNLIMITED = ("--write-per-minute", "100000000", "--read-per-minute", "1000000000")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))


# --- the sandbox ---------------------------------------------------------------------------


class Sandbox:
    """``python -m importer.sandbox`` in a separate process; a context manager."""

    def __init__(
        self,
        *,
        write_per_minute: int | None = None,
        read_per_minute: int | None = None,
        latency_ms: str = "0",
        seed: int = 1,
        unlimited: bool = False,
    ) -> None:
        args = ["--port", "0", "--latency-ms", latency_ms, "--seed", str(seed)]
        if unlimited:
            args += list(UNLIMITED)
        if write_per_minute is not None:
            args += ["--write-per-minute", str(write_per_minute)]
        if read_per_minute is not None:
            args += ["--read-per-minute", str(read_per_minute)]
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.token = ""
        self.cpu_s = 0.0

    def __enter__(self) -> Sandbox:
        self.proc = subprocess.Popen(
            [PY, "-m", "importer.sandbox", *self.args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=ENV,
        )
        assert self.proc.stdout is not None
        found: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while len(found) < 2 and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            key, _, value = line.strip().partition("=")
            if key in ("KIRIM_BASE_URL", "KIRIM_API_KEY"):
                found[key] = value
        if len(found) < 2:
            self.proc.kill()
            self.proc.wait()
            raise SystemExit("sandbox did not start")
        self.base_url, self.token = found["KIRIM_BASE_URL"], found["KIRIM_API_KEY"]
        return self

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")

    def state(self, timeout: float = 120.0) -> dict[str, Any]:
        """``GET /_sandbox/state`` (no auth). Costly once it holds many contacts."""
        with urllib.request.urlopen(f"{self.root}/_sandbox/state", timeout=timeout) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def account(self) -> str:
        return str(self.state()["account_id"])

    def cpu_seconds(self) -> float:
        import psutil

        if self.proc is None or self.proc.poll() is not None:
            return self.cpu_s
        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        try:
            self.cpu_s = self.cpu_seconds()
        except Exception:
            self.cpu_s = float("nan")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def iso_to_epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def create_times(state: dict[str, Any]) -> list[float]:
    """Epoch seconds of every stored contact's ``created_at`` (millisecond resolution)."""
    return sorted(iso_to_epoch(c["created_at"]) for c in state["contacts"])


# --- another tree, a journal's copy --------------------------------------------------------


def program(tree: Path) -> tuple[str, str]:
    """``python -c`` that runs the importer of ``tree``, whatever PYTHONPATH says."""
    return (
        "-c",
        f"import sys; sys.path.insert(0, {str(tree)!r}); from importer.cli import main; "
        "raise SystemExit(main(sys.argv[1:]))",
    )


def checkout(rev: str, into: Path) -> Path:
    archive = into / "base.tar"
    subprocess.run(["git", "archive", "-o", str(archive), rev], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "base", filter="data")
    return into / "base"


def copy(journal: Path, to: Path) -> Path:
    with sqlite3.connect(journal) as source, sqlite3.connect(to) as copied:
        source.backup(copied)
    return to


# --- child processes -----------------------------------------------------------------------


@dataclass
class Child:
    """What a finished child process cost."""

    returncode: int
    wall_s: float
    cpu_s: float  # user + system of the child itself
    max_rss_mib: float  # peak resident set size (from wait4's rusage)
    started_epoch: float  # time.time() just before the child was started
    output: str = ""
    samples: list[tuple[float, float]] = field(default_factory=list)  # (t, rss MiB)


def run_child(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
    watch: Callable[[int, float], bool] | None = None,
    sample_rss_every: float = 0.0,
    grace_s: float = 20.0,
) -> Child:
    """Run ``argv`` to the end (or SIGTERM it at ``timeout_s``, SIGKILL ``grace_s`` later).

    ``watch(pid, elapsed)`` is called every ~20 ms while it runs, until it returns True.
    Peak RSS and CPU come from ``os.wait4`` on this very child, so nothing is sampled or
    missed; ``sample_rss_every`` additionally records an RSS curve.
    """
    out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
    started_epoch = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True, env=env or ENV
    )
    samples: list[tuple[float, float]] = []
    watching = watch is not None
    last_sample = -1e9
    termed_at: float | None = None
    status = 0
    rusage = None
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        now = time.perf_counter() - t0
        if watching and watch is not None and watch(proc.pid, now):
            watching = False
        if sample_rss_every and now - last_sample >= sample_rss_every:
            last_sample = now
            rss = _rss_mib(proc.pid)
            if rss is not None:
                samples.append((now, rss))
        if timeout_s is not None and termed_at is None and now > timeout_s:
            proc.send_signal(signal.SIGTERM)
            termed_at = now
        if termed_at is not None and now > termed_at + grace_s:
            proc.kill()
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read()
    out.close()
    assert rusage is not None
    return Child(
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=rusage.ru_utime + rusage.ru_stime,
        max_rss_mib=rusage.ru_maxrss / 1024,
        started_epoch=started_epoch,
        output=text,
        samples=samples,
    )


def _rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class RunResult:
    child: Child
    summary: dict[str, Any]


def importer_run(
    box: Sandbox,
    file: Path,
    *,
    workdir: Path,
    on_existing: str = "create",
    concurrency: int = 32,
    state_db: Path | None = None,
    extra: Sequence[str] = (),
    timeout_s: float | None = None,
    watch: Callable[[int, float], bool] | None = None,
    sample_rss_every: float = 0.0,
    program: Sequence[str] = ("-m", "importer"),
    grace_s: float = 20.0,
) -> RunResult:
    """``python -m importer run FILE`` (or ``python *program* run FILE``) against ``box``;
    reads the report's summary.json."""
    report = workdir / "report"
    argv = [
        PY, *program, "run", str(file),
        "--base-url", box.base_url,
        "--report-dir", str(report),
        "--state", str(state_db or workdir / "journal.sqlite"),
        "--on-existing", on_existing,
        "--concurrency", str(concurrency),
        "--default-region", "ID",
        *extra,
    ]  # fmt: skip
    env = {**ENV, "KIRIM_API_KEY": box.token}
    child = run_child(
        argv, env=env, timeout_s=timeout_s, watch=watch, sample_rss_every=sample_rss_every,
        grace_s=grace_s,
    )  # fmt: skip
    summary_path = report / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if not summary:
        print(f"[warn] no summary.json (exit {child.returncode}):\n{child.output[-2000:]}")
    return RunResult(child, summary)


# --- bodies as the importer sends them -----------------------------------------------------


def bodies(file_rows: int, *, seed: int = 1, clean: bool = True) -> Iterator[dict[str, Any]]:
    """Create bodies for the valid, first-seen rows of the generated file, in file order:
    ``{phone_number, email, name, metadata: {City}}`` like ``importer.send.upsert.make_body``."""
    from gen import Generator

    for r in Generator(seed=seed, clean=clean).rows(file_rows):
        if not r.valid or r.duplicate or r.e164 is None:
            continue
        body: dict[str, Any] = {"phone_number": r.e164, "email": r.email.strip() or None}
        name = " ".join(r.name.split())
        if name:
            body["name"] = name
        if r.city:
            body["metadata"] = {"City": r.city}
        yield body


def encoded(account: str, items: Sequence[dict[str, Any]]) -> list[tuple[bytes, str]]:
    """(canonical JSON bytes, Idempotency-Key) per body, with the importer's own scheme."""
    from importer.send.client import canonical_json, idempotency_key

    return [(canonical_json(b).encode(), idempotency_key(account=account, body=b)) for b in items]


# --- output --------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    """Print a plain, right-aligned table."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if v != v:  # NaN
                return "-"
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
        return "-" if v is None else str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    if title:
        print(f"\n== {title}")
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    sys.stdout.flush()


def workdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory on disk (not tmpfs) under bench/data."""
    DATA.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=prefix, dir=DATA)
