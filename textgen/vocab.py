"""The vocabulary shared by every corpus of a run, at one of three token levels (build, encode, decode, JSON):
`CharVocab` (a token is a character), `WordVocab` (a frequent word, else its characters) and `BPEVocab` (byte-level
byte-pair pieces, through Hugging Face ``tokenizers``). `build_vocab` makes one, `vocab_from_json` reads one."""

from __future__ import annotations

import codecs
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import orjson

from textgen.config import DEFAULT_VOCAB_SIZE, TOKEN_LEVELS
from textgen.errors import CheckpointError, CorpusError
from textgen.loaders.base import END_OF_DOCUMENT

VOCAB_FORMAT_VERSION = 1
_ENCODE_BLOCK = 1 << 20  # characters encoded at a time


def listed(chars: list[str], at_most: int = 40) -> str:
    """``chars`` as one quoted string (escapes for the invisible ones), the first ``at_most`` if there are more."""
    if len(chars) <= at_most:
        return repr("".join(chars))
    return f"{''.join(chars[:at_most])!r} and {len(chars) - at_most:,} more"


def _code_points(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as a uint32 array, without a Python-level loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def id_dtype(size: int) -> np.dtype:
    """The smallest unsigned integer type that holds ids ``0..size-1``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"vocabulary of {size} characters is too large")


def _characters_of(token_characters: np.ndarray, ids: np.ndarray) -> int:
    """Sum of ``token_characters`` over ``ids`` (1-D, possibly a large memory map), a block at a time."""
    total = 0
    for start in range(0, ids.size, _ENCODE_BLOCK):
        total += int(token_characters[np.asarray(ids[start : start + _ENCODE_BLOCK], dtype=np.intp)].sum())
    return total


class _Decoder:
    """Decodes ids a piece at a time (`feed`), then the rest (`finish`): for levels whose tokens are whole
    characters, each piece is simply decoded."""

    def __init__(self, vocab):
        self.vocab = vocab

    def feed(self, ids: np.ndarray) -> str:
        return self.vocab.decode(ids)

    def finish(self) -> str:
        return ""


@dataclass(frozen=True)
class CharVocab:
    """Characters sorted by code point; a character's id is its position."""

    chars: tuple[str, ...]  # every character, sorted, no duplicates
    level = "char"

    def __post_init__(self):
        assert list(self.chars) == sorted(set(self.chars)), "vocabulary must be sorted and unique"
        object.__setattr__(self, "_points", np.array([ord(c) for c in self.chars], dtype=np.uint32))

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharVocab:
        """Collect every character of every text; the result does not depend on text order."""
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        return cls(tuple(sorted(seen)))

    @property
    def size(self) -> int:
        """Number of characters, K in the assignment."""
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        """dtype of encoded ids."""
        return id_dtype(self.size)

    @property
    def char_to_id(self) -> dict[str, int]:
        """Mapping from character to id."""
        return {char: index for index, char in enumerate(self.chars)}

    def missing(self, text: str) -> list[str]:
        """Characters of ``text`` that are not in the vocabulary, sorted."""
        return sorted(set(text) - set(self.chars))

    def check_known(self, text: str | set, what: str, fix: str) -> None:
        """CorpusError unless every character of ``text`` is in the vocabulary: the message names ``what`` the
        text is ("--prime", "corpus book.txt"), lists the characters it lacks and ends with ``fix``."""
        unknown = sorted(set(text) - set(self.chars))
        if unknown:
            raise CorpusError(f"{what} has characters that are not in the model's vocabulary: "
                              f"{listed(unknown)}; {fix}")

    def encode(self, text: str) -> np.ndarray:
        """Ids of ``text``, shape (len(text),), dtype ``self.dtype``; CorpusError on unknown characters.

        Works through the text in blocks, so the temporaries stay small beside the result.
        """
        ids = np.empty(len(text), dtype=self.dtype)
        for start in range(0, len(text), _ENCODE_BLOCK):
            block = text[start : start + _ENCODE_BLOCK]
            points = _code_points(block)
            found = np.searchsorted(self._points, points)
            if not np.array_equal(self._points[np.minimum(found, self.size - 1)], points):
                raise CorpusError(f"characters outside the vocabulary: {listed(self.missing(block))}")
            ids[start : start + len(block)] = found
        return ids

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """The text of ``ids`` (any integer array or sequence)."""
        points = self._points[np.asarray(ids, dtype=np.intp)]
        return points.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")

    @property
    def tokens(self) -> tuple[str, ...]:
        """Each token's text, in id order."""
        return self.chars

    @cached_property
    def token_characters(self) -> np.ndarray:
        """Characters each token stands for, (size,) int64: one each."""
        return np.ones(self.size, dtype=np.int64)

    def characters(self, ids: np.ndarray) -> int:
        """Characters of text ``ids`` stand for: one per id."""
        return int(np.asarray(ids).size)

    def id_of(self, token: str) -> int | None:
        """The id of the token ``token`` (a character), or None."""
        return self.char_to_id.get(token)

    def decoder(self) -> _Decoder:
        """An incremental decoder (`feed` ids, then `finish`)."""
        return _Decoder(self)

    def max_steps(self, characters: int) -> int:
        """Tokens to draw at most for a text of ``characters`` characters."""
        return characters

    def describe(self) -> str:
        """The vocabulary in a few words, for the start line and the report."""
        return f"{self.size:,} characters"

    def to_json(self) -> dict:
        """A JSON-ready dict that ``from_json`` reads back."""
        return {"format_version": VOCAB_FORMAT_VERSION, "chars": list(self.chars)}

    @classmethod
    def from_json(cls, data: object, where: str = "vocabulary") -> CharVocab:
        """Read ``to_json``'s output, raising CheckpointError naming ``where`` if it is malformed."""
        if not isinstance(data, dict) or data.get("format_version") != VOCAB_FORMAT_VERSION:
            raise CheckpointError(f"{where}: not a textgen vocabulary of format_version {VOCAB_FORMAT_VERSION}")
        chars = data.get("chars")
        if (
            not isinstance(chars, list)
            or not chars
            or not all(isinstance(c, str) and len(c) == 1 for c in chars)
            or chars != sorted(set(chars))
        ):
            raise CheckpointError(f"{where}: 'chars' must be a sorted list of distinct single characters")
        return cls(tuple(chars))


# --- word level -------------------------------------------------------------------------------------------------

_WORD = re.compile(r"(\w+)")  # a word: a run of letters, digits and underscores; any other character stands alone


@dataclass(frozen=True)
class WordVocab:
    """Every character of the corpus (sorted by code point, ids 0..C-1, as a `CharVocab`), then the most frequent
    words of the training text (sorted, ids C..). A word that is not in the vocabulary is written as its
    characters, so any text of the corpus's characters encodes, and decodes back exactly; there is no unknown
    token."""

    chars: tuple[str, ...]  # every character, sorted, no duplicates
    words: tuple[str, ...]  # words of two characters or more, sorted, no duplicates
    requested: int  # the --vocab-size asked for
    level = "word"

    def __post_init__(self):
        assert list(self.words) == sorted(set(self.words)), "words must be sorted and unique"
        object.__setattr__(self, "_chars", CharVocab(self.chars))

    @classmethod
    def from_texts(cls, training: Iterable[str], characters: Iterable[str], size: int) -> WordVocab:
        """The ``size`` tokens (at least every character of ``characters``) of the training texts ``training``:
        every character, and the most frequent words (ties broken by the word itself) in the room that is left."""
        counts: Counter = Counter()
        for text in training:
            counts.update(word for word in _WORD.findall(text) if len(word) > 1)
        chars = tuple(sorted(set(characters)))
        room = max(0, size - len(chars))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:room]
        return cls(chars, tuple(sorted(word for word, _ in ranked)), size)

    @property
    def size(self) -> int:
        return len(self.chars) + len(self.words)

    @property
    def dtype(self) -> np.dtype:
        return id_dtype(self.size)

    @property
    def tokens(self) -> tuple[str, ...]:
        return self.chars + self.words

    @cached_property
    def token_to_id(self) -> dict[str, int]:
        """Mapping from token (a character or a word) to id."""
        return {token: index for index, token in enumerate(self.tokens)}

    @cached_property
    def token_characters(self) -> np.ndarray:
        return np.array([len(token) for token in self.tokens], dtype=np.int64)

    def characters(self, ids: np.ndarray) -> int:
        return _characters_of(self.token_characters, ids)

    def id_of(self, token: str) -> int | None:
        return self.token_to_id.get(token)

    def missing(self, text: str) -> list[str]:
        return self._chars.missing(text)

    def check_known(self, text: str | set, what: str, fix: str) -> None:
        self._chars.check_known(text, what, fix)

    def encode(self, text: str) -> np.ndarray:
        """Ids of ``text``: a word of the vocabulary is one id, any other character (of a rarer word too) one id
        each; CorpusError on characters outside the vocabulary."""
        lookup = self.token_to_id
        ids: list[int] = []
        try:
            for index, piece in enumerate(_WORD.split(text)):  # odd pieces are words, even ones what lies between
                token = lookup.get(piece) if index % 2 else None
                if token is not None:
                    ids.append(token)
                else:
                    ids.extend([lookup[char] for char in piece])
        except KeyError:
            raise CorpusError(f"characters outside the vocabulary: {listed(self.missing(text))}") from None
        return np.array(ids, dtype=self.dtype)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        tokens = self.tokens
        return "".join([tokens[i] for i in np.asarray(ids, dtype=np.intp).tolist()])

    def decoder(self) -> _Decoder:
        return _Decoder(self)

    def max_steps(self, characters: int) -> int:
        return characters  # every token is at least one character

    def describe(self) -> str:
        return f"{self.size:,} word tokens ({len(self.chars):,} characters and {len(self.words):,} words)"

    def to_json(self) -> dict:
        return {"format_version": VOCAB_FORMAT_VERSION, "tokens": "word", "vocab_size": self.requested,
                "chars": list(self.chars), "words": list(self.words)}

    @classmethod
    def from_json(cls, data: dict, where: str) -> WordVocab:
        chars = CharVocab.from_json({**data, "tokens": None}, where).chars
        words, requested = data.get("words"), data.get("vocab_size")
        if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
            raise CheckpointError(f"{where}: 'vocab_size' must be a positive integer, got {str(requested)[:40]!r}")
        if not isinstance(words, list) or not all(isinstance(w, str) and len(w) > 1 and _WORD.fullmatch(w)
                                                  for w in words):
            raise CheckpointError(f"{where}: 'words' must be a list of words of two or more letters or digits")
        if words != sorted(set(words)):
            raise CheckpointError(f"{where}: 'words' must be sorted and without duplicates")
        if len(chars) + len(words) > max(requested, len(chars)):
            raise CheckpointError(f"{where}: {len(chars) + len(words):,} tokens, more than the vocab_size "
                                  f"{requested:,} it was built for")
        return cls(chars, tuple(words), requested)


