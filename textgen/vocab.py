"""`CharVocab`: the one character vocabulary shared by every corpus of a run (build, encode, decode, JSON)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from textgen.errors import CheckpointError, CorpusError

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


@dataclass(frozen=True)
class CharVocab:
    """Characters sorted by code point; a character's id is its position."""

    chars: tuple[str, ...]  # every character, sorted, no duplicates

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
