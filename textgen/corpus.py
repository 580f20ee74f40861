"""Turns `--corpus` sources into one training text: pick a loader, read its documents, join them, summarise."""

from __future__ import annotations

import collections
import hashlib
import inspect
import logging
import math
import os
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textgen.errors import ConfigError, CorpusError, LimitError, PluginError, TextgenError, setting_name
from textgen.limits import available_memory, check_memory, format_bytes
from textgen.loaders.base import END_OF_DOCUMENT, document_separator
from textgen.registry import LoaderInfo, Registry, ResolvedSource, default_registry, resolve_source
from textgen.vocab import CharVocab, Vocab, build_vocab

DEFAULT_CORPUS = "pydoc"  # used when no --corpus is given


@dataclass
class Corpus:
    """The joined text of every source plus a JSON-ready summary of each."""

    text: str  # the training text: all sources, documents joined by their loader's separator
    sources: list[dict]  # per source: spec, kind, location, options, documents, characters, sha256
    validation: str = ""  # held-out text (the tail of each source, or its loader's own), never trained on
    val_fraction: float = 0.0  # the share of each source held out as ``validation``


def run_name(source: str) -> str:
    """A short folder-safe name for a source: a file's stem, or the source itself."""
    stem = Path(source).stem or source
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem)[:40]


@dataclass(frozen=True)
class LoaderOption:
    """One loader option as it was given: a keyword of a loader's constructor, for one loader or for every
    chosen loader that takes it."""

    key: str  # the constructor's keyword
    value: object  # a str given to a bool, int or float parameter is converted (--option gives text)
    loader: str = ""  # only this loader (a built-in flag, or LOADER.KEY=VALUE); "": each chosen loader taking it
    label: str = ""  # how it was given, for messages: "--hf-split", "--option column=title"

    @classmethod
    def parse(cls, text: str) -> LoaderOption:
        """``KEY=VALUE`` or ``LOADER.KEY=VALUE``, as given to --option (a "-" in KEY is read as "_")."""
        name, equals, value = text.partition("=")
        loader, dot, key = name.strip().rpartition(".")
        key = key.strip().replace("-", "_")
        if not equals or not key.isidentifier() or (dot and not loader.strip()):
            raise ConfigError(f"{setting_name('option')} {text!r}: expected KEY=VALUE or LOADER.KEY=VALUE, such as "
                              f"{setting_name('option')} column=title")
        return cls(key, value, loader.strip(), f"{setting_name('option')} {text}")


_TEXT_TYPES = (bool, int, float, str)  # what a text value can be converted to


def loader_parameters(loader: LoaderInfo) -> dict[str, type | None] | None:
    """The keywords a loader's constructor takes, each with the type a text value for it becomes (bool, int,
    float or str, from its annotation or else its default; None: passed as given). None if it takes any
    keyword (``**kwargs``), or its signature cannot be read."""
    factory = loader.factory
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    try:
        hints = typing.get_type_hints(factory.__init__ if isinstance(factory, type) else factory)
    except Exception:  # noqa: BLE001 - a plugin's annotation may name anything; the defaults still tell
        hints = {}
    keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {name: _text_type(hints.get(name), parameter.default)
            for name, parameter in parameters.items() if parameter.kind in keywords}


def _text_type(hint: object, default: object) -> type | None:
    """What a text value for a parameter annotated ``hint`` (``int``, ``str | None``, ...) becomes."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    known = [kind for kind in (typing.get_args(hint) if union else (hint,)) if kind in _TEXT_TYPES]
    if not known and type(default) in _TEXT_TYPES:
        known = [type(default)]
    return str if str in known else (known[0] if known else None)


def _converted(option: LoaderOption, kind: type | None, loader: str) -> object:
    """``option.value`` as its parameter's ``kind``, when it is text and the parameter is not."""
    if not isinstance(option.value, str) or kind in (None, str):
        return option.value
    text = option.value.strip()
    try:
        return {"true": True, "false": False}[text.lower()] if kind is bool else kind(text)
    except (KeyError, ValueError):
        expected = {bool: "true or false", int: "a whole number", float: "a number"}[kind]
        raise ConfigError(f"{option.label}: the {loader} loader's {option.key} takes {expected}, "
                          f"not {option.value[:60]!r}") from None


