"""The cells textgen trains (vanilla RNN, LSTM, GRU) behind one `Network`, chosen by `RNNConfig.cell`."""

from __future__ import annotations

import numpy as np

from textgen.config import RNNConfig
from textgen.models import gru, lstm, rnn
from textgen.models.base import LossAndGrads, Network, Params, default_threads, reference_loss_and_grads

CELLS = {cell.name: cell for cell in (rnn.CELL, lstm.CELL, gru.CELL)}

__all__ = ["CELLS", "LossAndGrads", "Network", "Params", "default_threads", "init_params", "network_of",
           "reference_loss_and_grads"]


def network_of(config: RNNConfig, vocab_size: int) -> Network:
    """The network ``config`` describes over a vocabulary of ``vocab_size`` characters."""
    return Network(CELLS[config.cell], config.layers, config.hidden, vocab_size, config.sigma, config.dtype)


def init_params(config: RNNConfig, vocab_size: int, rng: np.random.Generator) -> Params:
    """Initial parameters of ``config``'s network, drawn from ``rng`` (see `Network.init`)."""
    return network_of(config, vocab_size).init(rng)
