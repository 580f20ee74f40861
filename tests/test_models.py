"""Every cell at every depth: the fast window pass against the readable reference, gradient checks, sampling
steps against the window pass, threads, dropout masks and initialisation."""

import numpy as np
import pytest

from textgen.config import RNNConfig
from textgen.errors import ConfigError
from textgen.gradients import check_window
from textgen.models import CELLS, Params, network_of, reference_loss_and_grads
from textgen.models.base import RecurrentCell
from textgen.models.base import ParallelWorkspace, StackWorkspace

M, K, N = 6, 9, 7  # hidden units, vocabulary, window


def random_model(cell, layers, seed=0, scale=0.4, dtype="float64"):
    network = network_of(RNNConfig(hidden=M, cell=cell, layers=layers, dtype=dtype), K)
    rng = np.random.default_rng(seed)
    params = Params(scale * rng.standard_normal(network.param_count), network)  # biases too, so every path is used
    return network, Params(params.flat.astype(dtype), network)


def window(B, seed=1, state_size=None, scale=0.5):
    rng = np.random.default_rng(seed)
    inputs, targets = rng.integers(0, K, (N, B)), rng.integers(0, K, (N, B))
    state = scale * rng.standard_normal((B, state_size))
    return inputs, targets, state


def masks_for(network, B, p=0.4, seed=2):
    keep = np.random.default_rng(seed).random((network.layers, N, B, network.hidden)) >= p
    return keep / (1 - p)


# the recurrent cells, which share the stack's reference and workspaces (the gpt cell has its own: tests/test_gpt.py)
RECURRENT = [name for name, cell in CELLS.items() if isinstance(cell, RecurrentCell)]
CASES = [(cell, layers) for cell in RECURRENT for layers in (1, 2)]


@pytest.mark.parametrize("cell,layers", CASES)
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("dropout", [False, True])
def test_the_fast_pass_equals_the_reference_in_float64(cell, layers, B, dropout):
    network, params = random_model(cell, layers)
    inputs, targets, state = window(B, state_size=network.state_size)
    masks = masks_for(network, B) if dropout else None
    expected = reference_loss_and_grads(network, params, inputs, targets, state, masks)
    workspaces = [StackWorkspace(network, N, B, "float64", dropout=0.5 if dropout else 0.0)]
    if not dropout:
        workspaces.append(network.single_workspace(N, B, "float64"))  # the assignment's own pass for rnn × 1
    for work in workspaces:
        for _ in range(2):  # a reused workspace gives the same again
            loss = work.loss_and_grads(params, inputs, targets, state, masks)
            assert loss == pytest.approx(expected.loss, rel=1e-12)
            for name in network.shapes:
                np.testing.assert_allclose(work.grads[name], expected.grads[name], rtol=1e-10, atol=1e-13,
                                           err_msg=name)
            np.testing.assert_allclose(work.last_state, expected.last_state, rtol=1e-12, atol=1e-15)


def test_the_assignment_network_keeps_its_layout_and_a_stack_names_each_layer():
    rnn = network_of(RNNConfig(hidden=100), 80)
    assert list(rnn.shapes) == ["b", "c", "U", "W", "V"] and rnn.state_size == 100
    lstm = network_of(RNNConfig(hidden=5, cell="lstm", layers=2), 7)
    assert lstm.shapes == {"c": (7,), "V": (7, 5), "U_1": (20, 7), "W_1": (20, 5), "b_1": (20,),
                           "U_2": (20, 5), "W_2": (20, 5), "b_2": (20,)}
    assert lstm.state_size == 2 * 2 * 5  # [h | c] per layer
    gru = network_of(RNNConfig(hidden=5, cell="gru"), 7)
    assert gru.shapes["U"] == (15, 7) and gru.shapes["W"] == (15, 5) and gru.state_size == 5
    assert lstm.param_count == sum(int(np.prod(s)) for s in lstm.shapes.values())


@pytest.mark.parametrize("cell,layers", CASES)
def test_every_parameter_passes_the_gradient_check(cell, layers):
    network, params = random_model(cell, layers, seed=3, scale=0.5)
    inputs, targets, state = window(1, seed=4, state_size=network.state_size)
    errors = check_window(params, inputs[:, 0], targets[:, 0], state[0])
    assert set(errors) == set(network.shapes)
    assert max(errors.values()) < 1e-6, errors
    with_dropout = check_window(params, inputs[:, 0], targets[:, 0], state[0], masks=masks_for(network, 1))
    assert max(with_dropout.values()) < 1e-6, with_dropout


