import numpy as np
import pytest
from reference import textbook_loss_and_grads

from textgen.errors import ConfigError
from textgen.rnn import (
    PARAM_NAMES,
    Params,
    RNNConfig,
    Workspace,
    init_params,
    loss_and_grads,
    param_shapes,
    step_probabilities,
    window_loss,
)


def random_params(m=7, K=11, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    params = Params.zeros(m, K)
    for name in PARAM_NAMES:
        params[name][...] = scale * rng.standard_normal(params[name].shape)
    return params


def test_param_shapes_follow_the_assignment():
    assert param_shapes(100, 80) == {"b": (100,), "c": (80,), "U": (100, 80), "W": (100, 100), "V": (80, 100)}


def test_params_are_views_of_one_flat_buffer():
    params = Params.zeros(3, 4)
    assert params.flat.size == 3 + 4 + 12 + 9 + 12
    params.flat[:] = np.arange(params.flat.size)
    assert params["b"].tolist() == [0, 1, 2]
    assert params["c"].tolist() == [3, 4, 5, 6]
    assert params["U"][0].tolist() == [7, 8, 9, 10]


def test_init_draws_U_W_V_with_sigma_and_zero_biases():
    rng = np.random.default_rng(3)
    params = init_params(RNNConfig(hidden=100, sigma=0.01), 80, rng)
    expected = np.random.default_rng(3)
    for name, shape in (("U", (100, 80)), ("W", (100, 100)), ("V", (80, 100))):
        np.testing.assert_array_equal(params[name], 0.01 * expected.standard_normal(shape))
    assert not params["b"].any() and not params["c"].any()
    assert params["W"].std() == pytest.approx(0.01, rel=0.05)


def test_loss_and_gradients_match_the_textbook_loop():
    params = random_params()
    rng = np.random.default_rng(1)
    inputs, targets = rng.integers(0, 11, 25), rng.integers(0, 11, 25)
    h_prev = 0.5 * rng.standard_normal(7)
    result = loss_and_grads(params, inputs, targets, h_prev)
    loss, grads, h_last = textbook_loss_and_grads(**params.arrays, inputs=inputs, targets=targets, h_prev=h_prev)
    assert result.loss == pytest.approx(loss, rel=1e-12)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(result.grads[name], grads[name], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(result.h_last, h_last, rtol=1e-12)


def test_loss_of_uniform_predictions_is_n_log_K():
    params = Params.zeros(5, 8)  # all zero: every p_t is uniform over K = 8
    assert window_loss(params, [1, 2, 3], [2, 3, 4], np.zeros(5)) == pytest.approx(3 * np.log(8))


def test_batched_window_averages_the_streams():
    params = random_params(seed=2)
    rng = np.random.default_rng(5)
    inputs, targets = rng.integers(0, 11, (25, 3)), rng.integers(0, 11, (25, 3))
    h_prev = 0.3 * rng.standard_normal((3, 7))
    work = Workspace(7, 11, 25, batch=3)
    loss = work.loss_and_grads(params, inputs, targets, h_prev)
    singles = [
        textbook_loss_and_grads(**params.arrays, inputs=inputs[:, j], targets=targets[:, j], h_prev=h_prev[j])
        for j in range(3)
    ]
    assert loss == pytest.approx(np.mean([s[0] for s in singles]), rel=1e-12)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(work.grads[name], np.mean([s[1][name] for s in singles], axis=0), rtol=1e-9, atol=1e-13)
    for j in range(3):
        np.testing.assert_allclose(work.H[-1, j], singles[j][2], rtol=1e-12)


def test_float32_gives_float32_results_close_to_float64():
    params64 = random_params(seed=4)
    params32 = Params(params64.flat.astype(np.float32), 7, 11)
    inputs, targets = [1, 2, 3, 4], [2, 3, 4, 5]
    r64 = loss_and_grads(params64, inputs, targets, np.zeros(7))
    r32 = loss_and_grads(params32, inputs, targets, np.zeros(7, dtype=np.float32))
    assert r32.grads.flat.dtype == np.float32
    assert r32.loss == pytest.approx(r64.loss, rel=1e-5)
    np.testing.assert_allclose(r32.grads.flat, r64.grads.flat, atol=1e-5)


def test_step_probabilities_is_one_textbook_step():
    params = random_params(seed=6)
    h = np.full(7, 0.1)
    h_next, p = step_probabilities(params, h, 3)
    a = params["W"] @ h + params["U"][:, 3] + params["b"]
    o = params["V"] @ np.tanh(a) + params["c"]
    np.testing.assert_allclose(h_next, np.tanh(a))
    np.testing.assert_allclose(p, np.exp(o) / np.exp(o).sum())


@pytest.mark.parametrize("field, value", [("hidden", 0), ("sigma", -1.0), ("dtype", "float16")])
def test_bad_model_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        RNNConfig(**{field: value})
