"""A URL's bytes into a private temporary file, streamed, with a progress bar: the input's
local copy, which ``source`` then reads exactly as it reads a file on disk (format detection,
encodings, structure rules, compression and report alike).

Every URL source is downloaded first, Parquet and UTF-8 CSV included: the reader checks the
whole input before anything is sent, then reads it again to send it, and reading an object
twice over the network could read two versions of it. Memory stays flat (a chunk at a time);
the copy is 0600 in a 0700 folder, removed when the reader closes, and a copy left by a run
that was killed is removed by the next one (its folder names a process that is gone).

- ``https://`` (and ``http://`` to loopback) through httpx, which reads ``SSL_CERT_FILE``,
  ``SSL_CERT_DIR`` and the proxy variables as for the Kirim API. ``user:password@`` becomes
  HTTP basic auth for that host only: a redirect to another host is followed without it.
- ``s3://``, ``gs://``, ``az://`` and ``abfs://`` through object_store (``obstore``), the
  object store layer polars' own cloud support is built on: credentials from where the
  cloud SDKs look for them (``AWS_*`` and profiles, ``GOOGLE_APPLICATION_CREDENTIALS``,
  ``AZURE_*``), and ``AWS_ENDPOINT_URL`` for an S3-compatible store (plain http only to
  loopback).

A download that fails (a missing object, refused credentials, a body cut short) is an
``InputError`` (exit 2, nothing sent) that names the URL without its credentials.
"""

from __future__ import annotations

import contextvars
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx
from tqdm import tqdm

from importer.errors import InputError
from importer.private import open_private
from importer.read.location import CLOUD_SCHEMES, is_loopback, redact_url
from importer.redact import redact

if TYPE_CHECKING:
    from obstore.store import ClientConfig

# Whether a download shows its progress bar (on a terminal): the CLI's, and the API's with
# progress=True; otherwise nothing is printed.
PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("download_bar", default=False)
PREFIX = "kirim-import-dl-"
CHUNK = 1 << 20
MAX_REDIRECTS = 5
TIMEOUT_S = 60.0  # per read: a server that stops sending ends the download
_FRESH_S = 60  # a folder younger than this without its process file is being made now


def download(url: str, *, name: str) -> tuple[tempfile.TemporaryDirectory[str], Path]:
    """``url`` into a new private folder as ``name``; the folder (the caller removes it) and
    the file."""
    sweep()
    try:
        tmpdir = tempfile.TemporaryDirectory(prefix=PREFIX)
    except OSError as exc:
        raise InputError(
            f"{redact_url(url)}: cannot make a private folder for the download in "
            f"{tempfile.gettempdir()} ({exc.strerror or exc}); set TMPDIR to a folder with room"
        ) from None
    try:
        (Path(tmpdir.name) / "pid").write_text(str(os.getpid()), "ascii")
        local = Path(tmpdir.name) / name
        with os.fdopen(open_private(local), "wb") as out:
            if urlsplit(url).scheme.lower() in CLOUD_SCHEMES:
                _cloud(url, out)
            else:
                _http(url, out)
    except OSError as exc:  # the local copy: a full disk, a temporary folder we cannot write
        tmpdir.cleanup()
        raise InputError(
            f"{redact_url(url)}: cannot save the download in {tmpdir.name} "
            f"({exc.strerror or exc}); set TMPDIR to a folder with room"
        ) from None
    except BaseException:
        tmpdir.cleanup()
        raise
    return tmpdir, local


def sweep(folder: Path | None = None) -> list[Path]:
    """Remove the download folders of runs that are gone (killed before they cleaned up);
    the ones removed."""
    root = Path(folder or tempfile.gettempdir())
    removed = []
    try:
        entries = [p for p in root.iterdir() if p.name.startswith(PREFIX)]
    except OSError:
        return []
    for entry in entries:
        try:
            info = entry.lstat()
            if not entry.is_dir() or entry.is_symlink() or info.st_uid != os.getuid():
                continue
            pid_file = entry / "pid"
            if pid_file.is_file():
                if _alive(int(pid_file.read_text("ascii").strip() or 0)):
                    continue
            elif time.time() - info.st_mtime < _FRESH_S:
                continue
        except (OSError, ValueError):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _bar(total: int | None, shown: str) -> tqdm[Any]:
    show = PROGRESS.get() and sys.stderr.isatty()
    return tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
        desc=f"Downloading {shown}", leave=False, disable=not show, dynamic_ncols=True,
    )  # fmt: skip