def route_options(sources: list[ResolvedSource], options: dict | list[LoaderOption] | None) -> list[dict]:
    """The keyword arguments for each source's loader: each option goes to every chosen loader (or only its
    ``loader``) whose constructor takes it, converted to the parameter's type.

    ``options`` is a list of `LoaderOption`, or a dict of keyword -> value for each loader that takes it. An option
    that no chosen loader takes, or one set twice for a loader, is a ConfigError naming what each loader takes.
    """
    if isinstance(options, dict):
        options = [LoaderOption(key, value, label=f"option {key}={value!r}") for key, value in options.items()]
    kinds = list(dict.fromkeys(source.kind for source in sources))
    loaders = {source.kind: source.loader for source in sources}
    parameters = {kind: loader_parameters(loaders[kind]) for kind in kinds}
    routed: list[dict] = [{} for _ in sources]
    set_by: list[dict] = [{} for _ in sources]  # keyword -> the label of the option that set it
    for option in options or ():
        if option.loader and option.loader not in kinds:
            raise ConfigError(f"{option.label} is for the {option.loader} loader, which no {setting_name('corpus')} "
                              f"here uses (they use {', '.join(kinds)})")
        aimed = [kind for kind in kinds if option.loader in ("", kind)]
        takers = {kind for kind in aimed if parameters[kind] is None or option.key in parameters[kind]}
        if not takers:
            offers = "; ".join(f"the {kind} loader ({loaders[kind].origin}) takes "
                               f"{', '.join(parameters[kind]) or 'no options'}" for kind in aimed)
            raise ConfigError(f"{option.label}: no loader used here takes {option.key!r}; {offers}")
        for index, source in enumerate(sources):
            if source.kind not in takers:
                continue
            if option.key in routed[index]:
                raise ConfigError(f"{option.label} and {set_by[index][option.key]} both set the {source.kind} "
                                  f"loader's {option.key}; give it once")
            routed[index][option.key] = _converted(option, (parameters[source.kind] or {}).get(option.key),
                                                   source.kind)
            set_by[index][option.key] = option.label
    return routed


# Options of built-in loaders that came after run folders began to record their sources, each with the value
# that reads a source as textgen did before the option existed: the text loader kept CRs and a byte-order mark.
# A new run records the value it used (`plan_sources`), so a recorded source without one was read the old
# way, and a resume reads it so again (`recorded_options`).
OPTIONS_ADDED_LATER = {"keep_carriage_returns": True, "keep_byte_order_mark": True}


def _later_options_taken(source: ResolvedSource) -> dict[str, inspect.Parameter]:
    """The parameters of the source's loader that are named in OPTIONS_ADDED_LATER (none for a plugin)."""
    if source.loader.origin != "built-in":
        return {}
    parameters = inspect.signature(source.loader.factory).parameters
    return {name: parameters[name] for name in OPTIONS_ADDED_LATER if name in parameters}


def recorded_options(summary: dict, registry: Registry | None = None) -> dict:
    """The options a source recorded in config.json was read with: its ``options``, and for a run from before
    an option of OPTIONS_ADDED_LATER existed, the value that reads the source as that run did."""
    source = resolve_source(f"{summary['kind']}:{summary['location']}", registry or default_registry())
    options = dict(summary.get("options", {}))
    for name in _later_options_taken(source):
        options.setdefault(name, OPTIONS_ADDED_LATER[name])
    return options


def options_in_effect(source: ResolvedSource, options: dict) -> dict:
    """Every keyword ``source``'s loader was called with: ``options``, and the default of each other keyword its
    constructor takes (the values an option given again to a resume is compared with)."""
    try:
        parameters = inspect.signature(source.loader.factory).parameters.values()
    except (TypeError, ValueError):
        return dict(options)
    keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {**{p.name: p.default for p in parameters if p.kind in keywords and p.default is not p.empty}, **options}


def names_source(spec: str, kind: str | None, source: ResolvedSource, registry: Registry) -> bool:
    """True if ``spec`` (read with --kind ``kind``) names ``source``: the same loader and location, or the same
    loader and another path to the same file (``./book.txt``, its absolute path, ``text:book.txt``)."""
    try:
        given = resolve_source(spec, registry, kind)
    except TextgenError:
        return False
    if given.kind != source.kind:
        return False
    if given.location == source.location:
        return True
    try:
        return os.path.samefile(os.path.expanduser(given.location), os.path.expanduser(source.location))
    except (OSError, ValueError):
        return False