def test_a_wrong_gradient_fails_the_check():
    network, params = random_model("lstm", 2, seed=3)
    inputs, targets, _ = window(1, state_size=network.state_size)
    params_off = params.copy()
    errors = check_window(params_off, inputs[:, 0], targets[:, 0])
    assert max(errors.values()) < 1e-6
    from textgen.gradients import check_gradients

    work = network.single_workspace(N, 1, "float64")
    work.loss_and_grads(params, inputs, targets, np.zeros((1, network.state_size)))
    wrong = work.grads.copy()
    wrong["W_2"][0, 0] *= 1.01

    def loss_fn(probe):
        probe_work = network.single_workspace(N, 1, np.longdouble)
        probe_work.forward(probe, inputs, np.zeros((1, network.state_size), dtype=np.longdouble))
        return probe_work.loss(targets)

    assert check_gradients(params, loss_fn, wrong)["W_2"] > 1e-3


@pytest.mark.parametrize("cell,layers", CASES)
def test_sampling_steps_retrace_the_window_pass(cell, layers):
    network, params = random_model(cell, layers, seed=5)
    inputs, targets, state = window(2, seed=6, state_size=network.state_size)
    work = network.single_workspace(N, 2, "float64")
    work.forward(params, inputs, state)
    h = state.copy()
    for t in range(N):
        h, p = network.step(params, h, inputs[t])
    np.testing.assert_allclose(h, work.last_state, rtol=1e-12, atol=1e-15)
    expected = reference_loss_and_grads(network, params, inputs, targets, state)
    assert -np.log(p[[0, 1], targets[-1]]).sum() / 2 <= expected.loss  # the last step's loss is part of it
    single, p_single = network.step(params, state[0], inputs[0, 0])
    both, p_both = network.step(params, state, inputs[0])
    np.testing.assert_allclose(single, both[0], rtol=1e-14)
    np.testing.assert_allclose(p_single, p_both[0], rtol=1e-14)
    np.testing.assert_allclose(p_both.sum(axis=1), 1.0)


