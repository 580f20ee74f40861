"""The `pydoc` loader: the Python language reference inside every CPython, the default corpus."""

from __future__ import annotations

from collections.abc import Iterator


class PythonDocsLoader:
    """``pydoc_data.topics``: about 465k characters of English prose, no download needed."""

    name = "pydoc"
    suffixes = ()
    document_separator = ""  # the topics read as one continuous text

    def iter_texts(self, source: str = "") -> Iterator[str]:
        """Yield every help topic in sorted order, separated by a blank line; ``source`` is ignored."""
        from pydoc_data.topics import topics

        for index, key in enumerate(sorted(topics)):
            yield ("\n\n" if index else "") + topics[key].strip("\n")
        yield "\n"
