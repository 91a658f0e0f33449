"""The time window of a run: ``--max-duration 5h30m`` (from the invocation's start) and
``--until 06:00`` (local time, the next such moment). When the window closes the run stops
like any other stop (``send.stop``): nothing new is sent, what is in flight finishes or stays
``pending`` for the next run, every row is reported, exit 3 with the reason "time window
closed"; the next run resumes from the journal.

Both are turned into one deadline on the run's monotonic clock when the run starts
(``Window.opening``), so a change of the wall clock mid-run (NTP, DST) moves nothing; ``--until``
is read against the wall clock once, at that moment. The clock and the sleep are injected:
tests close a window without waiting for it. ``runs_needed`` is ``plan``'s sentence: how long
the writes take at the organisation's rate, and in how many runs of a window.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from importer.errors import UsageError
from importer.send.stop import Sleep, Stop, Why

Clock = Callable[[], float]
CLOSED = "time window closed"  # the stop reason begins with this (exit 3)
TICK_S = 0.25  # how often the watcher looks at the clock (a fake clock jumps between looks)
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_duration(value: str | float | int, option: str = "--max-duration") -> float:
    """Seconds from ``45s``, ``90m``, ``5h30m``, ``1h15m30s`` (or a number: seconds, the API's);
    ``UsageError`` otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value.strip().lower())) and any(
        m.groups()
    ):
        h, mins, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = h * 3600 + mins * 60 + s
    else:
        raise UsageError(
            f"{option} {value!r}: expected a duration such as 45s, 90m or 5h30m"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"{option} {value!r}: the window must be longer than nothing")
    return seconds


def parse_until(value: str, option: str = "--until") -> str:
    """``HH:MM`` (24-hour local time), normalised to two digits each; ``UsageError`` otherwise."""
    m = _HHMM.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise UsageError(f"{option} {value!r}: expected a local time HH:MM, such as 06:00")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def seconds_until(hhmm: str, now: float) -> float:
    """Seconds from ``now`` (epoch seconds) to the next local ``HH:MM`` strictly after it
    (today's, else tomorrow's), through the C library's local time, so a DST change between
    the two is counted; a moment a DST change skips is read as the C library reads it."""
    hour, minute = (int(p) for p in hhmm.split(":"))
    today = time.localtime(now)
    for days in (0, 1, 2):  # 2: a day that lost its HH:MM to a DST change
        moment = time.mktime(
            (today.tm_year, today.tm_mon, today.tm_mday + days, hour, minute, 0, 0, 0, -1)
        )
        if moment > now:
            return moment - now
    raise AssertionError("unreachable: a local time recurs within two days")  # pragma: no cover


def describe(seconds: float) -> str:
    """A duration as it is written on the command line: ``5h30m``, ``90s``, ``2h``."""
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (s, "s")) if n) or "0s"


@dataclass(frozen=True, slots=True)
class Window:
    """A run's deadline on ``clock`` (monotonic seconds), and the stop reason it gives."""

    deadline: float
    reason: str
    clock: Clock = time.monotonic

    @classmethod
    def opening(
        cls,
        *,
        max_duration_s: float | None,
        until: str | None,
        started: float,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> Window | None:
        """The window of a run that started at ``started`` on ``clock``: the earlier of
        ``--max-duration`` after the start and the next ``--until``; None without either."""
        ends: list[tuple[float, str]] = []
        if max_duration_s is not None:
            ends.append((started + max_duration_s, f"--max-duration {describe(max_duration_s)}"))
        if until is not None:
            ends.append((clock() + seconds_until(until, wall()), f"--until {until}"))
        if not ends:
            return None
        deadline, given = min(ends)
        return cls(deadline, f"{CLOSED} ({given})", clock)

    def left(self) -> float:
        return self.deadline - self.clock()

    async def watch(self, stop: Stop, sleep: Sleep) -> None:
        """Until the run stops: once the deadline passes, stop it with ``reason``."""
        while not stop.requested:
            left = self.left()
            if left <= 0:
                stop.request(Why.WINDOW, self.reason)
                return
            await sleep(min(left, TICK_S))


def runs_needed(writes: int, per_minute: float, window_s: float | None) -> str:
    """How long ``writes`` take at ``per_minute`` (after the bucket's first burst) and, given
    a window, in how many runs: "at 60 writes/min, 100,000 creates need 27.8 h: 6 runs of
    5h"."""
    need = max(0, writes - per_minute) / (per_minute / 60)
    head = f"at {per_minute:,.0f} writes/min, {writes:,} creates need {_span(need)}"
    if window_s is None:
        return head
    runs = max(1, math.ceil(need / window_s - 1e-9))
    return f"{head}: {runs} run{'s' if runs > 1 else ''} of {describe(window_s)}"


def _span(seconds: float) -> str:
    if seconds <= 0:
        return "no wait (the bucket's first burst)"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