def _http(url: str, out: BinaryIO) -> None:
    shown = redact_url(url)
    parts = urlsplit(url)
    secrets = tuple(p for p in (parts.password, parts.query) if p)
    auth = None
    if parts.username:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    origin = _origin(url)
    current = _bare(url)
    try:
        with httpx.Client(
            trust_env=True, follow_redirects=False, timeout=httpx.Timeout(TIMEOUT_S)
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                # basic auth goes to the URL's own host only, never to where it redirects
                given = auth if _origin(current) == origin else None
                with client.stream("GET", current, auth=given) as answer:
                    if answer.is_redirect and "location" in answer.headers:
                        current = _next(current, answer.headers["location"], shown)
                        continue
                    if answer.status_code != 200:
                        raise InputError(_refused(shown, answer.status_code, answer.reason_phrase))
                    _save(answer, out, shown)
                    return
    except httpx.RemoteProtocolError as exc:
        raise InputError(
            f"{shown}: the download was cut short (the server closed the connection before "
            f"the whole file came: {redact(str(exc), secrets=secrets)}); nothing was read"
        ) from None
    except httpx.HTTPError as exc:
        what = redact(str(exc), secrets=secrets) or type(exc).__name__
        raise InputError(f"{shown}: the download failed ({what})") from None
    raise InputError(f"{shown}: more than {MAX_REDIRECTS} redirects; give the final URL")


def _save(answer: httpx.Response, out: BinaryIO, shown: str) -> None:
    length = answer.headers.get("content-length")
    expected = int(length) if length and length.isdigit() else None
    identity = answer.headers.get("content-encoding", "identity") == "identity"
    with _bar(expected if identity else None, shown) as bar:
        for chunk in answer.iter_bytes(CHUNK):
            out.write(chunk)
            bar.update(len(chunk))
    if expected is not None and answer.num_bytes_downloaded != expected:
        raise InputError(
            f"{shown}: the download was cut short ({answer.num_bytes_downloaded} of "
            f"{expected} bytes); nothing was read"
        )


def _refused(shown: str, status: int, reason: str) -> str:
    hint = {
        401: "the server wants credentials: give them in the URL (https://user:password@...)",
        403: "the server refused access: check the credentials or the link's expiry",
        404: "no file there: check the URL",
    }.get(status, "")
    return f"{shown}: the server answered HTTP {status} {reason}" + (f"; {hint}" if hint else "")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _bare(url: str) -> str:
    """``url`` without ``user:password@`` (they travel as basic auth instead)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _next(current: str, location: str, shown: str) -> str:
    target = urljoin(current, location)
    parts = urlsplit(target)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return _bare(target)
    raise InputError(
        f"{shown}: redirected to {redact_url(target)}, which is not https (plain http only "
        "to loopback); not followed"
    )


def _store_options(url: str) -> ClientConfig | None:
    """object_store's client options: plain http to an S3-compatible endpoint on loopback."""
    if urlsplit(url).scheme.lower() != "s3":
        return None
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT") or ""
    parts = urlsplit(endpoint)
    if parts.scheme != "http":
        return None
    if not is_loopback(parts.hostname):
        raise InputError(
            f"AWS_ENDPOINT_URL {redact_url(endpoint)}: plain http is only allowed to loopback; "
            "use https"
        )
    return cast("ClientConfig", {"allow_http": True})


def _cloud(url: str, out: BinaryIO) -> None:
    import obstore
    from obstore.exceptions import (
        NotFoundError,
        PermissionDeniedError,
        UnauthenticatedError,
    )
    from obstore.store import from_url

    shown = redact_url(url)
    parts = urlsplit(url)
    folder, _, name = parts.path.rpartition("/")
    if not name:
        raise InputError(f"{shown}: the URL names a folder, not an object")
    base = urlunsplit((parts.scheme, parts.netloc, folder + "/", "", ""))
    try:
        store = from_url(base, client_options=_store_options(url))
        result = obstore.get(store, unquote(name))
        size = int(result.meta["size"])
        written = 0
        with _bar(size, shown) as bar:
            for chunk in result.stream(min_chunk_size=CHUNK):
                out.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    except (NotFoundError, FileNotFoundError):
        raise InputError(f"{shown}: no such object (check the bucket and the key)") from None
    except (PermissionDeniedError, PermissionError):
        raise InputError(
            f"{shown}: access denied: the credentials in the environment cannot read this "
            "object"
        ) from None
    except UnauthenticatedError:
        raise InputError(
            f"{shown}: the store refused the credentials in the environment"
        ) from None
    except InputError:
        raise
    except Exception as exc:  # obstore's GenericError and the rest: its first line says why
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{shown}: cannot read the object ({why})") from None
    if written != size:
        raise InputError(
            f"{shown}: the download was cut short ({written} of {size} bytes); nothing was read"
        )
