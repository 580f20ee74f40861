"""The `tweets` loader: tweet archives and Twitter API dumps (a JSON list, JSON lines, or either
inside a zip), one document per tweet."""

from __future__ import annotations

import html
import logging
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import IO

import orjson

from textgen.errors import ConfigError, CorpusError, LimitError, setting_name, shown_value
from textgen.limits import available_memory, format_bytes
from textgen.loaders.base import check_option
from textgen.loaders.plaintext import open_source_file

log = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20  # JSON lines are read 1 MiB at a time, so a large dump never sits in memory
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
_LINES_SUFFIXES = (".jsonl", ".ndjson")  # always one JSON value per line
_UTF8_BOM = b"\xef\xbb\xbf"  # some editors write it; orjson refuses it
_LIST_KEYS = ("tweets", "data", "statuses")  # a top-level object may hold the tweets under one of these
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ]|$)")
# Twitter's shortened links. The lookbehind makes the run of spaces before a link match only
# from its start, which keeps the search linear even in text with long runs of spaces.
_TCO_LINK = re.compile(r"(?<![ \t])[ \t]*https?://t\.co/[0-9A-Za-z]*")

# zipfile reports a damaged archive through many unrelated exception types; plain files only raise OSError.
_READ_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    EOFError,
    ValueError,
    OverflowError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
)
try:
    import lzma

    _READ_ERRORS += (lzma.LZMAError,)
except ImportError:  # a Python built without lzma cannot open such members at all
    pass


# A JSON value is parsed whole: its Python objects take several times its bytes, so one value may
# take at most this share of the memory available (the rest of the file may be any size).
_JSON_VALUE_SHARE = 1 / 8


def _value_limit() -> int:
    return int(available_memory() * _JSON_VALUE_SHARE)


def _too_large(label: str, limit: int, what: str) -> LimitError:
    return LimitError(
        f"{label}: {what} is larger than {format_bytes(limit)}, more than this machine can parse in memory "
        f"({format_bytes(limit / _JSON_VALUE_SHARE)} available); split it, or write one tweet per line (.jsonl), "
        "which textgen reads a line at a time"
    )


def _read_at_most(stream: IO[bytes], limit: int, label: str) -> bytes:
    """All of ``stream``, or LimitError once it holds more than ``limit`` bytes (a member that expands without
    bound)."""
    parts, size = [], 0
    while True:
        with _reading(label):
            chunk = stream.read(min(_CHUNK_BYTES * 4, limit + 1 - size))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _too_large(label, limit, "the JSON document")


class _NotJsonLines(Exception):
    """The first line of a `.json` file starting with `{` is not a whole JSON value: read it as one document."""


def parse_created_at(value: object) -> date | None:
    """The date of a tweet's ``created_at`` ("Tue Mar 20 15:36:23 +0000 2018" or ISO 8601), or None.

    The date is the one written in the timestamp (Twitter writes UTC); no time-zone conversion.
    """
    if not isinstance(value, str):
        return None
    try:
        parts = value.split()
        if len(parts) == 6 and parts[1] in _MONTHS:
            return date(int(parts[5]), _MONTHS[parts[1]], int(parts[2]))
        if _ISO_DATE.match(value):
            return date.fromisoformat(value[:10])
    except (ValueError, OverflowError):
        return None
    return None


def _parse_option_date(option: str, value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"--{option} {value!r}: not a date; expected YYYY-MM-DD, for example 2018-01-31")


def _kind_of(value: object) -> str:
    """How a JSON value reads in a message: 'a number', 'a list', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _key_list(record: dict) -> str:
    """The record's keys, sorted, for a message; odd or very many keys are shortened."""
    keys = sorted(record)
    shown = [key if key.isprintable() and len(key) <= 40 else repr(key[:40]) for key in keys[:20]]
    more = f", and {len(keys) - 20} more" if len(keys) > 20 else ""
    return ", ".join(shown) + more if keys else "none"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@contextmanager
def _reading(label: str, problem: str = "cannot read", fix: str = "check the file is complete and readable"):
    """Turn a failed open or read (I/O, a damaged zip, bad compression) into one CorpusError line."""
    try:
        yield
    except _READ_ERRORS as error:
        cause = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise CorpusError(f"{label}: {problem} ({cause}); {fix}") from None


