"""What a person sees while a run goes: a tqdm bar on a terminal, a log line every so often
under cron, and log messages that never carry the API key and mask contact details.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TextIO

from tqdm import tqdm

from importer.redact import redact


class RedactingFilter(logging.Filter):
    def __init__(self, *, secrets: tuple[str, ...], mask_contacts: bool) -> None:
        super().__init__()
        self._secrets = secrets
        self._mask = mask_contacts

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), secrets=self._secrets, mask_contacts=self._mask)
        record.args = ()
        return True


class _AboveTheBar:
    """A stream for logging that prints above a tqdm bar instead of through it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        tqdm.write(text, file=self._stream, end="")

    def flush(self) -> None:
        self._stream.flush()


LOGGER = "importer"  # the one logger the importer writes to; a host configures it


def setup_logging(*, stream: TextIO, verbose: bool, quiet: bool = False) -> logging.Logger:
    """The command line's log: the ``importer`` logger writing to ``stream`` above the bar;
    ``quiet``: warnings only. (The Python API leaves the logger to the host.)"""
    logger = logging.getLogger(LOGGER)
    logger.handlers.clear()
    handler = logging.StreamHandler(_AboveTheBar(stream))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    return logger


@contextlib.contextmanager
def redacting(
    logger: logging.Logger, *, secrets: tuple[str, ...], mask_contacts: bool
) -> Iterator[None]:
    """While the block runs, every record the logger takes is redacted before any handler
    (the CLI's, or a host's after propagation) sees it."""
    only = RedactingFilter(secrets=secrets, mask_contacts=mask_contacts)
    logger.addFilter(only)
    try:
        yield
    finally:
        logger.removeFilter(only)


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
    ) -> None:
        self.counts: Counter[str] = Counter()
        self.logger = logger
        self._every = every_s
        self._clock = clock
        self._started = self._last = clock()
        self._bar = (
            tqdm(total=total, unit="row", file=stream, dynamic_ncols=True, smoothing=0.05)
            if stream.isatty() and not quiet
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
            self.logger.info("progress: %s", self.line())

    def line(self) -> str:
        done = self.counts.total()
        rate = done / max(self._clock() - self._started, 1e-9)
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        return f"{done} rows ({rate:.0f}/s): {parts}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix(created=self.counts["created"], failed=self.counts["failed"])
            self._bar.close()
