"""Real servers for the benchmarks of other sources: a PostgreSQL server (``initdb`` and
``pg_ctl`` in a temporary folder on 127.0.0.1; as Debian's ``postgres`` user when run as
root) and moto's S3-compatible server on loopback. The same as the tests' (tests/sources/
conftest.py), without IAM: the benchmarks measure reading, not access rules."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PASSWORD = "bench-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _pg_bin() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not candidates:
        raise SystemExit("PostgreSQL's server is not installed (apt-get install postgresql)")
    return candidates[-1].parent


@contextmanager
def postgres() -> Iterator[str]:
    """A running server; yields its URI (with the password)."""
    bindir = _pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="kirim-bench-pg-"))
    data, run = folder / "data", folder / "run"
    run.mkdir()
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD)
    prefix: list[str] = []
    if os.getuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        for path in (folder, run, pwfile):
            shutil.chown(path, "postgres")
    port = free_port()
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "kirim", "-A",
         "scram-sha-256", f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o",
         f"-p {port} -k {run} -h 127.0.0.1 -F -c fsync=off", "-l", str(folder / "log"),
         "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://kirim:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], check=False, capture_output=True)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def moto() -> Iterator[dict[str, str]]:
    """A running moto server; yields the AWS_* variables that reach it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(port)
        yield {
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)
