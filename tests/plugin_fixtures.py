"""Loader classes that test entry points point at (a stand-in for third-party plugin modules)."""


class LineLoader:
    name = "lines"
    suffixes = (".lines",)
    document_separator = "\n"

    def __init__(self, upper: bool = False):
        self.upper = upper

    def iter_texts(self, source):
        with open(source, encoding="utf-8") as stream:
            for line in stream:
                yield line.rstrip("\n").upper() if self.upper else line.rstrip("\n")


class OtherLineLoader(LineLoader):
    pass


class NoIterTexts:
    name = "incomplete"
    suffixes = ()


class ClaimsText(LineLoader):
    name = "text"


class YieldsBytes(LineLoader):
    name = "bytes"
    suffixes = (".bytes",)

    def iter_texts(self, source):
        yield b"not a str"


def make_line_loader():
    """A zero-argument factory instead of a class."""
    return LineLoader()


class SmallChunkLoader:
    """Continuous text read in 7-character pieces, so cuts fall inside and across pieces."""

    name = "chunks"
    suffixes = (".chunks",)
    document_separator = ""

    def iter_texts(self, source):
        with open(source, encoding="utf-8") as stream:
            text = stream.read()
        for start in range(0, len(text), 7):
            yield text[start : start + 7]


class SlowLineLoader:
    """Continuous text read a line at a time with a pause every 50 lines, so that reading takes a while.

    When TEXTGEN_TEST_MARKERS names a folder, it touches ``reading`` there at its first line and
    ``read`` after its last, so a test can tell from outside when a run is reading its corpus.
    """

    name = "slowlines"
    suffixes = (".slow",)
    document_separator = ""

    def iter_texts(self, source):
        import os
        import pathlib
        import time

        markers = os.environ.get("TEXTGEN_TEST_MARKERS")
        with open(source, encoding="utf-8") as stream:
            for number, line in enumerate(stream):
                if number == 0 and markers:
                    pathlib.Path(markers, "reading").touch()
                if number % 50 == 49:
                    time.sleep(0.01)
                yield line
        if markers:
            pathlib.Path(markers, "read").touch()


class RaisesWhileReading(LineLoader):
    """A plugin with a bug: it fails after a few documents."""

    name = "raises"
    suffixes = (".raises",)

    def iter_texts(self, source):
        yield "a first document"
        raise KeyError("row_17")


class RaisesInConstructor(LineLoader):
    name = "badinit"
    suffixes = (".badinit",)

    def __init__(self):
        raise RuntimeError("cannot find my configuration file")


class ReturnsNone(LineLoader):
    name = "returnsnone"
    suffixes = (".none",)

    def iter_texts(self, source):
        return None


class YieldsSurrogates(LineLoader):
    name = "surrogates"
    suffixes = (".surrogates",)

    def iter_texts(self, source):
        yield "fine text\n"
        yield "broken \udc80 text\n"


class ExitsWhileReading(LineLoader):
    name = "exits"
    suffixes = (".exits",)

    def iter_texts(self, source):
        import sys

        yield "one"
        sys.exit(3)


class BlocksForever(LineLoader):
    """Reads nothing and never returns (as a loader stuck on a network or a pipe would)."""

    name = "blocks"
    suffixes = (".blocks",)

    def iter_texts(self, source):
        import time

        while True:
            time.sleep(60)
        yield ""


class Endless(LineLoader):
    """Never stops yielding text."""

    name = "endless"
    suffixes = (".endless",)
    document_separator = ""

    def iter_texts(self, source):
        chunk = "all work and no play makes a dull corpus\n" * 25_000
        while True:
            yield chunk


class LyricsLoader:
    """Songs in a CSV file with a header row, one document per row: a plugin with a two-part suffix and typed
    options."""

    name = "lyrics"
    suffixes = (".lyrics.csv",)

    def __init__(self, column: str = "lyrics", upper: bool = False, min_words: int = 0, share: float = 1.0):
        self.column = column  # the column holding the text
        self.upper = upper  # shout every song
        self.min_words = min_words  # drop songs with fewer words
        self.share = share  # keep this share of the rows, the first ones

    def iter_texts(self, source):
        import csv

        with open(source, encoding="utf-8", newline="") as stream:
            rows = list(csv.DictReader(stream))
        for row in rows[: round(len(rows) * self.share)]:
            text = row[self.column]
            if len(text.split()) >= self.min_words:
                yield text.upper() if self.upper else text


class OtherLyricsLoader(LyricsLoader):
    name = "songs"


class CsvLineLoader(LineLoader):
    name = "csvlines"
    suffixes = (".csv",)


class NoDotSuffix(LineLoader):
    name = "nodot"
    suffixes = ("lines",)


class NotesLoader(LineLoader):
    name = "notes"
    suffixes = (".notes.txt",)


class SplitLoader(LineLoader):
    """A plugin whose keywords share their names with built-in loaders' (hf's split, text's encoding)."""

    name = "splits"
    suffixes = (".splits",)

    def __init__(self, split: str = "train", encoding: str = "utf-8"):
        self.split = split
        self.encoding = encoding
        self.upper = False

    def iter_texts(self, source):
        with open(source, encoding=self.encoding) as stream:
            yield from stream


class AnyKeywords(LineLoader):
    """Takes any keyword and writes what it got as the text: one "key=repr(value)" line each."""

    name = "anykw"
    suffixes = (".anykw",)

    def __init__(self, **settings):
        self.settings = settings

    def iter_texts(self, source):
        yield "".join(f"{key}={value!r}\n" for key, value in sorted(self.settings.items())) or "nothing\n"


class RefusesKeywords(AnyKeywords):
    """Takes any keyword in its signature, then refuses them all, as a loader passing them on might."""

    name = "refuses"
    suffixes = (".refuses",)

    def __init__(self, **settings):
        if settings:
            raise TypeError(f"__init__() got an unexpected keyword argument {next(iter(settings))!r}")
        super().__init__()


class HeldOutLoader(SmallChunkLoader):
    """Continuous text with held-out text of its own: the file beside the source named SOURCE.val, if any."""

    name = "heldout"
    suffixes = (".heldout",)

    def iter_validation_texts(self, source):
        import os

        return super().iter_texts(source + ".val") if os.path.exists(source + ".val") else None


class HubWarns(LineLoader):
    """Logs a warning through huggingface_hub's own logger while reading, as its retries reaching the Hub do."""

    name = "hubwarns"
    suffixes = (".hubwarns",)

    def iter_texts(self, source):
        from huggingface_hub.utils import logging  # gives the library's logger its own handler, as in real use

        logging.get_logger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
        yield from super().iter_texts(source)
