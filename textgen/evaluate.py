"""Held-out evaluation: the mean loss per character of a model over a whole text, hidden state carried throughout."""

from __future__ import annotations

import math

import numpy as np

from textgen.rnn import Params, Workspace

EVAL_CHUNK = 1000  # characters per forward pass; the hidden state carries across chunks, so this only sets speed
VAL_CONTEXT = 1000  # characters of training text read (not scored) before the held-out text


def _run(params: Params, ids: np.ndarray, h: np.ndarray, chunk: int, score: bool) -> tuple[float, np.ndarray]:
    """Read ``ids`` from hidden state ``h`` (1, m); returns (summed loss of predicting ids[1:], final h)."""
    total = 0.0
    workspaces: dict[int, Workspace] = {}
    predicted = ids.size - 1
    for start in range(0, predicted, chunk):
        length = min(chunk, predicted - start)
        work = workspaces.get(length)
        if work is None:
            work = workspaces[length] = Workspace(params.hidden, params.vocab_size, length, 1, params.flat.dtype)
        inputs = ids[start : start + length].reshape(-1, 1)
        targets = ids[start + 1 : start + length + 1].reshape(-1, 1)
        work.forward(params, inputs, h)
        if score:
            total += float(work.loss(targets))
        h = work.H[-1].copy()
    return total, h


def mean_loss_per_char(
    params: Params, ids: np.ndarray, chunk: int = EVAL_CHUNK, context: np.ndarray | None = None
) -> float:
    """Mean -ln p(next char) over ``ids`` (1-D), hidden state carried from start to end.

    Without ``context`` the model starts from h = 0 reading ids[0] and predicts ids[1:]. With it, the
    model first reads ``context`` (the text that comes before ``ids``, not scored) and then predicts
    every id of ``ids``: a vanilla RNN trained with a carried state can take hundreds of characters to
    recover from h = 0 in the middle of a text, which would otherwise dominate a short held-out text.
    Returns nats per character (divide by ln 2 for bits); NaN if nothing is predicted.
    """
    h = np.zeros((1, params.hidden), dtype=params.flat.dtype)
    if context is not None and context.size:
        _, h = _run(params, context, h, chunk, score=False)  # reads context[:-1]; context[-1] is read next
        ids = np.concatenate([context[-1:], ids])
    if ids.size < 2:
        return math.nan
    total, _ = _run(params, ids, h, chunk, score=True)
    return total / (ids.size - 1)


def bits_per_char(nats: float) -> float:
    """Convert nats per character to bits per character."""
    return nats / math.log(2)
