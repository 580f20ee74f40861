"""Finds corpus loaders (built-ins plus the `textgen.corpora` entry points) and picks one for a source."""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from textgen.errors import CorpusError, PluginError, UnknownCorpusKind, setting_name

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "textgen.corpora"
DISABLE_AUTOLOAD_ENV = "TEXTGEN_DISABLE_PLUGIN_AUTOLOAD"

# Listed by import path so they work from a source checkout too; pyproject.toml also
# registers them in the entry-point group, and those entries are recognised as these.
BUILTIN_LOADERS = {
    "text": "textgen.loaders.plaintext:PlainTextLoader",
    "tweets": "textgen.loaders.tweets:TweetLoader",
    "hf": "textgen.loaders.hf:HFLoader",
    "pydoc": "textgen.loaders.pythondocs:PythonDocsLoader",
}

PROJECT_CORPORA_DIR = Path(__file__).resolve().parent.parent / "corpora"


@dataclass(frozen=True)
class NamedCorpus:
    """A corpus known by name: a loader plus the file it looks for and where to get it."""

    name: str  # what `--corpus NAME` matches
    kind: str  # the loader that reads it
    filename: str  # file looked for in the search folders ("" for built-in data)
    description: str  # one line for `textgen corpora`
    where_to_get: str = ""  # told to the user when the file is missing


NAMED_CORPORA = {
    corpus.name: corpus
    for corpus in (
        NamedCorpus("pydoc", "pydoc", "", "the Python language reference shipped with CPython (default)"),
        NamedCorpus(
            "goblet",
            "text",
            "goblet_book.txt",
            "Harry Potter and the Goblet of Fire, the DD2424 Assignment 4 book",
            "download goblet_book.txt from the KTH DD2424 course page (Assignment 4 data)",
        ),
        NamedCorpus(
            "tweets2018",
            "tweets",
            "condensed_2018.json",
            "the 2018 Trump tweet archive in its 'condensed' JSON format",
            "download condensed_2018.json from the Trump Twitter Archive (bpb27/trump_tweet_data_archive)",
        ),
        NamedCorpus(
            "shakespeare",
            "text",
            "tinyshakespeare.txt",
            "tiny Shakespeare, the classic char-rnn corpus",
            "download input.txt of karpathy/char-rnn's tinyshakespeare data and name it tinyshakespeare.txt",
        ),
        NamedCorpus("sample-book", "text", "sample_book.txt", "a short text written for textgen's own tests"),
        NamedCorpus("sample-tweets", "tweets", "sample_tweets.json", "a few tweets in the archive format, ours"),
    )
}


def corpus_search_dirs() -> list[Path]:
    """Folders where named corpora are looked for, in order."""
    return [Path.cwd(), Path.cwd() / "corpora", PROJECT_CORPORA_DIR]


