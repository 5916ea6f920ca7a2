"""A progress line on stderr, and the --max-seconds deadline, for the long commands.

Shown once a run has lasted a second. On a terminal it is one line rewritten in place (and
erased at the end); asked for in a log (`--progress` with stderr not a terminal) it is a plain
line every few seconds. Off, it still keeps the last counts it was given (a stopped run reports
them) and still enforces the deadline: `tick()` raises `Stopped("time limit")` once
`max_seconds` have passed. Nothing here knows what is being counted.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, enabled: bool, max_seconds: float | None = None,
                 stream=None, delay: float = 1.0, log_interval: float = 5.0):
        self.label = label
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self.deadline = None if max_seconds is None else self.start + max_seconds
        self.delay = delay
        self.interval = 0.1 if self.tty else log_interval
        self.last = 0.0
        self.shown = False
        self.counts: dict = {}  # the latest counts given to update()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def tick(self) -> None:
        """Raise Stopped once the deadline has passed (or a Ctrl-C went astray)."""
        from model.commands.common import Stopped, interrupted

        if interrupted():
            raise Stopped("interrupted")
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            raise Stopped("time limit")

    def update(self, text: str, **counts) -> None:
        """The new state of the run: `text` for the line, `counts` kept for a partial report."""
        self.counts.update(counts)
        self.tick()
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.start < self.delay or now - self.last < self.interval:
            return
        self.last = now
        line = f"{self.label}: {text} [{now - self.start:,.0f} s]"
        try:
            if self.tty:
                self.stream.write(f"\r{line}\x1b[K")
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
            self.shown = True
        except (OSError, ValueError):  # stderr closed: no progress, the run goes on
            self.enabled = False

    def done(self) -> None:
        """Erase the line (on a terminal) before the report is printed."""
        if self.enabled and self.shown and self.tty:
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        self.shown = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.done()
        return False


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "-"
