"""What the commands write: standard output that may be closed, full or too narrow for the text, and lines said
above a progress bar."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import select
import sys
from typing import TYPE_CHECKING

from textgen.errors import OutputError

if TYPE_CHECKING:
    from textgen.api import StopRequest


def escaped(text: str, stream) -> str:
    """``text`` with the characters ``stream``'s encoding lacks written as \\x.. escapes."""
    encoding = stream.encoding or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding)


class ClosedOutput(io.TextIOBase):
    """Standard output when its descriptor was closed (`textgen corpora >&-`): a pipe nobody reads. Writing
    raises BrokenPipeError, so a command whose output is its result ends quietly with status 141, as at a
    pipe whose reader went away; output that only reports (training's samples, `wrote report.html`) is
    dropped instead (`say`, `Output(required=False)`) and the command does its work."""

    encoding = "utf-8"
    errors = "strict"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            raise BrokenPipeError(errno.EPIPE, "standard output is closed")
        return 0

    def fileno(self) -> int:
        return 1  # /dev/null, which `guard_standard_streams` put there


def stdout_is_closed() -> bool:
    return isinstance(sys.stdout, ClosedOutput)


class NotesOutput(io.TextIOBase):
    """Standard error as the program writes its notes and errors: straight to descriptor 2, and a write the
    descriptor refuses (`2>/dev/full`, `2</dev/null`, a pipe whose reader went away) is dropped, as a note to a
    closed standard error is. A note that cannot be shown never stops a command or changes its exit status
    (Python's own standard error would raise, and fail the exit status once more at its last flush)."""

    errors = "backslashreplace"

    def __init__(self, encoding: str | None):
        self._encoding = encoding or "utf-8"
        self.stop: StopRequest | None = None  # the command's: once it is asked to stop, a reader that does not
        # read (`2>&1 | less` left alone) gets no more, so that the stop does not wait for it

    @property
    def encoding(self) -> str:
        return self._encoding

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return 2

    def isatty(self) -> bool:
        return os.isatty(2)

    def write(self, text: str) -> int:
        data = text.encode(self.encoding, self.errors)
        with contextlib.suppress(OSError):
            while data and (self.stop is None or reader_takes(self, self.stop)):
                data = data[os.write(2, data[: 4 * WRITE_CHARACTERS]):]
        return len(text)


def guard_standard_streams() -> None:
    """Make closed standard descriptors harmless: /dev/null is opened on each (so that no file textgen opens
    later gets descriptor 1 or 2, where a stray write would land in it, and so that child processes inherit
    something), a closed standard output becomes a `ClosedOutput` and standard error (the program's own, closed
    or not) a `NotesOutput`, so that the run goes on and its exit status stays what it would have been."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one, the lower ones are open
            if opened != descriptor:
                os.dup2(opened, descriptor)
                os.close(opened)
    if sys.stdin is None:
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - standard input for the process
    if sys.stdout is None:
        sys.stdout = ClosedOutput()
    if sys.stderr is None or sys.stderr is sys.__stderr__:  # not one a caller put there (pytest's, say)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()  # what Python's own holds goes first
        sys.stderr = NotesOutput(getattr(sys.stderr, "encoding", None))


class Output:
    """Standard output as the commands write it: what cannot be encoded or written becomes one error line.

    A closed pipe is left to `main` (BrokenPipeError), which ends quietly as Unix tools do. Output that is
    not ``required`` (it only reports what a command did) is dropped when standard output was closed.
    """

    def __init__(self, stream=None, required: bool = True):
        self.stream = stream or sys.stdout
        self.dropped = not required and isinstance(self.stream, ClosedOutput)
        self.line_open = False  # the text written so far does not end with a line break

    def write(self, text: str, escape: bool = False, flush: bool = False) -> None:
        """Write ``text``; with ``escape``, characters the stream's encoding lacks become \\x.. escapes."""
        if self.dropped:
            return
        if escape:
            text = escaped(text, self.stream)
        if text:  # before writing: a stop that comes in between then costs a blank line, never a glued note
            self.line_open = not text.endswith("\n")
        try:
            self.stream.write(text)
            if flush:
                self.stream.flush()
        except UnicodeEncodeError as error:
            raise OutputError(
                f"standard output is {self.stream.encoding}, which cannot hold {error.object[error.start]!r} "
                f"(U+{ord(error.object[error.start]):04X}); run with PYTHONIOENCODING=utf-8 or a UTF-8 locale "
                "(LANG=C.UTF-8)") from None
        except BrokenPipeError:
            raise
        except OSError as error:
            raise OutputError(f"cannot write to standard output ({error.strerror or error})") from None

    def check_encodable(self, chars, what: str) -> None:
        """OutputError listing the characters of ``chars`` that standard output cannot encode, before any is written."""
        encoding = self.stream.encoding or "utf-8"
        if (getattr(self.stream, "errors", "strict") or "strict") != "strict":
            return
        bad = []
        for char in chars:
            try:
                char.encode(encoding)
            except UnicodeEncodeError:
                bad.append(char)
        if bad:
            shown = "".join(bad[:12]) + ("..." if len(bad) > 12 else "")
            raise OutputError(
                f"standard output is {encoding}, which cannot hold {len(bad)} of {what} ({shown!r}); run with "
                "PYTHONIOENCODING=utf-8 or a UTF-8 locale (LANG=C.UTF-8)")

    def flush(self) -> None:
        """Flush, as `write` reports failures."""
        self.write("", flush=True)

    def end_line(self) -> None:
        """End the line written so far, if it is open, and flush: a note on stderr then starts a line of its own
        where both streams share a terminal."""
        self.write("\n" if self.line_open else "", flush=True)


def say(text: str = "", file=None) -> None:
    """Print a line, above the progress bar if one is showing (nothing if it is for a closed standard output)."""
    from tqdm.auto import tqdm

    stream = file or sys.stdout
    if not isinstance(stream, ClosedOutput):
        tqdm.write(text, file=stream)


def stream_is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


WRITE_CHARACTERS = 1024  # written at a time where a stop must not wait for the reader: a pipe's free page holds them


def takes_a_write(stream, seconds: float = 0.2) -> bool:
    """Whether ``stream``'s descriptor takes a write within ``seconds``: a pipe whose reader does not read does not."""
    try:
        return bool(select.select([], [stream.fileno()], [], seconds)[1])
    except (OSError, ValueError, io.UnsupportedOperation):
        return True  # not a descriptor (a test's capture): it takes what it is given


def reader_takes(stream, stop: StopRequest) -> bool:
    """Wait until ``stream`` takes a write; False if a stop is asked for first."""
    while not takes_a_write(stream):
        if stop.is_set():
            return False
    return True


def silence_stdout() -> None:
    """Point standard output at /dev/null, so that nothing more (not even the exit's flush) hits a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
