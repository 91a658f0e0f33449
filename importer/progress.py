"""What a person sees while a run goes: a tqdm bar on a terminal, a log line every so often
under cron, and log messages that never carry the API key and mask contact details.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TextIO
from urllib.parse import unquote

from tqdm import tqdm

from importer.redact import redact


class _AboveTheBar:
    """A stream for logging that prints above a tqdm bar instead of through it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        tqdm.write(text, file=self._stream, end="")

    def flush(self) -> None:
        self._stream.flush()


LOGGER = "importer"  # the one logger the importer writes to; a host configures it


@contextlib.contextmanager
def logging_to(
    *, stream: TextIO, verbose: bool, quiet: bool = False, log_format: str = "text"
) -> Iterator[logging.Logger]:
    """The command line's log while the block runs: the ``importer`` logger writing to
    ``stream`` above the bar (``quiet``: warnings only); put back as it was afterwards, so a
    host that called ``cli.main`` keeps its own logging. (The Python API leaves the logger to
    the host.) ``log_format="json"``: one JSON object a line (``importer.jsonlog``), no bar;
    ``quiet`` keeps the final summary event too."""
    logger = logging.getLogger(LOGGER)
    before = (logger.handlers[:], logger.level, logger.propagate)
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    if log_format == "json":
        from importer.jsonlog import JsonFormatter, QuietJson

        handler: logging.Handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        if quiet:
            handler.addFilter(QuietJson())
            level = logging.INFO
    else:
        handler = logging.StreamHandler(_AboveTheBar(stream))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.handlers = [handler]
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.handlers, logger.propagate = before[0], before[2]
        logger.setLevel(before[1])


# The redaction of the run a record was logged in: its key, and whether contacts are masked.
_REDACTION: contextvars.ContextVar[tuple[tuple[str, ...], bool] | None] = (
    contextvars.ContextVar("redaction", default=None)
)


class _RunRedaction(logging.Filter):
    """Installed once on the importer's and httpx's loggers (httpx logs every request's URL,
    a looked-up phone in it): a record logged inside a run, in its context, is redacted with
    that run's key and masking before any handler sees it; two runs in two threads each
    redact their own; outside a run a record passes as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _REDACTION.get()
        if current is not None:
            secrets, mask = current
            text = record.getMessage()
            if record.name != LOGGER:  # a URL: its query's %2B62... is a phone too
                text = unquote(text)
            record.msg = redact(text, secrets=secrets, mask_contacts=mask)
            record.args = ()
        return True


_FILTER = _RunRedaction()
for _name in (LOGGER, "httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_FILTER)


def current_redaction() -> tuple[tuple[str, ...], bool]:
    """The secrets and masking of the run this code runs in (none outside a run)."""
    return _REDACTION.get() or ((), False)


@contextlib.contextmanager
def redacting(*, secrets: tuple[str, ...], mask_contacts: bool) -> Iterator[None]:
    """While the block runs (in this context and the tasks it starts), every record of the
    importer's or httpx's loggers is redacted before any handler (the CLI's, or a host's
    after propagation) sees it."""
    token = _REDACTION.set((secrets, mask_contacts))
    try:
        yield
    finally:
        _REDACTION.reset(token)


class Progress:
    """Counts rows as they settle; draws a bar on a terminal, else logs every ``every_s``."""

    def __init__(
        self,
        *,
        stream: TextIO = sys.stderr,
        total: int | None,
        logger: logging.Logger,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        quiet: bool = False,
        bar: bool = True,
    ) -> None:
        self.counts: Counter[str] = Counter()
        self.logger = logger
        self._total = total
        self._every = every_s
        self._clock = clock
        self._started = self._last = clock()
        self._bar = (
            tqdm(total=total, unit="row", file=stream, dynamic_ncols=True, smoothing=0.05)
            if stream.isatty() and not quiet and bar
            else None
        )

    def advance(self, status: str, n: int = 1) -> None:
        self.counts[status] += n
        if self._bar is not None:
            self._bar.update(n)
            if self.counts.total() % 50 == 0:
                self._bar.set_postfix(
                    created=self.counts["created"], failed=self.counts["failed"], refresh=False
                )
            return
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            self.logger.info(
                "progress: %s", self.line(), extra={"event": "progress", "fields": self.fields()}
            )

    def fields(self) -> dict[str, object]:
        """The progress event's fields: rows so far, of how many, rate, ETA, counts."""
        done = self.counts.total()
        rate = done / max(self._clock() - self._started, 1e-9)
        left = None if self._total is None else max(self._total - done, 0)
        return {
            "rows_done": done,
            "rows_total": self._total,
            "rate_per_s": round(rate, 1),
            "eta_s": None if left is None or rate <= 0 else round(left / rate, 1),
            "counts": dict(sorted(self.counts.items())),
        }

    def line(self) -> str:
        done = self.counts.total()
        rate = done / max(self._clock() - self._started, 1e-9)
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        return f"{done} rows ({rate:.0f}/s): {parts}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix(created=self.counts["created"], failed=self.counts["failed"])
            self._bar.close()
