"""The lock on a run folder: an exclusive ``flock`` on the folder itself, held by whoever writes it, dying with its
process, and `lock_holder` to say who holds one (from /proc/locks) without touching it."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from textgen.errors import RunFolderError


def _process_description(pid: int) -> str:
    """``process N (textgen train ...)`` from /proc, or just ``process N`` where that cannot be read."""
    try:
        argv = [part.decode(errors="replace") for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    except OSError:
        return f"process {pid}"
    argv = [part for part in argv if part]
    for index, part in enumerate(argv):  # "python .../bin/textgen train ..." or "python -m textgen.cli train ..."
        if part.endswith(("/textgen", "textgen.cli")) or part == "textgen":
            argv = ["textgen", *argv[index + 1 :]]
            break
    command = " ".join(argv)
    return f"process {pid} ({command[:160]}{'...' if len(command) > 160 else ''})" if command else f"process {pid}"


def lock_holder(folder: Path) -> str | None:
    """Who holds ``folder``'s lock, looked up without touching it (Linux's /proc/locks); None if nobody."""
    try:
        inode = os.stat(folder).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except (OSError, ValueError):
        return None
    for line in lines:
        parts = line.split()  # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            try:
                return _process_description(int(parts[4]))
            except ValueError:
                return "another process"
    return None


class FolderLock:
    """An exclusive advisory lock (``flock``) on a folder itself, held until `release`.

    The lock is on the folder's own inode, through a descriptor of it: no file in the folder can be
    removed to get round it, it follows the folder when it is renamed into place, and the kernel
    drops it when the process ends, however it ends, so it never outlives its holder. The
    descriptor is also how the holder reads and writes the folder's files (see `textgen.fs`).
    """

    def __init__(self, handle: int, folder: Path):
        self.handle = handle  # an O_RDONLY descriptor of the folder, flock'ed
        self.folder = folder

    @classmethod
    def acquire(cls, folder: Path, refusal: str, follow: bool = True) -> FolderLock:
        """Lock ``folder``; RunFolderError ``{refusal} process N (...)`` if another process holds it.

        ``refusal`` says what the holder does, ending in "by": "--resume X: the run is being written by".
        Without ``follow``, a symbolic link in ``folder``'s place is refused rather than followed (for the
        staging folders textgen names itself, which a link planted in a shared folder must not redirect).
        """
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        look = os.stat if follow else os.lstat
        for attempt in range(50):
            try:
                handle = os.open(folder, flags)
            except OSError as error:
                if error.errno == errno.ELOOP or (error.errno == errno.ENOTDIR and not follow):
                    raise RunFolderError(f"{folder}: is a link or not a folder, where textgen keeps its own "
                                         "folder; remove it and try again") from None
                raise RunFolderError(f"{folder}: cannot open the run folder ({error.strerror})") from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(handle)
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise RunFolderError(f"{folder}: cannot lock the run folder ({error.strerror})") from None
                holder = lock_holder(folder)
                if holder is None and attempt < 49:
                    time.sleep(0.01)  # released between our try and the look-up: try again
                    continue
                raise RunFolderError(f"{refusal} {holder or 'another process'}; wait for it to finish (or stop "
                                     "it), then try again") from None
            try:  # the path may have come to name another folder between open and flock
                same = os.path.samestat(os.fstat(handle), look(folder))
            except FileNotFoundError:
                same = False
            if same:
                return cls(handle, folder)
            os.close(handle)
        raise RunFolderError(f"{folder}: it kept being replaced while textgen tried to lock it; try again")

    def still_names(self, folder: Path) -> bool:
        """True if ``folder`` is still the locked folder (not moved away, removed or replaced)."""
        try:
            return os.path.samestat(os.fstat(self.handle), os.stat(folder))
        except OSError:
            return False

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        handle, self.handle = self.handle, -1  # first, so that an interrupted release is never repeated
        if handle >= 0:
            os.close(handle)