class ReadBudget:
    """How much text may still be read into memory: a corpus held in memory is kept as its pieces, then
    joined, then encoded, so each character costs about twice its width in the string plus its id.

    Reading stops with LimitError once the text read would not fit, so an endless device, a plugin
    that never stops or a member that expands without bound ends in one line, not in a killed process.
    """

    SHARE = 0.8  # of the memory available when reading starts; the rest is for everything else

    def __init__(self, available: int | None = None):
        self.available = available_memory() if available is None else available
        self.used = 0  # estimated bytes of what was read so far

    def take(self, piece: str, spec: str, characters: int) -> None:
        """Count ``piece``; LimitError naming ``spec`` once the corpus read would no longer fit."""
        width = 1 if piece.isascii() else (2 if max(piece) <= "\uffff" else 4)
        self.used += len(piece) * (2 * width + 1) + 64
        if self.used > self.SHARE * self.available:
            raise LimitError(
                f"{spec}: stopped reading after {characters:,} characters: holding more of this corpus in memory "
                f"would need more than the {format_bytes(self.available)} available; use a smaller "
                "corpus, or a single file, which textgen streams from disk when it is over "
                f"{STREAM_THRESHOLD_BYTES >> 20} MB"
            )


def read_source(source: ResolvedSource, options: dict, budget: ReadBudget | None = None) -> tuple[list[str], dict]:
    """Read one source into pieces (each document followed by the loader's separator) and its summary.

    ``options`` are keyword arguments for the loader's constructor, already filtered to those it takes;
    ``budget`` (default: a fresh one) stops the reading once it would not fit in memory.
    """
    budget = budget or ReadBudget()
    pieces: list[str] = []
    digest = hashlib.sha256()
    reading: dict = {}
    characters = 0
    for piece in _pieces(source, options, reading):
        characters += len(piece)
        budget.take(piece, source.spec, characters)
        pieces.append(piece)
        digest.update(piece.encode("utf-8"))
    if not characters:
        raise CorpusError(f"{source.spec}: the corpus is empty; give a file with some text in it")
    return pieces, source_summary(source, options, len(pieces), characters, digest, reading.get("separator") == "")


VAL_MAX_CHARACTERS = 250_000  # held-out text per source at most by default: every evaluation reads all of it


def read_validation(source: ResolvedSource, options: dict, budget: ReadBudget | None = None,
                    val_max: int = VAL_MAX_CHARACTERS) -> str | None:
    """The held-out text a source's loader gives of its own (``iter_validation_texts``, such as hf's
    --hf-val-split), from its start: whole documents, or continuous text up to a line end, at most about
    ``val_max`` characters, as a tail would be. None when the loader gives none."""
    budget = budget or ReadBudget()
    reading: dict = {}
    pieces = _pieces(source, options, reading, validation=True)
    kept: list[str] = []
    total = 0
    try:
        for piece in pieces:
            continuous = reading["separator"] == ""
            if kept and not continuous and total + len(piece) > val_max:
                break  # whole documents, at least one
            kept.append(piece)
            total += len(piece)
            budget.take(piece, source.spec, total)
            if total >= val_max:
                break  # the rest of a large validation split is never read
    finally:
        pieces.close()  # a loader's cleanup (hf restores the datasets library's settings) runs now
    if not reading.get("validation"):
        return None
    text = "".join(kept)
    if not text:
        raise CorpusError(f"{source.spec}: the loader's held-out text is empty; give it some, or hold out the "
                          "tail of the corpus instead")
    if reading["separator"] == "" and len(text) > val_max:
        text = text[: text.rfind("\n", 0, val_max) + 1 or val_max]
    return text


def source_summary(
    source: ResolvedSource, options: dict, documents: int, characters: int, digest, continuous: bool
) -> dict:
    """What config.json records of one source."""
    return {
        "spec": source.spec,
        "kind": source.kind,
        "location": source.location,
        "loader_origin": source.loader.origin,
        "options": options,
        "documents": documents,
        "characters": characters,
        "sha256": digest.hexdigest(),
        "continuous": continuous,
    }


INTERLEAVE_BLOCK = 4096  # continuous text is mixed with other corpora in blocks of about this many characters
MAX_MIX_GROWTH = 10  # refuse weights that would repeat the corpora to more than this many times their size


def split_blocks(text: str, size: int = INTERLEAVE_BLOCK) -> list[str]:
    """Cut continuous text into blocks of at least ``size`` characters, each ending after a line break if one
    follows."""
    blocks, start = [], 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        blocks.append(text[start:end])
        start = end
    return blocks


