"""Sampling text from a model: checkpoint + prime text + length + temperature + Generator -> string.

Every sample, at training time or from `textgen generate`, goes through `draw_sequences`, which
advances a batch of independent streams one character at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from textgen.errors import ConfigError, CorpusError
from textgen.loaders.base import END_OF_DOCUMENT
from textgen.rnn import Params, step_probabilities
from textgen.vocab import CharVocab


@dataclass(frozen=True)
class SampleConfig:
    """How text is drawn from the model."""

    length: int = 1000  # characters to generate after the prime (the limit per document with `documents`)
    temperature: float = 1.0  # divides the logits: below 1 is safer and more repetitive, above 1 wilder
    top_k: int = 0  # draw only among the k most likely characters (0: all)
    top_p: float = 1.0  # draw only among the most likely characters whose probabilities sum to p (1: all)
    greedy: bool = False  # always take the most likely character (no randomness)
    prime: str = ""  # text the model reads first; every output starts with it
    count: int = 1  # independent samples, drawn together in one batched pass
    documents: int = 0  # if > 0: this many whole documents, each stopped at the end-of-document character

    def __post_init__(self):
        def positive_int(name, value, minimum):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigError(f"--{name} must be an integer of at least {minimum}, got {value!r}")

        positive_int("length", self.length, 0)
        positive_int("top-k", self.top_k, 0)
        positive_int("count", self.count, 1)
        positive_int("documents", self.documents, 0)
        if not isinstance(self.temperature, (int, float)) or not self.temperature > 0 or math.isinf(self.temperature):
            raise ConfigError(f"--temperature must be a positive number, got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], got {self.top_p!r}")
        if self.documents and self.count != 1:
            raise ConfigError("--documents and --count cannot be combined; --documents N already draws N samples")


@dataclass(frozen=True)
class GeneratedText:
    """One sample: its text (starting with the prime) and whether it stopped at an end-of-document marker."""

    text: str  # without the end-of-document marker
    ended: bool  # True if the model wrote the end-of-document marker within the length limit


def filter_probabilities(p: np.ndarray, config: SampleConfig) -> np.ndarray:
    """Apply temperature, top-k and top-p to probability rows ``p`` (B, K); returns unnormalised weights."""
    if config.temperature != 1.0:
        # softmax(o / T) is p^(1/T) renormalised; computed from log p so that it stays finite
        logits = np.log(np.maximum(p, np.finfo(p.dtype).tiny)) / config.temperature
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
    if 0 < config.top_k < p.shape[1]:
        dropped = np.argpartition(p, -config.top_k, axis=1)[:, : -config.top_k]
        p = p.copy()
        np.put_along_axis(p, dropped, 0.0, axis=1)
    if config.top_p < 1.0:
        order = np.argsort(-p, axis=1)
        sorted_p = np.take_along_axis(p, order, axis=1)
        cumulative = np.cumsum(sorted_p, axis=1) / sorted_p.sum(axis=1, keepdims=True)
        # keep a character if the ones more likely than it sum to less than top_p (so the first is always kept)
        keep_sorted = (cumulative - sorted_p / sorted_p.sum(axis=1, keepdims=True)) < config.top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=1)
        p = np.where(keep, p, 0.0)
    return p


def draw(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of non-negative ``weights`` (B, K), by inverse CDF with one uniform per row."""
    cumulative = np.cumsum(weights, axis=1)
    u = rng.random(weights.shape[0])[:, None] * cumulative[:, -1:]
    return np.minimum((cumulative <= u).sum(axis=1), weights.shape[1] - 1)


