"""Errors textgen raises for bad input; the CLI turns each into one line on stderr and exit 1.

A message names a setting with `setting_name`, and is read with the setting spelled as its reader wrote it:
``--eta`` on the command line, ``eta`` in a settings file or a Python call (see `TextgenError.spelled`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_MARK = re.compile("\x1e([a-z][a-z0-9_]*)\x1f")  # a setting's name in a message, as `setting_name` writes it


def setting_name(name: str) -> str:
    """The setting ``name`` as a message holds it: a mark that each reader of the message spells its own way."""
    return f"\x1e{name}\x1f"


def spelled(text: str, spell: Callable[[str], str] | None = None) -> str:
    """``text`` with every setting in it written by ``spell(name)`` (by default as its name: ``eta``)."""
    return _MARK.sub(lambda match: spell(match.group(1)) if spell else match.group(1), text)


def log_marked(logger, level: int, text: str) -> None:
    """Log ``text``, whose settings are marked (`setting_name`), spelled as Python spells them; the record keeps the
    marked text as ``marked`` for a front end that spells settings its own way (the command line, as flags)."""
    logger.log(level, "%s", spelled(text, as_keyword), extra={"marked": text})


def as_flag(name: str) -> str:
    """A setting as the command line spells it: ``--seq-length``."""
    return "--" + name.replace("_", "-")


_CALLS = {"resume": "textgen.resume", "config": "config"}  # what Python calls the command line's actions


def as_keyword(name: str) -> str:
    """A setting as Python and a settings file spell it: ``seq_length`` (``textgen.resume`` for --resume)."""
    return _CALLS.get(name, name)


def by_origin(origins: dict[str, str], front: str) -> Callable[[str], str]:
    """Spell each setting as it was given: as a settings file's key for one a file gave (``origins`` maps a name to
    where it came from: "command line", "python" or the file), else as ``front`` ("command line" or "python")
    spells it."""
    plain = as_flag if front == "command line" else as_keyword

    def spell(name: str) -> str:
        return plain(name) if origins.get(name, front) in ("command line", "python") else as_keyword(name)

    return spell


def message_of(error: BaseException) -> str:
    """An error's message to put inside another message: a TextgenError's with its settings still marked, so that
    the outer message names them as its own reader spells them."""
    return error.message if isinstance(error, TextgenError) else str(error)


class TextgenError(Exception):
    """Base class: a problem with the user's input, files or settings (not a bug).

    Its text spells each setting as its reader wrote it: the front end an error passes through says how (`read_by`);
    one that passed through none (a library function called directly) speaks the command line's flags.
    """

    spelling: Callable[[str], str] | None = None  # how this error's reader spells settings (see `read_by`)

    @property
    def message(self) -> str:
        """The message as written, settings still marked (to put inside another message)."""
        return str(self.args[0]) if self.args else ""

    def spelled(self, spell: Callable[[str], str] | None = None) -> str:
        """The message with each setting spelled by ``spell`` (by default as its reader spells them)."""
        return spelled(self.message, spell or self.spelling or as_flag)

    def read_by(self, spell: Callable[[str], str]) -> TextgenError:
        """Say how this error's reader spells settings (unless a front end it passed through first already did)."""
        if self.spelling is None:
            self.spelling = spell
        return self

    def __str__(self) -> str:
        return self.spelled()


class CorpusError(TextgenError):
    """A corpus cannot be read or is unusable (missing, empty, undecodable, malformed)."""


class UnknownCorpusKind(TextgenError):
    """No loader or named corpus matches a source."""


class PluginError(TextgenError):
    """A corpus plugin failed to load, breaks the protocol, or clashes with another."""


class CheckpointError(TextgenError):
    """A checkpoint or run folder is missing, corrupt, or does not match what was asked."""


class ConfigError(TextgenError):
    """A setting is out of range or inconsistent."""


class TrainingError(TextgenError):
    """Training cannot go on (for example a non-finite loss)."""


class RunFolderError(TextgenError):
    """A run folder is in use by another process, already holds a run, or cannot be created."""


class LimitError(TextgenError):
    """A size would need more memory than this machine has (checked before anything is allocated)."""


class PathError(TextgenError):
    """A path the user gave cannot be used: a NUL byte, not valid UTF-8, a name too long, permission denied, a
    device or a folder where a file belongs."""


class OutputError(TextgenError):
    """A file or standard output cannot be written (full disk, read-only folder, an encoding too narrow)."""


def path_failure(error: OSError) -> PathError:
    """The PathError for an OSError the operating system raised on a user's path: the path and its words."""
    where = error.filename if error.filename2 is None else f"{error.filename} -> {error.filename2}"
    return PathError(f"{where}: {error.strerror or error}; check the path and its permissions")


def shown_value(value: object, limit: int = 60) -> str:
    """``value`` as a message shows it: as Python writes it (5, '5', True), so that a number is never quoted
    as text, shortened to about ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped, so a message stays one line."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in str(text))
