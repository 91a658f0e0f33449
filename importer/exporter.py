"""``kirim-import export``: an account's contacts (or one label's members) read back in pages
(``send.pages``: ``GET /v1/{account}/contacts``, 100 a read, under the read budget) and
written to CSV or Parquet, private (0600 in folders made 0700).

Resumable: each page is appended to a spool beside the output (``FILE.export.jsonl``, one
contact a line) and only then is the cursor of the next page written to a small state file
(``FILE.export.json``: the spool's length and that cursor, replaced atomically). A rerun of
the same export (same output, account and label) cuts the spool back to the length the state
names and goes on from its cursor, so a kill at any moment, then a rerun, writes every
contact once. The output appears only when every page is read: written under a ``.partial``
name, then moved into place; the spool and state are removed.

Columns: ``phone_number``, ``name``, ``email`` (as Kirim holds them), then one column per
metadata key (values as text): the file reads back as an import source with no mapping
flags. CSV cells a spreadsheet would run as a formula are neutralised as the reports' are,
which the reader undoes, so a re-import sends exactly what Kirim holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import polars as pl
from tqdm import tqdm

from importer.errors import StopRun
from importer.formula import neutralise_expr
from importer.options import ExportOptions
from importer.private import FILE_MODE, open_private, private_folder
from importer.redact import redact
from importer.send.client import KirimClient, Verdict
from importer.send.labels import label_pages
from importer.send.limiter import TokenBucket
from importer.send.pages import PagesFailed, pages
from importer.send.preflight import preflight
from importer.send.retry import RetryPolicy, Sender
from importer.send.stop import Sleep, Stop, Why

COLUMNS = ("phone_number", "name", "email")


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export did: ``exit_code`` 0 written, 3 stopped (rerun to resume)."""

    exit_code: int
    output: Path
    contacts: int  # contacts written (or, when stopped, spooled so far)
    pages: int  # pages read by this invocation
    resumed: bool  # it went on from an earlier, interrupted invocation
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def spool_of(output: Path) -> Path:
    return output.with_name(output.name + ".export.jsonl")


def state_of(output: Path) -> Path:
    return output.with_name(output.name + ".export.json")


def _read_state(path: Path, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state when it is this same export's, else None."""
    try:
        state = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or any(state.get(k) != v for k, v in wanted.items()):
        return None
    return state


def _write_state(path: Path, state: dict[str, Any]) -> None:
    partial_path = path.with_name(path.name + ".partial")
    fd = open_private(partial_path)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial_path, path)


async def _label_id(client: KirimClient, sender: Sender, reads: TokenBucket, name: str) -> str:
    """The id of the label named ``name`` (every page of ``GET /v1/labels``); ``StopRun``
    when Kirim has none."""
    async with contextlib.aclosing(label_pages(client, sender, reads)) as replies:
        async for reply in replies:
            if reply.verdict is not Verdict.OK:
                raise StopRun(f"the labels could not be listed: {reply.told}")
            for label in reply.data if isinstance(reply.data, list) else ():
                if isinstance(label, dict) and label.get("name") == name and label.get("id"):
                    return str(label["id"])
    raise StopRun(f"--label {name!r}: Kirim has no label of that name")


async def _read_pages(
    client: KirimClient,
    sender: Sender,
    reads: TokenBucket,
    account: str,
    label_id: str | None,
    spool: Path,
    state_path: Path,
    state: dict[str, Any],
    bar: tqdm[Any],
) -> tuple[int, PagesFailed | None]:
    """Append every page from the state's cursor on to the spool, each followed by the state
    that vouches for it (the spool's length, the next cursor); returns the pages read, and
    the failure that ended them early, if one did."""
    read = 0
    with open(spool, "ab") as handle:
        try:
            async for page in pages(
            client=client, sender=sender, reads=reads, account=account,
            cursor=state["cursor"], label_id=label_id,
        ):  # fmt: skip
                read += 1
                text = "".join(
                    json.dumps(_row(c), ensure_ascii=False) + "\n" for c in page.contacts
                )
                handle.write(text.encode())
                handle.flush()
                os.fsync(handle.fileno())
                state = {
                **state, "cursor": page.next_cursor, "offset": handle.tell(),
                "contacts": int(state["contacts"]) + len(page.contacts),
                "finished": page.next_cursor is None,
            }  # fmt: skip
                _write_state(state_path, state)
                bar.update(len(page.contacts))
        except PagesFailed as exc:
            return read, exc
    return read, None


