"""How a run went over time, for the report page: the run's counters, sampled every second.

``Timeline.sampling`` reads the counters the run already keeps (rows created, requests, 429s,
retries) once a second on the event loop, with a ``call_later`` timer rather than a task of
its own, and once more when the block ends. Nothing in the sending path is touched. The page
turns the cumulative samples into rates. A long run keeps its memory bounded: past
``max_samples`` every other sample goes and the interval doubles.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """The run's counters at ``t`` seconds after sending began (cumulative)."""

    t: float
    created: int
    requests: int
    http_429: int
    retries: int


Counters = Callable[[], tuple[int, int, int, int]]  # created, requests, http_429, retries


class Timeline:
    def __init__(
        self,
        *,
        read: Counters,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 1.0,
        max_samples: int = 20_000,
    ) -> None:
        self._read = read
        self._clock = clock
        self._every = every_s
        self._max = max_samples
        self._start = clock()
        self.samples: list[Sample] = []
        self.sample()

    def sample(self) -> None:
        self.samples.append(Sample(round(self._clock() - self._start, 3), *self._read()))
        if len(self.samples) > self._max:
            self.samples = [*self.samples[:-1:2], self.samples[-1]]
            self._every *= 2

    @contextlib.contextmanager
    def sampling(self) -> Iterator[Timeline]:
        """Sample every ``every_s`` on the running loop until the block ends, then once more."""
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def tick() -> None:
            nonlocal handle
            self.sample()
            handle = loop.call_later(self._every, tick)

        handle = loop.call_later(self._every, tick)
        try:
            yield self
        finally:
            handle.cancel()
            self.sample()
