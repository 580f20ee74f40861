"""Sampling text from a model: checkpoint + prime text + length + temperature + Generator -> string.

Every sample, at training time or from `textgen generate`, goes through `draw_blocks`, which
advances a batch of independent streams one character at a time; `stream_texts` gives each text of
`textgen generate` a Generator of its own, so that text i depends only on the seed and i.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from textgen.config import SampleConfig
from textgen.errors import CorpusError, setting_name
from textgen.limits import check_memory
from textgen.loaders.base import END_OF_DOCUMENT
from textgen.models import Params
from textgen.vocab import Vocab

UNIFORM_BLOCK = 256  # uniforms a stream's Generator draws at a time


@dataclass(frozen=True)
class GeneratedText:
    """One sample: its text (starting with the prime) and whether it stopped at an end-of-document marker."""

    text: str  # without the end-of-document marker
    ended: bool  # True if the model wrote the end-of-document marker within the length limit


def filter_probabilities(p: np.ndarray, config: SampleConfig) -> np.ndarray:
    """Apply temperature, top-k and top-p to probability rows ``p`` (B, K); returns unnormalised weights."""
    if config.temperature != 1.0:
        # softmax(o / T) is p^(1/T) renormalised. From log p, shifted so that the likeliest is 0 before the
        # division: it stays 0 (weight 1) for any T, so even T = 1e-300 or 1e300 gives no NaN.
        log_p = np.log(np.maximum(p, np.finfo(p.dtype).tiny))
        with np.errstate(over="ignore", under="ignore"):
            p = np.exp((log_p - log_p.max(axis=1, keepdims=True)) / config.temperature)
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


def draw_blocks(
    params: Params,
    h: np.ndarray,
    x: np.ndarray,
    length: int,
    rng: np.random.Generator,
    config: SampleConfig = SampleConfig(),
    stop_id: int | None = None,
    block: int = 256,
    finished: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Advance B streams from sampling states ``h`` (B, ·) (see `Network.sampling_state`) reading ids ``x`` (B,);
    each drawn id is the next input.

    Yields (ids (B, k), stopped_at (B,)) for every ``block`` steps drawn, up to ``length`` in all:
    ``stopped_at`` is the step at which a stream drew ``stop_id`` (the stop id is not counted), -1 while
    it runs. Drawing ends early once every stream has stopped, or is marked in ``finished`` (B,) bool, which
    the caller may set between blocks for streams that need no more ids. Memory does not grow with ``length``.
    """
    B = h.shape[0]
    stopped_at = np.full(B, -1, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    step = params.network.step
    t = 0
    finished = False
    while t < length and not finished:
        ids = np.zeros((B, min(block, length - t)), dtype=np.int64)
        width = ids.shape[1]
        with np.errstate(all="ignore"):  # a model whose numbers overflow draws garbage, not warnings
            for column in range(ids.shape[1]):
                h, p = step(params, h, x)
                if config.greedy:
                    x = p.argmax(axis=1)
                else:
                    x = draw(filter_probabilities(p, config), rng)
                ids[:, column] = x
                t += 1
                if stop_id is not None:
                    stopped_at[(stopped_at < 0) & (x == stop_id)] = t - 1
                    if (stopped_at >= 0).all():
                        width, finished = column + 1, True
                        break
        yield ids[:, :width], stopped_at
        if finished is not None and ((stopped_at >= 0) | finished).all():
            return


def draw_sequences(
    params: Params,
    h: np.ndarray,
    x: np.ndarray,
    length: int,
    rng: np.random.Generator,
    config: SampleConfig = SampleConfig(),
    stop_id: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`draw_blocks` collected: (ids (B, length), lengths (B,)); a stream that drew ``stop_id`` stops there
    (the stop id is not counted in its length); the others run to ``length``."""
    B = h.shape[0]
    ids = np.zeros((B, length), dtype=np.int64)
    stopped_at = np.full(B, -1, dtype=np.int64)
    position = 0
    for drawn, stopped_at in draw_blocks(params, h, x, length, rng, config, stop_id):
        ids[:, position : position + drawn.shape[1]] = drawn
        position += drawn.shape[1]
    return ids, np.where(stopped_at >= 0, stopped_at, length)


def sample_ids(params: Params, h: np.ndarray, x0: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """The assignment's synthesis, used for training-time samples: from the state ``h`` (S,) read ``x0``, draw
    ``length`` ids."""
    state = params.network.sampling_state(h.reshape(1, -1))
    ids, _ = draw_sequences(params, state, np.array([x0]), length, rng)
    return ids[0]


class RowGenerators:
    """One `numpy.random.Generator` per stream of a batch, which `draw` takes in place of one Generator: stream
    r's uniforms come from its own, so what a stream writes depends only on its own seed. They are drawn
    UNIFORM_BLOCK at a time (the same numbers as one by one) and handed out one per stream and draw."""

    def __init__(self, generators: list[np.random.Generator]):
        self.generators = generators
        self.buffer = np.empty((len(generators), UNIFORM_BLOCK))
        self.used = np.full(len(generators), UNIFORM_BLOCK)  # uniforms taken from each row of the buffer

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The next uniform in [0, 1) of each stream in ``rows`` (indices)."""
        for row in rows[self.used[rows] == UNIFORM_BLOCK].tolist():
            self.buffer[row] = self.generators[row].random(UNIFORM_BLOCK)
            self.used[row] = 0
        uniforms = self.buffer[rows, self.used[rows]]
        self.used[rows] += 1
        return uniforms

    def random(self, size: int) -> np.ndarray:
        """One uniform from each stream (``size`` is the number of streams), as `Generator.random` gives."""
        assert size == len(self.generators)
        return self.take(np.arange(size))

    def rows(self, which: np.ndarray) -> _SomeRows:
        """The streams ``which`` (a boolean mask) selects, for one `draw`."""
        return _SomeRows(self, np.flatnonzero(which))


class _SomeRows:
    """Some streams of a `RowGenerators`, for `draw`."""

    def __init__(self, generators: RowGenerators, rows: np.ndarray):
        self.generators, self.chosen = generators, rows

    def random(self, size: int) -> np.ndarray:
        assert size == self.chosen.size
        return self.generators.take(self.chosen)


def sample_seed(seed: int | np.random.Generator | None) -> int:
    """The seed of a set of samples: ``seed`` itself, one drawn from a Generator, or a fresh one (None)."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**63))
    return secrets.randbits(32) if seed is None else int(seed)


def sample_generator(seed: int, index: int) -> np.random.Generator:
    """The Generator of sample ``index`` (from 0) of the samples drawn with ``seed``: the index-th child of
    ``SeedSequence(seed)``, so a sample depends on the seed and its index only, not on how many are drawn."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def warm_up(
    params: Params, h: np.ndarray, x: np.ndarray, stop_id: int, limit: int, rng: RowGenerators,
    config: SampleConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Let each stream write (and discard) one document, so the next starts from a state the model knows.

    A model of documents has only ever begun a document right after another one ended, never from
    h = 0; starting there gives it a garbled first few characters. Returns (h, x) with x = the marker,
    or where a stream stood after ``limit`` characters without one. A stream draws from its own Generator
    only while it warms up, so how long the others take does not change what it writes next.
    """
    done = np.zeros(h.shape[0], dtype=bool)
    for _ in range(limit):
        h_next, p = params.network.step(params, h, x)
        running = ~done
        if config.greedy:
            x_next = p.argmax(axis=1)
        else:
            x_next = x.copy()
            x_next[running] = draw(filter_probabilities(p[running], config), rng.rows(running))
        h = np.where(done[:, None], h, h_next)
        x = np.where(done, x, x_next)
        done |= x_next == stop_id
        if done.all():
            break
    return h, x


def start_id(vocab: Vocab) -> int:
    """What the model reads before anything: the end-of-document marker (a document's start) if the
    vocabulary has one, else a line break, else the first token."""
    marker, newline = vocab.id_of(END_OF_DOCUMENT), vocab.id_of("\n")
    return marker if marker is not None else newline if newline is not None else 0


@dataclass(frozen=True)
class TextPiece:
    """The next characters of one sample, as `stream_texts` writes them."""

    index: int  # which sample, from 0
    text: str  # its next characters (the first piece starts with the prime)
    done: bool  # True on the sample's last piece
    ended: bool = False  # on the last piece: the sample stopped at an end-of-document marker


MAX_STREAMS = 32  # samples drawn side by side at most (more gain little and hold more text back)
WAITING_BYTES = 32 << 20  # the drawn ids of the samples waiting for their turn to be written, at most


def batch_streams(config: SampleConfig, itemsize: int) -> int:
    """How many samples `stream_texts` draws side by side: all of them up to MAX_STREAMS, fewer when the
    ones waiting for their turn would hold more than WAITING_BYTES of text (one at a time, for long texts)."""
    wanted = config.documents or config.count
    return max(1, min(wanted, MAX_STREAMS, 1 + WAITING_BYTES // max(1, config.length * itemsize)))


def check_sampling_memory(params: Params, config: SampleConfig, itemsize: int = 4) -> None:
    """LimitError before sampling if the samples `stream_texts` draws side by side would not fit in memory."""
    streams = batch_streams(config, itemsize)
    needed = params.network.sampling_bytes(streams)
    needed += (streams - 1) * config.length * itemsize  # every sample but the one being written waits here
    check_memory(needed, f"{streams} samples of {config.length:,} characters",
                 f"ask for shorter samples ({setting_name('length')})")


def stream_texts(
    params: Params,
    vocab: Vocab,
    config: SampleConfig,
    seed: int | np.random.Generator,
    start: tuple[np.ndarray, int] | None = None,
) -> Iterator[TextPiece]:
    """``config.count`` samples of ``config.length`` characters, or ``config.documents`` whole documents,
    written as they are drawn: sample 0's pieces as soon as they exist, then sample 1's, and so on.

    Sample i is drawn from `sample_generator` (``seed``, i) (a Generator given as ``seed`` gives the seed
    by one draw), and its numbers do not depend on the samples drawn beside it, so the same seed gives
    sample i the same text whether one or a thousand are asked for. At most `batch_streams` are drawn
    side by side, so memory does not grow with the count or the length.

    Every text starts with ``config.prime``; prime characters outside the vocabulary raise CorpusError.
    Every stream starts from ``start`` = (state (S,), next id), the training state a checkpoint keeps (see
    `Checkpoint.start_state`), or else from h = 0 reading `start_id`. A model of documents then writes one
    throwaway document first, so that the texts begin where documents begin (see `warm_up`).
    """
    vocab.check_known(config.prime, f"{setting_name('prime')}", "remove or replace them")
    stop_id = None
    if config.documents:
        if vocab.id_of(END_OF_DOCUMENT) is None:
            raise CorpusError(
                f"{setting_name('documents')} needs a model trained on a corpus of documents (tweets, dataset rows); "
                "this one "
                f"was trained on continuous text and has no end-of-document marker; use {setting_name('length')} "
                "instead"
            )
        stop_id = vocab.id_of(END_OF_DOCUMENT)
    check_sampling_memory(params, config, vocab.dtype.itemsize)
    seed = sample_seed(seed)
    samples, side_by_side = config.documents or config.count, batch_streams(config, vocab.dtype.itemsize)
    for first in range(0, samples, side_by_side):
        rng = RowGenerators([sample_generator(seed, index)
                             for index in range(first, min(samples, first + side_by_side))])
        yield from _stream_batch(params, vocab, config, rng, first, start, stop_id)


def _stream_batch(
    params: Params,
    vocab: Vocab,
    config: SampleConfig,
    rng: RowGenerators,
    first: int,
    start: tuple[np.ndarray, int] | None,
    stop_id: int | None,
) -> Iterator[TextPiece]:
    """`stream_texts` for the samples ``first``, ``first`` + 1, ..., one per Generator of ``rng``, side by side;
    only the samples waiting for their turn are held in memory."""
    streams = len(rng.generators)
    h = np.zeros((streams, params.network.state_size), dtype=params.flat.dtype)
    x = np.full(streams, start_id(vocab), dtype=np.int64)
    if start is not None:
        h[:] = start[0]
        x[:] = start[1]
    h = params.network.sampling_state(h)
    with np.errstate(all="ignore"):  # as in draw_blocks
        if vocab.id_of(END_OF_DOCUMENT) is not None:
            h, x = warm_up(params, h, x, vocab.id_of(END_OF_DOCUMENT), max(config.length, 1000), rng, config)
        for char_id in vocab.encode(config.prime).tolist():  # the model reads the prime; its last token is next
            h, _ = params.network.step(params, h, x)
            x = np.full(streams, char_id, dtype=np.int64)
    if vocab.level != "char":
        yield from _stream_tokens(params, vocab, config, rng, first, h, x, stop_id)
        return
    pending: list[list[np.ndarray]] = [[] for _ in range(streams)]  # drawn, not yet written, in the id dtype
    began = [False] * streams  # whether a sample's prime has been written
    stopped_at = np.full(streams, -1, dtype=np.int64)

    def take(row: int, done: bool) -> TextPiece:
        ids, pending[row] = pending[row], []
        text = vocab.decode(np.concatenate(ids)) if ids else ""
        if not began[row]:
            text, began[row] = config.prime + text, True
        return TextPiece(first + row, text, done, ended=bool(done and stopped_at[row] >= 0))

    current = 0  # the sample being written; the later ones wait in `pending`
    if config.prime:
        yield take(0, done=False)
    offset = 0  # steps drawn before this block
    for block, stopped_at in draw_blocks(params, h, x, config.length, rng, config, stop_id):
        width = block.shape[1]
        for row in range(current, streams):
            stop = int(stopped_at[row])
            valid = width if stop < 0 else max(0, min(width, stop - offset))  # ids from the stop on are not text
            if valid:
                pending[row].append(block[row, :valid].astype(vocab.dtype))
        offset += width
        while current < streams:
            done = offset >= config.length or stopped_at[current] >= 0
            piece = take(current, done)
            if piece.text or done:
                yield piece
            if not done:
                break
            current += 1
    while current < streams:  # nothing was drawn (length 0)
        yield take(current, done=True)
        current += 1


def _stream_tokens(
    params: Params,
    vocab: Vocab,
    config: SampleConfig,
    rng: RowGenerators,
    first: int,
    h: np.ndarray,
    x: np.ndarray,
    stop_id: int | None,
) -> Iterator[TextPiece]:
    """`_stream_batch` for word and bpe tokens, from the sampling state ``h`` reading ``x``: each stream draws
    tokens until its text has ``config.length`` characters (then cut there) or it draws ``stop_id``. Its ids
    are decoded as they come, a character never split (see `BPEVocab.decoder`)."""
    streams = len(rng.generators)
    limit = config.length
    decoders = [vocab.decoder() for _ in range(streams)]
    pending: list[list[str]] = [[] for _ in range(streams)]  # decoded, not yet written
    made = [0] * streams  # characters of each text after the prime
    finished = np.zeros(streams, dtype=bool)  # whether a text is complete (its length reached, or a marker drawn)
    ended = [False] * streams  # ... at an end-of-document marker
    began = [False] * streams

    def add(row: int, text: str) -> None:
        text = text[: limit - made[row]]
        if text:
            pending[row].append(text)
            made[row] += len(text)
        if made[row] >= limit:
            finished[row] = True

    def take(row: int) -> TextPiece:
        text, pending[row] = "".join(pending[row]), []
        if not began[row]:
            text, began[row] = config.prime + text, True
        return TextPiece(first + row, text, bool(finished[row]), ended=ended[row])

    current = 0
    if config.prime:
        yield take(0)
    if limit == 0:
        finished[:] = True
    offset = 0  # steps drawn before this block
    steps = vocab.max_steps(limit) if limit else 0
    for block, stopped_at in draw_blocks(params, h, x, steps, rng, config, stop_id, finished=finished):
        width = block.shape[1]
        for row in range(current, streams):
            if finished[row]:
                continue
            stop = int(stopped_at[row])
            valid = width if stop < 0 else max(0, min(width, stop - offset))  # ids from the stop on are not text
            add(row, decoders[row].feed(block[row, :valid]))
            if not finished[row] and (stop >= 0 or offset + width >= steps):
                add(row, decoders[row].finish())  # bytes left of a character never completed: U+FFFD
                ended[row] = stop >= 0
                finished[row] = True
        offset += width
        while current < streams:
            piece = take(current)
            if piece.text or piece.done:
                yield piece
            if not piece.done:
                break
            current += 1
    while current < streams:  # nothing was drawn (length 0)
        finished[current] = True
        yield take(current)
        current += 1


TEXT_BYTES = 200  # a collected text's own objects, beside its characters


def check_collected_memory(vocab: Vocab, config: SampleConfig) -> None:
    """LimitError before sampling if the texts `generate_texts` returns, with the pieces each is joined from,
    would not fit in memory (a document may end sooner: counted at its limit, ``config.length``)."""
    widest = max(map(ord, vocab.chars + tuple(config.prime)), default=0) if vocab.level == "char" else 0x10000
    width = 1 if widest < 0x100 else 2 if widest < 0x10000 else 4  # bytes a character of a str takes
    texts, characters = config.documents or config.count, len(config.prime) + config.length
    check_memory(texts * (2 * width * characters + TEXT_BYTES),
                 f"{texts:,} text{'s' if texts != 1 else ''} of up to {characters:,} characters",
                 f"ask for fewer ({setting_name('count')}, {setting_name('documents')}) or shorter "
                 f"({setting_name('length')}) texts, or write them out as they are drawn with textgen generate")


def generate_texts(
    params: Params,
    vocab: Vocab,
    config: SampleConfig,
    seed: int | np.random.Generator,
    start: tuple[np.ndarray, int] | None = None,
) -> list[GeneratedText]:
    """`stream_texts` collected: one `GeneratedText` per sample."""
    check_collected_memory(vocab, config)
    parts: list[list[str]] = [[] for _ in range(config.documents or config.count)]
    ended = [False] * len(parts)
    for piece in stream_texts(params, vocab, config, seed, start):
        parts[piece.index].append(piece.text)
        if piece.done:
            ended[piece.index] = piece.ended
    return [GeneratedText("".join(text), stopped) for text, stopped in zip(parts, ended)]


def generate(
    params: Params,
    vocab: Vocab,
    config: SampleConfig,
    seed: int | np.random.Generator,
    start: tuple[np.ndarray, int] | None = None,
) -> str:
    """The first text of ``generate_texts`` (one sample of ``config.length`` characters after the prime)."""
    return generate_texts(params, vocab, config, seed, start)[0].text
