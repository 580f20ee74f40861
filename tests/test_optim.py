import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from textgen.config import TrainConfig
from textgen.optim import AdaGrad, Adam, RMSprop, make_optimizer


def test_two_steps_match_the_formula_by_hand():
    theta = np.array([1.0, -2.0])
    optimizer = AdaGrad(2, eta=0.1, eps=1e-8)
    optimizer.step(theta, np.array([3.0, 4.0]))
    # m = g^2 = [9, 16]; theta -= 0.1 * g / sqrt(m + eps) = 0.1 * [1, 1] (up to eps)
    np.testing.assert_allclose(theta, [0.9, -2.1], rtol=1e-9)
    optimizer.step(theta, np.array([0.0, 3.0]))
    # m = [9, 25]; second entry moves by 0.1 * 3 / 5
    np.testing.assert_allclose(optimizer.memory, [9.0, 25.0])
    np.testing.assert_allclose(theta, [0.9, -2.16], rtol=1e-9)


@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(-1e6, 1e6)))
def test_a_zero_gradient_step_changes_nothing(values):
    theta = values.copy()
    optimizer = AdaGrad(values.size)
    optimizer.memory[:] = np.abs(values)
    optimizer.step(theta, np.zeros_like(values))
    np.testing.assert_array_equal(theta, values)
    np.testing.assert_array_equal(optimizer.memory, np.abs(values))


def test_steps_are_bit_identical_to_the_textbook_expression():
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        theta = rng.standard_normal(1000).astype(dtype)
        expected, memory = theta.copy(), np.zeros(1000, dtype=dtype)
        optimizer = AdaGrad(1000, eta=0.1, eps=1e-8, dtype=dtype)
        for _ in range(3):
            g = np.clip(3 * rng.standard_normal(1000), -5, 5).astype(dtype)
            g[rng.random(1000) < 0.3] = 0.0
            optimizer.step(theta, g)
            memory += g * g  # the assignment's update, written as the textbook writes it
            expected -= 0.1 * g / np.sqrt(memory + 1e-8)
        assert theta.dtype == dtype
        np.testing.assert_array_equal(optimizer.memory, memory)
        np.testing.assert_array_equal(theta, expected)


def test_rmsprop_follows_its_formula_step_by_step():
    rng = np.random.default_rng(1)
    theta = rng.standard_normal(20)
    expected, v = theta.copy(), np.zeros(20)
    optimizer = RMSprop(20, eta=0.01, eps=1e-8, decay=0.9)
    for _ in range(4):
        g = rng.standard_normal(20)
        optimizer.step(theta, g)
        v = 0.9 * v + 0.1 * g * g
        expected = expected - 0.01 * g / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(theta, expected, rtol=1e-13)
    np.testing.assert_allclose(optimizer.arrays["rmsprop_mean_square"], v, rtol=1e-13)


def test_adam_follows_the_paper_with_bias_corrections():
    rng = np.random.default_rng(2)
    theta = rng.standard_normal(20)
    expected, m, v = theta.copy(), np.zeros(20), np.zeros(20)
    optimizer = Adam(20, eta=0.002, eps=1e-8, beta1=0.9, beta2=0.999)
    for t in range(1, 6):
        g = rng.standard_normal(20)
        optimizer.step(theta, g)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
        expected = expected - 0.002 * m_hat / (np.sqrt(v_hat) + 1e-8)
    np.testing.assert_allclose(theta, expected, rtol=1e-12)
    assert optimizer.steps == 5
    # the first step of Adam moves every parameter by about eta, whatever the gradient's scale
    fresh, start = Adam(3, eta=0.002), np.zeros(3)
    fresh.step(start, np.array([1e-3, 1.0, -1e3]))
    np.testing.assert_allclose(start, [-0.002, -0.002, 0.002], rtol=1e-4)


def test_a_stored_state_continues_exactly():
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(10) for _ in range(6)]
    for name in ("adagrad", "rmsprop", "adam"):
        config = TrainConfig(optimizer=name)
        straight, theta = make_optimizer(config, 10, "float64"), np.ones(10)
        for g in grads:
            straight.step(theta, g)
        first, resumed_theta = make_optimizer(config, 10, "float64"), np.ones(10)
        for g in grads[:3]:
            first.step(resumed_theta, g)
        second = make_optimizer(config, 10, "float64")
        second.load({key: value.copy() for key, value in first.arrays.items()}, first.steps)
        for g in grads[3:]:
            second.step(resumed_theta, g)
        np.testing.assert_array_equal(theta, resumed_theta)


def test_each_optimizer_gets_its_usual_learning_rate_unless_one_is_given():
    assert TrainConfig().eta == 0.1
    assert TrainConfig(optimizer="adam").eta == 0.002 and TrainConfig(optimizer="rmsprop").eta == 0.002
    assert TrainConfig(optimizer="adam", eta=0.01).eta == 0.01
    assert isinstance(make_optimizer(TrainConfig(optimizer="rmsprop", rmsprop_decay=0.5), 3, "float32"), RMSprop)


def test_a_step_over_many_chunks_is_the_whole_buffer_step_to_the_last_bit(monkeypatch):
    # each optimizer clips and steps CHUNK numbers at a time; with one chunk as large as the buffer, after a
    # clip of the whole buffer, it makes the same passes over all of it: the two must agree exactly, state and
    # parameters, AdamW's runs of decayed entries cut at the chunks' edges included
    import textgen.optim as optim

    rng = np.random.default_rng(4)
    size = 3 * optim.CHUNK + 17
    decayed = (rng.random(size) < 0.5).astype(np.float32)
    for name in ("adagrad", "rmsprop", "adam", "adamw"):
        config = TrainConfig(optimizer=name)
        chunked = make_optimizer(config, size, "float32", decayed)
        with monkeypatch.context() as patch:
            patch.setattr(optim, "CHUNK", 10 * size)
            whole = make_optimizer(config, size, "float32", decayed)
        theta = rng.standard_normal(size).astype(np.float32)
        expected, start = theta.copy(), theta.copy()
        for _ in range(3):
            g = 3 * rng.standard_normal(size).astype(np.float32)
            clipped = np.clip(g, -2.0, 2.0)  # the trainer's clip, which the chunked step makes a chunk at a time
            chunked.step(theta, g, clip=2.0)
            np.testing.assert_array_equal(g, clipped)  # clipped in place, as the whole buffer would be
            with monkeypatch.context() as patch:
                patch.setattr(optim, "CHUNK", 10 * size)
                whole.step(expected, clipped.copy())
        assert whole._step.size == size and chunked._step.size == optim.CHUNK  # really one pass against four
        np.testing.assert_array_equal(theta, expected)
        for key in chunked.arrays:
            np.testing.assert_array_equal(chunked.arrays[key], whole.arrays[key])
        assert (theta != start).mean() > 0.99  # every chunk moved
