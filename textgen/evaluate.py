"""Held-out evaluation: the mean loss per character of a model over a whole text, hidden state carried throughout."""

from __future__ import annotations

import math

import numpy as np

from textgen.rnn import Params, Workspace

EVAL_CHUNK = 1000  # characters per forward pass; the hidden state carries across chunks, so this only sets speed


def mean_loss_per_char(params: Params, ids: np.ndarray, chunk: int = EVAL_CHUNK) -> float:
    """Mean -ln p(next char) over ``ids`` (1-D): predictions for ids[1:], reading ids[:-1] from h = 0.

    Returns nats per character; divide by ln 2 for bits per character. NaN if ``ids`` has under 2 ids.
    """
    predicted = ids.size - 1
    if predicted < 1:
        return math.nan
    h = np.zeros((1, params.hidden), dtype=params.flat.dtype)
    total = 0.0
    workspaces: dict[int, Workspace] = {}
    for start in range(0, predicted, chunk):
        length = min(chunk, predicted - start)
        work = workspaces.get(length)
        if work is None:
            work = workspaces[length] = Workspace(params.hidden, params.vocab_size, length, 1, params.flat.dtype)
        inputs = ids[start : start + length].reshape(-1, 1)
        targets = ids[start + 1 : start + length + 1].reshape(-1, 1)
        work.forward(params, inputs, h)
        total += float(work.loss(targets))
        h = work.H[-1].copy()
    return total / predicted


def bits_per_char(nats: float) -> float:
    """Convert nats per character to bits per character."""
    return nats / math.log(2)