def _row(contact: dict[str, Any]) -> dict[str, Any]:
    """What the spool keeps of a contact."""
    meta = contact.get("metadata")
    return {
        "id": contact["id"],
        "phone_number": contact["phone_number"],
        "name": contact.get("name") if isinstance(contact.get("name"), str) else None,
        "email": contact.get("email") if isinstance(contact.get("email"), str) else None,
        "metadata": {str(k): _text(v) for k, v in meta.items()} if isinstance(meta, dict) else {},
    }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _frame(spool: Path) -> pl.DataFrame:
    """The spool as the output's table: every contact once (by id, the first kept), its
    metadata keys as columns in name order (a key named like a contact field is left out)."""
    if spool.stat().st_size == 0:
        return pl.DataFrame(schema=dict.fromkeys(COLUMNS, pl.String))
    raw = pl.read_ndjson(spool, infer_schema_length=None)
    raw = raw.unique("id", keep="first", maintain_order=True)
    kind = raw.schema["metadata"]
    keys = sorted(
        f.name
        for f in (kind.fields if isinstance(kind, pl.Struct) else ())
        if f.name not in COLUMNS
    )
    return raw.select(
        *(pl.col(c).cast(pl.String) for c in COLUMNS),
        *(pl.col("metadata").struct.field(k).cast(pl.String).alias(k) for k in keys),
    )


def _write_output(frame: pl.DataFrame, output: Path, kind: str) -> None:
    private_folder(output.parent)
    partial_path = output.with_name(output.name + ".partial")
    fd = open_private(partial_path)
    with os.fdopen(fd, "wb") as handle:
        if kind == "parquet":
            frame.write_parquet(handle)
        else:
            safe = frame.with_columns(neutralise_expr(c) for c in frame.columns)
            safe.write_csv(handle)
    os.chmod(partial_path, FILE_MODE)
    os.replace(partial_path, output)