def _json_error(label: str, data: bytes, error: orjson.JSONDecodeError, first_line: int, expected: str) -> CorpusError:
    """A CorpusError naming the line and column (1-based, in characters) where ``data`` stops being JSON."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as bad:  # orjson gives no position for these, so find the byte ourselves
        offset = bad.start
        line_start = data.rfind(b"\n", 0, offset) + 1
        line = first_line + data.count(b"\n", 0, offset)
        column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
        return CorpusError(
            f"{label}: line {line}, column {column}: byte {data[offset]:#04x} is not valid UTF-8; "
            "tweet JSON must be UTF-8, re-save the file as UTF-8"
        )
    position = min(error.pos, len(text))  # orjson counts characters of the decoded text
    line = first_line + text.count("\n", 0, position)
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return CorpusError(f"{label}: line {line}, column {column}: not valid JSON ({error.msg}); {expected}")


def _first_significant_byte(opener: Callable[[], IO[bytes]], label: str) -> bytes:
    """The first byte that is not JSON whitespace (or a byte-order mark), b"" for a blank file."""
    with _reading(label), opener() as stream:
        chunk = stream.read(_CHUNK_BYTES)
        chunk = chunk.removeprefix(_UTF8_BOM)
        while chunk:
            stripped = chunk.lstrip(b" \t\r\n")
            if stripped:
                return stripped[:1]
            chunk = stream.read(_CHUNK_BYTES)
    return b""


def _iter_lines(stream: IO[bytes], label: str) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, line without its newline) of a binary stream, reading a chunk at a time."""
    number = 0
    pending: list[bytes] = []  # pieces of a line that spans chunks
    pending_size, limit = 0, _value_limit()
    while True:
        with _reading(label):
            chunk = stream.read(_CHUNK_BYTES)
        if not chunk:
            break
        newline = chunk.find(b"\n")
        if newline < 0:
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size > limit:
                raise _too_large(label, limit, f"line {number + 1}")
            continue
        pending.append(chunk[:newline])
        lines = chunk[newline + 1 :].split(b"\n")
        number += 1
        yield number, b"".join(pending)
        pending = [lines.pop()]
        pending_size = len(pending[0])
        for line in lines:
            number += 1
            yield number, line
    if any(pending):
        yield number + 1, b"".join(pending)


def _records_in(value: object) -> list | None:
    """The list of records a top-level JSON value holds, or None when the value is itself one record."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and "text" not in value and "full_text" not in value:
        for key in _LIST_KEYS:
            inner = value.get(key)
            if isinstance(inner, list):
                return inner
            if isinstance(inner, dict) and ("text" in inner or "full_text" in inner):
                return [inner]
    return None


def _iter_json_lines(
    opener: Callable[[], IO[bytes]], label: str, may_be_document: bool
) -> Iterator[tuple[str, object]]:
    """Records of a JSON-lines stream, one line at a time. With ``may_be_document``, a first line that
    does not parse raises _NotJsonLines (before anything is yielded) so the caller reads one document."""
    with _reading(label):
        stream = opener()
    with stream:
        parsed_any = False
        for number, line in _iter_lines(stream, label):
            if number == 1:
                line = line.removeprefix(_UTF8_BOM)
            if not line or line.isspace():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                if may_be_document and not parsed_any:
                    raise _NotJsonLines from None
                raise _json_error(
                    label, line, error, number, "expected one tweet object per line; fix or remove that line"
                ) from None
            parsed_any = True
            records = _records_in(value)
            if records is None:
                yield f"line {number}", value
            else:
                for index, record in enumerate(records, 1):
                    yield f"line {number}, record {index}", record


def _iter_json_document(opener: Callable[[], IO[bytes]], label: str) -> Iterator[tuple[str, object]]:
    """Records of a file holding one JSON value (a list of tweets, or an object holding one), read whole."""
    with _reading(label), opener() as stream:
        data = _read_at_most(stream, _value_limit(), label)
    data = data.removeprefix(_UTF8_BOM)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        expected = "expected a JSON list of tweet objects; fix the JSON there, or export the file again"
        raise _json_error(label, data, error, 1, expected) from None
    del data
    records = _records_in(value)
    if records is None:
        if not isinstance(value, dict):
            raise CorpusError(
                f"{label}: holds {_kind_of(value)}, expected a JSON list of tweet objects (or one object per line)"
            )
        if "text" not in value and "full_text" not in value:
            raise CorpusError(
                f"{label}: the top-level object has no 'text' field and no list under 'tweets', 'data' or "
                f"'statuses' (keys: {_key_list(value)}); expected a JSON list of tweet objects"
            )
        records = [value]  # a single tweet
    for index, record in enumerate(records, 1):
        yield f"record {index}", record


def _iter_records(opener: Callable[[], IO[bytes]], label: str, lines_only: bool) -> Iterator[tuple[str, object]]:
    """Records of a JSON-lines file, or of a `.json` file, which may itself hold JSON lines."""
    first = _first_significant_byte(opener, label)
    if not first:
        return
    if lines_only or first == b"{":
        try:
            yield from _iter_json_lines(opener, label, may_be_document=not lines_only)
            return
        except _NotJsonLines:
            pass  # a pretty-printed object: parse the whole file, which also locates any real error
    yield from _iter_json_document(opener, label)


def _tweet_text(record: object, where: str, label: str) -> str:
    """The record's text: ``full_text`` (also under ``extended_tweet``) in preference to ``text``."""
    if not isinstance(record, dict):
        raise CorpusError(
            f"{label}: {where} is {_kind_of(record)}, expected a tweet object with a 'text' field; "
            "fix or remove that record"
        )
    if "full_text" in record:
        key = "full_text"
    elif isinstance(record.get("extended_tweet"), dict) and isinstance(record["extended_tweet"].get("full_text"), str):
        return record["extended_tweet"]["full_text"]
    elif "text" in record:
        key = "text"
    else:
        raise CorpusError(
            f"{label}: {where} has no 'text' or 'full_text' field (keys: {_key_list(record)}); "
            "each tweet needs its text"
        )
    text = record[key]
    if not isinstance(text, str):
        raise CorpusError(
            f"{label}: {where} has '{key}' set to {_kind_of(text)}, expected a string; fix or remove that record"
        )
    return text


