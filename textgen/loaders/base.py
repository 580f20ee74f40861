"""The corpus-loader protocol that built-in and third-party loaders follow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

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
    """

    name: str  # the identifier `--kind` and the `kind:` prefix match
    suffixes: tuple[str, ...]  # file endings the loader claims, lower case, with the dot

    def iter_texts(self, source: str) -> Iterator[str]:
        """Yield the documents of ``source`` lazily."""
        ...


def document_separator(loader: object) -> str:
    """The separator a loader asks for, END_OF_DOCUMENT unless it says otherwise."""
    separator = getattr(loader, "document_separator", END_OF_DOCUMENT)
    return separator if isinstance(separator, str) else END_OF_DOCUMENT