def parse_weights(weights: str | list[float] | None, count: int) -> list[float] | None:
    """``--weights 0.7,0.3`` as floats, checked against the number of corpora."""
    if weights is None:
        return None
    if isinstance(weights, str):
        try:
            weights = [float(part) for part in weights.split(",")]
        except ValueError:
            raise ConfigError(f"{setting_name('weights')} {weights!r}: expected comma-separated numbers such as "
                              "0.7,0.3") from None
    if len(weights) != count:
        raise ConfigError(f"{setting_name('weights')} has {len(weights)} values for {count} corpora; give one weight "
                          f"per {setting_name('corpus')}")
    if not all(isinstance(w, (int, float)) and math.isfinite(w) and w > 0 for w in weights):
        raise ConfigError(f"{setting_name('weights')} must all be positive numbers, got {','.join(map(str, weights))}")
    total = sum(weights)
    if not math.isfinite(total) or any(w / total == 0 for w in weights):
        raise ConfigError(f"{setting_name('weights')} {','.join(map(str, weights))}: cannot be shared out (their sum "
                          "or one share is beyond floating point); give their ratios, such as 2,1")
    return list(weights)


def interleave(sources: list[list[str]], weights: list[float]) -> tuple[list[str], list[int]]:
    """Mix the pieces of several sources so each source's share of characters follows ``weights``.

    The next piece always comes from the source furthest behind its share (taken / weight); a source
    that runs out starts over. Mixing stops once every source has been used whole at least once and
    the mix is long enough for the source with the most characters per unit of weight to fit its
    share, so nothing is left out and the shares hold. Returns the mixed pieces and the characters
    taken from each source.
    """
    sizes = [sum(len(piece) for piece in pieces) for pieces in sources]
    total = sum(weights)
    shares = [w / total for w in weights]
    expected = max(size / share for size, share in zip(sizes, shares))
    if expected > MAX_MIX_GROWTH * sum(sizes):
        raise ConfigError(
            f"{setting_name('weights')} {','.join(f'{w:g}' for w in weights)} would repeat the corpora to about "
            f"{expected / sum(sizes):.3g} times their size; give the larger corpora larger weights"
        )
    # the mix is joined into one text and encoded: about 4 bytes per character at most, twice, plus the ids
    check_memory(int(expected) * 9, f"mixing the corpora into {expected:,.0f} characters",
                 "use smaller corpora or weights closer to their sizes")
    taken = [0] * len(sources)
    position = [0] * len(sources)
    complete = [False] * len(sources)
    mixed = []
    while not all(complete) or sum(taken) < expected:
        index = min(range(len(sources)), key=lambda i: taken[i] / shares[i])
        piece = sources[index][position[index]]
        mixed.append(piece)
        taken[index] += len(piece)
        position[index] += 1
        if position[index] == len(sources[index]):
            position[index] = 0
            complete[index] = True
    return mixed, taken


def documents_to_hold(lengths_from_end: list[int], documents: int, fraction: float,
                      val_max: int = VAL_MAX_CHARACTERS) -> int:
    """How many final documents to hold out: ``fraction`` of them, at least one (when there are two or
    more), and no more than fit in ``val_max`` characters (``lengths_from_end``: the last ones' lengths, last first)."""
    if fraction <= 0 or documents < 2:
        return 0
    held = min(max(round(documents * fraction), 1), documents - 1)
    total = 0
    for count, length in enumerate(lengths_from_end[:held]):
        total += length
        if total > val_max:
            return max(count, 1)
    return held


def hold_out(pieces: list[str], continuous: bool, fraction: float,
             val_max: int = VAL_MAX_CHARACTERS) -> tuple[list[str], str]:
    """Split a source into training pieces and held-out text: its last ``fraction`` of documents, or for
    continuous text its last ``fraction`` of characters (from a line start where there is one); at most
    about ``val_max`` characters either way."""
    if fraction <= 0:
        return pieces, ""
    if continuous:
        text = "".join(pieces)
        cut = max(int(len(text) * (1 - fraction)), len(text) - val_max)
        line_start = text.find("\n", cut)
        if 0 <= line_start < len(text) - 1:
            cut = line_start + 1
        return [text[:cut]], text[cut:]
    held = documents_to_hold([len(piece) for piece in reversed(pieces)], len(pieces), fraction, val_max)
    if not held:
        return pieces, ""
    return pieces[:-held], "".join(pieces[-held:])


def plan_sources(
    specs: list[str] | None,
    kind: str | None = None,
    options: dict | list[LoaderOption] | None = None,
    registry: Registry | None = None,
) -> list[tuple[ResolvedSource, dict]]:
    """Each source of ``specs`` (the default corpus if empty) with its loader and the options it takes.

    Cheap (nothing is read), so a bad source or option is refused before any work. An option no
    chosen loader takes is a ConfigError (see `route_options`), so a mistyped or misplaced option is
    never silently ignored.
    """
    registry = registry or default_registry()
    sources = [resolve_source(spec, registry, kind) for spec in list(specs or [DEFAULT_CORPUS])]
    routed = route_options(sources, options)
    for source, chosen in zip(sources, routed):  # and how each built-in read its source, to be recorded
        for name, parameter in _later_options_taken(source).items():
            chosen.setdefault(name, parameter.default)
    return list(zip(sources, routed))