@dataclass(frozen=True)
class LoaderInfo:
    """A usable loader and where it came from."""

    name: str  # the loader's identifier
    suffixes: tuple[str, ...]  # file endings it claims
    factory: Callable[..., object]  # class or zero-argument factory; keyword options go to it
    origin: str  # "built-in" or "DIST VERSION"
    distribution: str = ""  # distribution name for plugins


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that failed to load; using it by name raises PluginError with ``cause``."""

    name: str
    origin: str
    cause: str


@dataclass
class Registry:
    """Every loader found, by name, plus plugins that failed to load."""

    loaders: dict[str, LoaderInfo] = field(default_factory=dict)
    broken: dict[str, BrokenPlugin] = field(default_factory=dict)

    def get(self, name: str) -> LoaderInfo:
        """The loader called ``name``, or a PluginError/UnknownCorpusKind saying why not."""
        if name in self.loaders:
            return self.loaders[name]
        if name in self.broken:
            plugin = self.broken[name]
            raise PluginError(f"corpus loader {name!r} ({plugin.origin}) failed to load: {plugin.cause}")
        raise UnknownCorpusKind(f"unknown corpus loader {name!r}; available: {', '.join(sorted(self.loaders))}")

    def for_file_name(self, file_name: str) -> LoaderInfo | None:
        """The loader claiming the longest suffix ``file_name`` ends with (``x.lyrics.csv``: ``.lyrics.csv``
        before ``.csv``); for equal claims built-ins first, and PluginError if two plugins make it."""
        file_name = file_name.lower()
        claims = {}  # claimed suffix -> the loaders claiming it
        for info in self.loaders.values():
            for suffix in info.suffixes:
                if file_name.endswith(suffix) and len(file_name) > len(suffix):
                    claims.setdefault(suffix, []).append(info)
        if not claims:
            return None
        suffix = max(claims, key=len)
        builtin = [info for info in claims[suffix] if info.origin == "built-in"]
        if builtin or len(claims[suffix]) == 1:
            return (builtin or claims[suffix])[0]
        names = " and ".join(f"{info.name} ({info.origin})" for info in claims[suffix])
        raise PluginError(f"suffix {suffix!r} is claimed by {names}; choose one with {setting_name('kind')}")


def _load_object(value: str) -> object:
    module_name, _, attribute = value.partition(":")
    target = importlib.import_module(module_name)
    for part in attribute.split(".") if attribute else ():
        target = getattr(target, part)
    return target


def _describe(factory: object) -> tuple[str, tuple[str, ...]]:
    """Check the protocol on a class or factory and return its name and suffixes."""
    probe = factory
    if not isinstance(factory, type):
        probe = factory()  # a zero-argument factory: look at what it makes
    name = getattr(probe, "name", None)
    suffixes = getattr(probe, "suffixes", None)
    missing = [
        member
        for member, ok in (
            ("name (a non-empty str)", isinstance(name, str) and bool(name)),
            ("suffixes (a tuple of str, each starting with '.')",
             isinstance(suffixes, (tuple, list)) and all(isinstance(s, str) and s[:1] == "." for s in suffixes)),
            ("iter_texts(source)", callable(getattr(probe, "iter_texts", None))),
        )
        if not ok
    ]
    if missing:
        raise TypeError("lacks " + ", ".join(missing))
    return name, tuple(s.lower() for s in suffixes)


def _origin(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "unknown distribution", ""
    return f"{dist.name} {dist.version}", dist.name


def discover(entry_points: Iterable[metadata.EntryPoint] | None = None) -> Registry:
    """Build the registry from the built-ins and ``entry_points`` (default: the installed group).

    Broken plugins are logged as warnings and kept aside; a name claimed by two plugins is a
    PluginError naming both distributions; a plugin may not take a built-in's name.
    """
    registry = Registry()
    for name, value in BUILTIN_LOADERS.items():
        factory = _load_object(value)
        registry.loaders[name] = LoaderInfo(name, _describe(factory)[1], factory, "built-in")
    if entry_points is None:
        if os.environ.get(DISABLE_AUTOLOAD_ENV, "") not in ("", "0"):
            return registry
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    builtin_values = set(BUILTIN_LOADERS.values())
    for entry_point in entry_points:
        if entry_point.value in builtin_values:
            continue  # our own pyproject's registration of a built-in
        origin, distribution = _origin(entry_point)
        try:
            factory = entry_point.load()
            name, suffixes = _describe(factory)
            # One name for both: `--kind` matches the loader's, a failure to load is reported under the key's.
            cause = "" if name == entry_point.name else (
                f"its loader's name is {name!r}, not its entry point's {entry_point.name!r}; the two must be the same")
        except (Exception, SystemExit) as error:  # noqa: BLE001 - a plugin's bug must not break textgen
            cause = f"{type(error).__name__}: {error}"
        if cause:
            log.warning("corpus plugin %r from %s was not loaded: %s", entry_point.name, origin, cause)
            registry.broken.setdefault(entry_point.name, BrokenPlugin(entry_point.name, origin, cause))
            continue
        if name in BUILTIN_LOADERS:
            log.warning("corpus plugin %r from %s was not loaded: %r is a built-in loader's "
                        "name", entry_point.name, origin, name)
            continue
        if name in registry.loaders:
            other = registry.loaders[name]
            raise PluginError(
                f"corpus loader name {name!r} is claimed by two plugins: {other.origin} and {origin}; "
                "uninstall one of them"
            )
        registry.loaders[name] = LoaderInfo(name, suffixes, factory, origin, distribution)
    return registry


def default_registry() -> Registry:
    """The installed loaders, discovered once per process, so a broken plugin is reported once."""
    return _discover_installed(os.environ.get(DISABLE_AUTOLOAD_ENV, ""))


@functools.lru_cache(maxsize=4)
def _discover_installed(autoload_setting: str) -> Registry:
    return discover()


@dataclass(frozen=True)
class ResolvedSource:
    """A corpus source with the loader chosen for it."""

    spec: str  # what the user wrote
    kind: str  # loader name
    location: str  # what is passed to iter_texts
    loader: LoaderInfo


def find_named(corpus: NamedCorpus) -> Path | None:
    """Where the file of a named corpus is, in the first of `corpus_search_dirs` that has it (None: in none)."""
    return next((folder / corpus.filename for folder in corpus_search_dirs()
                 if corpus.filename and (folder / corpus.filename).is_file()), None)


def _find_named(corpus: NamedCorpus) -> str:
    if not corpus.filename:
        return ""
    found = find_named(corpus)
    if found is not None:
        return str(found)
    places = ", ".join(str(folder) for folder in dict.fromkeys(corpus_search_dirs()))
    raise CorpusError(
        f"named corpus {corpus.name!r} needs {corpus.filename}, not found in {places}; {corpus.where_to_get} "
        f"and put it in one of those folders (or pass its path to {setting_name('corpus')})"
    )


def resolve_source(spec: str, registry: Registry, kind: str | None = None) -> ResolvedSource:
    """Pick the loader for ``spec``: --kind, then a ``kind:`` prefix, then a named corpus or the file suffix."""
    if kind:
        return ResolvedSource(spec, kind, spec, registry.get(kind))
    prefix, colon, rest = spec.partition(":")
    if colon and (prefix in registry.loaders or prefix in registry.broken) and not Path(spec).exists():
        return ResolvedSource(spec, prefix, rest, registry.get(prefix))
    path = Path(spec).expanduser()
    if not path.exists() and spec in NAMED_CORPORA:
        corpus = NAMED_CORPORA[spec]
        return ResolvedSource(spec, corpus.kind, _find_named(corpus), registry.get(corpus.kind))
    suffix = path.suffix.lower()
    info = registry.for_file_name(path.name)
    if info is not None:
        return ResolvedSource(spec, info.name, spec, info)
    if not path.exists() and not suffix:
        raise UnknownCorpusKind(
            f"{setting_name('corpus')} {spec!r}: no such file and no named corpus of that name; named corpora: "
            f"{', '.join(NAMED_CORPORA)}; loaders: {', '.join(sorted(registry.loaders))} (use LOADER:SOURCE)"
        )
    if path.is_dir():
        raise UnknownCorpusKind(
            f"{setting_name('corpus')} {spec!r}: is a folder; give a file in it, or a loader that reads folders as "
            "LOADER:FOLDER "
            f"(hf:{spec} for a dataset saved with save_to_disk or a folder of data files); loaders: "
            f"{', '.join(sorted(registry.loaders))}")
    raise UnknownCorpusKind(
        f"{setting_name('corpus')} {spec!r}: no loader claims the suffix {suffix or '(none)'!r}; pick one with "
        f"{setting_name('kind')} or a "
        f"LOADER:SOURCE prefix; available: {', '.join(sorted(registry.loaders))}"
    )
