"""Files that survive a crash: atomic writes, JSON, and JSON-lines files read, appended and rewritten.

Nothing here knows what a run is; `textgen.runfolder` decides which files exist. No NumPy.
A failed write raises `OutputError` naming the path and the cause; the old file stays whole.
"""

from __future__ import annotations

import errno
import math
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import orjson

from textgen.errors import CheckpointError, OutputError, PathError
from textgen.limits import check_memory, format_bytes

TEMPORARY_SUFFIX = ".tmp"  # atomic writes go to ".NAME.XXXX.tmp" beside NAME first
NAME_MAX_BYTES = 240  # a name in a user's path at most: textgen adds to names (".NAME.textgen-new", ".NAME.XXXX.tmp")
PATH_MAX_BYTES = 4000  # a whole path at most (Linux refuses 4096)


def check_user_path(path: object, name: str) -> Path:
    """``path`` (a str or Path the user gave as ``name``: a flag or a parameter) as a Path, or PathError if no
    file can have it: a NUL byte, text that is not valid UTF-8 (textgen records paths in JSON), a name in it
    longer than NAME_MAX_BYTES or the whole longer than PATH_MAX_BYTES."""
    text = os.fspath(path)
    if "\0" in text:
        raise PathError(f"{name} {text!r}: a path cannot hold a NUL byte (\\0)")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise PathError(f"{name} {os.fsencode(text)!r}: not valid UTF-8; textgen records paths in JSON, so rename "
                        "it") from None
    if len(encoded) > PATH_MAX_BYTES:
        raise PathError(f"{name} {text[:60]}...: longer than {PATH_MAX_BYTES:,} bytes; use a shorter path")
    if any(len(part.encode("utf-8")) > NAME_MAX_BYTES for part in Path(text).parts):
        raise PathError(f"{name} {text[:60]}...: a name in it is longer than {NAME_MAX_BYTES} bytes; use a shorter "
                        "one")
    return Path(text)


# XXXX: 8 hex digits (8 of [a-z0-9_] from tempfile.mkstemp, as an older textgen wrote them); nothing else is ours
_TEMPORARY = re.compile(r"\.(.+)\.[a-z0-9_]{8}" + re.escape(TEMPORARY_SUFFIX))

# Every function takes the file's path (for messages) and, optionally, ``at``: an open descriptor of its
# folder. With ``at``, the file is found through that descriptor (the name only), so a reader or writer
# keeps to the one folder it opened even if another process renames or replaces folders meanwhile.


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _open(path: Path, flags: int, at: int | None, mode: int = 0o666) -> int:
    return os.open(path.name if at is not None else path, flags | os.O_CLOEXEC, mode, dir_fd=at)


def fsync_folder(folder: Path, at: int | None = None) -> None:
    """Make a rename or creation inside a folder durable (best effort where folders cannot be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_CLOEXEC) if at is None else os.dup(at)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def read_bytes(path: Path, at: int | None = None) -> bytes:
    """The whole of a regular file (OSError as os.open and read raise it).

    A device, FIFO or socket in its place (a link to /dev/zero, say) is refused before it is read: such a
    file may never end or never answer. A file larger than the memory available is refused too.
    """
    handle = _open(Path(path), os.O_RDONLY | os.O_NONBLOCK, at)  # non-blocking: opening a FIFO must not wait
    with os.fdopen(handle, "rb") as stream:
        status = os.fstat(handle)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        check_memory(status.st_size, f"reading {path} ({format_bytes(status.st_size)})", "is it the right file?")
        return stream.read()


def atomic_write(path: Path, write: Callable[[BinaryIO], object], at: int | None = None) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A crash at any moment leaves the old file or the new one, never half of one; a failure leaves no
    temporary behind. Raises OSError (callers say what the file was).
    """
    path = Path(path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC) if at is None else at
    temporary = f".{path.name}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o666 & ~_current_umask(), dir_fd=folder)
        try:
            with os.fdopen(handle, "wb") as stream:
                write(stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=folder)
            except OSError:
                pass
            raise
        fsync_folder(path.parent, folder)
    finally:
        if at is None:
            os.close(folder)