def draw_sequences(
    params: Params,
    h: np.ndarray,
    x: np.ndarray,
    length: int,
    rng: np.random.Generator,
    config: SampleConfig = SampleConfig(),
    stop_id: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Advance B streams from hidden states ``h`` (B, m) reading ids ``x`` (B,); each drawn id is the next input.

    Returns (ids (B, length), lengths (B,)): a stream that draws ``stop_id`` stops there (the stop id is
    not counted in its length); the others run to ``length``.
    """
    B = h.shape[0]
    ids = np.zeros((B, length), dtype=np.int64)
    lengths = np.full(B, length, dtype=np.int64)
    running = np.ones(B, dtype=bool)
    x = np.asarray(x, dtype=np.int64)
    for t in range(length):
        h, p = step_probabilities(params, h, x)
        if config.greedy:
            x = p.argmax(axis=1)
        else:
            x = draw(filter_probabilities(p, config), rng)
        ids[:, t] = x
        if stop_id is not None:
            stopped = running & (x == stop_id)
            lengths[stopped] = t
            running &= ~stopped
            if not running.any():
                break
    return ids, lengths


def sample_ids(params: Params, h: np.ndarray, x0: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """The assignment's synthesis, used for training-time samples: from ``h`` (m,) read ``x0``, draw ``length`` ids."""
    ids, _ = draw_sequences(params, h.reshape(1, -1), np.array([x0]), length, rng)
    return ids[0]


def warm_up(
    params: Params, h: np.ndarray, x: np.ndarray, stop_id: int, limit: int, rng: np.random.Generator,
    config: SampleConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Let each stream write (and discard) one document, so the next starts from a state the model knows.

    A model of documents has only ever begun a document right after another one ended, never from
    h = 0; starting there gives it a garbled first few characters. Returns (h, x) with x = the marker,
    or where a stream stood after ``limit`` characters without one.
    """
    done = np.zeros(h.shape[0], dtype=bool)
    for _ in range(limit):
        h_next, p = step_probabilities(params, h, x)
        x_next = p.argmax(axis=1) if config.greedy else draw(filter_probabilities(p, config), rng)
        h = np.where(done[:, None], h, h_next)
        x = np.where(done, x, x_next)
        done |= x_next == stop_id
        if done.all():
            break
    return h, x


def start_id(vocab: CharVocab) -> int:
    """What the model reads before anything: the end-of-document marker (a document's start) if the
    vocabulary has one, else a line break, else the first character."""
    lookup = vocab.char_to_id
    return lookup.get(END_OF_DOCUMENT, lookup.get("\n", 0))


def generate_texts(
    params: Params,
    vocab: CharVocab,
    config: SampleConfig,
    rng: np.random.Generator,
    start: tuple[np.ndarray, int] | None = None,
) -> list[GeneratedText]:
    """``config.count`` samples of ``config.length`` characters, or ``config.documents`` whole documents.

    Every text starts with ``config.prime``. Prime characters outside the vocabulary raise CorpusError.
    Every stream starts from ``start`` = (h (m,), next id), the training state a checkpoint keeps (see
    `Checkpoint.start_state`), or else from h = 0 reading `start_id`. A model of documents then
    writes one throwaway document first, so that the texts begin where documents begin (see `warm_up`).
    """
    unknown = vocab.missing(config.prime)
    if unknown:
        raise CorpusError(
            f"--prime has characters that are not in the model's vocabulary: {''.join(unknown)!r}; "
            "remove or replace them"
        )
    stop_id = None
    if config.documents:
        if END_OF_DOCUMENT not in vocab.chars:
            raise CorpusError(
                "--documents needs a model trained on a corpus of documents (tweets, dataset rows); this one "
                "was trained on continuous text and has no end-of-document marker; use --length instead"
            )
        stop_id = vocab.char_to_id[END_OF_DOCUMENT]
    streams = config.documents or config.count
    h = np.zeros((streams, params.hidden), dtype=params.flat.dtype)
    x = np.full(streams, start_id(vocab), dtype=np.int64)
    if start is not None:
        h[:] = start[0]
        x[:] = start[1]
    if END_OF_DOCUMENT in vocab.chars:
        h, x = warm_up(params, h, x, vocab.char_to_id[END_OF_DOCUMENT], max(config.length, 1000), rng, config)
    for char_id in vocab.encode(config.prime).tolist():  # the model reads the prime; its last char is the next input
        h, _ = step_probabilities(params, h, x)
        x = np.full(streams, char_id, dtype=np.int64)
    ids, lengths = draw_sequences(params, h, x, config.length, rng, config, stop_id)
    return [
        GeneratedText(config.prime + vocab.decode(row[:n]), ended=stop_id is not None and n < config.length)
        for row, n in zip(ids, lengths)
    ]


def generate(
    params: Params,
    vocab: CharVocab,
    config: SampleConfig,
    rng: np.random.Generator,
    start: tuple[np.ndarray, int] | None = None,
) -> str:
    """The first text of ``generate_texts`` (one sample of ``config.length`` characters after the prime)."""
    return generate_texts(params, vocab, config, rng, start)[0].text
