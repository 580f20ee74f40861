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
