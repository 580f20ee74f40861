"""A run's settings by name, as `textgen train --config FILE`, a sweep's spec and `textgen.train(**settings)` give
them: the names of the flags (``hidden``, ``val_fraction``, ``hf_split``), checked, and turned into what
`textgen.run.start_run` takes (`plan_run`)."""

from __future__ import annotations

import math
import os
import re
import secrets
import stat
import sys
from dataclasses import dataclass, fields
from datetime import date, datetime
from difflib import get_close_matches
from pathlib import Path

from textgen.config import RESUMABLE_FIELDS, RNNConfig, RunConfig, TrainConfig
from textgen.errors import ConfigError
from textgen.fs import check_user_path

# Flags of the built-in loaders: flag -> (the loader it is for, keyword of that loader's constructor, argparse
# settings). A flag given reaches only its own loader; any loader's own keywords, a plugin's too, come through --option.
LOADER_FLAGS = {
    "--encoding": ("text", "encoding", {"metavar": "NAME", "help": "text: encoding of the file (default utf-8)"}),
    "--strip-gutenberg": ("text", "strip_gutenberg", {"action": "store_true", "default": None,
                          "help": "text: drop Project Gutenberg's licence header and footer"}),
    "--keep-carriage-returns": ("text", "keep_carriage_returns", {"action": "store_true", "default": None,
                                "help": "text: keep CRLF and CR line ends as they are (by default they become \\n)"}),
    "--keep-retweets": ("tweets", "keep_retweets", {"action": "store_true", "default": None,
                        "help": "tweets: keep retweets (dropped by default)"}),
    "--keep-html-entities": ("tweets", "unescape_html", {"action": "store_false", "default": None,
                             "help": "tweets: leave &amp; and friends as they are"}),
    "--keep-links": ("tweets", "keep_links", {"action": "store_true", "default": None,
                     "help": "tweets: keep https://t.co/... links (dropped by default)"}),
    "--since": ("tweets", "since", {"metavar": "YYYY-MM-DD", "help": "tweets: only those from this date on"}),
    "--until": ("tweets", "until", {"metavar": "YYYY-MM-DD", "help": "tweets: only those up to this date"}),
    "--min-length": ("tweets", "min_length", {"type": int, "metavar": "N", "help": "tweets: drop shorter ones"}),
    "--hf-config": ("hf", "config", {"metavar": "NAME", "help": "hf: dataset configuration"}),
    "--hf-split": ("hf", "split", {"metavar": "SPLIT", "help": "hf: split to read (default train)"}),
    "--text-column": ("hf", "text_column", {"metavar": "COLUMN", "help": "hf: column holding the text"}),
}

# Loader flags of `train` only: where the held-out text comes from (as LOADER_FLAGS).
HELD_OUT_FLAGS = {
    "--hf-val-split": ("hf", "val_split", {"metavar": "SPLIT", "help": "hf: hold out this split of the dataset (e.g. "
                       "validation; up to 250k characters) instead of the tail of the split trained on"}),
}


def setting_of_flag(flag: str) -> str:
    """The setting a flag sets: ``--hf-split`` -> ``hf_split``."""
    return flag[2:].replace("-", "_")


MODEL_SETTINGS = tuple(f.name for f in fields(RNNConfig))
TRAIN_SETTINGS = tuple(f.name for f in fields(TrainConfig))
RUN_SETTINGS = tuple(f.name for f in fields(RunConfig) if f.name != "stream_over")
CORPUS_SETTINGS = ("corpus", "kind", "weights", "option")
LOADER_SETTINGS = {setting_of_flag(flag): (loader, keyword, flag)
                   for flag, (loader, keyword, _) in {**LOADER_FLAGS, **HELD_OUT_FLAGS}.items()}
SETTINGS = MODEL_SETTINGS + TRAIN_SETTINGS + RUN_SETTINGS + CORPUS_SETTINGS + tuple(LOADER_SETTINGS)

# What each setting's value must be in a file (TOML gives typed values); the dataclasses check the ranges.
_NUMBER = (int, float)
KINDS: dict[str, tuple[str, tuple[type, ...]]] = {
    **{name: ("an integer", (int,)) for name in ("hidden", "layers", "seq_length", "updates", "sample_every",
                                                  "sample_length", "log_every", "checkpoint_every", "eval_every",
                                                  "seed", "batch_size", "threads", "passage_length",
                                                  "val_max_characters", "min_length")},
    **{name: ("a number", _NUMBER) for name in ("sigma", "eta", "eps", "clip", "epochs", "rmsprop_decay", "beta1",
                                                "beta2", "dropout", "val_fraction")},
    **{name: ("true or false", (bool,)) for name in ("force", "strip_gutenberg", "keep_carriage_returns",
                                                     "keep_retweets", "keep_html_entities", "keep_links")},
}


