"""Settings by name, merged and checked: what `textgen train --config FILE`, a sweep's spec, `textgen.train(**settings)`
and the command line's flags give (the names of the settings table, `textgen.config.SETTINGS`), turned into what
`textgen.run.start_run` takes (`plan_run`), and every rule that joins several settings: a run's length given once,
the --init-from run's model, what a resume may change."""

from __future__ import annotations

import math
import os
import re
import secrets
import stat
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from difflib import get_close_matches
from pathlib import Path

from textgen.config import (
    CELL_DEFAULTS,
    LOADER_SETTINGS,
    RESUMABLE,
    SETTINGS,
    ModelConfig,
    RunConfig,
    WINDOWED_CELLS,
    Setting,
    TrainConfig,
)
from textgen.errors import ConfigError, setting_name
from textgen.fs import check_user_path

MODEL_SETTINGS = tuple(ModelConfig.table())
TRAIN_SETTINGS = tuple(TrainConfig.table())
RUN_SETTINGS = tuple(RunConfig.table())


def check_names(settings: dict, where: str, allowed: dict | tuple = SETTINGS) -> None:
    """ConfigError for the first name in ``settings`` that is not a setting, with the nearest one."""
    for name in settings:
        if name not in allowed:
            close = get_close_matches(str(name), list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: {name!r} is not a setting{hint}; the settings are the flags of "
                              "`textgen train --help`, with _ for -")


def check_value(name: str, value: object, where: str = "") -> None:
    """ConfigError unless ``value`` has the type the setting ``name`` takes, as a settings file, a sweep's spec or
    a Python call gives it (typed values: ``hidden = "128"`` is text, not a number); the setting's own range is
    checked where its dataclass is made. ``where`` (a file) starts the message."""
    entry: Setting = SETTINGS[name]
    if name == "corpus":
        expected, ok = "a source or a list of them", isinstance(value, (str, Path)) or (
            isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, (str, Path)) for v in value))
    elif name == "option":
        expected, ok = "a list of KEY=VALUE texts or a table", isinstance(value, dict) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))
    elif name in ("since", "until"):  # as text, or a TOML date (since = 2018-01-31) or a datetime.date
        expected, ok = "a date, YYYY-MM-DD", isinstance(value, str) or (
            isinstance(value, date) and not isinstance(value, datetime))
    elif name == "weights":
        expected, ok = "a list of numbers or W1,W2 text", isinstance(value, str) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                     for v in value))
    else:
        expected = "text" if entry.choices else entry.kind()
        types = {int: (int,), float: (int, float), bool: (bool,), str: (str,), Path: (str, Path)}[entry.type]
        ok = isinstance(value, types) and (entry.type is bool or not isinstance(value, bool))
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False  # nan and inf are no numbers a setting takes
    if not ok:  # named as the file names it, after the file, or else as its reader spells it
        named = f"{where}: {name}" if where else setting_name(name)
        raise ConfigError(f"{named} must be {expected}, got {value!r}")


@dataclass(frozen=True)
class RunPlan:
    """A new run, as `textgen.run.start_run` takes it."""

    corpus: list[str] | None  # sources; None: the built-in default corpus
    kind: str | None  # the loader for every source, or None to choose by each source
    weights: str | list[float] | None  # how several sources mix
    options: list  # textgen.corpus.LoaderOption, each for its loader
    model: ModelConfig | None  # None with run.init_from: the other run's model
    model_given: dict  # the model settings given by name (with run.init_from, they must match the other run's)
    train: TrainConfig
    run: RunConfig
    train_given: dict = field(default_factory=dict)  # the training settings given by name


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
    where = f"{setting_name('config')} {path}"
    data = load_toml(Path(path), where)
    table = data.get("train")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: no [train] table; put the settings under [train]")
    extra = [key for key in data if key != "train"]
    if extra:
        raise ConfigError(f"{where}: only a [train] table is read here, found {extra[0]!r} too")
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


@dataclass(frozen=True)
class Given:
    """The settings of a new run as its front end gave them: the values by name, and where each came from."""

    values: dict  # every setting given, by name (a file's under the command line's)
    origins: dict  # name -> "command line", "python" or the settings file's path
    record: dict  # what config.json records as settings_from: which names came from where


def given_settings(front: str, settings: dict, config: Path | None = None, resume: bool = False) -> Given:
    """The settings a run is given by ``front`` ("command line" or "python") as ``settings``, over those of the
    settings file ``config`` if any: a setting given replaces the file's (``corpus`` its whole list, ``updates``
    its ``epochs`` and the other way round). For a ``resume``, a settings file is refused: it sets up a new run."""
    if resume and config is not None:
        raise ConfigError(f"{setting_name('config')} sets up a new run; {setting_name('resume')} continues one as it "
                          "was (give its changes as settings)")
    settings = {name: value for name, value in settings.items() if value is not None}
    from_file = {} if config is None else read_settings_file(config)
    if "corpus" in settings:
        from_file.pop("corpus", None)
    from_file = {name: value for name, value in overridden(from_file, settings).items() if name not in settings}
    origins = {**{name: str(config) for name in from_file}, **{name: front for name in settings}}
    record = {front.replace(" ", "_"): sorted(settings)}
    if config is not None:
        record.update(config_file=str(Path(config).resolve()), file=sorted(from_file))
    return Given({**from_file, **settings}, origins, record)


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
    for name, entry in LOADER_SETTINGS.items():
        if settings.get(name) is not None:
            value = not settings[name] if entry.negated else settings[name]  # keep_html_entities: unescape_html off
            if isinstance(value, date):  # since, until: the loader reads the date as its flag gives it
                value = value.isoformat()
            options.append(LoaderOption(entry.keyword, value, entry.loader, setting_name(name)))
    option = settings.get("option") or []
    if isinstance(option, dict):
        return options + [LoaderOption(str(key).replace("-", "_"), value, label=f"{setting_name('option')} "
                                                                                f"{key}={value}")
                          for key, value in option.items()]
    return options + [LoaderOption.parse(text) for text in ([option] if isinstance(option, str) else option)]


