"""The `text` loader: a plain-text file (a book) read as one continuous document."""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from textgen.errors import CorpusError, LimitError, one_line, setting_name
from textgen.limits import available_memory, format_bytes
from textgen.loaders.base import check_option

log = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 22  # read 4 MiB at a time so a large book never sits in memory twice

# Project Gutenberg wraps every book in licence text between lines like
# "*** START OF THE PROJECT GUTENBERG EBOOK TITLE ***" and "*** END OF ... ***".
_GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE | re.IGNORECASE)
_GUTENBERG_END = re.compile(r"^\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE | re.IGNORECASE)


def open_source_file(source: str) -> Path:
    """Return ``source`` as an existing regular file, or raise CorpusError saying why not."""
    path = Path(source).expanduser()
    if not path.exists():
        raise CorpusError(f"{source}: no such file; check the path (or use a named corpus, see `textgen corpora`)")
    if path.is_dir():
        raise CorpusError(f"{source}: is a folder, not a file; give the path of a text file")
    return path


def iter_decoded_chunks(path: Path, encoding: str) -> Iterator[str]:
    """Yield the text of ``path`` in chunks, naming the byte offset of any undecodable bytes."""
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        codec = None
    # the flag str.decode checks too: base64, rot13, zlib, ... are codecs but not text encodings
    if codec is None or not getattr(codec, "_is_text_encoding", True):
        raise CorpusError(f"{setting_name('encoding')} {encoding!r}: unknown text encoding; try utf-8, latin-1 or "
                          "cp1252")
    decoder = codec.incrementaldecoder(errors="strict")
    consumed = 0  # bytes handed to the decoder so far
    try:
        with path.open("rb") as stream:
            while True:
                chunk = stream.read(_CHUNK_BYTES)
                buffered = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(chunk, final=not chunk)
                except UnicodeDecodeError as error:
                    offset = consumed - buffered + error.start
                    raise CorpusError(
                        f"{path}: byte {error.object[error.start]:#04x} at offset {offset} is not valid "
                        f"{encoding}; pass the file's real encoding with {setting_name('encoding')} (for example "
                        "latin-1)"
                    ) from None
                except UnicodeError as error:  # e.g. utf-16 without a byte-order mark: no offset to give
                    raise CorpusError(
                        f"{path}: not valid {encoding} ({one_line(error)}); pass the file's real encoding with "
                        f"{setting_name('encoding')}"
                    ) from None
                consumed += len(chunk)
                if text:
                    yield text
                if not chunk:
                    return
    except OSError as error:
        raise CorpusError(f"{path}: cannot read ({error.strerror})") from None


def iter_normalised(chunks: Iterator[str], source: str, keep_carriage_returns: bool = False,
                    keep_byte_order_mark: bool = False) -> Iterator[str]:
    """The chunks of a text without a leading byte-order mark and with CRLF and lone CR line ends as \\n,
    unless kept; logs one line saying what was changed, once the last chunk has been read."""
    pairs = lone = 0  # CRLF line ends and lone CRs turned into \n
    stripped = False
    held = ""  # a CR that ended the last chunk: only the next one shows whether it begins a CRLF
    for index, chunk in enumerate(chunks):
        if index == 0 and not keep_byte_order_mark and chunk.startswith("\ufeff"):
            chunk, stripped = chunk[1:], True
        if not keep_carriage_returns:
            chunk, held = held + chunk, ""
            if chunk.endswith("\r"):
                chunk, held = chunk[:-1], "\r"
            returns = chunk.count("\r")
            if returns:
                crlf = chunk.count("\r\n")
                pairs, lone = pairs + crlf, lone + returns - crlf
                chunk = chunk.replace("\r\n", "\n").replace("\r", "\n")
        if chunk:
            yield chunk
    if held:
        lone += 1
        yield "\n"
    kinds = [f"{count:,} {kind}" for count, kind in ((pairs, "CRLF"), (lone, "lone CR")) if count]
    done = [f"translated {' and '.join(kinds)} line ends to \\n"] if kinds else []
    if stripped:
        done.append("removed the byte-order mark (U+FEFF) at its start")
    if done:
        keep = "; --keep-carriage-returns keeps the CRs" if kinds else ""  # a log note: the command line's words
        log.info("%s: %s%s", source, " and ".join(done), keep)


def strip_gutenberg_boilerplate(text: str, source: str) -> str:
    """Return the book between Project Gutenberg's START and END marker lines."""
    start = _GUTENBERG_START.search(text)
    if start is None:
        raise CorpusError(
            f"{source}: no '*** START OF THE PROJECT GUTENBERG EBOOK' line found; "
            f"drop {setting_name('strip_gutenberg')} for files that are not from Project Gutenberg"
        )
    end = _GUTENBERG_END.search(text, start.end())
    body = text[start.end() : end.start() if end else len(text)]
    return body.strip("\r\n") + "\n"


class PlainTextLoader:
    """A UTF-8 (or ``encoding``) text file, yielded in chunks that join into its text as written: line ends
    as \\n whether the file has Unix, Windows (CRLF) or old Mac (CR) ones, and no byte-order mark."""

    name = "text"
    suffixes = (".txt", ".text", ".md", ".rst")
    document_separator = ""  # chunks of one book: join them with nothing

    def __init__(self, encoding: str = "utf-8", strip_gutenberg: bool = False, keep_carriage_returns: bool = False,
                 keep_byte_order_mark: bool = False):
        check_option(f"{setting_name('encoding')}", encoding, str)
        check_option(f"{setting_name('strip_gutenberg')}", strip_gutenberg, bool)
        check_option(f"{setting_name('keep_carriage_returns')}", keep_carriage_returns, bool)
        check_option("keep_byte_order_mark", keep_byte_order_mark, bool)
        self.encoding = encoding  # how the file's bytes are decoded
        self.strip_gutenberg = strip_gutenberg  # keep only the book between Gutenberg's markers
        self.keep_carriage_returns = keep_carriage_returns  # leave CRLF and CR line ends as they are, not as \n
        # Leave a leading U+FEFF in the text. No flag sets it: it is how runs recorded before BOMs were removed
        # read their sources again (see corpus.OPTIONS_ADDED_LATER).
        self.keep_byte_order_mark = keep_byte_order_mark

    def iter_texts(self, source: str) -> Iterator[str]:
        """Yield the file's text; with ``strip_gutenberg`` the licence header and footer are removed."""
        path = open_source_file(source)
        chunks = iter_normalised(iter_decoded_chunks(path, self.encoding), source, self.keep_carriage_returns,
                                 self.keep_byte_order_mark)
        if self.strip_gutenberg:
            yield strip_gutenberg_boilerplate(_join_at_most(chunks, source), source)
        else:
            yield from chunks


def _join_at_most(chunks: Iterator[str], source: str) -> str:
    """The whole text, for the boilerplate search; LimitError once it could not be held in memory twice."""
    limit = available_memory() // 10  # up to 4 bytes a character, the chunks and their join, and the rest
    parts, size = [], 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise LimitError(f"{source}: more than {size:,} characters, too many to search for Project Gutenberg's "
                             f"markers in the {format_bytes(limit * 10)} this machine has available; strip them "
                             f"another way and drop {setting_name('strip_gutenberg')}")
    return "".join(parts)

