"""Files that hold personal data (names, phones, emails) are their owner's alone: folders the
importer creates are 0700, files it creates 0600, whatever the umask (a shared cron host's
022 would make them readable by every user)."""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: Path) -> None:
    """Create ``path`` and any missing parents, each 0700 (existing folders are left as
    they are: they are the user's choice)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for folder in missing:
        os.chmod(folder, FOLDER_MODE)


def private_file(path: Path) -> None:
    """Make ``path`` exist with mode 0600 (created so, or narrowed if it was wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def open_private(path: Path) -> int:
    """A new file (truncated if it exists) for writing, mode 0600; returns its descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd
