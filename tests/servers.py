"""Real servers on loopback, started and stopped here for the sources' tests
(tests/sources/conftest.py) and the benchmarks (bench/streaming.py): a PostgreSQL server
(``initdb`` and ``pg_ctl`` in a temporary folder on 127.0.0.1, password auth; as Debian's
``postgres`` user when run as root, since initdb refuses root) and moto's S3-compatible
server. Plain Python, no pytest: whether a missing server skips or fails is the caller's.
"""

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, seconds: float = 30) -> bool:
    """Whether something listens on 127.0.0.1:``port`` within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def pg_bin() -> Path | None:
    """The folder of PostgreSQL's server programs, if they are installed."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return candidates[-1].parent if candidates else None


def _as_postgres_user() -> list[str]:
    """initdb refuses to run as root: run the server as Debian's ``postgres`` user then."""
    if os.getuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


@contextmanager
def postgres(password: str) -> Iterator[str]:
    """A running server with the user ``kirim`` of this password; yields its URI (with the
    password). ``RuntimeError`` when PostgreSQL's server is not installed."""
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL's server (initdb, pg_ctl) is not installed")
    folder = Path(tempfile.mkdtemp(prefix="kirim-pg-"))
    data, sockets = folder / "data", folder / "run"
    sockets.mkdir()
    pwfile = folder / "pw"
    pwfile.write_text(password)
    prefix = _as_postgres_user()
    if prefix:
        for path in (folder, sockets, pwfile):
            shutil.chown(path, "postgres")
        folder.chmod(0o700)
    port = free_port()
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "kirim", "-A",
             "scram-sha-256", f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        options = f"-p {port} -k {sockets} -h 127.0.0.1 -F -c fsync=off"
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
             str(folder / "log"), "-w", "start"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield f"postgresql://kirim:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def moto() -> Iterator[str]:
    """A running moto server (``moto[server]``) on loopback; yields its endpoint URL.
    ``RuntimeError`` when it does not start listening within 30 s."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        if not wait_for(port):
            raise RuntimeError(f"moto's server did not start on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