# --- byte-pair level --------------------------------------------------------------------------------------------

def _byte_symbols() -> dict[str, int]:
    """The printable stand-in of each of the 256 byte values in a byte-level BPE vocabulary (the printable Latin-1
    bytes stand for themselves; the others take code points from 256 on, in byte order), and its byte."""
    kept = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    symbols, extra = {}, 0
    for byte in range(256):
        if byte in kept:
            symbols[chr(byte)] = byte
        else:
            symbols[chr(256 + extra)] = byte
            extra += 1
    return symbols


BYTE_SYMBOLS = _byte_symbols()
_LINE_START = re.compile(r"\n(?=\S)")  # a place where byte-level pre-tokenisation always splits


def _encoding_chunks(text: str, size: int = _ENCODE_BLOCK) -> Iterable[str]:
    """``text`` in pieces of about ``size`` characters, cut after a line break followed by a visible character,
    where the byte-level pre-tokeniser splits anyway, so that encoding piece by piece gives the ids of the whole
    (a piece without such a place is cut where it is: still lossless, a token may split there)."""
    start = 0
    while len(text) - start > size:
        found = None
        for found in _LINE_START.finditer(text, start + size // 2, start + size):
            pass
        end = found.end() if found is not None else start + size
        yield text[start:end]
        start = end
    yield text[start:]


class BPEVocab:
    """Byte-level byte-pair encoding: the 256 bytes, the end-of-document marker (when the training text has one)
    as one token, and the merges learned from the training text. No normaliser, so any text encodes and decodes
    back exactly; ids that are not valid UTF-8 (a sampled half character) decode to U+FFFD."""

    level = "bpe"

    def __init__(self, tokenizer_json: dict, requested: int, where: str = "vocabulary"):
        self.requested = requested
        self.tokenizer_json = tokenizer_json
        self._tokenizer = _parse_tokenizer(tokenizer_json, where)
        vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        if sorted(vocab.values()) != list(range(len(vocab))):
            raise CheckpointError(f"{where}: the tokenizer's ids are not 0..{len(vocab) - 1}, each once")
        added = {token["content"] for token in tokenizer_json.get("added_tokens") or ()
                 if isinstance(token, dict)}
        if added - {END_OF_DOCUMENT}:
            raise CheckpointError(f"{where}: the tokenizer has added tokens other than the end-of-document marker: "
                                  f"{listed(sorted(added - {END_OF_DOCUMENT}))}")
        if not set(BYTE_SYMBOLS) <= set(vocab):
            raise CheckpointError(f"{where}: the tokenizer lacks some of the 256 bytes, so not every text encodes")
        pieces: list[bytes] = [b""] * len(vocab)
        for token, index in vocab.items():
            if token in added:
                pieces[index] = token.encode("utf-8")
            elif all(symbol in BYTE_SYMBOLS for symbol in token) and token:
                pieces[index] = bytes(BYTE_SYMBOLS[symbol] for symbol in token)
            else:
                raise CheckpointError(f"{where}: the tokenizer's token {token[:40]!r} is not made of byte symbols")
        self.token_bytes: tuple[bytes, ...] = tuple(pieces)
        self._end_id = vocab.get(END_OF_DOCUMENT) if END_OF_DOCUMENT in added else None
        self.chars: tuple[str, ...] = ()  # any character: there is no fixed set

    @classmethod
    def train(cls, training: Callable[[], Iterable[str]], size: int, marker: bool) -> BPEVocab:
        """Learn ``size`` tokens (at least the 256 bytes and, with ``marker``, the end-of-document marker) from
        the texts ``training()`` yields: only the training text, never the held-out text."""
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        specials = [END_OF_DOCUMENT] if marker else []
        trainer = trainers.BpeTrainer(vocab_size=max(size, 256 + len(specials)), special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tokenizer.train_from_iterator((chunk for text in training() for chunk in _encoding_chunks(text)),
                                      trainer=trainer)
        return cls(orjson.loads(tokenizer.to_str()), size)

    @property
    def size(self) -> int:
        return len(self.token_bytes)

    @property
    def dtype(self) -> np.dtype:
        return id_dtype(self.size)

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        """Each token's bytes as text (a partial character shown as U+FFFD)."""
        return tuple(piece.decode("utf-8", "replace") for piece in self.token_bytes)

    @cached_property
    def token_characters(self) -> np.ndarray:
        """Characters each token stands for: the UTF-8 bytes that start a character (a character split over
        tokens is counted once, in the token holding its first byte)."""
        return np.array([sum((byte & 0xC0) != 0x80 for byte in piece) for piece in self.token_bytes], dtype=np.int64)

    def characters(self, ids: np.ndarray) -> int:
        return _characters_of(self.token_characters, ids)

    def id_of(self, token: str) -> int | None:
        if token == END_OF_DOCUMENT:
            return self._end_id
        try:
            return self.token_bytes.index(token.encode("utf-8"))
        except ValueError:
            return None

    def missing(self, text: str) -> list[str]:
        return []  # every text is bytes

    def check_known(self, text: str | set, what: str, fix: str) -> None:
        """Nothing to check: every character is made of bytes the vocabulary has."""

    def encode(self, text: str) -> np.ndarray:
        """Ids of ``text`` (every text encodes), a block at a time."""
        chunks = list(_encoding_chunks(text)) if text else []
        encodings = self._tokenizer.encode_batch(chunks, add_special_tokens=False) if chunks else []
        return np.array([index for encoding in encodings for index in encoding.ids], dtype=self.dtype)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """The text of ``ids``; bytes that are not valid UTF-8 (only a sample can hold them) become U+FFFD."""
        pieces = self.token_bytes
        return b"".join([pieces[i] for i in np.asarray(ids, dtype=np.intp).tolist()]).decode("utf-8", "replace")

    def decoder(self) -> _BytesDecoder:
        return _BytesDecoder(self)

    def max_steps(self, characters: int) -> int:
        return 4 * characters + 4  # a token is at least a byte, a character at most 4

    def describe(self) -> str:
        return f"{self.size:,} byte-pair tokens"

    def to_json(self) -> dict:
        return {"format_version": VOCAB_FORMAT_VERSION, "tokens": "bpe", "vocab_size": self.requested,
                "tokenizer": self.tokenizer_json}

    @classmethod
    def from_json(cls, data: dict, where: str) -> BPEVocab:
        requested = data.get("vocab_size")
        if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
            raise CheckpointError(f"{where}: 'vocab_size' must be a positive integer, got {str(requested)[:40]!r}")
        vocab = cls(data.get("tokenizer"), requested, where)
        if vocab.size > max(requested, 257):
            raise CheckpointError(f"{where}: {vocab.size:,} tokens, more than the vocab_size {requested:,} it was "
                                  "built for")
        return vocab

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BPEVocab) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.token_bytes)


