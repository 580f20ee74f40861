import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from textgen.optim import AdaGrad


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