@dataclass(frozen=True)
class RunPlan:
    """A new run, as `textgen.run.start_run` takes it."""

    corpus: list[str] | None  # sources; None: the built-in default corpus
    kind: str | None  # the loader for every source, or None to choose by each source
    weights: str | list[float] | None  # how several sources mix
    options: list  # textgen.corpus.LoaderOption, each for its loader
    model: RNNConfig | None  # None with run.init_from: the other run's model
    model_given: dict  # the model settings given by name (with run.init_from, they must match the other run's)
    train: TrainConfig
    run: RunConfig


def check_names(settings: dict, where: str, allowed: tuple[str, ...] = SETTINGS) -> None:
    """ConfigError for the first name in ``settings`` that is not a setting, with the nearest one."""
    for name in settings:
        if name not in allowed:
            close = get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: {name!r} is not a setting{hint}; the settings are the flags of "
                              "`textgen train --help`, with _ for -")


def check_value(name: str, value: object, where: str) -> None:
    """ConfigError unless ``value`` has the type the setting ``name`` takes (a file's values are typed)."""
    expected, types = KINDS.get(name, ("text", (str,)))
    if name == "corpus":
        expected, ok = "a source or a list of them", isinstance(value, str) or (
            isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value))
    elif name == "option":
        expected, ok = "a list of KEY=VALUE texts or a table", isinstance(value, dict) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value))
    elif name in ("since", "until"):  # as text, or a TOML date (since = 2018-01-31) or a datetime.date
        expected, ok = "a date, YYYY-MM-DD", isinstance(value, str) or (
            isinstance(value, date) and not isinstance(value, datetime))
    elif name == "weights":
        expected, ok = "a list of numbers or W1,W2 text", isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in value))
    else:
        ok = isinstance(value, types) and (bool in types or not isinstance(value, bool))
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
    if not ok:
        raise ConfigError(f"{where}: {name} must be {expected}, got {value!r}")


# A settings file or sweep spec is a few dozen lines; the largest sensible one, a spec whose grids make the most
# trials a sweep runs, is some hundreds of KB. tomllib (pure Python) parses 1 MiB in well under a second, so the
# cap bounds both the memory and the time a wrong file (/dev/zero, a log, a disk image) can take.
SETTINGS_FILE_MAX_BYTES = 1 << 20
_READ_PIECE = 64 << 10  # read in pieces: a stop (Ctrl-C, SIGTERM) is acted on between two of them
MAX_KEY_PARTS = 32  # a dotted key (a.b.c = 1, [a.b.c]) at most this deep: tomllib's time and memory grow as its square
_DEEP_KEY = re.compile(r"""(?:[ \t]*\.[ \t]*(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')){%d}""" % MAX_KEY_PARTS)


def read_settings_text(path: Path, where: str) -> str:
    """The text of a settings file or sweep spec: a regular file, or a pipe (``--config <(...)``, whose writer it
    waits for), of at most SETTINGS_FILE_MAX_BYTES; ConfigError starting with ``where`` for anything else (a
    folder, a device such as /dev/zero or a link to one, a larger file). Read in pieces, so a stop is never
    kept waiting."""
    try:
        # A pipe is opened to wait for its writer (a signal still stops the wait), anything else without waiting (a
        # device cannot block here). Asked before opening: a pipe opened and closed again would lose what a writer
        # quick enough to come in between wrote, and the second open would wait for ever.
        pipe = stat.S_ISFIFO(os.stat(path).st_mode)
        handle = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (0 if pipe else os.O_NONBLOCK))
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it ({error.strerror or error})") from None
    try:
        return _read_capped(handle, where)
    except OSError as error:
        raise ConfigError(f"{where}: cannot read it ({error.strerror or error})") from None
    finally:
        os.close(handle)


def _read_capped(handle: int, where: str) -> str:
    kind = os.fstat(handle).st_mode
    if stat.S_ISDIR(kind):
        raise ConfigError(f"{where}: is a folder; give a TOML file")
    if not (stat.S_ISREG(kind) or stat.S_ISFIFO(kind)):
        raise ConfigError(f"{where}: not a regular file (a device or socket); give a TOML file")
    too_large = (f"{where}: larger than the {SETTINGS_FILE_MAX_BYTES >> 20} MiB a settings file may be; is it the "
                 "right file?")
    if stat.S_ISREG(kind) and os.fstat(handle).st_size > SETTINGS_FILE_MAX_BYTES:
        raise ConfigError(too_large)
    if stat.S_ISFIFO(kind):
        os.set_blocking(handle, True)
    pieces, size = [], 0
    while True:
        piece = os.read(handle, _READ_PIECE)
        if not piece:
            break
        size += len(piece)
        if size > SETTINGS_FILE_MAX_BYTES:  # a file that grew, or a pipe that does not end
            raise ConfigError(too_large)
        pieces.append(piece)
    try:
        return b"".join(pieces).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text; save it as UTF-8") from None


