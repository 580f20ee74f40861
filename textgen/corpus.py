"""Turns `--corpus` sources into one training text: pick a loader, read its documents, join them, summarise."""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass

from textgen.errors import ConfigError, CorpusError, PluginError
from textgen.loaders.base import document_separator
from textgen.registry import Registry, ResolvedSource, discover, resolve_source

DEFAULT_CORPUS = "pydoc"  # used when no --corpus is given


@dataclass
class Corpus:
    """The joined text of every source plus a JSON-ready summary of each."""

    text: str  # all sources, documents joined by their loader's separator
    sources: list[dict]  # per source: spec, kind, location, options, documents, characters, sha256

    @property
    def name(self) -> str:
        """A short name for run folders: the first source's file stem or corpus name."""
        from pathlib import Path

        first = self.sources[0]
        stem = Path(first["location"]).stem if first["location"] else first["spec"]
        return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in (stem or first["kind"]))[:40]


def accepted_options(source: ResolvedSource, options: dict) -> dict:
    """The subset of ``options`` that the source's loader constructor takes."""
    try:
        parameters = inspect.signature(source.loader.factory).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(options)
    return {name: value for name, value in options.items() if name in parameters}


def read_source(source: ResolvedSource, options: dict) -> tuple[str, dict]:
    """Read one source into text (each document followed by the loader's separator) and its summary.

    ``options`` are keyword arguments for the loader's constructor, already filtered to those it takes.
    """
    loader = source.loader.factory(**options)
    separator = None
    pieces: list[str] = []
    documents = 0
    for document in loader.iter_texts(source.location):
        if not isinstance(document, str):
            raise PluginError(
                f"loader {source.kind!r} yielded a {type(document).__name__} for {source.spec!r}; loaders must yield str"
            )
        if separator is None:
            separator = document_separator(loader)  # read after iteration starts: a loader may set it then
        if document:
            pieces.append(document)
            pieces.append(separator)
            documents += 1
    text = "".join(pieces)
    if not text:
        raise CorpusError(f"{source.spec}: the corpus is empty; give a file with some text in it")
    summary = {
        "spec": source.spec,
        "kind": source.kind,
        "location": source.location,
        "loader_origin": source.loader.origin,
        "options": options,
        "documents": documents,
        "characters": len(text),
        "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
    }
    return text, summary


def load_corpus(
    specs: list[str] | None, kind: str | None = None, options: dict | None = None, registry: Registry | None = None
) -> Corpus:
    """Load every source of ``specs`` (the default corpus if empty) and join them in order.

    Each loader gets the ``options`` its constructor takes; an option no chosen loader takes is a
    ConfigError, so a mistyped or misplaced flag is never silently ignored.
    """
    registry = registry or discover()
    specs = list(specs or [DEFAULT_CORPUS])
    options = dict(options or {})
    sources = [resolve_source(spec, registry, kind) for spec in specs]
    used = set()
    per_source = []
    for source in sources:
        accepted = accepted_options(source, options)
        used.update(accepted)
        per_source.append(accepted)
    unused = [name for name in options if name not in used]
    if unused:
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        kinds = ", ".join(sorted({source.kind for source in sources}))
        raise ConfigError(f"{flags} does not apply to the loader(s) used here ({kinds})")
    texts, summaries = [], []
    for source, accepted in zip(sources, per_source):
        text, summary = read_source(source, accepted)
        texts.append(text)
        summaries.append(summary)
    return Corpus("".join(texts), summaries)
