"""The corpus-loader protocol that built-in and third-party loaders follow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from textgen.errors import ConfigError, shown_value

# Appended after every document of a multi-document corpus (tweets, dataset rows) so the
# model learns where a document ends. U+2403 SYMBOL FOR END OF TEXT is printable, so it
# shows up plainly in samples, and it does not occur in ordinary text.
END_OF_DOCUMENT = "\u2403"


@runtime_checkable
class CorpusLoader(Protocol):
    """What a loader provides. Options are keyword arguments of its constructor.

    A loader may also set ``document_separator: str``: the text put after each document
    when documents are joined into one training stream. Without it, documents are
    followed by ``END_OF_DOCUMENT``; a loader of continuous text (a book, a text file read
    line by line) sets it to ``""`` so its text is kept exactly.

    It may also define ``iter_validation_texts(source) -> Iterator[str] | None``: the documents
    the source itself sets aside for validation (a dataset's validation split), or None for none.
    When it gives some, they are the held-out text (up to the usual cap) and nothing is cut from
    the documents of ``iter_texts``.
    """

    name: str  # the identifier `--kind` and the `kind:` prefix match
    suffixes: tuple[str, ...]  # file endings it claims, with the dot; may have two parts (".lyrics.csv")

    def iter_texts(self, source: str) -> Iterator[str]:
        """Yield the documents of ``source`` lazily."""
        ...


def check_option(flag: str, value: object, kind: type | tuple[type, ...], allow_none: bool = False) -> None:
    """ConfigError unless ``value`` is of ``kind`` (or None, with ``allow_none``): loader options also come from a
    hand-editable config.json, not only from typed flags."""
    if (value is None and allow_none) or (isinstance(value, kind) and not (isinstance(value, bool) and kind is int)):
        return
    words = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    names = " or ".join(words.get(t, t.__name__) for t in (kind if isinstance(kind, tuple) else (kind,)))
    raise ConfigError(f"{flag} must be {names}, got {shown_value(value)}")


def document_separator(loader: object) -> str:
    """The separator a loader asks for, END_OF_DOCUMENT unless it says otherwise."""
    separator = getattr(loader, "document_separator", END_OF_DOCUMENT)
    return separator if isinstance(separator, str) else END_OF_DOCUMENT
