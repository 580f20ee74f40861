"""Files that survive a crash: atomic writes, JSON, and JSON-lines files read, appended and rewritten.

Nothing here knows what a run is; `textgen.runfolder` decides which files exist. No NumPy.
A failed write raises `OutputError` naming the path and the cause; the old file stays whole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import orjson

from textgen.errors import CheckpointError, OutputError

TEMPORARY_SUFFIX = ".tmp"  # atomic writes go to ".NAME.XXXX.tmp" beside NAME first


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_folder(folder: Path) -> None:
    """Make a rename or creation inside ``folder`` durable (best effort where folders cannot be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A crash at any moment leaves the old file or the new one, never half of one; a failure leaves no
    temporary behind. Raises OSError (callers say what the file was).
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        os.fchmod(handle, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; give the usual mode
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; OutputError naming the path if it cannot be written."""
    try:
        atomic_write(path, lambda stream: stream.write(data))
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from None


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_bytes(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def read_json(path: Path, what: str) -> object:
    """Parse a JSON file, turning any failure into CheckpointError naming the file and ``what`` it should be."""
    try:
        return orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; is this a textgen run folder?") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not the {what}") from None
    except (OSError, orjson.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read the {what} ({getattr(error, 'strerror', None) or error})") from None


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines file (none if it is missing), each a JSON object with an integer ``update``
    if it has one. A half-written last line (a killed writer) is left out; any other bad line raises
    CheckpointError naming its number."""
    path = Path(path)
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read ({error.strerror})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            if number == len(lines):
                break  # the continuation of a killed run rewrites it
            raise CheckpointError(f"{path}: line {number} is not valid JSON") from None
        if not isinstance(row, dict):
            raise CheckpointError(f"{path}: line {number} is not a JSON object")
        update = row.get("update", 0)
        if not isinstance(update, int) or isinstance(update, bool) or update < 0:
            raise CheckpointError(f"{path}: line {number} has an 'update' that is not a count ({update!r})")
        rows.append(row)
    return rows


def append_jsonl(path: Path, row: dict) -> None:
    """Append one row; OutputError naming the path if it cannot be written."""
    try:
        with Path(path).open("ab") as stream:
            stream.write(orjson.dumps(row) + b"\n")
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror})") from None


def rewrite_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Replace the file with ``rows``, atomically."""
    write_bytes(path, b"".join(orjson.dumps(row) + b"\n" for row in rows))


def remove_temporaries(folder: Path) -> None:
    """Delete what killed atomic writes left in ``folder`` (``.NAME.XXXX.tmp``)."""
    for stray in Path(folder).glob(f".*{TEMPORARY_SUFFIX}"):
        stray.unlink(missing_ok=True)