def check_length_given(given: dict) -> None:
    """ConfigError if ``given`` sets both ``updates`` and ``epochs`` (a run's length is one or the other)."""
    if given.get("updates") is not None and given.get("epochs") is not None:
        raise ConfigError(f"give {setting_name('updates')} or {setting_name('epochs')}, not both")


def check_init_model(given: dict, other: ModelConfig, init_from: object) -> None:
    """ConfigError if a model setting in ``given`` differs from ``other``, the model of the --init-from run."""
    for name in MODEL_SETTINGS:
        if given.get(name) is not None and given[name] != getattr(other, name):
            flag, start = setting_name(name), setting_name("init_from")
            raise ConfigError(f"{flag} {given[name]} differs from the {start} run's {getattr(other, name)} "
                              f"({init_from}: {other.cell}, {other.layers} layer(s) of {other.hidden}, sigma "
                              f"{other.sigma:g}, {other.dtype}); {start} continues that model: leave {flag} out")


def resume_changes(given: dict, recorded: dict) -> dict:
    """The changes a resume makes, from the settings ``given`` by name: those that differ from ``recorded``
    (the run's own value of each setting, by the same names). A setting a resume may change (`RESUMABLE`: the
    length, the learning rate, the intervals, the passage's length) is a change; any other that differs is refused (ConfigError naming it), since the
    continuation would not be exact; one given as the run already has it is no change at all."""
    check_names(given, setting_name("resume"))
    given = {name: value for name, value in given.items() if value is not None}
    check_length_given(given)
    if given.get("force"):
        force, resume = setting_name("force"), setting_name("resume")
        raise ConfigError(f"{force} is for a new run, whose {setting_name('out')} it replaces; {resume} continues the "
                          f"run in its own folder and replaces nothing: leave {force} out")
    changes, refused = {}, []
    for name, value in given.items():
        if name in RESUMABLE:
            changes[name] = value
        elif not _same(value, recorded.get(name)):
            refused.append(name)
    if refused:
        shown = ", ".join(f"{setting_name(name)} ({_shown(given[name])} given, the run has "
                          f"{_shown(recorded.get(name))})" for name in refused)
        raise ConfigError(f"{setting_name('resume')} cannot change {shown}: a resume continues the run as it was set "
                          f"up, and the continuation would not be exact; start a new run or "
                          f"{setting_name('init_from')} this one")
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


def window_is_context(model: dict, train: dict) -> None:
    """Set ``train``'s seq_length to ``model``'s context (given or the default) for a cell whose windows are its
    context (`WINDOWED_CELLS`); ConfigError if a different seq_length was given."""
    context = model.get("context", ModelConfig.table()["context"].default)
    if "seq_length" in train and train["seq_length"] != context:
        raise ConfigError(f"{setting_name('seq_length')} {train['seq_length']} differs from {setting_name('context')} "
                          f"{context}: a {model.get('cell')} model reads windows of its context; leave "
                          f"{setting_name('seq_length')} out")
    train["seq_length"] = context


def plan_run(settings: dict, where: str = "settings") -> RunPlan:
    """The run ``settings`` describe (names as `SETTINGS`; anything unset has its default; ``seed`` unset is a
    fresh one). ConfigError for an unknown name, a bad value, or settings that cannot go together."""
    check_names(settings, where)
    given = {name: value for name, value in settings.items() if value is not None}
    check_length_given(given)
    model = {name: given[name] for name in MODEL_SETTINGS if name in given}
    train = {name: given[name] for name in TRAIN_SETTINGS if name in given}
    run = {name: given[name] for name in RUN_SETTINGS if name in given}
    train_given = dict(train)
    train.setdefault("seed", secrets.randbits(32))
    cell = model.get("cell", None if "init_from" in run else "rnn")  # with init_from: the other run's, see start_run
    if "optimizer" not in train and cell in CELL_DEFAULTS:
        train["optimizer"] = CELL_DEFAULTS[cell]["optimizer"]
    if cell in WINDOWED_CELLS:
        window_is_context(model, train)
    if "init_from" in run and "tokens" not in train:  # the other run's level, checked against vocab_size by start_run
        train.pop("vocab_size", None)
    for name in ("out", "init_from"):
        if name in run:
            if not isinstance(run[name], (str, Path)):
                raise ConfigError(f"{setting_name(name)} must be a path, got {run[name]!r}")
            run[name] = check_user_path(run[name], setting_name(name))  # a TOML file's "a\u0000b" too
    options = loader_options_of(given)
    corpus = given.get("corpus")
    for source in [corpus] if isinstance(corpus, (str, Path)) else corpus or []:
        if isinstance(source, (str, Path)):
            check_user_path(source, setting_name("corpus"))
    return RunPlan(
        model_given=model,
        corpus=None if corpus is None else [str(c) for c in ([corpus] if isinstance(corpus, (str, Path)) else corpus)],
        kind=given.get("kind"),
        weights=given.get("weights"),
        options=options,
        model=None if "init_from" in run else ModelConfig(**model),
        train=TrainConfig(**train),
        run=RunConfig(**run),
        train_given=train_given,
    )
