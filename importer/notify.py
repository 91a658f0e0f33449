"""``--notify URL``: one JSON document POSTed when a run ends, so a night that failed reaches
someone without cron mail.

The document holds summary.json's numbers (counts by status, reasons, requests, 429s,
retries, elapsed time, and any other count a later summary carries), the exit code, the stop
reason, the source, the account, the journal's run number, the report folder, the host, and a
one-line ``text`` that Slack, Mattermost and Teams incoming webhooks show as it is. Never the
key, never a row's data (no phone, name or email: only counts; the stop reason is redacted as
the log is).

``--notify-on failure`` (the default) sends it when the exit code is not 0, or a row failed
(rows held back by ``--limit`` are not failures), read from the run's own result, so any
later reason for exit 1 counts with no change here; ``always`` sends it after every run.

It goes through the client's HTTP stack (httpx over aiohttp, ``trust_env``: the proxy and CA
settings of the environment), bounded as a whole (``BOUND_S``, 30 s, however many URLs: they
are sent at once), each tried ``ATTEMPTS`` times on a transport error, a 408, 429 or 5xx. A
notification that fails is a warning: the import's exit code never changes. A webhook's URL
often holds its token in its path, so a URL is only ever shown as ``masked_url`` gives it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from httpx_aiohttp import HttpxAiohttpClient

from importer import __version__
from importer.redact import redact

BOUND_S = 30.0  # every notification of a run, retries included
ATTEMPTS = 3
BACKOFF_S = (0.5, 1.0)  # before the second and the third try
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = f"kirim-import/{__version__}"


def masked_url(url: str) -> str:
    """The URL as it may be shown: scheme, host and port; the path (a webhook's token) and
    the query cut to an ellipsis."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unreadable URL)"
    if ":" in host:
        host = f"[{host}]"
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def failed(summary: Mapping[str, Any], exit_code: int) -> bool:
    """The run failed: an exit code other than 0, or a row failed (not held back by
    ``--limit``)."""
    held = summary.get("reasons", {}).get("limit_reached", 0)
    return exit_code != 0 or int(summary.get("failed", 0)) - int(held) > 0


def _numbers(value: Any) -> Any:
    """Only counts: numbers, and tables of them (a later summary's objects of counts too);
    ``None`` for anything else (text may be a row's data)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict):
        # (an empty table stays: "reasons": {} says there was none)
        return {str(k): n for k, v in value.items() if (n := _numbers(v)) is not None}
    return None


_SHOWN = ("created", "updated", "unchanged", "exists", "duplicate_in_file", "invalid", "failed")
_MEANING = {0: "every row fine", 1: "rows invalid or failed, or labels", 2: "refused, nothing sent",
            3: "stopped early"}  # fmt: skip


def document(
    *,
    summary: Mapping[str, Any],
    exit_code: int,
    stopped: str | None,
    source: str,
    account: str | None,
    report_dir: str,
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """What is POSTed: counts and facts of the run, never a row's data or the key."""
    counts = {k: n for k, v in summary.items() if (n := _numbers(v)) is not None}
    reason = redact(stopped, secrets=secrets, mask_contacts=True) if stopped else None
    status = "FAILED" if failed(summary, exit_code) else "ok"
    host = socket.gethostname()
    rows = counts.get("rows_total")
    parts = [f"{k} {counts[k]}" for k in _SHOWN if isinstance(counts.get(k), int) and counts[k]]
    text = f"kirim-import {status}: {source} on {host}: exit {exit_code} " \
        f"({_MEANING.get(exit_code, 'interrupted')})"
    if rows is not None:
        text += f"; {rows} rows" + (f": {', '.join(parts)}" if parts else "")
    labels = counts.get("labels")
    if isinstance(labels, dict) and labels.get("failed"):  # exit 1 with every row fine
        text += f"; labels not attached: {labels['failed']}"
    if counts.get("reasons", {}).get("detach_failed"):
        text += f"; not detached: {counts['reasons']['detach_failed']}"
    if reason:
        text += f"; stopped: {reason}"
    text += f"; report {report_dir}"
    run_id = summary.get("run_id")
    stop_kind, guard = summary.get("stop_kind"), summary.get("guard")
    return {
        "text": text,
        "event": "run_finished",
        "failed": status == "FAILED",
        "exit_code": exit_code,
        "stopped": reason,
        "stop_kind": stop_kind if isinstance(stop_kind, str) else None,  # a word: window, ...
        "guard": guard if isinstance(guard, str) else None,  # the guard rail that refused
        "source": source,
        "account": account,
        "run_id": run_id if isinstance(run_id, int) else None,
        "report_dir": report_dir,
        "host": host,
        "importer_version": __version__,
        "summary": counts,
    }


async def _post(
    client: httpx.AsyncClient, url: str, body: bytes, *, deadline: float
) -> tuple[bool, str]:
    """POST ``body`` to ``url``, tried up to ``ATTEMPTS`` times before ``deadline``
    (monotonic); what happened, in words with no URL in them."""
    what = "not sent"
    for attempt in range(ATTEMPTS):
        left = deadline - time.monotonic()
        if left <= 0:
            return False, f"{what}; out of time"
        try:
            async with asyncio.timeout(left):
                response = await client.post(
                    url,
                    content=body,
                    headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
                )
        except TimeoutError:
            return False, f"no answer within the {BOUND_S:g} s bound"
        except (httpx.HTTPError, OSError) as exc:
            from importer.send.client import transport_code  # our words, not a class name

            what = transport_code(exc)
        else:
            if 200 <= response.status_code < 300:
                return True, f"HTTP {response.status_code}"
            what = f"HTTP {response.status_code}"
            if response.status_code not in _RETRY_STATUS:
                return False, what
        if attempt < len(BACKOFF_S):
            pause = min(BACKOFF_S[attempt], max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(pause)
    return False, f"{what} after {ATTEMPTS} tries"


async def send(
    urls: Sequence[str],
    payload: Mapping[str, Any],
    *,
    logger: logging.Logger,
    bound_s: float = BOUND_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, bool]:
    """POST ``payload`` to every URL at once, within ``bound_s`` in all; a failure is logged
    as a warning, never raised. Returns each URL's success."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    deadline = time.monotonic() + bound_s
    sent: dict[str, bool] = {}
    async with HttpxAiohttpClient(
        timeout=httpx.Timeout(min(bound_s, 10.0)),
        transport=transport,
        trust_env=True,  # proxies and CA settings from the environment, as for Kirim
        follow_redirects=False,
    ) as client:

        async def one(url: str) -> None:
            shown = masked_url(url)
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    ok, how = await _post(client, url, body, deadline=deadline)
            except TimeoutError:
                ok, how = False, f"no answer within the {bound_s:g} s bound"
            sent[url] = ok
            fields = {"url": shown, "outcome": how}
            if ok:
                logger.info("notification sent to %s (%s)", shown, how,
                            extra={"event": "notify_sent", "fields": fields})  # fmt: skip
            else:
                logger.warning(
                    "notification to %s failed: %s; the import's exit code is unchanged",
                    shown, how, extra={"event": "notify_failed", "fields": fields},
                )  # fmt: skip

        await asyncio.gather(*(one(url) for url in urls))
    return sent


async def after_run(
    *,
    urls: Sequence[str],
    notify_on: str,
    summary: Mapping[str, Any],
    exit_code: int,
    source: str,
    account: str | None,
    report_dir: str,
    logger: logging.Logger,
    secrets: tuple[str, ...] = (),
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """The end of a run: notify when the rule says so (``failure``: it failed; ``always``)."""
    if not urls:
        return
    if notify_on != "always" and not failed(summary, exit_code):
        logger.info("no notification: the run did not fail (--notify-on failure)",
                    extra={"event": "notify_skipped", "fields": {}})  # fmt: skip
        return
    stopped = summary.get("stopped")
    payload = document(
        summary=summary, exit_code=exit_code, stopped=stopped if isinstance(stopped, str) else None,
        source=source, account=account, report_dir=report_dir, secrets=secrets,
    )  # fmt: skip
    await send(urls, payload, logger=logger, transport=transport)
