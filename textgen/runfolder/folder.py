"""`RunFolder`: the one owner of a run folder's layout and of every file in it, from creating it to reading it.

A new run is built in a staging folder beside its place (``.NAME.textgen-new``) and moved into place
only once it holds its first checkpoint, so a run folder that exists can always be resumed; with
``force`` the old run is swapped out at that moment, not before, and only a folder that holds a run and
nothing else is ever replaced (textgen removes its own files only). Every writer holds the folder's lock
(`textgen.runfolder.lock`) for as long as it writes, so two writers never meet in one folder.
config.json is read as a checked `RunRecord`; whether a run has finished is read from it, never from file
times. Imports neither the trainer nor the report.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import stat
import sys
from pathlib import Path

import numpy as np
import orjson

from textgen.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from textgen.errors import (
    CheckpointError,
    ConfigError,
    OutputError,
    RunFolderError,
    TextgenError,
    message_of,
    setting_name,
)
from textgen.fs import (
    append_jsonl,
    fsync_folder,
    jsonl_bytes,
    read_bytes,
    read_json,
    read_jsonl,
    remove_temporaries,
    temporary_of,
    write_bytes,
    write_json,
)
from textgen.runfolder.lock import FolderLock, lock_holder
from textgen.runfolder.record import RunRecord, is_count
from textgen.vocab import Vocab, vocab_from_json

log = logging.getLogger(__name__)

STAGING_SUFFIX = ".textgen-new"  # .NAME.textgen-new: a run being prepared for NAME
OLD_SUFFIX = ".textgen-old"  # .NAME.textgen-old: an old run on its way out (where folders cannot be swapped)
# Every file of a run folder, by its role. Only this package names them: everybody else asks RunFolder.
RECORD = "config.json"  # the run's settings and history (`RunRecord`)
VOCABULARY = "vocab.json"
METRICS = "metrics.jsonl"  # a row every log_every updates
SAMPLES = "samples.jsonl"  # a row per training-time sample
CHECKPOINT_FILES = {"best": "best.npz", "last": "last.npz"}  # best: the best parameters; last: where training is
CHECKPOINTS = tuple(CHECKPOINT_FILES)
PLOT = "loss.png"  # the smooth loss so far, redrawn while the run trains
PASSAGE = "best_passage.txt"  # the passage drawn from the best model once the run has finished
ENCODED_IDS = "ids.bin"  # a large corpus's training ids, encoded straight into the folder (`encoded_ids`)
ENCODED_VAL_IDS = "val_ids.bin"  # and its held-out ids
REPORT_PAGE, REPORT_MARKDOWN, REPORT_FIGURE = "report.html", "report.md", "report_loss.png"
SWEEP_VERDICT = "sweep_trial.json"  # what a sweep decided about a trial it stopped early
OLD_LOCK = ".lock"  # the lock file of textgen before the lock moved onto the folder itself
# The files only the lock holder writes (the report is written by whoever makes it, lock or not).
WRITER_FILES = (RECORD, VOCABULARY, METRICS, SAMPLES, CHECKPOINT_FILES["last"], CHECKPOINT_FILES["best"], PLOT,
                PASSAGE, ENCODED_IDS, ENCODED_VAL_IDS)
RUN_FILES = (*WRITER_FILES, REPORT_PAGE, REPORT_MARKDOWN, REPORT_FIGURE)  # every file a run folder may hold
# With RUN_FILES and the temporaries of killed writes of any of them, these are all that --force removes; anything
# else in a folder keeps it from --force.
OWN_FILES = (*RUN_FILES, SWEEP_VERDICT, OLD_LOCK)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_cwd, rename_exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # the filesystem cannot swap: the caller renames twice
    raise OSError(code, os.strerror(code), str(b))


def _listing(folder: Path) -> list[str]:
    """What a folder holds (temporaries too: a folder holding any is not empty, and a run cannot be moved into it)."""
    try:
        return sorted(p.name for p in folder.iterdir())
    except FileNotFoundError:
        return []


def _first_few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def holds_run(folder: Path) -> list[str]:
    """The run files ``folder`` holds (none for a folder that is not a run)."""
    return [name for name in RUN_FILES if (folder / name).exists()]


def _own(name: str) -> bool:
    """True for a name textgen gives a file in a run folder: one of OWN_FILES, or a temporary of a killed write
    of one (``.NAME.XXXX.tmp``)."""
    return (temporary_of(name) or name) in OWN_FILES


def foreign_entries(folder: Path) -> list[str]:
    """What ``folder`` holds that is not a run's own file, sorted (folders end in /): any other name, and an own
    name that is not a regular file (a folder or a link in its place). None for a missing folder."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else "") for entry in entries
                          if not (_own(entry.name) and entry.is_file(follow_symlinks=False)))
    except FileNotFoundError:
        return []
    except OSError as error:
        raise RunFolderError(f"{folder}: cannot list the folder ({error.strerror})") from None


