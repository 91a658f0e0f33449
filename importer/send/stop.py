"""Whether and why the run stops: the one owner of that decision.

Anything that learns the run cannot go on says so here (``request``): Kirim refusing the key
or the account, the journal failing, the retry budget spent, a signal, a wait longer than the
user allows. The first reason wins and is the one reported; later ones are ignored. Those who
must react (the token bucket's waiters, the retry loop, the work queue) ask ``requested``, or
nap through ``nap`` (which ends early once the run stops): nobody keeps a flag of their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

Sleep = Callable[[float], Awaitable[None]]


class Why(StrEnum):
    """The kinds of stop; ``SIGNAL`` alone lets a second signal end the process at once."""

    SERVER = "server"  # Kirim said no more can succeed (401, 403, account gone)
    JOURNAL = "journal"  # the journal could not be written
    BUDGET = "budget"  # too many retries after server errors: Kirim looks unwell
    SIGNAL = "signal"  # Ctrl-C or SIGTERM
    WAIT = "wait"  # Kirim asked for a wait longer than --max-wait
    OUTPUT = "output"  # a report file could not be written
    INTERNAL = "internal"  # a bug of ours: the run ends cleanly rather than hang
    INPUT = "input"  # the input could not be read any further (changed or damaged mid-run)
    FAILURES = "failures"  # --max-failed: that many rows failed (``importer.guards``)
    WINDOW = "window"  # --max-duration / --until: the time window closed (``importer.window``)


class Stop:
    """The run's stop switch: off until the first ``request``, then on for good."""

    def __init__(self) -> None:
        self.reason: str | None = None  # the message a person reads, once stopped
        self.why: Why | None = None

    @property
    def requested(self) -> bool:
        return self.why is not None

    def request(self, why: Why, reason: str) -> None:
        """Stop the run (the first reason wins): nothing new is sent or retried, what is in
        flight may finish."""
        if self.why is None:
            self.why, self.reason = why, reason

    async def nap(self, sleep: Sleep, seconds: float) -> None:
        """Sleep ``seconds`` with ``sleep`` (injected: tests pass a fake clock's), in slices of
        at most a second, ending early once the run stops."""
        end = seconds
        while end > 0 and self.why is None:
            step = min(end, 1.0)
            await sleep(step)
            end -= step
