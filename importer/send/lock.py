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
_ATTEMPTS = 100  # opens of a journal that another run removes as it ends (see journal_lock)


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


def _open(real: Path) -> tuple[int, bool]:
    """The journal's file, opened (made, 0600, when there is none: then ``True``)."""
    try:
        return os.open(real, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE), True
    except FileExistsError:
        return os.open(real, os.O_RDWR), False


def _still_named(fd: int, real: Path) -> bool:
    """Whether ``real`` still names the file ``fd`` has open (a run that made the journal
    for its lock, and wrote nothing, removes it when it ends)."""
    try:
        now = os.stat(real)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


@contextlib.contextmanager
def journal_lock(journal: Path) -> Iterator[None]:
    """Hold the journal's lock for the block; ``JournalError`` at once if another run has it,
    through whatever name. A journal file made for the lock is removed at the end if nothing
    was written to it (a run stopped at its pre-flight leaves no empty journal behind)."""
    real = journal.resolve()  # symlinks and relative parts; hard links meet on the inode
    for _ in range(_ATTEMPTS):
        try:
            private_folder(real.parent)
            fd, made = _open(real)
        except FileNotFoundError:
            continue  # removed between the two opens: make it
        except OSError as exc:
            raise JournalError(f"the journal {journal}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd, real)
            os.close(fd)
            raise JournalError(
                f"the journal {journal} is in use by another run ({holder}); one run per "
                "journal: wait for it to finish, or give this one its own --state"
            ) from None
        if _still_named(fd, real):
            break
        os.close(fd)  # the file locked was removed meanwhile: lock the one the name has now
    else:
        raise JournalError(f"the journal {journal} kept being removed as it was opened")
    try:
        _write_holder(fd, real)
        yield
    finally:
        wal = real.with_name(real.name + "-wal")
        if made and os.fstat(fd).st_size == 0 and not wal.exists():
            with contextlib.suppress(OSError):
                os.unlink(real)  # under the lock: a newcomer then locks the new file
        os.close(fd)  # lets go of the lock