async def export_async(
    options: ExportOptions,
    *,
    err: TextIO | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    stop: Stop | None = None,
    progress: bool = False,
) -> ExportResult:
    """Export; raises ``StopRun`` when the key, the account or the label is refused before
    anything is written. ``transport``, ``sleep`` and ``stop`` are seams (a test's transport
    that fails midway, a stop requested from a page's arrival)."""
    stop = stop or Stop()
    policy = RetryPolicy(max_attempts=options.max_attempts, max_wait_s=options.max_wait_s)
    sender = Sender(stop=stop, policy=policy, sleep=sleep)
    output = options.output
    spool, state_path = spool_of(output), state_of(output)
    async with KirimClient(
        base_url=options.base_url, api_key=options.api_key, transport=transport,
        timeout_s=options.timeout_s, max_connections=4,
    ) as client:  # fmt: skip
        found = await preflight(client=client, sender=sender, account=options.account)
        reads = TokenBucket(
            per_minute=found.read_per_minute or 600.0, sleep=sleep, sync_first=True, stop=stop
        )
        label_id = None
        if options.label is not None:
            label_id = await _label_id(client, sender, reads, options.label)
        wanted = {"org": found.org, "account": found.account, "label": options.label}
        try:
            private_folder(output.parent)
        except OSError as exc:
            raise StopRun(f"cannot write {output}: {exc.strerror or exc}") from None
        state = _read_state(state_path, wanted) if spool.exists() else None
        resumed = state is not None
        if state is None:
            state = {**wanted, "cursor": None, "offset": 0, "contacts": 0}
            os.close(open_private(spool))  # a new, empty spool
            _write_state(state_path, state)
        with open(spool, "r+b") as handle:  # cut back to what the state vouches for
            handle.truncate(int(state["offset"]))
        os.chmod(spool, FILE_MODE)
        bar = tqdm(
            total=None, initial=int(state["contacts"]), unit=" contacts", file=err or sys.stderr,
            disable=not progress, desc="export", dynamic_ncols=True,
        )  # fmt: skip
        read, restarted = 0, False
        while not state.get("finished"):  # (a kill while the output was written: all read)
            try:
                got, failed = await _read_pages(client, sender, reads, found.account, label_id,
                                                spool, state_path, state, bar)  # fmt: skip
            except OSError as exc:
                stop.request(Why.OUTPUT, f"cannot write {spool}: {exc.strerror or exc}")
                break
            read += got
            state = _read_state(state_path, wanted) or state
            if failed is not None:
                refused = failed.reply.error_code == "invalid_cursor"
                if refused and resumed and not restarted and state["cursor"] is not None:
                    # Kirim no longer knows the saved cursor (an old one): start over, once
                    restarted = True
                    note = f"the saved cursor was refused ({failed}); starting over"
                    print(f"kirim-import: export: {note}", file=err or sys.stderr)
                    state = {**wanted, "cursor": None, "offset": 0, "contacts": 0}
                    _write_state(state_path, state)
                    with open(spool, "r+b") as handle:
                        handle.truncate(0)
                    bar.reset()
                    resumed = False
                    continue
                stop.request(Why.SERVER, str(failed))
            break
        bar.close()
        if not state.get("finished"):
            why = stop.reason or "the pages ended early"
            return ExportResult(3, output, int(state["contacts"]), read, resumed, why)
    try:
        frame = _frame(spool)
        _write_output(frame, output, options.format)
    except OSError as exc:
        why = f"cannot write {output}: {exc.strerror or exc}"
        return ExportResult(3, output, int(state["contacts"]), read, resumed, why)
    for leftover in (spool, state_path):
        with contextlib.suppress(OSError):
            leftover.unlink()
    return ExportResult(0, output, frame.height, read, resumed)


def closing(result: ExportResult) -> str:
    if result.ok:
        again = " (resumed)" if result.resumed else ""
        return (
            f"Exported {result.contacts} contacts to {result.output}{again}; "
            f"{result.pages} pages read."
        )
    return (
        f"Export stopped: {redact(result.stopped or '')}. {result.contacts} contacts read so "
        f"far are kept: rerun the same command to resume from where it stopped."
    )


def main(args: Any, run: Callable[..., Any] = asyncio.run) -> int:
    """``kirim-import export``, from parsed arguments."""
    from importer import configure

    sandbox = bool(getattr(args, "sandbox", False))
    options = configure.export_options(
        output=args.output, format=args.format, label=args.label, base_url=args.base_url,
        account=args.account, timeout=args.timeout, max_attempts=args.max_attempts,
        max_wait=args.max_wait, quiet=args.quiet, sandbox=sandbox,
    )  # fmt: skip
    got: list[int] = []

    def terminated(signum: int, _frame: Any) -> None:  # SIGTERM (systemd, Kubernetes) as Ctrl-C
        got.append(signum)
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminated) if main_thread else None
    try:
        result: ExportResult = run(
            export_async(
                options, err=sys.stderr, progress=not options.quiet and sys.stderr.isatty()
            )
        )
    except KeyboardInterrupt:  # Ctrl-C: a stop like any other; the spool and cursor are kept
        state = _read_state(state_of(options.output), {}) or {}
        contacts = int(state.get("contacts", 0))
        why = "interrupted by SIGTERM" if got else "interrupted (Ctrl-C)"
        result = ExportResult(3, options.output, contacts, 0, False, why)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    print(closing(result), file=sys.stdout if result.ok else sys.stderr)
    return result.exit_code
