"""Sampling text from a model: checkpoint + prime text + length + temperature + Generator -> string."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from textgen.errors import ConfigError, CorpusError
from textgen.rnn import Params, step_probabilities
from textgen.vocab import CharVocab


@dataclass(frozen=True)
class SampleConfig:
    """How text is drawn from the model."""

    length: int = 1000  # characters to generate (after the prime text)
    temperature: float = 1.0  # divides the logits: below 1 is safer, above 1 wilder
    prime: str = ""  # text the model reads first; the output starts with it

    def __post_init__(self):
        if not isinstance(self.length, int) or self.length < 0:
            raise ConfigError(f"--length must be a non-negative integer, got {self.length!r}")
        if not self.temperature > 0 or not np.isfinite(self.temperature):
            raise ConfigError(f"--temperature must be a positive number, got {self.temperature!r}")


def draw(p: np.ndarray, rng: np.random.Generator) -> int:
    """Draw an index from the probability vector ``p`` (K,) using one uniform from ``rng``."""
    cumulative = np.cumsum(p)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, p.size - 1)


def sample_ids(
    params: Params, h: np.ndarray, x0: int, length: int, rng: np.random.Generator, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``x0`` from hidden state ``h`` (m,) and draw ``length`` ids; returns (ids, final h).

    This is the assignment's synthesis loop: each drawn character is the next input.
    """
    ids = np.empty(length, dtype=np.int64)
    x = int(x0)
    for t in range(length):
        h, p = step_probabilities(params, h, x)
        if temperature != 1.0:
            # softmax(o / T) = p^(1/T) renormalised; computed in log space to stay finite.
            logits = np.log(np.maximum(p, np.finfo(p.dtype).tiny)) / temperature
            p = np.exp(logits - logits.max())
        x = draw(p, rng)
        ids[t] = x
    return ids, h


def prime_state(params: Params, vocab: CharVocab, prime: str) -> tuple[np.ndarray, int]:
    """Run the model from h = 0 over all but the last character of ``prime``; returns (h, last char id)."""
    ids = vocab.encode(prime)
    h = np.zeros(params.hidden, dtype=params.flat.dtype)
    for x in ids[:-1]:
        h, _ = step_probabilities(params, h, int(x))
    return h, int(ids[-1])


def generate(
    params: Params, vocab: CharVocab, config: SampleConfig, rng: np.random.Generator, start_char: str = "\n"
) -> str:
    """Text of ``config.length`` characters after ``config.prime`` (which the output starts with).

    Without a prime the model starts from h = 0 reading ``start_char`` if the vocabulary has it,
    else the first vocabulary character; that start character is not part of the output.
    Prime characters outside the vocabulary raise CorpusError listing them.
    """
    if config.prime:
        unknown = vocab.missing(config.prime)
        if unknown:
            raise CorpusError(
                f"--prime has characters that are not in the model's vocabulary: {''.join(unknown)!r}; "
                "remove or replace them"
            )
        h, x0 = prime_state(params, vocab, config.prime)
    else:
        h = np.zeros(params.hidden, dtype=params.flat.dtype)
        x0 = vocab.char_to_id.get(start_char, 0)
    ids, _ = sample_ids(params, h, x0, config.length, rng, config.temperature)
    return config.prime + vocab.decode(ids)
