"""The `srt` corpus loader for textgen: the dialogue of a SubRip (.srt) subtitle file, one document per cue.

A third-party plugin: it follows textgen's duck-typed loader protocol (``name``, ``suffixes``,
``iter_texts``) and registers itself under the ``textgen.corpora`` entry-point group.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from textgen.errors import ConfigError, CorpusError
from textgen.loaders.plaintext import open_source_file

# "00:01:02,500 --> 00:01:04,000", maybe followed by position coordinates ("X1:40 X2:600 Y1:20 Y2:50").
# Some tools write a dot before the milliseconds; both are accepted.
_TIMING = re.compile(r"\s*\d+:\d{2}:\d{2}[,.]\d{1,3}\s*-->\s*\d+:\d{2}:\d{2}[,.]\d{1,3}(?:\s.*)?")
_CUE_NUMBER = re.compile(r"\s*\d+\s*")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # Windows, old Mac and Unix endings, counted as an editor counts lines
# HTML-like formatting tags: <i>, </i>, <b>, <u>, <font color="#ffff00">, </font>.
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
# ASS-style override codes left in by subtitle tools: {\an8} (top of screen), {\i1}, {\c&H00FFFF&}.
_STYLE_CODE = re.compile(r"\{\\[^{}]*\}")
_SPACES = re.compile(r"[ \t]+")
_TIMING_EXAMPLE = "'00:01:02,500 --> 00:01:04,000'"


def _shown(line: str) -> str:
    """A line as quoted in a message: stripped and cut short."""
    line = line.strip()
    return repr(line if len(line) <= 60 else line[:57] + "...")


def _bad_timing(source: str, number: int, line: str) -> CorpusError:
    return CorpusError(
        f"{source}: line {number}: {_shown(line)} is not a timing line; expected one like {_TIMING_EXAMPLE}, "
        "fix that line"
    )


def iter_cue_lines(text: str, source: str) -> Iterator[list[str]]:
    """Yield the text lines of each cue of a SubRip file's ``text`` (stripped; may be empty).

    A cue starts at its timing line; the number before it is dropped. Lines between two timing
    lines belong to the first cue, so blank lines inside a cue and a missing blank line between
    cues are both read right. A file that does not look like SubRip is a CorpusError naming the line.
    """
    lines = _LINE_BREAK.split(text)
    cue: list[str] | None = None  # text lines of the cue being read; None before the first timing line
    after_blank = True  # the previous line was blank, or this is the start of the file
    for index, line in enumerate(lines):
        number = index + 1
        if not line.strip():
            after_blank = True
            continue
        next_line = lines[index + 1] if index + 1 < len(lines) else ""
        if _TIMING.fullmatch(line):
            if cue is not None:
                yield cue
            cue = []
        elif "-->" in line:
            raise _bad_timing(source, number, line)
        elif _CUE_NUMBER.fullmatch(line) and _TIMING.fullmatch(next_line):
            pass  # the next cue's number (also when the blank line before it is missing)
        elif _CUE_NUMBER.fullmatch(line) and (after_blank or cue is None):
            if "-->" in next_line:
                raise _bad_timing(source, number + 1, next_line)
            found = _shown(next_line) if next_line.strip() else "a blank line or the end of the file"
            raise CorpusError(
                f"{source}: line {number + 1}: cue {line.strip()} has no timing line; expected one like "
                f"{_TIMING_EXAMPLE}, found {found}"
            )
        elif cue is None:
            raise CorpusError(
                f"{source}: line {number}: expected a cue number or a timing line like {_TIMING_EXAMPLE}, "
                f"found {_shown(line)}; is this a SubRip subtitle file?"
            )
        else:
            cue.append(line.strip())
        after_blank = False
    if cue is not None:
        yield cue


class SubtitleLoader:
    """A SubRip subtitle file; yields the text of each cue, its lines joined by a space.

    Cue numbers and timing lines are dropped, and so (by default) are formatting tags such as
    ``<i>`` and style codes such as ``{\\an8}``. Documents are joined with a line break, so the
    training text is the dialogue, one cue per line. Also read: a UTF-8 byte-order mark, CRLF
    line endings, a missing final blank line, cues without a number, blank lines inside a cue
    and a missing blank line between cues. The file is read whole (subtitle files are small).
    """

    name = "srt"
    suffixes = (".srt",)
    document_separator = "\n"  # one cue per line: the training text reads like a transcript

    def __init__(self, encoding: str = "utf-8", strip_tags: bool = True):
        self.encoding = encoding  # how the file's bytes are decoded (older subtitles are often cp1252)
        self.strip_tags = strip_tags  # drop <i>...</i>-style tags and {\an8}-style codes from the text
        try:
            "".encode(encoding)  # looks the codec up (decoding b"" would not) and refuses non-text codecs
        except LookupError:
            raise ConfigError(f"--option encoding={encoding}: unknown text encoding; try utf-8, cp1252 or latin-1") from None

    def iter_texts(self, source: str) -> Iterator[str]:
        """Yield the cleaned text of every cue in ``source`` that has any, in file order."""
        cues = with_text = 0
        for lines in iter_cue_lines(self._read(source), source):
            cues += 1
            text = self._clean(lines)
            if text:
                with_text += 1
                yield text
        if not cues:
            raise CorpusError(f"{source}: holds no subtitle cues (the file is empty or blank)")
        if not with_text:
            removed = " after removing formatting tags" if self.strip_tags else ""
            raise CorpusError(f"{source}: all {cues} cues are empty{removed}; there is no dialogue to train on")

    def _read(self, source: str) -> str:
        """The file's text, without a byte-order mark; undecodable bytes name their line and offset."""
        path = open_source_file(source)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise CorpusError(f"{source}: cannot read ({error.strerror})") from None
        try:
            text = data.decode(self.encoding)
        except UnicodeDecodeError as error:
            before = data[: error.start].decode(self.encoding, errors="replace")
            line = len(_LINE_BREAK.findall(before)) + 1
            example = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "cp1252 or latin-1"
            raise CorpusError(
                f"{source}: line {line}: byte {data[error.start]:#04x} at offset {error.start} is not valid "
                f"{self.encoding}; pass the file's real encoding with --option encoding=NAME (for example {example})"
            ) from None
        return text.removeprefix("\ufeff")

    def _clean(self, lines: list[str]) -> str:
        """One cue's text: its lines joined by a space, tags and style codes removed, runs of spaces collapsed."""
        text = " ".join(lines)
        if self.strip_tags:
            text = _STYLE_CODE.sub("", _TAG.sub("", text))
        return _SPACES.sub(" ", text).strip()