def recorded_plan(sources: list[dict], registry: Registry | None = None) -> list[tuple[ResolvedSource, dict]]:
    """The sources a run's config.json records, each with its loader and the options it was read with (also by
    an older textgen: see `recorded_options`)."""
    registry = registry or default_registry()
    return [(resolve_source(source["location"], registry, source["kind"]), recorded_options(source, registry))
            for source in sources]


def _names_a_path(source: ResolvedSource) -> bool:
    """Whether a built-in loader reads ``source.location`` as a path (a plugin's may be any text): one that claims
    file endings always does, `hf` when the location can be no Hub name."""
    if source.loader.origin != "built-in":
        return False
    names_a_path = getattr(source.loader.factory, "names_a_path", None)
    return names_a_path(source.location) if names_a_path is not None else bool(source.loader.suffixes)


def check_recorded_files(planned: list[tuple[ResolvedSource, dict]], command: str, instead: str,
                         flag: str = "") -> None:
    """CorpusError naming the first file of a run's corpus (`recorded_plan`) that is not there, as the run's: a
    relative path is read from the folder the run was started in, so that ``command`` (a verb) works from there;
    else the file has been moved or removed. ``instead`` ends the message (what else to do), ``flag`` starts it."""
    for source, _ in planned:
        location = Path(source.location).expanduser()
        if not _names_a_path(source) or location.exists():
            continue
        if location.is_absolute():
            raise CorpusError(f"{flag}{source.location}: no such file; the run read its corpus there: put the file "
                              f"back if it was moved{instead}")
        raise CorpusError(f"{flag}{source.location}: no such file from the current folder; the run reads its corpus by "
                          f"this path relative to the folder it was started in: {command} it from that folder, or put "
                          f"the file back if it was moved{instead}")


def load_corpus(
    specs: list[str] | None,
    kind: str | None = None,
    options: dict | list[LoaderOption] | None = None,
    registry: Registry | None = None,
    weights: str | list[float] | None = None,
    val_fraction: float = 0.0,
    val_max: int = VAL_MAX_CHARACTERS,
) -> Corpus:
    """Load every source of ``specs`` (the default corpus if empty) into one text.

    ``options`` go to the loaders as `route_options` says. Several sources are interleaved by ``weights``
    (default: their sizes, so each is used exactly once). With ``val_fraction`` the tail of each source
    is held out as validation text, at most about ``val_max`` characters of it.
    """
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ConfigError(f"{setting_name('val_fraction')} must be at least 0 and below 1, got {val_fraction!r}")
    return load_planned(plan_sources(specs, kind, options, registry), weights, val_fraction, val_max)


def load_planned(
    planned: list[tuple[ResolvedSource, dict]], weights: str | list[float] | None = None, val_fraction: float = 0.0,
    val_max: int = VAL_MAX_CHARACTERS,
) -> Corpus:
    """`load_corpus` for sources already paired with their loaders' options (by `plan_sources` or `recorded_plan`)."""
    sources = [source for source, _ in planned]
    weights = parse_weights(weights, len(planned))
    budget = ReadBudget()
    all_pieces, summaries, held_out = [], [], []
    for source, accepted in planned:
        pieces, summary = read_source(source, accepted, budget)
        validation = read_validation(source, accepted, budget, val_max)
        if validation is None:
            pieces, validation = hold_out(pieces, summary["continuous"], val_fraction, val_max)
        else:  # the loader's own held-out text: a resume checks it has not changed either
            summary["val_sha256"] = hashlib.sha256(validation.encode("utf-8")).hexdigest()
        summary["val_characters"] = len(validation)
        held_out.append(validation)
        if summary["continuous"] and len(sources) > 1:
            pieces = split_blocks("".join(pieces))
        all_pieces.append(pieces)
        summaries.append(summary)
    if len(sources) == 1:
        return Corpus("".join(all_pieces[0]), summaries, held_out[0], val_fraction)
    weights = weights or [float(summary["characters"] - summary["val_characters"]) for summary in summaries]
    mixed, taken = interleave(all_pieces, weights)
    for summary, weight, characters in zip(summaries, weights, taken):
        summary.update(weight=weight, characters_in_mix=characters)
    return Corpus("".join(mixed), summaries, "".join(held_out), val_fraction)