@pytest.mark.parametrize("cell", RECURRENT)
def test_streams_split_over_threads_give_the_same_numbers_with_dropout(cell):
    network, params = random_model(cell, 2, seed=7)
    B = 6
    inputs, targets, state = window(B, seed=8, state_size=network.state_size)
    single = StackWorkspace(network, N, B, "float64", dropout=0.3)
    split = ParallelWorkspace(network, N, B, "float64", threads=2, dropout=0.3)
    masks = single.draw_masks(np.random.default_rng(0))
    masks_split = split.draw_masks(np.random.default_rng(0))
    np.testing.assert_array_equal(masks, masks_split)
    a = single.loss_and_grads(params, inputs, targets, state, masks)
    b = split.loss_and_grads(params, inputs, targets, state, masks_split)
    assert a == pytest.approx(b, rel=1e-12)
    np.testing.assert_allclose(single.grads.flat, split.grads.flat, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(single.last_state, split.last_state, rtol=1e-12)


def test_dropout_masks_are_inverted_and_drawn_from_the_given_generator():
    network = network_of(RNNConfig(hidden=50, cell="gru", layers=2), 10)
    work = network.workspace(25, 4, dropout=0.25)
    masks = work.draw_masks(np.random.default_rng(1)).copy()
    assert masks.shape == (2, 25, 4, 50)
    assert set(np.unique(masks)) == {0.0, 1 / 0.75}
    assert abs((masks == 0).mean() - 0.25) < 0.03
    np.testing.assert_array_equal(work.draw_masks(np.random.default_rng(1)), masks)
    rng = np.random.default_rng(1)
    before = rng.bit_generator.state
    assert network.workspace(25, 4).draw_masks(rng) is None and rng.bit_generator.state == before


def test_initialisation_draws_each_layer_in_order_and_opens_the_lstm_forget_gate():
    config = RNNConfig(hidden=4, cell="lstm", layers=2, sigma=0.1)
    params = network_of(config, 6).init(np.random.default_rng(3))
    expected = np.random.default_rng(3)
    for name in ("U_1", "W_1", "U_2", "W_2", "V"):
        np.testing.assert_array_equal(params[name], 0.1 * expected.standard_normal(params[name].shape))
    for layer in (1, 2):
        b = params[f"b_{layer}"]
        assert b[4:8].tolist() == [1.0] * 4 and not b[:4].any() and not b[8:].any()
    gru = network_of(RNNConfig(hidden=4, cell="gru"), 6).init(np.random.default_rng(3))
    assert not gru["b"].any() and not gru["c"].any()


@pytest.mark.parametrize("cell", RECURRENT)
def test_float32_gives_float32_results_close_to_float64(cell):
    network, params = random_model(cell, 2, seed=9)
    _, params32 = random_model(cell, 2, seed=9, dtype="float32")
    inputs, targets, state = window(3, seed=10, state_size=network.state_size)
    work64 = network.single_workspace(N, 3, "float64")
    work32 = params32.network.single_workspace(N, 3, "float32")
    loss64 = work64.loss_and_grads(params, inputs, targets, state)
    loss32 = work32.loss_and_grads(params32, inputs, targets, state.astype(np.float32))
    assert work32.grads.flat.dtype == np.float32 and work32.last_state.dtype == np.float32
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(work32.grads.flat, work64.grads.flat, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("field,value", [("cell", "transformer"), ("layers", 0), ("layers", 65), ("layers", 1.5)])
def test_a_bad_cell_or_depth_names_the_flag(field, value):
    with pytest.raises(ConfigError, match=f"--{field}"):
        RNNConfig(**{field: value})


@pytest.mark.parametrize("threads", [1, 2])
def test_dropout_masks_in_float32_are_float32_and_match_their_own_draw(threads):
    network = network_of(RNNConfig(hidden=8, cell="lstm", layers=2, dtype="float32"), 10)
    work = network.workspace(5, 4, threads=threads, dropout=0.3)
    masks = work.draw_masks(np.random.default_rng(4))
    expected = (np.random.default_rng(4).random(masks.shape, dtype=np.float32) >= 0.3) / np.float32(0.7)
    assert masks.dtype == np.float32
    np.testing.assert_array_equal(masks, expected.astype(np.float32))


def test_memory_estimate_counts_dropout_and_threads():
    network = network_of(RNNConfig(hidden=128, cell="lstm", layers=2, dtype="float32"), 65)
    plain = network.training_bytes(50, 64)
    assert network.training_bytes(50, 64, dropout=0.3) > plain
    import tracemalloc

    tracemalloc.start()
    work = network.workspace(50, 64, threads=2, dropout=0.3)
    params, copies = network.zeros(), [network.zeros() for _ in range(6)]
    allocated = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert work is not None and params is not None and copies
    assert allocated <= network.training_bytes(50, 64, dropout=0.3)


def test_every_cell_the_settings_accept_is_registered_and_keeps_the_contract():
    from textgen.config import CELL_NAMES
    from textgen.models import Cell, Network

    assert list(CELLS) == list(CELL_NAMES)
    for name, cell in CELLS.items():
        assert isinstance(cell, Cell) and cell.name == name
        for layers in (1, 2):
            network = cell.network(layers, 4, 5)
            assert isinstance(network, Network) and network.describe().startswith(name)
            assert network.carries_state == (name in RECURRENT) and (network.state_size > 0) == network.carries_state
            state = np.zeros((3, network.state_size))
            assert network.sampling_state(state).shape[0] == 3


def test_only_the_models_package_imports_a_cell_module():
    import ast
    from pathlib import Path

    import textgen

    root = Path(textgen.__file__).parent
    for path in root.rglob("*.py"):
        if path.parent.name == "models":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("textgen.models."), f"{path.relative_to(root)} imports {node.module}"


@pytest.mark.parametrize("cell,threads", [("lstm", 4), ("gpt", 4)])
def test_memory_estimate_counts_each_threads_own_gradients(cell, threads):
    # a workspace split over T threads keeps T sets of gradients: the estimate grows with them and still
    # covers what the split workspace allocates (measured), with the parameters and their six copies
    settings = dict(hidden=64, cell=cell, layers=2, dtype="float32")
    n, B = 16, 8
    if cell == "gpt":  # nanoGPT's CPU shape (at a few thousand numbers the estimate's per-row terms fall short)
        settings.update(hidden=128, heads=4, context=64)
        n, B = 64, 12
    network = network_of(RNNConfig(**settings), 65)
    one, split = network.training_bytes(n, B, threads=1), network.training_bytes(n, B, threads=threads)
    assert split - one >= (threads - 1) * network.param_count * 4
    import tracemalloc

    tracemalloc.start()
    work = network.workspace(n, B, threads=threads)
    params, copies = network.zeros(), [network.zeros() for _ in range(6)]
    allocated = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert work.threads == threads and params is not None and copies
    assert allocated <= split