def parse_toml(text: str, where: str) -> dict:
    """TOML text (of `read_settings_text`) as a dict; ConfigError starting with ``where`` if it is not TOML or
    nests deeper than a settings file can (tomllib would take minutes and gigabytes over a key 100,000 deep)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    deep = _DEEP_KEY.search(text)
    if deep:
        line = text.count("\n", 0, deep.start()) + 1
        raise ConfigError(f"{where}: line {line} has a dotted key of more than {MAX_KEY_PARTS} parts; settings are "
                          "at most [table] and name")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{where}: arrays or tables nested too deeply to be settings") from None


def load_toml(path: Path, where: str) -> dict:
    """A TOML file as a dict; ConfigError starting with ``where`` if it cannot be read or parsed."""
    return parse_toml(read_settings_text(path, where), where)


def read_settings_file(path: Path) -> dict:
    """The ``[train]`` table of a TOML file, every name and value checked; ConfigError naming the file."""
    data = load_toml(Path(path), f"--config {path}")
    table = data.get("train")
    if not isinstance(table, dict):
        raise ConfigError(f"--config {path}: no [train] table; put the settings under [train]")
    extra = [key for key in data if key != "train"]
    if extra:
        raise ConfigError(f"--config {path}: only a [train] table is read here, found {extra[0]!r} too")
    where = f"--config {path}"
    check_names(table, where)
    for name, value in table.items():
        check_value(name, value, where)
    return relative_to(Path(path).resolve().parent, table)


def relative_to(folder: Path, settings: dict) -> dict:
    """``settings`` with the paths a file gives read from ``folder`` (the file's own): ``out`` and ``init_from``
    when relative, and each corpus source that is a relative path (`source_from`)."""
    settings = dict(settings)
    for name in ("out", "init_from"):
        if isinstance(settings.get(name), str) and not Path(settings[name]).is_absolute():
            settings[name] = str(folder / settings[name])
    corpus = settings.get("corpus")
    if corpus is not None:
        sources = [corpus] if isinstance(corpus, str) else corpus
        settings["corpus"] = [source_from(folder, source) for source in sources]
    return settings


_LOADER_PREFIX = re.compile(r"[A-Za-z][\w-]*:")  # LOADER:SOURCE, as in hf:NAME


def source_from(folder: Path, source: str) -> str:
    """A corpus source a settings file gives, read from ``folder``: a relative path is that of a file there, found
    or not (a missing one is named where it was looked for, never taken from the current folder instead). An
    absolute path and ``~/...`` stay as they are, and so does a name without a suffix or a folder (a named corpus
    such as ``pydoc``) unless a file of that name is there; ``LOADER:SOURCE`` has SOURCE read from ``folder`` when
    a file of that name is there."""
    path = Path(source)
    if path.is_absolute() or source.startswith("~"):
        return source
    if (folder / path).exists():
        return str(folder / path)
    prefix = _LOADER_PREFIX.match(source)
    if prefix:  # the loader's source is a path of a file there, or anything else it understands (a dataset's name)
        rest = source[prefix.end():]
        there = rest and not Path(rest).is_absolute() and (folder / rest).exists()
        return prefix.group() + str(folder / rest) if there else source
    if not path.suffix and len(path.parts) == 1:
        return source
    return str(folder / path)


ALTERNATIVES = (("updates", "epochs"), ("epochs", "updates"))  # a run's length: the one given replaces the other


def overridden(settings: dict, overrides: dict) -> dict:
    """``settings`` with ``overrides`` (flags over a file's, a trial's searched values over the sweep's base): a
    value replaces the same setting, and ``updates`` or ``epochs`` replaces the other as well."""
    kept = {name: value for name, value in settings.items()
            if not any(name == other and overrides.get(given) is not None for given, other in ALTERNATIVES)}
    return {**kept, **overrides}


def loader_options_of(settings: dict) -> list:
    """The `textgen.corpus.LoaderOption` list that the loader settings (``encoding``, ``hf_split``...) and
    ``option`` (KEY=VALUE texts, or a table) among ``settings`` give, each for its loader."""
    from textgen.corpus import LoaderOption

    options = []
    for name, (loader, keyword, flag) in LOADER_SETTINGS.items():
        if settings.get(name) is not None:
            value = settings[name]
            if name == "keep_html_entities":  # the setting keeps them: the loader's keyword says the opposite
                value = not value
            if isinstance(value, date):  # since, until: the loader reads the date as its flag gives it
                value = value.isoformat()
            options.append(LoaderOption(keyword, value, loader, flag))
    option = settings.get("option") or []
    if isinstance(option, dict):
        return options + [LoaderOption(str(key).replace("-", "_"), value, label=f"--option {key}={value}")
                          for key, value in option.items()]
    return options + [LoaderOption.parse(text) for text in ([option] if isinstance(option, str) else option)]


def check_length_given(given: dict) -> None:
    """ConfigError if ``given`` sets both ``updates`` and ``epochs`` (a run's length is one or the other)."""
    if given.get("updates") is not None and given.get("epochs") is not None:
        raise ConfigError("give --updates or --epochs, not both")


def check_init_model(given: dict, other: RNNConfig, init_from: object) -> None:
    """ConfigError if a model setting in ``given`` differs from ``other``, the model of the --init-from run."""
    for name in MODEL_SETTINGS:
        if given.get(name) is not None and given[name] != getattr(other, name):
            raise ConfigError(f"--{name} {given[name]} differs from the --init-from run's {getattr(other, name)} "
                              f"({init_from}: {other.cell}, {other.layers} layer(s) of {other.hidden}, sigma "
                              f"{other.sigma:g}, {other.dtype}); --init-from continues that model: leave --{name} out")


RESUME_EXTRA = ("passage_length",)  # what a resume may change besides RESUMABLE_FIELDS


def resume_changes(given: dict, recorded: dict) -> dict:
    """The changes a resume makes, from the settings ``given`` by name: those that differ from ``recorded``
    (the run's own value of each setting, by the same names). A setting a resume may change (`RESUMABLE_FIELDS`,
    ``passage_length``) is a change; any other that differs is refused (ConfigError naming it), since the
    continuation would not be exact; one given as the run already has it is no change at all."""
    check_names(given, "--resume")
    given = {name: value for name, value in given.items() if value is not None}
    check_length_given(given)
    if given.get("force"):
        raise ConfigError("--force is for a new run, whose --out it replaces; --resume continues the run in its own "
                          "folder and replaces nothing: leave --force out")
    changes, refused = {}, []
    for name, value in given.items():
        if name in RESUMABLE_FIELDS or name in RESUME_EXTRA:
            changes[name] = value
        elif not _same(value, recorded.get(name)):
            refused.append(name)
    if refused:
        shown = ", ".join(f"--{name.replace('_', '-')} ({_shown(given[name])} given, the run has "
                          f"{_shown(recorded.get(name))})" for name in refused)
        raise ConfigError(f"--resume cannot change {shown}: a resume continues the run as it was set up, and "
                          "the continuation would not be exact; start a new run or --init-from this one")
    return changes


def _same(value: object, recorded: object) -> bool:
    """True if a setting given as ``value`` is the run's ``recorded`` one (paths by where they lead, numbers
    by value, a source given alone as the run's one source)."""
    if isinstance(value, (str, Path)) and isinstance(recorded, (str, Path)) and (
            isinstance(value, Path) or isinstance(recorded, Path)):
        return Path(value).resolve() == Path(recorded).resolve()
    if isinstance(value, (str, Path)) and isinstance(recorded, list):
        return [str(value)] == [str(item) for item in recorded]
    if isinstance(value, list) and isinstance(recorded, list):
        return len(value) == len(recorded) and all(_same(a, b) for a, b in zip(value, recorded))
    if isinstance(value, bool) or isinstance(recorded, bool):
        return value is recorded or (value is False and recorded is None)
    return value == recorded


def _shown(value: object) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return "none" if value is None else str(value) if isinstance(value, (str, Path)) else repr(value)


def plan_run(settings: dict, where: str = "settings") -> RunPlan:
    """The run ``settings`` describe (names as `SETTINGS`; anything unset has its default; ``seed`` unset is a
    fresh one). ConfigError for an unknown name, a bad value, or settings that cannot go together."""
    check_names(settings, where)
    given = {name: value for name, value in settings.items() if value is not None}
    check_length_given(given)
    model = {name: given[name] for name in MODEL_SETTINGS if name in given}
    train = {name: given[name] for name in TRAIN_SETTINGS if name in given}
    run = {name: given[name] for name in RUN_SETTINGS if name in given}
    train.setdefault("seed", secrets.randbits(32))
    for name in ("out", "init_from"):
        if name in run:
            if not isinstance(run[name], (str, Path)):
                raise ConfigError(f"--{name.replace('_', '-')} must be a path, got {run[name]!r}")
            run[name] = check_user_path(run[name], f"--{name.replace('_', '-')}")  # a TOML file's "a\u0000b" too
    options = loader_options_of(given)
    corpus = given.get("corpus")
    return RunPlan(
        model_given=model,
        corpus=None if corpus is None else [str(c) for c in ([corpus] if isinstance(corpus, (str, Path)) else corpus)],
        kind=given.get("kind"),
        weights=given.get("weights"),
        options=options,
        model=None if "init_from" in run else RNNConfig(**model),
        train=TrainConfig(**train),
        run=RunConfig(**run),
    )