STREAM_THRESHOLD_BYTES = 64 << 20  # a single source file larger than this is encoded to disk, not held in memory
_FLUSH_CHARACTERS = 1 << 22  # encode and write this many characters at a time while streaming
TRAINING, HELD_OUT = "training", "held-out"  # the two parts `stream_encode` writes, each to a file of its own


@dataclass
class EncodedCorpus:
    """A corpus as ids: what the trainer needs. ``ids`` may be a read-only np.memmap of a file on disk."""

    vocab: Vocab  # its characters from training and held-out text together; words and byte pairs from training
    ids: np.ndarray  # (N,) training ids, dtype vocab.dtype
    val_ids: np.ndarray | None  # held-out ids, or None when nothing is held out
    sources: list[dict]  # per-source summaries, as in Corpus
    val_fraction: float  # share of each source held out


def encode_corpus(corpus: Corpus, vocab: Vocab | None = None, tokens: str = "char",
                  vocab_size: int | None = None) -> EncodedCorpus:
    """Ids of an in-memory corpus, with a new vocabulary at token level ``tokens`` (of ``vocab_size`` tokens, None:
    the level's default) or ``vocab`` (then only its characters). A new vocabulary has every character of the
    training and held-out text; words and byte pairs are learned from the training text only."""
    if vocab is None and tokens == "char":
        vocab = CharVocab.from_texts([corpus.text, corpus.validation])
    elif vocab is None:
        vocab = build_vocab(tokens, set(corpus.text) | set(corpus.validation), lambda: [corpus.text], vocab_size,
                            END_OF_DOCUMENT in corpus.text)
    else:
        check_known(vocab, corpus.text + corpus.validation, [source["spec"] for source in corpus.sources])
    val_ids = vocab.encode(corpus.validation) if len(corpus.validation) >= 2 else None
    return EncodedCorpus(vocab, vocab.encode(corpus.text), val_ids, corpus.sources, corpus.val_fraction)


def corpus_label(specs: list[str]) -> str:
    """How messages name the corpora ``specs``: "corpus 'book.txt'" or "corpora 'a.txt', 'b.json'"."""
    return ("corpus " if len(specs) == 1 else "corpora ") + ", ".join(repr(spec) for spec in specs)


def check_known(vocab: Vocab, text: str | set, specs: list[str]) -> None:
    """CorpusError naming the corpora ``specs`` and the characters of ``text`` that ``vocab`` lacks (for a model
    trained further)."""
    vocab.check_known(text, f"the {corpus_label(specs)}", "remove them or train a new model")


def streamable_source(
    specs: list[str] | None, kind: str | None, registry: Registry | None = None, over: int = STREAM_THRESHOLD_BYTES
) -> bool:
    """True for one source that is a file larger than ``over`` bytes."""
    if not specs or len(specs) != 1:
        return False
    source = resolve_source(specs[0], registry or default_registry(), kind)
    path = Path(source.location).expanduser() if source.location else None
    return bool(path and path.is_file() and path.stat().st_size > over)


def _plugin_failure(source: ResolvedSource, error: BaseException, doing: str) -> PluginError:
    """The one line for a third-party loader that broke: which loader, from which distribution, what it raised."""
    cause = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    return PluginError(
        f"corpus loader {source.kind!r} ({source.loader.origin}) failed while {doing} {source.spec!r}: {cause}; "
        "this is a problem in the plugin, not in textgen: report it to the plugin's authors "
        "(run textgen with --debug to see its traceback)"
    )


def _guarded(source: ResolvedSource, doing: str, call):
    """``call()``; for a plugin, any exception but textgen's own and a stop becomes PluginError naming it."""
    if source.loader.origin == "built-in":
        return call()  # our own code: an unexpected exception is a bug and keeps its traceback
    try:
        return call()
    except TextgenError:
        raise
    except (Exception, SystemExit) as error:  # whatever a plugin raises, it is said in one line
        raise _plugin_failure(source, error, doing) from error