def write_bytes(path: Path, data: bytes, at: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically; OutputError naming the path if it cannot be written."""
    try:
        atomic_write(path, lambda stream: stream.write(data), at)
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from None


def non_finite_place(value: object, where: str = "") -> str | None:
    """Where JSON-ready ``value`` holds its first NaN or infinity (``rows[2].loss``), or None if it holds none.
    NumPy scalars and arrays count as the numbers they hold."""
    if hasattr(value, "dtype") and hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return None if math.isfinite(value) else where or "the value"
    if isinstance(value, dict):
        items = ((f"{where}.{key}" if where else str(key), item) for key, item in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for place, item in items:
        found = non_finite_place(item, place)
        if found is not None:
            return found
    return None


def _finite_json(data: object, path: Path | None, option: int = 0) -> bytes:
    """``data`` as JSON; OutputError naming the field if it holds NaN or infinity, which orjson would write as
    null (JSON has neither): a loss of null would make the file unreadable to the checks that read it back."""
    place = non_finite_place(data)
    if place is not None:
        raise OutputError(f"{path or 'a JSON row'}: {place} is not finite; refusing to write it (nothing was written)")
    return orjson.dumps(data, option=option | orjson.OPT_SERIALIZE_NUMPY)


def write_json(path: Path, data: object, at: int | None = None) -> None:
    """Write ``data`` as indented JSON, atomically (OutputError, nothing written, if it holds NaN or infinity)."""
    write_bytes(path, _finite_json(data, path, orjson.OPT_INDENT_2), at)


def read_json(path: Path, what: str, at: int | None = None) -> object:
    """Parse a JSON file, turning any failure into CheckpointError naming the file and ``what`` it should be."""
    try:
        return orjson.loads(read_bytes(path, at))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; is this a textgen run folder?") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not the {what}") from None
    except (OSError, orjson.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read the {what} ({getattr(error, 'strerror', None) or error})") from None


def read_jsonl(path: Path, at: int | None = None) -> list[dict]:
    """The rows of a JSON-lines file (none if it is missing), each a JSON object with an integer ``update``
    if it has one. A half-written last line (a killed writer) is left out; any other bad line raises
    CheckpointError naming its number."""
    path = Path(path)
    try:
        lines = read_bytes(path, at).splitlines()
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


def jsonl_bytes(rows: Iterable[dict], path: Path | None = None) -> bytes:
    """Rows as the bytes of a JSON-lines file (OutputError if one holds NaN or infinity; ``path`` for the message)."""
    return b"".join(_finite_json(row, path) + b"\n" for row in rows)


def append_jsonl(path: Path, row: dict, at: int | None = None) -> None:
    """Append one row; OutputError naming the path if it cannot be written or holds NaN or infinity."""
    data = _finite_json(row, path) + b"\n"
    try:
        handle = _open(Path(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, at)
        with os.fdopen(handle, "ab") as stream:
            stream.write(data)
    except OSError as error:
        raise OutputError(f"{path}: cannot write ({error.strerror})") from None


def temporary_of(name: str) -> str | None:
    """The file a temporary of a killed atomic write was for (``.NAME.XXXX.tmp`` -> NAME), or None for any other
    name (a user's ``.notes.tmp`` is not one)."""
    match = _TEMPORARY.fullmatch(name)
    return match.group(1) if match else None


def remove_temporaries(folder: Path, at: int | None = None, of: tuple[str, ...] | None = None) -> None:
    """Delete what killed atomic writes left in a folder (``.NAME.XXXX.tmp``): all, or those of the files ``of``."""
    for name in os.listdir(folder if at is None else at):
        if temporary_of(name) is not None and (of is None or temporary_of(name) in of):
            try:
                os.unlink(name if at is not None else Path(folder) / name, dir_fd=at)
            except FileNotFoundError:
                pass
