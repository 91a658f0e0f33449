"""One run per journal: a second process on the same ``--state`` file gives way before it
writes anything.

The lock is an advisory ``flock`` on ``<journal>.lock``, held for the whole run. The kernel
lets go of it when the process ends, however it ends (a SIGKILL, a power cut), so a lock left
by a killed run is simply free: the next run takes it. The file holds who has it (pid, host,
start time) so the one that gives way can say whom it waits for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from importer.errors import JournalError
from importer.private import FILE_MODE, private_folder


def lock_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".lock")


def _holder(path: Path) -> str:
    try:
        who = json.loads(path.read_text(encoding="utf-8"))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(who["started"])))
        return f"pid {int(who['pid'])} on {who['host']}, started {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def journal_lock(journal: Path) -> Iterator[None]:
    """Hold the journal's lock for the block; ``JournalError`` at once if another run has it."""
    path = lock_path(journal)
    try:
        private_folder(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise JournalError(f"the journal's lock {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalError(
                f"the journal {journal} is in use by another run ({_holder(path)}); one run "
                "per journal: wait for it to finish, or give this one its own --state"
            ) from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        yield
    finally:
        os.close(fd)  # lets go of the lock; the file stays (removing it would race a newcomer)