def _pieces(source: ResolvedSource, options: dict, seen: dict | None = None, validation: bool = False) -> Iterator[str]:
    """Each document of a source followed by its separator, as read_source joins them; with ``validation``, those
    of its loader's own held-out text (none if it has none, and then ``seen["validation"]`` is not set).

    The separator the loader used is left in ``seen["separator"]``. A document that is not a str, or
    holds a lone surrogate (not valid Unicode), is refused here, whatever loader made it.
    """
    loader = _guarded(source, "setting up to read", lambda: source.loader.factory(**options))
    if validation:
        method = getattr(loader, "iter_validation_texts", None)
        documents = _guarded(source, "reading", lambda: method(source.location)) if callable(method) else None
        if documents is None:
            return
        documents = _guarded(source, "reading", lambda: iter(documents))
        if seen is not None:
            seen["validation"] = True
    else:
        documents = _guarded(source, "reading", lambda: iter(loader.iter_texts(source.location)))
    separator = None
    number = 0
    while True:
        document = _guarded(source, "reading", lambda: next(documents, _END))
        if document is _END:
            return
        number += 1
        if not isinstance(document, str):
            raise PluginError(
                f"loader {source.kind!r} ({source.loader.origin}) yielded a {type(document).__name__} as document "
                f"{number} of {source.spec!r}; loaders must yield str"
            )
        if separator is None:
            separator = _guarded(source, "reading", lambda: document_separator(loader))
            if seen is not None:
                seen["separator"] = separator
        if not document.isascii():
            try:
                document.encode("utf-8")
            except UnicodeEncodeError as error:
                kind = PluginError if source.loader.origin != "built-in" else CorpusError
                raise kind(
                    f"{source.spec}: loader {source.kind!r} gave document {number} with a lone surrogate "
                    f"U+{ord(document[error.start]):04X} at character {error.start}, which is not valid Unicode text"
                ) from None
        if document:
            yield document + separator


_END = object()  # what next() returns at the end of a loader's documents


def _without_notes(pieces: Iterator[str]) -> Iterator[str]:
    """``pieces``, read with the built-in loaders' notes (logging.INFO) held back: for a second pass over a
    source, whose first pass has said them. Muted only while a piece is read, so nothing else is."""
    logger = logging.getLogger("textgen.loaders")
    while True:
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            piece = next(pieces, _END)
        finally:
            logger.setLevel(level)
        if piece is _END:
            return
        yield piece


