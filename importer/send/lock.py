"""One run per journal: a second process on the same journal gives way before it writes
anything, whatever path names the journal (a symlink, a hard link, another relative path).

The lock is an advisory ``flock`` on the journal file itself, held for the whole run: a lock
belongs to the file (its inode), not to a name, so every name of one journal meets the same
lock. SQLite locks with ``fcntl``, which ``flock`` does not touch; the descriptor is closed
only after the run's journal is (closing any descriptor of a file drops the process's
``fcntl`` locks on it). The kernel lets go of the lock when the process ends, however it ends
(a SIGKILL, a power cut), so a lock left by a killed run is simply free: the next run takes it.

Who holds it (pid, host, start time) is written on the journal itself, as an extended
attribute, so a run that came through another name can still say whom it waits for; on a
file system without extended attributes, in ``<journal>.lock`` beside the journal's real path.
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

HOLDER_ATTRIBUTE = "user.kirim_import.holder"


def _sidecar(real: Path) -> Path:
    return real.with_name(real.name + ".lock")


def _write_holder(fd: int, real: Path) -> None:
    me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
    try:
        os.setxattr(fd, HOLDER_ATTRIBUTE, me.encode())
    except OSError:  # no extended attributes here: the file beside the journal says it
        side = os.open(_sidecar(real), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.write(side, me.encode())
        finally:
            os.close(side)


def _holder(fd: int, real: Path) -> str:
    try:
        try:
            raw = os.getxattr(fd, HOLDER_ATTRIBUTE)
        except OSError:
            raw = _sidecar(real).read_bytes()
        who = json.loads(raw)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(who["started"])))
        return f"pid {int(who['pid'])} on {who['host']}, started {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def journal_lock(journal: Path) -> Iterator[None]:
    """Hold the journal's lock for the block (creating the journal's file, 0600, if it is
    new); ``JournalError`` at once if another run has it, through whatever name."""
    real = journal.resolve()  # symlinks and relative parts; hard links meet on the inode
    try:
        private_folder(real.parent)
        fd = os.open(real, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise JournalError(f"the journal {journal}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalError(
                f"the journal {journal} is in use by another run ({_holder(fd, real)}); one "
                "run per journal: wait for it to finish, or give this one its own --state"
            ) from None
        _write_holder(fd, real)
        yield
    finally:
        os.close(fd)  # lets go of the lock