def _textgen_config(folder: Path) -> bool:
    """True if ``folder``/config.json is a textgen run's (a JSON object with its sections), however damaged its
    values; the check before --force removes a folder whose other files only bear a run's names."""
    try:
        data = orjson.loads(read_bytes(folder / RECORD))
    except (OSError, orjson.JSONDecodeError, TextgenError):
        return False
    return isinstance(data, dict) and "format_version" in data and all(
        isinstance(data.get(section), dict) for section in ("model", "train", "corpus"))


def _remove_run_files(folder: Path) -> list[str]:
    """Remove a run's own files from ``folder`` and then the folder, if nothing else is left in it; returns what
    is left (nothing once the folder is gone). Never removes what `foreign_entries` names."""
    for name in _listing(folder):
        if _own(name):
            try:
                if stat.S_ISREG(os.lstat(folder / name).st_mode):
                    os.unlink(folder / name)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        return []
    except OSError:
        return foreign_entries(folder)
    return []


class RunFolder:
    """One run folder. Readers read it through one descriptor of the folder, so that what they read comes from
    one run even while another process replaces it; writers hold its lock (see `create`, `open_for_writing`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock: FolderLock | None = None  # held by a writer; its descriptor is the one files go through
        self._reading: int | None = None  # a reader's descriptor of the folder, opened at the first read
        self._target: Path | None = None  # where a staging folder goes when published
        self._old_lock: FolderLock | None = None  # the lock on the run a forced replacement removes
        self._made_parents: list[Path] = []  # folders created for the staging folder, removed with it
        self._keep: tuple[Path, ...] = ()  # files the new run reads, which a forced replacement must not remove

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __del__(self) -> None:
        if getattr(self, "_reading", None) is not None:
            os.close(self._reading)

    def _file(self, name: str) -> Path:
        """The path of one of the folder's files (for messages, and for what must be opened by path)."""
        return self.path / name

    def record_path(self) -> Path:
        """config.json's path (for messages)."""
        return self._file(RECORD)

    def checkpoint_path(self, which: str) -> Path:
        """The path of the ``best`` or ``last`` checkpoint."""
        return self._file(CHECKPOINT_FILES[which])

    def encoded_ids_path(self, held_out: bool = False) -> Path:
        """Where a large corpus's ids are encoded to: its training ids, or with ``held_out`` its held-out ids."""
        return self._file(ENCODED_VAL_IDS if held_out else ENCODED_IDS)

    @property
    def staged(self) -> bool:
        """True until `publish` moves a new run into its place."""
        return self._target is not None

    def _at(self) -> int:
        """The descriptor the folder's files are reached through."""
        if self._lock is not None:
            return self._lock.handle
        if self._reading is None:
            _recover(self.path)
            try:
                self._reading = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise CheckpointError(f"{self.path}: no such run folder") from None
            except NotADirectoryError:
                raise CheckpointError(f"{self.path}: not a folder; give a run folder") from None
            except OSError as error:
                raise CheckpointError(f"{self.path}: cannot open the run folder ({error.strerror})") from None
        return self._reading

    # ------------------------------------------------------------ taking a folder for writing

    @classmethod
    def create(cls, out: Path, force: bool = False, keep: tuple[Path, ...] = ()) -> RunFolder:
        """A locked, empty staging folder for a new run at ``out``; `publish` moves it into place.

        Refused (RunFolderError, nothing touched) when ``out`` already holds a run, unless ``force``; when
        another process is writing or preparing a run there; or when ``out`` holds files that are not a
        run's. With ``force`` the old run is locked now and replaced only by `publish`; only a folder that
        holds a textgen run and nothing else is replaced, and not one that holds the current folder or a file
        of ``keep`` (what the new run reads).
        """
        out = Path(out)
        if out.name in ("", ".", "..") or not Path(os.path.abspath(out)).name or out.is_symlink():
            raise RunFolderError(f"{setting_name('out')} {out}: give the path of a folder of its own (not a link, not "
                                 ". or /)")
        staging = _staging(out)
        folder = cls(staging)
        folder._target = out
        folder._keep = tuple(keep)
        try:
            folder._made_parents = _make_parents(out)
            _recover(out)
            if force:
                folder._old_lock = _lock_old_run(out, tuple(keep))
            else:
                _refuse_existing(out)
            try:
                staging.mkdir()
            except FileExistsError:
                pass  # left by a process killed while it prepared a run here (or being prepared now)
            except OSError as error:
                raise RunFolderError(f"{setting_name('out')} {out}: cannot create the run folder "
                                     f"({error.strerror})") from None
            folder._lock = FolderLock.acquire(staging, f"{setting_name('out')} {out}: a run is being prepared there "
                                                       "by", follow=False)
            _clear(staging, out)  # what a process killed while it prepared a run here left
            if force and folder._old_lock is None:  # a run may have appeared since we looked
                folder._old_lock = _lock_old_run(out, tuple(keep))
            elif not force:
                _refuse_existing(out)
        except BaseException:
            folder.discard()
            raise
        return folder

    def publish(self) -> None:
        """Move the staged run into its place, swapping out the old run if ``force`` locked one; then remove it."""
        assert self._target is not None and self._lock is not None, "only a staged, locked folder is published"
        staging, target = self.path, self._target
        fsync_folder(staging, self._lock.handle)
        try:
            if self._old_lock is not None and target.exists():
                _refuse_to_replace(target, self._keep)  # a user may have put something there meanwhile
                if _exchange(staging, target):
                    old = staging  # the old run now sits where the staging folder was
                else:
                    old = _aside(target)
                    os.rename(target, old)
                    os.rename(staging, target)
                self.path, self._target = target, None
                fsync_folder(target.parent)
                _remove_old(old, target)
                self._old_lock.release()
                self._old_lock = None
            else:
                os.rename(staging, target)  # replaces an empty folder; refuses one that gained files
                self.path, self._target = target, None
                fsync_folder(target.parent)
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise RunFolderError(f"{setting_name('out')} {target}: files appeared in it while the run was being "
                                     "prepared; nothing was replaced: choose another folder") from None
            raise RunFolderError(f"{setting_name('out')} {target}: cannot move the new run into place "
                                 f"({error.strerror})") from None
        self._made_parents = []

    def discard(self) -> None:
        """Give up a staged run: remove the staging folder (and folders made for it) and drop every lock."""
        if self._target is not None and self._lock is not None:
            _remove_run_files(self.path)
            for parent in self._made_parents:
                try:
                    parent.rmdir()
                except OSError:
                    break
        self.release()

    @classmethod
    def open_for_writing(cls, path: Path) -> RunFolder:
        """An existing run folder, locked for this process (to resume it); RunFolderError if another holds it."""
        folder = cls(path)
        _recover(folder.path)
        if not folder.path.is_dir():
            staging = _staging(folder.path)
            holder = lock_holder(staging) if staging.is_dir() else None
            if holder:
                raise RunFolderError(f"{setting_name('resume')} {folder.path}: a new run is being prepared there by "
                                     f"{holder}; wait for it to start, then try again")
            what = "not a folder" if folder.path.exists() else "no such folder"
            raise CheckpointError(f"{setting_name('resume')} {folder.path}: {what}; give the run folder that `textgen "
                                  "train` wrote")
        folder._lock = FolderLock.acquire(folder.path, f"{setting_name('resume')} {folder.path}: the run is being "
                                                       "written by")
        if not os.access(folder.path, os.W_OK):
            folder.release()
            cause = "Read-only file system" if os.statvfs(folder.path).f_flag & os.ST_RDONLY else "Permission denied"
            raise RunFolderError(f"{folder.path}: cannot write ({cause}); nothing was changed")
        _remove_stale(_staging(folder.path))  # an old run a killed --force had swapped out but not yet removed
        return folder

    def release(self) -> None:
        """Drop this process's locks (idempotent); the folder stays as it is."""
        for lock in (self._lock, self._old_lock):
            if lock is not None:
                lock.release()
        self._lock = self._old_lock = None

    # ------------------------------------------------------------ reading

    def read_record(self) -> RunRecord:
        """config.json, checked."""
        where = str(self._file(RECORD))
        return RunRecord.from_json(read_json(self._file(RECORD), "run configuration", self._at()), where)

    def read_vocab(self) -> Vocab:
        """vocab.json."""
        return vocab_from_json(read_json(self._file(VOCABULARY), "vocabulary", self._at()),
                                   f"{self._file(VOCABULARY)}")

    def load(self, which: str = "best") -> Checkpoint:
        """The ``best`` or ``last`` checkpoint."""
        if which not in CHECKPOINTS:
            raise CheckpointError(f"{setting_name('checkpoint')} must be best or last, got {which!r}")
        at = self._at()
        try:
            return load_checkpoint(self.checkpoint_path(which), at)
        except CheckpointError:
            instead = not_a_run(self.path, (RECORD, *CHECKPOINT_FILES.values()))
            if instead is not None:  # a folder that holds no run at all is named as such, not by a missing file
                raise CheckpointError(f"{self.path}: {instead}") from None
            raise

    def load_for_resume(self) -> tuple[RunRecord, Checkpoint]:
        """config.json and last.npz, each checked and checked against each other and vocab.json."""
        record = self.read_record()
        last = self.load("last")
        record.check_against(last, self.read_vocab(), str(self.path), CHECKPOINT_FILES["last"])
        return record, last

    def metrics(self) -> list[dict]:
        """metrics.jsonl's rows, each checked (CheckpointError naming the line and the field).

        A held-out loss of null is what textgen once wrote for one that overflowed (JSON has no inf):
        such a row is read as a row without an evaluation, so that the run stays readable and resumable.
        """
        rows = read_jsonl(self._file(METRICS), self._at())
        for row in rows:
            if row.get("val_loss", 0) is None:
                row.pop("val_loss")
                row.pop("val_bpc", None)
        return _checked_rows(self._file(METRICS), rows, METRICS_FIELDS)

    def samples(self) -> list[dict]:
        """samples.jsonl's rows, each checked."""
        return _checked_rows(self._file(SAMPLES), read_jsonl(self._file(SAMPLES), self._at()),
                             SAMPLES_FIELDS)

    def passage(self) -> str | None:
        """best_passage.txt, or None before the run has finished (a passage a kill left from before the run was
        extended is not its passage: see `is_finished`)."""
        if not self.is_finished():
            return None
        try:
            return read_bytes(self._file(PASSAGE), self._at()).decode("utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise CheckpointError(f"{self._file(PASSAGE)}: cannot read ({error.strerror})") from None
        except UnicodeDecodeError:
            raise CheckpointError(f"{self._file(PASSAGE)}: cannot read (not UTF-8 text)") from None

    def _stat(self, name: str) -> os.stat_result | None:
        """The file's status, or None if it is missing or not a regular file (a folder in its place, a link)."""
        try:
            status = os.stat(name, dir_fd=self._at(), follow_symlinks=False)
        except FileNotFoundError:
            return None
        return status if stat.S_ISREG(status.st_mode) else None

    def _has(self, name: str) -> bool:
        """True if the folder holds ``name`` as a regular file."""
        return self._stat(name) is not None

    def has_vocab(self) -> bool:
        """True if the folder holds vocab.json."""
        return self._has(VOCABULARY)

    def has_checkpoint(self, which: str) -> bool:
        """True if the folder holds the ``best`` or ``last`` checkpoint."""
        return self._has(CHECKPOINT_FILES[which])

    def is_finished(self) -> bool:
        """True if the run has finished: best_passage.txt holds the passage drawn after its last update.

        Decided from what the files hold, never from their times (a copy may reset them): config.json's
        finished_at_update, recorded once the passage is written and cleared when a resume extends the run.
        For a config.json from before that was recorded: a passage, and last.npz at the run's total.
        """
        if not self._has(PASSAGE):
            return False
        try:
            record = self.read_record()
            if record.records_finish:
                return record.finished_at_update == record.total_updates
            return self.load("last").training.update == record.total_updates
        except CheckpointError:
            return False  # a damaged run is not finished; whoever resumes it is told what is wrong

    def report_stamp(self) -> str:
        """The last line of a report of this run as it is now: it says whether the run had finished, and at which
        update, so that `report_is_current` needs no file times."""
        if self.is_finished():
            return f"<!-- textgen report of the finished run, update {self.read_record().total_updates} -->"
        return "<!-- textgen report of an unfinished run -->"

    def report_is_current(self) -> bool:
        """True if report.html and report.md were both made from the finished run (their last line says so)."""
        if not self.is_finished():
            return False
        stamp = self.report_stamp().encode() + b"\n"
        for name in (REPORT_PAGE, REPORT_MARKDOWN):
            try:
                if not read_bytes(self._file(name), self._at()).endswith(stamp):
                    return False
            except (OSError, TextgenError):
                return False
        return True

    # ------------------------------------------------------------ writing (the lock holder only)

    def _writable(self) -> int:
        assert self._lock is not None, "write to a run folder only while holding its lock"
        if self._target is None and not self._lock.still_names(self.path):
            raise RunFolderError(f"{self.path}: the run folder was moved, removed or replaced while this run wrote "
                                 "it; stopped (the files written so far are wherever the folder went)")
        return self._lock.handle

    def write_record(self, record: RunRecord) -> None:
        """config.json, atomically."""
        write_json(self._file(RECORD), record.to_json(), self._writable())

    def write_vocab(self, vocab: Vocab) -> None:
        """vocab.json, atomically."""
        write_json(self._file(VOCABULARY), vocab.to_json(), self._writable())

    def append_metrics(self, row: dict) -> None:
        """One metrics.jsonl row."""
        append_jsonl(self._file(METRICS), row, self._writable())

    def append_sample(self, row: dict) -> None:
        """One samples.jsonl row."""
        append_jsonl(self._file(SAMPLES), row, self._writable())

    def save_checkpoints(self, last: Checkpoint, best: Checkpoint) -> None:
        """last.npz, then best.npz, each atomically (a crash between them leaves a best.npz one checkpoint old)."""
        at = self._writable()
        try:
            save_checkpoint(self.checkpoint_path("last"), last, at)
            save_checkpoint(self.checkpoint_path("best"), best, at)
        except CheckpointError as error:
            kept = "the new run was not started" if self.staged else "the previous one is kept"
            raise CheckpointError(f"{message_of(error)}; {kept}") from None

    def rows_up_to(self, update: int, sampled_at: int) -> tuple[list[dict], list[dict]]:
        """The metrics and samples rows a continuation from ``update`` keeps: rows written after that
        checkpoint (by a process then killed) are made again by the continuation."""
        metrics = [row for row in self.metrics() if row.get("update", 0) <= update]
        samples = [row for row in self.samples()
                   if row.get("update", 0) < update or (row.get("update") == update and sampled_at == update)]
        return metrics, samples

    def commit_resume(self, last: Checkpoint, best: Checkpoint, metrics: list[dict], samples: list[dict],
                      record: RunRecord, drop_passage: bool = False) -> None:
        """A resumed run's first checkpoint, with its rows so far and config.json recording the resume.

        The rows go first (a kill before the checkpoint leaves rows past it, which the next continuation
        drops again), then the checkpoint, then config.json and, with ``drop_passage``, removing the passage
        (one drawn before the run was extended, which it draws anew). If the rows or the checkpoint cannot be
        written (a full disk), what was written is put back, so a resume that fails before it is under way
        leaves the folder as it was.
        """
        at = self._writable()
        originals = {name: self._original(name) for name in (METRICS, SAMPLES, *CHECKPOINT_FILES.values())}
        try:
            remove_temporaries(self.path, at, WRITER_FILES)
            for name, rows in ((METRICS, metrics), (SAMPLES, samples)):
                data = jsonl_bytes(rows, self._file(name))
                if originals[name] is None or data != originals[name][0]:
                    write_bytes(self._file(name), data, at)
            self.save_checkpoints(last, best)
        except TextgenError:
            self._put_back(originals)
            raise
        self.write_record(record)
        if drop_passage:
            try:
                os.unlink(PASSAGE, dir_fd=at)
            except FileNotFoundError:
                pass

    def _original(self, name: str) -> tuple[bytes, os.stat_result] | None:
        """A file's bytes and times, to put it back as it was."""
        try:
            return read_bytes(self._file(name), self._at()), os.stat(name, dir_fd=self._at())
        except FileNotFoundError:
            return None
        except OSError as error:
            raise CheckpointError(f"{self._file(name)}: cannot read ({error.strerror})") from None

    def _put_back(self, originals: dict[str, tuple[bytes, os.stat_result] | None]) -> None:
        """Restore files to what `_original` read (best effort: the error that called for it is the one to report)."""
        at = self._lock.handle
        for name, original in originals.items():
            try:
                current = self._original(name)
                if original is None:
                    if current is not None:
                        os.unlink(name, dir_fd=at)
                    continue
                data, stat = original
                if current is None or current[0] != data:
                    write_bytes(self._file(name), data, at)
                os.utime(name, ns=(stat.st_atime_ns, stat.st_mtime_ns), dir_fd=at)
            except (OSError, TextgenError):
                pass

    def write_passage(self, text: str) -> None:
        """best_passage.txt (UTF-8), atomically."""
        at = self._writable()
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise OutputError(f"{self._file(PASSAGE)}: the text holds a character that is not valid Unicode "
                              f"({error.reason})") from None
        write_bytes(self._file(PASSAGE), data, at)

    def write_plot(self, png: bytes) -> None:
        """loss.png, the figure of the run so far, atomically."""
        write_bytes(self._file(PLOT), png, self._at())

    def replaced(self) -> bool:
        """True if the path no longer names the folder this reader has been reading (``--force`` swapped it)."""
        if self._reading is None:
            return False
        try:
            return not os.path.samestat(os.fstat(self._reading), os.stat(self.path))
        except OSError:
            return True

    # ------------------------------------------------------------ written by anyone (no lock needed)

    report_figure_name = REPORT_FIGURE  # how report.md refers to its figure, which lies beside it

    def write_report(self, page: str, markdown: str, figure_png: bytes | None) -> tuple[Path, Path]:
        """report_loss.png (when there is a figure), report.html and report.md, each atomically, into the folder the
        report was read from (by whoever makes the report); returns the paths of the page and the Markdown."""
        if figure_png is not None:
            write_bytes(self._file(REPORT_FIGURE), figure_png, self._at())
        write_bytes(self._file(REPORT_PAGE), page.encode("utf-8"), self._at())
        write_bytes(self._file(REPORT_MARKDOWN), markdown.encode("utf-8"), self._at())
        return self._file(REPORT_PAGE), self._file(REPORT_MARKDOWN)

    def write_sweep_verdict(self, verdict: dict) -> None:
        """sweep_trial.json: what a sweep decided about this run, one of its trials (that it stopped it early)."""
        write_json(self._file(SWEEP_VERDICT), verdict, self._at())

    # ------------------------------------------------------------ a large corpus's ids, encoded into the folder

    def encoded_ids(self, dtype: np.dtype, held_out: bool = False) -> np.ndarray | None:
        """ids.bin (or with ``held_out`` val_ids.bin), memory-mapped read-only; None if it is missing or empty
        (CheckpointError if it does not hold a whole number of ids: it is damaged)."""
        path = self.encoded_ids_path(held_out)
        if not path.is_file() or not path.stat().st_size:
            return None
        if path.stat().st_size % np.dtype(dtype).itemsize:
            raise CheckpointError(f"{path}: not a whole number of ids; this run's encoded corpus is damaged")
        return np.memmap(path, dtype=dtype, mode="r")


def _loss(value: object) -> bool:
    # far above any loss a run can log (745 nats a character, the most a float64 probability allows, times
    # any window), and low enough that a figure can still be drawn
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1e12


def _fraction(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1e15


# What each row of the JSON-lines files holds: field -> (check, whether every row must have it).
METRICS_FIELDS = {
    "update": (lambda v: is_count(v, 1), True),
    "epoch": (_fraction, True),
    "loss": (_loss, True),
    "smooth_loss": (_loss, True),
    "chars_per_sec": (_fraction, False),
    "eta": (_fraction, False),  # the learning rate of the row's last step
    "val_loss": (_loss, False),
    "val_bpc": (_loss, False),
}
SAMPLES_FIELDS = {
    "update": (is_count, True),
    "epoch": (_fraction, True),
    "smooth_loss": (lambda v: v is None or _loss(v), True),
    "text": (lambda v: isinstance(v, str), True),
}


def _checked_rows(path: Path, rows: list[dict], spec: dict) -> list[dict]:
    """``rows``, or CheckpointError naming the first line whose fields are missing or out of range."""
    for number, row in enumerate(rows, start=1):
        for name, (valid, required) in spec.items():
            if name not in row:
                if required:
                    raise CheckpointError(f"{path}: line {number} has no {name!r}; the file has been edited or "
                                          "damaged")
            elif not valid(row[name]):
                raise CheckpointError(f"{path}: line {number} has {name} {str(row[name])[:40]!r}, which is out of "
                                      "range; the file has been edited or damaged")
    return rows


def _staging(out: Path) -> Path:
    return out.parent / f".{out.name}{STAGING_SUFFIX}"


def _aside(out: Path) -> Path:
    return out.parent / f".{out.name}{OLD_SUFFIX}"


def _make_parents(out: Path) -> list[Path]:
    """Create the folders above ``out`` that are missing; returns those it made, deepest first."""
    parent = out.parent
    missing = []
    probe = parent
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        raise RunFolderError(f"{setting_name('out')} {out}: {probe} is not a folder; choose another path")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunFolderError(f"{setting_name('out')} {parent}: cannot create the folder ({error.strerror})") from None
    return missing


def _clear(folder: Path, out: Path) -> None:
    """Empty a staging folder a killed process left (its run files; an old run a killed --force swapped out)."""
    for name in _listing(folder):
        if _own(name) and stat.S_ISREG(os.lstat(folder / name).st_mode):
            os.unlink(folder / name)
    left = foreign_entries(folder)
    if left:
        raise RunFolderError(f"{setting_name('out')} {out}: {folder}, where textgen prepares the run, holds files that "
                             f"are not a run's ({_first_few(left)}); move them out of it, then try again")


def _remove_old(folder: Path, out: Path) -> None:
    """Remove the old run a --force swapped out of ``out``, keeping whatever is not a run's file (a warning)."""
    left = _remove_run_files(folder)
    if left:
        log.warning("%s: files that are not a run's (%s) came into the old run while it was replaced; they are kept "
                    "in %s", out, _first_few(left), folder)


def _remove_stale(folder: Path) -> None:
    """Remove ``folder`` (a staging folder beside a run) if no process holds it: its run files, then the folder
    if nothing else is in it."""
    if not folder.is_dir() or folder.is_symlink():
        return
    try:
        lock = FolderLock.acquire(folder, "", follow=False)
    except RunFolderError:
        return  # in use: not ours to remove
    try:
        _remove_run_files(folder)
    finally:
        lock.release()


def _recover(out: Path) -> None:
    """Put back an old run that a replacement, killed between its two renames, left at .NAME.textgen-old
    (only where folders cannot be swapped in one step)."""
    old = _aside(out)
    try:
        if out.exists() or out.is_symlink() or old.is_symlink() or not old.is_dir() or not holds_run(old):
            return
    except OSError:
        return  # a path the filesystem cannot even look up: the caller's own checks will say so
    lock = FolderLock.acquire(old, f"{out}: its run is being replaced by", follow=False)
    try:
        if not out.exists():
            os.rename(old, out)
            log.warning("%s: a replacement of this run was cut short; the old run is back in place", out)
    finally:
        lock.release()


def _refuse_existing(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{setting_name('out')} {out}: exists and is not a folder; choose another path")
    existing = holds_run(out)
    foreign = foreign_entries(out)
    if existing and foreign:
        raise RunFolderError(f"{setting_name('out')} {out}: already holds a run and files that are not a run's "
                             f"({_first_few(foreign)}); choose another folder ({setting_name('force')} would not "
                             "replace them either)")
    if existing:
        writer = lock_holder(out)
        raise RunFolderError(f"{setting_name('out')} {out}: already holds a run ({', '.join(existing)})"
                             + (f", which {writer} is writing" if writer else "")
                             + f"; choose another folder or pass {setting_name('force')} to replace it")
    other = _listing(out)
    if other:
        raise RunFolderError(f"{setting_name('out')} {out}: is not empty ({_first_few(other)}); a run needs a folder "
                             "of its own: choose a new or empty one")


def _inside(path: Path, folder: Path) -> bool:
    """True if ``path`` (followed through links) is ``folder`` or lies inside it, also where a bind mount gives the
    folder another path: then one of the folders on the way to ``path`` is ``folder`` itself."""
    real, top = os.path.realpath(path), os.path.realpath(folder)
    if real == top or real.startswith(top.rstrip(os.sep) + os.sep):
        return True
    try:
        target = os.stat(top)
    except OSError:
        return False
    while True:
        try:
            if os.path.samestat(os.stat(real), target):
                return True
        except OSError:
            pass
        real, above = os.path.dirname(real), real
        if real == above:
            return False


def _refuse_to_replace(out: Path, keep: tuple[Path, ...]) -> None:
    """RunFolderError unless ``out`` is a folder --force may remove: a textgen run and nothing else, holding
    neither the current folder nor a file of ``keep`` (the corpus the new run reads)."""
    unchanged = "nothing was changed"
    try:
        here = Path.cwd()
    except OSError:
        here = None
    if here is not None and _inside(here, out):
        raise RunFolderError(f"{setting_name('out')} {out}: is the folder textgen runs in, or holds it; "
                             f"{setting_name('force')} would remove it from "
                             f"under you: run textgen from another folder ({unchanged})")
    for path in keep:
        if _inside(path, out):
            raise RunFolderError(f"{setting_name('corpus')} {path}: is inside {setting_name('out')} {out}, which "
                                 f"{setting_name('force')} would replace: the new run "
                                 f"could never be resumed without its corpus; move the corpus out of it first "
                                 f"({unchanged})")
    foreign = foreign_entries(out)
    if foreign:
        raise RunFolderError(f"{setting_name('out')} {out}: holds files that are not a run's ({_first_few(foreign)}); "
                             f"{setting_name('force')} "
                             f"replaces only a folder that holds a run and nothing else, so {unchanged}: move them "
                             "out of it or choose another folder")
    if not _textgen_config(out):
        raise RunFolderError(f"{setting_name('out')} {out}: its config.json is not a textgen run's (missing or not one "
                             "textgen "
                             f"wrote); {setting_name('force')} replaces only a run, so {unchanged}: choose another "
                             "folder")


def _lock_old_run(out: Path, keep: tuple[Path, ...] = ()) -> FolderLock | None:
    """Lock the run ``--force`` will replace (None if there is none yet), once `_refuse_to_replace` allows it."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise RunFolderError(f"{setting_name('out')} {out}: exists and is not a folder; choose another path")
    if not _listing(out):
        return None  # an empty folder: nothing to replace
    _refuse_to_replace(out, keep)
    lock = FolderLock.acquire(out, f"{setting_name('out')} {out}: the run there is being written by")
    try:
        _refuse_to_replace(out, keep)  # again, now that no textgen can change it: a user still can
    except BaseException:
        lock.release()
        raise
    return lock


def not_a_run(path: Path, files: tuple[str, ...] = (RECORD, CHECKPOINT_FILES["last"])) -> str | None:
    """What ``path`` is instead of a run folder (a folder holding one of a run's ``files``; what they hold is
    checked when they are read), as the end of a message naming it; None if it is one."""
    if not path.is_dir():
        what = "not a folder" if path.exists() else "no such folder"
        return f"{what}; give the folder of a run that textgen train wrote"
    if any((path / name).exists() for name in files):
        return None
    trials = sorted(path.glob(f"trials/*/{CHECKPOINT_FILES['last']}"))
    if trials:
        return f"a sweep folder, not a run folder; give one of its trials, such as {trials[0].parent}"
    return (f"not a run folder (it has no {' or '.join(files)}); give the folder of a run that textgen train "
            "wrote")


def check_init_from(path: Path) -> None:
    """ConfigError naming --init-from unless ``path`` is a run folder, saying what it is instead."""
    instead = not_a_run(path)
    if instead is not None:
        raise ConfigError(f"{setting_name('init_from')} {path}: {instead}")
