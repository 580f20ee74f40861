"""How a command is asked to stop: `StopRequest`, which a signal handler calls and the trainer polls, and
`Interrupted`, raised where the stop cannot wait for the trainer's next window."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(BaseException):
    """The user asked the command to stop (SIGINT, SIGTERM, a closed output pipe).

    A BaseException, like KeyboardInterrupt, so that a plugin's ``except Exception`` cannot swallow it.
    """

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum  # the first signal that asked to stop
        self.folder = None  # the run folder that was kept (None if nothing was: the run had not started)
        self.update: int | None = None  # the update of its last checkpoint
        self.finished = False  # True if training had finished (the stop came during the passage or the report)


class StopRequest:
    """A stop asked for from outside (a signal handler calls `request`).

    While the trainer polls (inside `polled`), the first request only sets a flag: the trainer takes a
    checkpoint at the next window boundary and raises `textgen.trainer.TrainingInterrupted`. Anywhere
    else (reading a corpus, a loader blocked on a pipe, writing the passage), and for a second request
    at any time, `request` raises `Interrupted` at once, so a stop never waits on anything.
    """

    def __init__(self):
        self.signum: int | None = None  # the first signal received, None while nobody asked to stop
        self._polling = 0  # > 0 while the trainer checks `is_set` between windows
        self._raised = False  # Interrupted is on its way: the command is already stopping at once

    def request(self, signum: int) -> None:
        """Ask to stop; raises Interrupted unless the trainer is polling and this is the first request.

        Once Interrupted has been raised, further requests do nothing: the command is already stopping
        at once, and a signal must not cut short the clean-up on the way out (removing a staging folder).
        """
        if self._raised:
            return
        first = self.signum is None
        if first:
            self.signum = signum
        if first and self._polling:
            return
        self._raised = True
        raise Interrupted(self.signum)

    def close(self) -> None:
        """From now on requests do nothing (the command has ended; the process is on its way out)."""
        self._raised = True

    def is_set(self) -> bool:
        """True once a stop was asked for."""
        return self.signum is not None

    def check(self) -> None:
        """Raise Interrupted if a stop was asked for (for a code path that has just left `polled`)."""
        if self.signum is not None:
            self._raised = True
            raise Interrupted(self.signum)

    @contextmanager
    def polled(self) -> Iterator[None]:
        """A block in which a first request waits for the caller to notice `is_set`."""
        self._polling += 1
        try:
            yield
        finally:
            self._polling -= 1
