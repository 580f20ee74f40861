"""The models textgen trains, one module per cell (vanilla RNN, LSTM, GRU, and the gpt transformer), each a `Cell` chosen by
`RNNConfig.cell`; `network_of` builds the `Network` a config describes. Nothing outside this package names a cell."""

from __future__ import annotations

import numpy as np

from textgen.config import RNNConfig
from textgen.models import gpt, gru, lstm, rnn
from textgen.models.base import (
    Cell,
    LossAndGrads,
    Network,
    Params,
    Workspace,
    blas_may_run_threads,
    default_threads,
    reference_loss_and_grads,
)

CELLS: dict[str, Cell] = {cell.name: cell for cell in (rnn.CELL, lstm.CELL, gru.CELL, gpt.CELL)}  # by --cell name

__all__ = ["CELLS", "Cell", "LossAndGrads", "Network", "Params", "Workspace", "blas_may_run_threads", "default_threads",
           "init_params", "network_of", "reference_loss_and_grads"]


def network_of(config: RNNConfig, vocab_size: int) -> Network:
    """The network ``config`` describes over a vocabulary of ``vocab_size`` ids."""
    return CELLS[config.cell].network(config.layers, config.hidden, vocab_size, config.sigma, config.dtype,
                                      heads=config.heads, context=config.context)


def init_params(config: RNNConfig, vocab_size: int, rng: np.random.Generator) -> Params:
    """Initial parameters of ``config``'s network, drawn from ``rng`` (see `Network.init`)."""
    return network_of(config, vocab_size).init(rng)