def _is_retweet(record: dict, text: str) -> bool:
    if record.get("retweeted_status") is not None:  # Twitter API objects
        return True
    flag = record.get("is_retweet")  # the archive's condensed format
    if flag is not None:
        return flag is True
    return text.startswith("RT @")


def _tweet_date(record: dict, where: str, label: str) -> date:
    if "created_at" not in record:
        raise CorpusError(
            f"{label}: {where} has no 'created_at' field (keys: {_key_list(record)}); "
            f"{setting_name('since')}/{setting_name('until')} need every tweet's date, so drop them or fix the record"
        )
    day = parse_created_at(record["created_at"])
    if day is None:
        raise CorpusError(
            f"{label}: {where} has created_at {shown_value(record['created_at'])}, expected a date like "
            "'Tue Mar 20 15:36:23 +0000 2018' or '2018-03-20T15:36:23Z'; fix the record or drop "
            f"{setting_name('since')}/{setting_name('until')}"
        )
    return day


class TweetLoader:
    """Tweets from a JSON list, JSON lines or a zip holding one such file; yields each kept tweet's text.

    Reads the tweet archive's "condensed" format (``text``, ``created_at``, ``is_retweet``, ...) and
    Twitter API objects (``full_text`` over ``text``; a ``retweeted_status`` marks a retweet), as a
    JSON list, an object holding the list under "tweets", "data" or "statuses", or one object per
    line (``.jsonl``/``.ndjson``, or a ``.json`` file whose first line is a whole object). JSON lines
    are streamed; a JSON list is read whole. Without an ``is_retweet`` or ``retweeted_status`` field,
    text starting with "RT @" counts as a retweet.
    """

    name = "tweets"
    suffixes = (".json", ".jsonl", ".ndjson", ".zip")

    def __init__(
        self,
        keep_retweets: bool = False,
        unescape_html: bool = True,
        keep_links: bool = False,
        since: str | None = None,
        until: str | None = None,
        min_length: int = 0,
    ):
        for flag, value in ((f"{setting_name('keep_retweets')}", keep_retweets), (f"{setting_name('keep_html_entities')}", unescape_html),
                            (f"{setting_name('keep_links')}", keep_links)):
            check_option(flag, value, bool)
        self.keep_retweets = keep_retweets  # keep retweets (dropped by default: they are someone else's words)
        self.unescape_html = unescape_html  # turn entities such as &amp; back into characters
        self.keep_links = keep_links  # keep https://t.co/... links (dropped by default, with the space before them)
        self.since = since  # YYYY-MM-DD: drop tweets created before this date (inclusive bound)
        self.until = until  # YYYY-MM-DD: drop tweets created after this date (inclusive bound)
        self.min_length = min_length  # drop tweets with fewer characters than this after cleaning
        self._since_date = _parse_option_date("since", since)
        self._until_date = _parse_option_date("until", until)
        if self._since_date and self._until_date and self._since_date > self._until_date:
            raise ConfigError(f"{setting_name('since')} {since} is after {setting_name('until')} {until}; no tweet can "
                              "match, swap them")
        if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < 0:
            raise ConfigError(f"{setting_name('min_length')} {min_length!r}: must be a whole number, 0 or more")

    def iter_texts(self, source: str) -> Iterator[str]:
        """Yield the cleaned text of every kept tweet in ``source``, in file order."""
        path = open_source_file(source)
        if path.suffix.lower() != ".zip":
            lines_only = path.suffix.lower() in _LINES_SUFFIXES
            yield from self._keep(_iter_records(lambda: path.open("rb"), source, lines_only), source)
            return
        with _reading(source, "not a readable zip archive", "check the download, or unzip it and pass the tweet file"):
            archive = zipfile.ZipFile(path)
        with archive:
            member = _pick_member(archive, source)
            label = f"{source} ({member.filename})"
            lines_only = member.filename.lower().endswith(_LINES_SUFFIXES)
            yield from self._keep(_iter_records(lambda: archive.open(member), label, lines_only), label)

    def _clean(self, text: str) -> str:
        """The tweet text as it is yielded: unescaped, without t.co links, stripped (per the options)."""
        if self.unescape_html:
            text = html.unescape(text)
        if not self.keep_links and "t.co/" in text:
            text = _TCO_LINK.sub("", text)
        return text.strip()

    def _keep(self, records: Iterator[tuple[str, object]], label: str) -> Iterator[str]:
        """Validate every record, apply the filters, yield the kept texts and explain an empty result."""
        since, until = self._since_date, self._until_date
        read = kept = retweets = outside_dates = empty = short = 0
        for where, record in records:
            read += 1
            text = _tweet_text(record, where, label)
            if not self.keep_retweets and _is_retweet(record, text):
                retweets += 1
                continue
            if since or until:
                day = _tweet_date(record, where, label)
                if (since and day < since) or (until and day > until):
                    outside_dates += 1
                    continue
            text = self._clean(text)
            if not text:
                empty += 1
                continue
            if len(text) < self.min_length:
                short += 1
                continue
            kept += 1
            yield text
        if read == 0:
            raise CorpusError(f"{label}: holds no tweets; expected a JSON list of tweet objects or one per line")
        reasons = []
        if retweets:
            reasons.append(f"{_plural(retweets, 'retweet')} dropped; use {setting_name('keep_retweets')} to keep them")
        if outside_dates:
            bounds = f"{self.since or 'the start'} to {self.until or 'the end'}"
            reasons.append(f"{outside_dates} outside the dates {bounds}; widen "
                           f"{setting_name('since')}/{setting_name('until')}")
        if empty:
            if self.keep_links:
                reasons.append(f"{empty} empty")
            else:
                reasons.append(f"{empty} empty after removing links; use {setting_name('keep_links')} to keep links")
        if short:
            reasons.append(f"{short} shorter than {self.min_length} characters; lower {setting_name('min_length')}")
        if kept == 0:
            raise CorpusError(f"{label}: all {_plural(read, 'tweet')} were filtered out ({'; '.join(reasons)})")
        log.info("%s: kept %d of %d tweets (%s)", label, kept, read, "; ".join(reasons) or "none filtered out")


def _pick_member(archive: zipfile.ZipFile, source: str) -> zipfile.ZipInfo:
    """The one JSON or JSON-lines member of a zip (folders and macOS `__MACOSX/` entries ignored)."""
    members = [info for info in archive.infolist() if not info.is_dir() and not info.filename.startswith("__MACOSX/")]
    candidates = [info for info in members if info.filename.lower().endswith(_JSON_SUFFIXES)]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        names = ", ".join(info.filename for info in candidates)
        raise CorpusError(
            f"{source}: holds {len(candidates)} tweet files ({names}); expected exactly one, so unzip it and "
            "pass the file you want"
        )
    found = ", ".join(info.filename for info in members[:10]) + (", ..." if len(members) > 10 else "")
    raise CorpusError(
        f"{source}: holds no .json, .jsonl or .ndjson file (found: {found or 'nothing'}); put one tweet file in the zip"
    )