def stream_encode(
    spec: str,
    ids_path: Path,
    val_ids_path: Path,
    kind: str | None = None,
    options: dict | list[LoaderOption] | None = None,
    val_fraction: float = 0.0,
    vocab: Vocab | None = None,
    registry: Registry | None = None,
    val_max: int = VAL_MAX_CHARACTERS,
    tokens: str = "char",
    vocab_size: int | None = None,
) -> EncodedCorpus:
    """Encode one large source into ``ids_path`` (its training ids) and ``val_ids_path`` (its held-out ids) without
    holding its text in memory; the training ids come back memory-mapped from their file.

    Two passes over the source: the first counts documents and characters, collects the characters
    and the SHA-256; the second encodes into the files (and must see the same text). A new word or bpe
    vocabulary (``tokens``, ``vocab_size``) is learned in a pass between them, over the training part only. Held-out text
    is the loader's own (`read_validation`), else the last ``val_fraction`` of documents, or of characters
    for continuous text.
    """
    source, options = plan_sources([spec], kind, options, registry)[0]
    digest, seen, documents, characters, reading = hashlib.sha256(), set(), 0, 0, {}
    recent = collections.deque()  # lengths of the last documents, as many as val_max characters can hold
    recent_total = 0
    for piece in _pieces(source, options, reading):
        digest.update(piece.encode("utf-8"))
        seen.update(piece)
        documents += 1
        characters += len(piece)
        recent.append(len(piece))
        recent_total += len(piece)
        while len(recent) > 1 and recent_total - recent[0] > val_max:
            recent_total -= recent.popleft()
    if not characters:
        raise CorpusError(f"{source.spec}: the corpus is empty; give a file with some text in it")
    continuous = reading.get("separator") == ""
    own_validation = read_validation(source, options, val_max=val_max)
    seen.update(own_validation or "")
    if vocab is not None:
        check_known(vocab, seen, [source.spec])
    if own_validation is not None:  # held out by the loader itself: every document is trained on
        train_characters, held_documents = characters, 0
    elif continuous:
        train_characters = characters
        if val_fraction > 0:
            train_characters = max(int(characters * (1 - val_fraction)), characters - val_max)
        held_documents = 0
    else:
        held_documents = documents_to_hold(list(reversed(recent)), documents, val_fraction, val_max)
        train_characters = None
    def parts(digest=None) -> Iterator[tuple[str, str]]:
        """(TRAINING or HELD_OUT, text) for the whole source in order, read again; each piece goes into ``digest``.

        Continuous text is cut as `hold_out` cuts it: at the held-out fraction, moved on to the start of the
        next line when there is one. Text between the cut and that line start waits in ``pending``."""
        pending: list[str] = []
        phase = "train"  # then "seek" (after the cut, before a line break), "found" (line break seen), "held"
        position = 0
        for index, piece in enumerate(_without_notes(_pieces(source, options))):
            if digest is not None:
                digest.update(piece.encode("utf-8"))
            if not continuous:
                yield HELD_OUT if index >= documents - held_documents else TRAINING, piece
                continue
            rest = piece
            if phase == "train":
                cut = max(0, min(len(piece), train_characters - position))
                if cut:
                    yield TRAINING, piece[:cut]
                rest = piece[cut:]
                if cut < len(piece) or position + len(piece) >= train_characters:
                    phase = "seek"
            position += len(piece)
            if rest and phase == "found":  # text follows the line break: the cut moves to the line start
                for text in pending:
                    yield TRAINING, text
                pending, phase = [], "held"
            if phase == "seek" and rest:
                newline = rest.find("\n")
                if newline < 0:
                    pending.append(rest)
                    rest = ""
                else:
                    pending.append(rest[: newline + 1])
                    rest, phase = rest[newline + 1 :], "found"
                    if rest:
                        for text in pending:
                            yield TRAINING, text
                        pending, phase = [], "held"
            if phase == "held" and rest:
                yield HELD_OUT, rest
        for text in pending:  # no line start after the cut: it stays where it was
            yield HELD_OUT, text
        if own_validation is not None:
            yield HELD_OUT, own_validation

    if vocab is None and tokens == "char":
        vocab = CharVocab(tuple(sorted(seen)))
    elif vocab is None:  # words and byte pairs are learned from the training part, read once more
        vocab = build_vocab(tokens, seen, lambda: (text for part, text in parts() if part == TRAINING), vocab_size,
                            END_OF_DOCUMENT in seen)
    second = hashlib.sha256()
    paths = {TRAINING: Path(ids_path), HELD_OUT: Path(val_ids_path)}
    written = {TRAINING: 0, HELD_OUT: 0}
    buffers = {TRAINING: [], HELD_OUT: []}
    sizes = {TRAINING: 0, HELD_OUT: 0}
    try:
        streams = {part: path.open("wb") for part, path in paths.items()}
    except OSError as error:
        raise TextgenError(f"{paths[TRAINING].parent}: cannot write the encoded corpus ({error.strerror})") from None

    def flush(name: str) -> None:
        if buffers[name]:
            ids = vocab.encode("".join(buffers[name]))
            streams[name].write(ids.tobytes())
            written[name] += ids.size
            buffers[name].clear()
            sizes[name] = 0

    def add(name: str, text: str) -> None:
        buffers[name].append(text)
        sizes[name] += len(text)
        if sizes[name] >= _FLUSH_CHARACTERS:
            flush(name)

    try:
        for part, text in parts(second):
            add(part, text)
        for name in streams:
            flush(name)
    except OSError as error:
        raise TextgenError(f"{paths[TRAINING].parent}: cannot write the encoded corpus ({error.strerror})") from None
    finally:
        for stream in streams.values():
            stream.close()
    if second.hexdigest() != digest.hexdigest():
        raise CorpusError(f"{source.spec}: the corpus changed while it was being read; try again")
    ids = np.memmap(paths[TRAINING], dtype=vocab.dtype, mode="r", shape=(written[TRAINING],))
    val_ids = None
    if written[HELD_OUT] >= 2:
        val_ids = np.array(np.memmap(paths[HELD_OUT], dtype=vocab.dtype, mode="r"))
    summary = source_summary(source, options, documents, characters, digest, continuous)
    held_characters = written[HELD_OUT]  # one id a character at char level
    if vocab.level != "char" and written[HELD_OUT]:
        held_characters = vocab.characters(np.memmap(paths[HELD_OUT], dtype=vocab.dtype, mode="r"))
    summary.update(val_characters=held_characters, streamed_to=paths[TRAINING].name)
    if own_validation is not None:
        summary["val_sha256"] = hashlib.sha256(own_validation.encode("utf-8")).hexdigest()
    return EncodedCorpus(vocab, ids, val_ids, [summary], val_fraction)


def source_digest(source: ResolvedSource, options: dict) -> str:
    """SHA-256 of a source's joined text, read in one streaming pass (to check a source has not changed)."""
    digest = hashlib.sha256()
    for piece in _pieces(source, options):
        digest.update(piece.encode("utf-8"))
    return digest.hexdigest()
