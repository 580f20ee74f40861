import numpy as np
import pytest
from reference import textbook_loss_and_grads

from textgen.config import RNNConfig
from textgen.errors import ConfigError
from textgen.models import Params, default_threads, init_params
from textgen.models.rnn import (
    PARAM_NAMES,
    Workspace,
    assignment_network,
    loss_and_grads,
    step_probabilities,
    window_loss,
)


def zero_params(m, K, dtype="float64"):
    return assignment_network(m, K).zeros(dtype)


def make_workspace(m, K, n, batch=1, dtype="float64", threads=None):
    return assignment_network(m, K, dtype).workspace(n, batch, dtype, threads=threads)


def random_params(m=7, K=11, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    params = zero_params(m, K)
    for name in PARAM_NAMES:
        params[name][...] = scale * rng.standard_normal(params[name].shape)
    return params


def test_param_shapes_follow_the_assignment():
    assert assignment_network(100, 80).shapes == {"b": (100,), "c": (80,), "U": (100, 80), "W": (100, 100), "V": (80, 100)}


def test_params_are_views_of_one_flat_buffer():
    params = zero_params(3, 4)
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
    np.testing.assert_allclose(result.last_state, h_last, rtol=1e-12)


def test_loss_of_uniform_predictions_is_n_log_K():
    params = zero_params(5, 8)  # all zero: every p_t is uniform over K = 8
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
        np.testing.assert_allclose(work.last_state[j], singles[j][2], rtol=1e-12)


def test_float32_gives_float32_results_close_to_float64():
    params64 = random_params(seed=4)
    params32 = Params(params64.flat.astype(np.float32), params64.network)
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


def textbook_means(params, inputs, targets, h_prev):
    """Loss, gradients and last states of each stream by the textbook loop, averaged like a batched window."""
    singles = [
        textbook_loss_and_grads(**params.arrays, inputs=inputs[:, j], targets=targets[:, j], h_prev=h_prev[j])
        for j in range(inputs.shape[1])
    ]
    grads = {name: np.mean([s[1][name] for s in singles], axis=0) for name in PARAM_NAMES}
    return np.mean([s[0] for s in singles]), grads, np.array([s[2] for s in singles])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_streams_split_over_threads_give_the_textbook_mean(threads):
    params = random_params(seed=8)
    rng = np.random.default_rng(9)
    work = make_workspace(7, 11, 6, batch=40, threads=threads)
    assert work.threads == threads
    h_prev = 0.3 * rng.standard_normal((40, 7))
    for _ in range(2):  # the second window reuses every buffer
        inputs, targets = rng.integers(0, 11, (6, 40)), rng.integers(0, 11, (6, 40))
        loss = work.loss_and_grads(params, inputs, targets, h_prev)
        expected_loss, expected_grads, expected_h = textbook_means(params, inputs, targets, h_prev)
        assert loss == pytest.approx(expected_loss, rel=1e-12)
        for name in PARAM_NAMES:
            np.testing.assert_allclose(work.grads[name], expected_grads[name], rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(work.last_state, expected_h, rtol=1e-12)
        h_prev = work.last_state.copy()


def test_forward_loss_and_backward_called_one_by_one_agree_with_loss_and_grads():
    params = random_params(seed=10)
    rng = np.random.default_rng(11)
    inputs, targets = rng.integers(0, 11, (5, 32)), rng.integers(0, 11, (5, 32))
    h_prev = 0.3 * rng.standard_normal((32, 7))
    whole = make_workspace(7, 11, 5, batch=32, threads=2)
    loss = whole.loss_and_grads(params, inputs, targets, h_prev)
    steps = make_workspace(7, 11, 5, batch=32, threads=2)
    steps.forward(params, inputs, h_prev)
    assert steps.loss(targets) == pytest.approx(loss, rel=1e-14)
    np.testing.assert_array_equal(steps.backward(params, inputs, targets).flat, whole.grads.flat)


def test_a_reused_workspace_matches_the_textbook_on_every_window_of_uint8_ids():
    params = random_params(seed=12)
    ids = np.random.default_rng(13).integers(0, 11, 200).astype(np.uint8)  # how CharVocab encodes
    work = Workspace(7, 11, 25)
    h = np.zeros((1, 7))
    for start in range(0, 150, 25):
        inputs, targets = ids[start : start + 25, None], ids[start + 1 : start + 26, None]
        loss = work.loss_and_grads(params, inputs, targets, h)
        expected, grads, h_last = textbook_loss_and_grads(
            **params.arrays, inputs=inputs[:, 0], targets=targets[:, 0], h_prev=h[0]
        )
        assert loss == pytest.approx(expected, rel=1e-12)
        for name in PARAM_NAMES:
            np.testing.assert_allclose(work.grads[name], grads[name], rtol=1e-10, atol=1e-13)
        h = work.last_state.copy()
        np.testing.assert_allclose(h[0], h_last, rtol=1e-12)


@pytest.mark.parametrize("scale", [0.3, 30.0])  # logits spanning a few nats, and far more than float32's exp range
def test_softmax_of_a_big_block_is_exact_and_safe_whatever_the_logits(scale):
    params = random_params(seed=14)
    params["V"][...] *= scale / 0.3
    rng = np.random.default_rng(15)
    inputs, targets = rng.integers(0, 11, (25, 16)), rng.integers(0, 11, (25, 16))  # 400 rows in one block
    h_prev = 0.3 * rng.standard_normal((16, 7))
    expected_loss, expected_grads, _ = textbook_means(params, inputs, targets, h_prev)
    work = make_workspace(7, 11, 25, batch=16, threads=1)
    assert work.loss_and_grads(params, inputs, targets, h_prev) == pytest.approx(expected_loss, rel=1e-12)
    for name in PARAM_NAMES:
        np.testing.assert_allclose(work.grads[name], expected_grads[name], rtol=1e-9, atol=1e-12)
    # float32 overflows exp beyond ~88: with the most likely characters as targets the loss stays small and
    # finite only if every row was shifted safely
    likely = np.empty_like(targets)
    h = h_prev
    for t in range(25):
        h, p = step_probabilities(params, h, inputs[t])
        likely[t] = p.argmax(axis=1)
    expected_likely = work.loss_and_grads(params, inputs, likely, h_prev)
    work32 = make_workspace(7, 11, 25, batch=16, dtype="float32", threads=1)
    params32 = Params(params.flat.astype(np.float32), params.network)
    loss32 = work32.loss_and_grads(params32, inputs, likely, h_prev.astype(np.float32))
    assert np.isfinite(work32.grads.flat).all()
    assert loss32 == pytest.approx(expected_likely, rel=1e-3, abs=1e-3)


def test_default_threads_never_split_a_single_stream():
    assert default_threads(1) == 1
    assert 1 <= default_threads(64) <= 64 // 32
