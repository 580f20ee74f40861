"""Errors textgen raises for bad input; the CLI turns each into one line on stderr and exit 1."""


class TextgenError(Exception):
    """Base class: a problem with the user's input, files or settings (not a bug)."""


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
