"""A real headless browser for the report page: Debian's ``chromium``, driven by its own
command line (``--dump-dom``: the DOM after the page loaded; ``--screenshot``: a PNG).

The command line needs no driver package and no browser download, and these two calls are
all the tests need (the page has no script to interact with). ``$CHROMIUM`` names another
binary. Each call gets a throwaway profile and the flags that keep Chromium off the network
(no component updates, sync or background fetches); ``--no-sandbox`` only when running as
root, which Chromium refuses otherwise (the page is our own file).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
)


def find() -> str | None:
    """The browser's path, or None."""
    wanted = os.environ.get("CHROMIUM")
    if wanted:
        return shutil.which(wanted)
    return next((p for name in NAMES if (p := shutil.which(name))), None)


def require() -> str:
    """The browser, for a test: skip when it is missing, but fail under CI (``CI=true``),
    where ``.ci/run`` installs it and a skip would hide that the page went unchecked."""
    found = find()
    if found is None:
        where = f"$CHROMIUM={os.environ['CHROMIUM']}" if os.environ.get("CHROMIUM") else "PATH"
        why = f"no chromium found ({where}): apt-get install chromium, or set CHROMIUM"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    return found


def _run(browser: str, page: Path, *extra: str, timeout_s: float = 60.0) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        flags = [*FLAGS, f"--user-data-dir={profile}", *extra]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")
        done = subprocess.run(
            [browser, *flags, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"{browser} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def dump_dom(browser: str, page: Path) -> str:
    """The page's DOM, serialised after it loaded."""
    return _run(browser, page, "--dump-dom")


def screenshot(
    browser: str, page: Path, out: Path, *, width: int = 1100, height: int = 1600
) -> Path:
    """A PNG of the page's top ``width`` x ``height`` CSS pixels."""
    _run(browser, page, f"--screenshot={out.resolve()}", f"--window-size={width},{height}")
    if not out.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot to {out}")
    return out
