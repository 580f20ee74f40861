"""Held-out evaluation: the mean loss per character of a model over a whole text, scored as the model scores
text (`Network.text_loss`: a recurrent one carries its state throughout). At every token level the loss is
per character of text, not per token, so that char, word and bpe models are measured on one scale."""

from __future__ import annotations

import math

import numpy as np

from textgen.errors import CorpusError
from textgen.models import Params
from textgen.vocab import Vocab

EVAL_CHUNK = 1000  # characters per forward pass (`Network.text_loss`): this only sets speed and memory


def mean_loss_per_char(
    params: Params, ids: np.ndarray, chunk: int = EVAL_CHUNK, h0: np.ndarray | None = None,
    characters: int | None = None,
) -> float:
    """-ln p(next token) summed over ``ids`` (1-D), divided by ``characters``, the characters of text the
    predicted tokens ids[1:] stand for (None: one each, as at char level, where this is the mean -ln p(next
    char)): reading ids[:-1] and predicting ids[1:] as the model scores text (`Network.text_loss`; a recurrent
    model carries its state from start to end), starting from the state ``h0`` (S,) or from zero.

    Why a start state matters: the hidden state of a vanilla RNN trained as in the assignment is reset
    only at the start of the corpus, so h = 0 anywhere else is a state it never saw. With a large
    recurrent W it can then settle into a saturated state that predicts badly for thousands of
    characters. Training starts evaluations from the current training state; checkpoints keep the
    state their parameters were used with. Returns nats per character (divide by ln 2 for bits);
    NaN if ``ids`` has fewer than 2 ids.
    """
    if ids.size < 2:
        return math.nan
    h = np.zeros((1, params.network.state_size), dtype=params.flat.dtype)
    if h0 is not None:
        h[0] = h0
    with np.errstate(all="ignore"):  # a model that overflows gives a loss of inf or NaN, which says it
        total = params.network.text_loss(params, ids, h, chunk)
    return total / (ids.size - 1 if characters is None else characters)


def bits_per_char(nats: float) -> float:
    """Convert nats per character to bits per character."""
    return nats / math.log(2)


def score_text(params: Params, vocab: Vocab, text: str, what: str,
               h0: np.ndarray | None = None) -> tuple[float, int]:
    """(nats per character, characters) of the model on ``text``, from the state ``h0`` (S,) or h = 0: the loss
    of the tokens after the first, over the characters they stand for (all of ``text`` but the first token's).

    CorpusError naming ``what`` the text is ("the corpus 'book.txt'") if ``text`` has characters the vocabulary
    lacks (the model cannot score them; they are listed) or fewer than 2 tokens (one to read, one to predict).
    """
    vocab.check_known(text, what, "the model cannot score them; give text in its characters")
    ids = vocab.encode(text)
    if ids.size < 2:
        unit = "character" if vocab.level == "char" else "token"
        raise CorpusError(f"{what} has {ids.size} {unit}(s); a loss per character needs at least 2 (one to "
                          "read, one to predict)")
    if vocab.level == "char":
        return mean_loss_per_char(params, ids, h0=h0), int(ids.size)
    return mean_loss_per_char(params, ids, h0=h0, characters=vocab.characters(ids[1:])), len(text)