def _parse_tokenizer(data: object, where: str):
    """The Hugging Face tokenizer ``data`` describes, checked to be byte-level BPE without a normaliser (so that
    text round-trips); CheckpointError naming ``where`` otherwise."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: 'tokenizer' must be a JSON object (a Hugging Face tokenizer)")
    model, pre = data.get("model"), data.get("pre_tokenizer")
    if not isinstance(model, dict) or model.get("type") != "BPE" or data.get("normalizer") is not None or \
            not isinstance(pre, dict) or pre.get("type") != "ByteLevel" or pre.get("add_prefix_space") is not False:
        raise CheckpointError(f"{where}: 'tokenizer' must be a byte-level BPE tokenizer without a normaliser")
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_str(orjson.dumps(data).decode())
    except Exception as error:  # noqa: BLE001 - the library raises plain exceptions for a bad file
        cause = " ".join(str(error).split())[:200]
        raise CheckpointError(f"{where}: the tokenizer does not parse ({cause})") from None


class _BytesDecoder:
    """Decodes byte-level ids a piece at a time, never splitting a character: bytes of a character not yet
    complete wait for the next piece; `finish` turns any left over into U+FFFD."""

    def __init__(self, vocab: BPEVocab):
        self.pieces = vocab.token_bytes
        self.utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, ids: np.ndarray) -> str:
        return self.utf8.decode(b"".join([self.pieces[i] for i in np.asarray(ids, dtype=np.intp).tolist()]))

    def finish(self) -> str:
        return self.utf8.decode(b"", final=True)


Vocab = CharVocab | WordVocab | BPEVocab  # any level's vocabulary


def build_vocab(level: str, characters: Iterable[str], training: Callable[[], Iterable[str]],
                size: int | None = None, marker: bool | None = None) -> Vocab:
    """A vocabulary at token ``level``: ``characters`` are every character of the corpus (training and held-out
    text, so that both encode), ``training()`` yields the training text (read again on each call) that word and
    bpe learn from, ``size`` is --vocab-size (None: the level's default), ``marker`` whether the training text
    has the end-of-document marker (None: whether ``characters`` has it)."""
    chars = set(characters)
    if level == "char":
        return CharVocab(tuple(sorted(chars)))
    size = size or DEFAULT_VOCAB_SIZE[level]
    if level == "word":
        return WordVocab.from_texts(training(), chars, size)
    return BPEVocab.train(training, size, END_OF_DOCUMENT in chars if marker is None else marker)


def vocab_from_json(data: object, where: str = "vocabulary") -> Vocab:
    """Read any level's ``to_json`` output (a vocabulary without ``tokens`` is a `CharVocab`), raising
    CheckpointError naming ``where`` if it is malformed."""
    if not isinstance(data, dict) or data.get("format_version") != VOCAB_FORMAT_VERSION:
        raise CheckpointError(f"{where}: not a textgen vocabulary of format_version {VOCAB_FORMAT_VERSION}")
    level = data.get("tokens", "char")
    if level not in TOKEN_LEVELS:
        raise CheckpointError(f"{where}: 'tokens' must be one of {', '.join(TOKEN_LEVELS)}, got {str(level)[:40]!r}")
    return {"char": CharVocab, "word": WordVocab, "bpe": BPEVocab}[level].from_json(data, where)
