import math

import numpy as np
import pytest
from reference import textbook_loss_and_grads

from textgen.config import RNNConfig
from textgen.scoring import bits_per_char, mean_loss_per_char
from textgen.models import init_params


def test_mean_loss_per_char_carries_the_hidden_state_across_chunks():
    rng = np.random.default_rng(0)
    params = init_params(RNNConfig(hidden=6, sigma=0.3), 7, rng)
    ids = rng.integers(0, 7, 251)
    # one textbook pass over the whole stream: 250 predictions from h = 0
    loss, _, _ = textbook_loss_and_grads(**params.arrays, inputs=ids[:-1], targets=ids[1:], h_prev=np.zeros(6))
    for chunk in (1, 7, 100, 1000):
        assert mean_loss_per_char(params, ids, chunk=chunk) == pytest.approx(loss / 250, rel=1e-12)


def test_bits_and_degenerate_streams():
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    params = init_params(RNNConfig(hidden=3), 4, np.random.default_rng(0))
    assert math.isnan(mean_loss_per_char(params, np.array([1])))


def test_evaluation_can_start_from_a_given_hidden_state():
    rng = np.random.default_rng(1)
    params = init_params(RNNConfig(hidden=6, sigma=0.3), 7, rng)
    ids, h0 = rng.integers(0, 7, 60), 0.5 * rng.standard_normal(6)
    loss, _, _ = textbook_loss_and_grads(**params.arrays, inputs=ids[:-1], targets=ids[1:], h_prev=h0)
    assert mean_loss_per_char(params, ids, chunk=9, h0=h0) == pytest.approx(loss / 59, rel=1e-12)
