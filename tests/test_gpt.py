"""The gpt cell: its fast pass held to the plain reference piece by piece, its gradients to centred differences,
its training (random windows, AdamW, exact resume), scoring, sampling and refusals."""

import json
import math

import numpy as np
import pytest
from commands import run

from textgen.checkpoint import load_checkpoint
from textgen.config import ModelConfig, TrainConfig
from textgen.errors import ConfigError
from textgen.gradients import check_window
from textgen.models import network_of
from textgen.models import gpt as G
from textgen.optim import AdamW
from textgen.scoring import mean_loss_per_char
from textgen.trainer import train, updates_per_epoch
from textgen.vocab import CharVocab

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog, again and again.\n" for i in range(300))


def tiny(tied=True, layers=2, hidden=8, heads=2, context=6, K=7, seed=0, dtype="float64"):
    """A tiny gpt in float64 with parameters moved off their initial values (gains and biases too)."""
    network = G.GPTNetwork(layers, hidden, K, sigma=0.3, dtype=dtype, heads=heads, context=context, tied=tied)
    rng = np.random.default_rng(seed)
    params = network.init(rng)
    params.flat[...] += 0.1 * rng.standard_normal(params.flat.size)
    return network, params, rng


def scratch(*shape):
    return np.zeros(shape)


# ---------------------------------------------------------------------- the pieces, fast against reference

def test_layer_norm_forward_and_backward_match_the_reference():
    rng = np.random.default_rng(1)
    z, g, b, dy = rng.normal(size=(10, 6)), rng.normal(size=6), rng.normal(size=6), rng.normal(size=(10, 6))
    xhat, rstd, out = scratch(10, 6), scratch(10, 1), scratch(10, 6)
    mean_weights = np.full(6, 1 / 6)
    G.layer_norm(z, g, b, xhat, rstd, out, mean_weights, scratch(10, 6))
    expected, cache = G.reference_layer_norm(z, g, b)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    dz, dg, db = scratch(10, 6), scratch(6), scratch(6)
    G.layer_norm_backward(dy, g, xhat, rstd, dg, db, dz, np.ones(10), mean_weights, scratch(10, 6),
                          (scratch(10, 1), scratch(10, 1)))
    for fast, slow in zip((dz, dg, db), G.reference_layer_norm_backward(dy, cache)):
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-10)


def test_layer_norm_reference_backward_matches_centred_differences():
    rng = np.random.default_rng(2)
    z, g, b, dy = rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=5), rng.normal(size=(3, 5))
    dz = G.reference_layer_norm_backward(dy, G.reference_layer_norm(z, g, b)[1])[0]
    numerical = np.zeros_like(z)
    for index in np.ndindex(*z.shape):
        plus, minus = z.copy(), z.copy()
        plus[index] += 1e-6
        minus[index] -= 1e-6
        numerical[index] = ((G.reference_layer_norm(plus, g, b)[0] - G.reference_layer_norm(minus, g, b)[0]) * dy
                            ).sum() / 2e-6
    np.testing.assert_allclose(dz, numerical, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("row_numbers", [1 << 16, 16, 1])  # all 5 rows a block; 2 rows; 1 row
def test_gelu_forward_and_backward_match_the_reference_and_the_exact_gelu_closely(monkeypatch, row_numbers):
    monkeypatch.setattr(G, "ROW_NUMBERS", row_numbers)
    assert len(G.row_spans(5, 8)) == {1 << 16: 1, 16: 3, 1: 5}[row_numbers]
    rng = np.random.default_rng(3)
    f, dout = rng.normal(scale=3, size=(5, 8)), rng.normal(size=(5, 8))
    t, out = scratch(5, 8), scratch(5, 8)
    G.gelu(f, t, out)
    np.testing.assert_allclose(out, G.reference_gelu(f), rtol=0, atol=1e-12)
    exact = 0.5 * f * (1 + np.vectorize(math.erf)(f / math.sqrt(2)))
    assert np.abs(out - exact).max() < 1e-3  # the tanh approximation is close to the erf form
    df = dout.copy()
    G.gelu_backward(df, f, t, scratch(5, 8), scratch(5, 8))
    np.testing.assert_allclose(df, G.reference_gelu_backward(dout, f), rtol=0, atol=1e-10)
    numerical = (G.reference_gelu(f + 1e-6) - G.reference_gelu(f - 1e-6)) / 2e-6 * dout
    np.testing.assert_allclose(df, numerical, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("blocks", [None, (1, 2), (2, 3), (3, 1)])  # (windows together, query rows a block)
def test_batched_causal_attention_matches_the_position_by_position_reference(blocks):
    B, T, H, d = 3, 5, 2, 4
    m = H * d
    rng = np.random.default_rng(4)
    qkv, dy = rng.normal(size=(B * T, 3 * m)), rng.normal(size=(B * T, m))
    scaled = qkv.copy()
    scaled[:, :m] /= math.sqrt(d)  # the fast pass keeps q divided by sqrt(d)
    weights, y = scratch(B, H, T, T), np.ones((B * T, m + 1))
    G.attention(scaled, weights, y[:, :m], G.causal_mask(T, np.float64), scratch(B, H, T, 1), scratch(B, H, T, 3),
                np.ones((T, 1)), blocks)
    dqkv = scratch(B * T, 3 * m)
    G.attention_backward(dy, y[:, :m], scaled, weights, dqkv, scratch(B, H, T, T), scratch(B * T, m), scratch(B, T, H),
                         1 / math.sqrt(d), blocks)
    for b in range(B):
        rows = slice(b * T, (b + 1) * T)
        expected_y, expected_weights = G.reference_attention(qkv[rows], H)
        np.testing.assert_allclose(y[rows, :m], expected_y, rtol=0, atol=1e-12)
        np.testing.assert_allclose(weights[b], expected_weights, rtol=0, atol=1e-12)
        np.testing.assert_allclose(dqkv[rows], G.reference_attention_backward(dy[rows], qkv[rows], expected_weights, H),
                                   rtol=0, atol=1e-10)
    assert np.all(weights[:, :, np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0)  # nothing from the future
    assert np.all(y[:, m] == 1.0)  # the column of ones beside y is left alone


def test_a_row_far_below_its_blocks_top_score_is_made_again_from_its_own_max(monkeypatch):
    # The softmax subtracts the block's largest score; a row whose own scores all lie 200 below it would
    # underflow to 0 / 0, so that block is made again row by row, and still matches the reference
    B, T, H, d = 2, 4, 1, 2
    m = H * d
    qkv = np.zeros((B * T, 3 * m))
    qkv[:, m : 2 * m] = [1.0, 0.0]  # every key the same
    qkv[1, :m] = [200.0, 0.0]  # window 0, query 1: scores 200; query 0 scores 0 and sees nothing else
    qkv[:, 2 * m :] = np.arange(B * T * m).reshape(B * T, m)  # values
    calls = []
    monkeypatch.setattr(G, "row_max", lambda *a, _row_max=G.row_max: (calls.append(1), _row_max(*a)))
    weights, y = scratch(B, H, T, T), np.ones((B * T, m + 1))
    G.attention(qkv, weights, y[:, :m], G.causal_mask(T, np.float64), scratch(B, H, T, 1), scratch(B, H, T, 2),
                np.ones((T, 1)), (1, T))
    assert len(calls) == 1  # window 0 only: window 1's rows all share its top score
    for b in range(B):
        rows = slice(b * T, (b + 1) * T)
        unscaled = qkv[rows].copy()
        unscaled[:, :m] *= math.sqrt(d)  # the reference divides q itself
        expected_y, expected_weights = G.reference_attention(unscaled, H)
        np.testing.assert_allclose(weights[b], expected_weights, rtol=0, atol=1e-12)
        np.testing.assert_allclose(y[rows, :m], expected_y, rtol=0, atol=1e-9)
    assert np.isfinite(weights).all() and weights[0, 0, 0, 0] == 1.0


def test_attention_blocks_keep_windows_within_the_cache_and_queries_in_at_most_four_blocks():
    assert G.attention_blocks(64, 4, 12) == (12, 64)  # nanoGPT's CPU shape: all 12 windows at once, one block
    assert G.attention_blocks(256, 6, 12) == (1, 64)  # 6 × 256 × 256 weights a window: one at a time, 4 blocks
    assert G.attention_blocks(1024, 8, 12) == (1, 256)
    assert G.causal_spans(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert G.causal_spans(256, 64)[-1] == (192, 256)


@pytest.mark.parametrize("width", [1, 2, 5, 8, 13])
def test_row_max_by_halving_is_the_max_of_each_row(width):
    x = np.random.default_rng(width).normal(size=(3, 4, width))
    out = scratch(3, 4, 1)
    G.row_max(x, out, scratch(3, 4, (width + 1) // 2))
    np.testing.assert_array_equal(out[..., 0], x.max(axis=2))


def workspace_after(network, params, inputs, targets, masks=None):
    B = inputs.shape[1]
    work = network.workspace(inputs.shape[0], B, dropout=0.0 if masks is None else 0.5)
    loss = work.loss_and_grads(params, inputs, targets, np.zeros((B, 0)), masks)
    return work, loss


def test_one_block_and_its_mlp_match_the_reference():
    network, params, rng = tiny(layers=1)
    T, B = 5, 2
    inputs = rng.integers(0, 7, (T, B))
    work = network.workspace(T, B)
    work.forward(params, inputs, np.zeros((B, 0)))
    for b in range(B):
        z = params["E"][inputs[:, b]] + params["P"][:T]
        out, (a, _, qkv, y, weights, u, _, f) = G.reference_block(params, 1, z, network.heads)
        rows = slice(b * T, (b + 1) * T)
        np.testing.assert_allclose(work.z[rows], out, rtol=0, atol=1e-10)  # the block's output
        np.testing.assert_allclose(work.blocks[0].gelu[rows, :-1], G.reference_gelu(f), rtol=0, atol=1e-10)  # MLP
        np.testing.assert_allclose(work.blocks[0].u[rows, :-1], u, rtol=0, atol=1e-10)
        d = network.hidden // network.heads
        np.testing.assert_allclose(work.blocks[0].qkv[rows, : network.hidden] * math.sqrt(d), qkv[:, : network.hidden],
                                   rtol=0, atol=1e-10)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("dropout", [False, True])
def test_the_whole_models_loss_and_gradients_match_the_reference(tied, dropout):
    network, params, rng = tiny(tied=tied)
    T, B = 5, 3
    inputs, targets = rng.integers(0, 7, (T, B)), rng.integers(0, 7, (T, B))
    masks = None
    if dropout:
        masks = (rng.random((2 * network.layers + 1, B, T, network.hidden)) >= 0.3) / 0.7
    work, loss = workspace_after(network, params, inputs, targets, masks)
    expected = G.reference_loss_and_grads(network, params, inputs, targets, masks)
    assert abs(loss - expected.loss) < 1e-10
    for name in network.shapes:
        np.testing.assert_allclose(work.grads[name], expected.grads[name], rtol=0, atol=1e-10, err_msg=name)
    assert ("V" in network.shapes) is not tied


def test_a_window_shorter_than_the_context_and_the_positions_it_leaves_unused():
    network, params, rng = tiny(context=8)
    inputs, targets = rng.integers(0, 7, (3, 2)), rng.integers(0, 7, (3, 2))
    work, _ = workspace_after(network, params, inputs, targets)
    expected = G.reference_loss_and_grads(network, params, inputs, targets)
    np.testing.assert_allclose(work.grads.flat, expected.grads.flat, rtol=0, atol=1e-10)
    assert not work.grads["P"][3:].any()


def test_gradient_check_of_every_parameter_of_a_two_layer_gpt():
    network, params, rng = tiny(tied=True)
    window = rng.integers(0, 7, 6)
    errors = check_window(params, window[:-1], window[1:])
    assert set(errors) == set(network.shapes)
    assert max(errors.values()) < 1e-6, errors
    masks = (rng.random((2 * network.layers + 1, 1, 5, network.hidden)) >= 0.3) / 0.7
    errors = check_window(params, window[:-1], window[1:], masks=masks)
    assert max(errors.values()) < 1e-6, errors


def test_the_gradcheck_command_checks_every_parameter_of_a_two_layer_gpt(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT[:400])
    code, out, _ = run(capsys, "gradcheck", "--corpus", corpus, "--cell", "gpt", "--layers", "2", "--hidden", "8",
                       "--heads", "2", "--seq-length", "6", "--max-entries", "20")
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0] in
            network_of(ModelConfig(cell="gpt", layers=2, hidden=8, heads=2), 5).shapes]
    assert len(rows) == len(network_of(ModelConfig(cell="gpt", layers=2, hidden=8, heads=2), 5).shapes)
    assert all(float(row[1]) < 1e-6 for row in rows)


def test_the_key_has_no_bias_because_its_gradient_would_be_zero():
    network, params, rng = tiny()
    assert "bq_1" in network.shapes and "bv_1" in network.shapes and "bk_1" not in network.shapes


# ---------------------------------------------------------------------- AdamW

def test_adamw_decays_only_the_marked_entries_then_steps_as_adam():
    from textgen.optim import Adam

    theta, grad = np.array([1.0, -2.0, 3.0]), np.array([0.5, 0.0, -1.0])
    decayed = np.array([1.0, 0.0, 1.0])
    adamw, adam = AdamW(3, eta=0.1, weight_decay=0.5, decayed=decayed), Adam(3, eta=0.1)
    a, b = theta.copy(), np.where(decayed == 1, theta * (1 - 0.1 * 0.5), theta)  # θ -= eta λ θ where decayed
    adamw.step(a, grad.copy())
    adam.step(b, grad.copy())
    np.testing.assert_array_equal(a, b)
    assert a[1] == theta[1]  # no gradient, no decay: unchanged


def test_the_gpt_decays_its_weight_matrices_and_nothing_else():
    network = G.GPTNetwork(2, 8, 7, heads=2, context=6, tied=True)
    assert set(network.decayed) == {f"{w}_{layer}" for w in ("Wqkv", "Wo", "W1", "W2") for layer in (1, 2)}
    assert set(G.GPTNetwork(2, 8, 7, heads=2, context=6, tied=False).decayed) == set(network.decayed) | {"V"}


# ---------------------------------------------------------------------- training, scoring, sampling

def small_run(config=None, model=None, updates=30, batch=3):
    vocab = CharVocab.from_texts([TEXT])
    ids = vocab.encode(TEXT)
    model = model or ModelConfig(cell="gpt", layers=2, hidden=16, heads=4, context=12)
    config = config or TrainConfig(seq_length=12, batch_size=batch, updates=updates, optimizer="adamw",
                                   sample_every=10**6, log_every=10)
    return train(ids, vocab, config, np.random.default_rng(5), model, progress=False), vocab, ids


def test_training_lowers_the_loss_and_an_epoch_is_the_corpus_length():
    state, _, ids = small_run(updates=150)
    assert updates_per_epoch(ids.size, 12, 3) == (ids.size - 1) // 36
    network = state.params.network
    first = G.GPTNetwork(2, 16, network.vocab_size, heads=4, context=12).init(np.random.default_rng(5))
    assert mean_loss_per_char(state.params, ids[:2000]) < mean_loss_per_char(first, ids[:2000]) - 0.5


def test_sliding_window_scoring_sees_at_least_half_the_context_before_each_character():
    network, params, rng = tiny(context=6)
    ids = rng.integers(0, 7, 41)
    total = network.text_loss(params, ids, np.zeros((1, 0)), chunk=13)
    expected, predicted = 0.0, ids.size - 1
    for j in range(predicted):  # reading ids[j], predicting ids[j + 1]
        if j < 6:
            window = ids[: j + 1]  # the first window: all there is before it
        else:  # later windows end every 3 ids (half the context), or at the text's end
            end = min(predicted, 6 + 3 * math.ceil((j + 1 - 6) / 3))
            window = ids[end - 6 : j + 1]
            assert window.size - 1 >= 3
        p = G.next_probabilities(network, params, window[None, :])[0]
        expected -= math.log(p[ids[j + 1]])
    assert abs(total - expected) < 1e-9


def test_text_loss_does_not_depend_on_how_many_windows_a_pass_reads():
    network, params, rng = tiny(context=6)
    ids = rng.integers(0, 7, 57)
    losses = [network.text_loss(params, ids, np.zeros((1, 0)), chunk) for chunk in (1, 6, 20, 1000)]
    assert max(losses) - min(losses) < 1e-9


def test_sampling_steps_match_the_training_pass_and_roll_past_the_context():
    network, params, rng = tiny(context=4)
    ids = rng.integers(0, 7, 9)
    state = network.sampling_state(np.zeros((1, 0)))
    for t, x in enumerate(ids):
        state, p = network.step(params, state, np.array([x]))
        window = ids[max(0, t - 3) : t + 1]
        work = network.workspace(window.size, 1)
        work.forward(params, window[:, None], np.zeros((1, 0)))
        np.testing.assert_allclose(p[0], work._P[-1], rtol=0, atol=1e-12)
        assert state[0, 0] == min(t + 1, 4) and list(state[0, 5 - window.size :]) == list(window)


def test_a_sample_does_not_depend_on_the_others_drawn_beside_it():
    network, params, rng = tiny(context=5, dtype="float32")
    params = G.GPTNetwork(2, 8, 7, sigma=0.3, dtype="float32", heads=2, context=5).zeros()
    params.flat[...] = rng.normal(scale=0.3, size=params.flat.size)
    states = network.sampling_state(np.zeros((8, 0)))
    x = rng.integers(0, 7, 8)
    for _ in range(3):
        many, p_many = network.step(params, states, x)
        one, p_one = network.step(params, states[2:3], x[2:3])
        np.testing.assert_array_equal(p_many[2], p_one[0])
        states, x = many, rng.integers(0, 7, 8)


def test_generate_from_a_gpt_run_with_a_prime_longer_than_the_context_and_documents(tmp_path, capsys):
    corpus = tmp_path / "tweets.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"the fox {i % 7} jumps", "created_at": "2020-01-01"}) + "\n"
                              for i in range(300)))
    folder = tmp_path / "run"
    code, _, err = run(capsys, "train", "--corpus", corpus, "--cell", "gpt", "--hidden", "16", "--heads", "2",
                       "--context", "8", "--batch-size", "4", "--updates", "60", "--out", folder, "--no-progress",
                       "--seed", "1", "--sample-every", "20", "--sample-length", "30")
    assert code == 0, err
    prime = "the fox 3 jumps the fox 4"  # longer than the context of 8
    code, out, err = run(capsys, "generate", folder, "--prime", prime, "--length", "40", "--seed", "2", "--count", "2")
    assert code == 0, err
    assert out.startswith(prime)
    code, out, err = run(capsys, "generate", folder, "--documents", "3", "--length", "50", "--seed", "2")
    assert code == 0, err
    assert out.strip()
    record = json.loads((folder / "config.json").read_text())
    assert record["train"]["seq_length"] == 8 and record["train"]["optimizer"] == "adamw"
    assert record["model"]["context"] == 8 and record["model"]["heads"] == 2


def test_evaluate_and_the_report_name_the_model_and_its_parameters(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    folder = tmp_path / "run"
    assert run(capsys, "train", "--corpus", corpus, "--cell", "gpt", "--hidden", "16", "--context", "10",
               "--updates", "20", "--out", folder, "--no-progress", "--batch-size", "2")[0] == 0
    code, out, err = run(capsys, "evaluate", folder, "--corpus", corpus)
    assert code == 0, err
    report = (folder / "report.md").read_text()
    count = network_of(ModelConfig(cell="gpt", hidden=16, context=10), CharVocab.from_texts([TEXT]).size).param_count
    assert "gpt" in report and f"{count:,}" in report


def test_init_from_a_gpt_run_continues_its_model_and_its_windows(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    first, second = tmp_path / "first", tmp_path / "second"
    assert run(capsys, "train", "--corpus", corpus, "--cell", "gpt", "--hidden", "16", "--context", "10",
               "--updates", "20", "--out", first, "--no-progress")[0] == 0
    code, _, err = run(capsys, "train", "--corpus", corpus, "--init-from", first, "--updates", "10", "--out", second,
                       "--no-progress")
    assert code == 0, err
    record = json.loads((second / "config.json").read_text())
    assert record["model"]["cell"] == "gpt" and record["train"]["seq_length"] == 10
    assert record["train"]["optimizer"] == "adamw"
    # a window other than the model's context is refused, as it is for a new gpt run, and nothing is written
    code, _, err = run(capsys, "train", "--corpus", corpus, "--init-from", first, "--seq-length", "12", "--updates",
                       "10", "--out", tmp_path / "third", "--no-progress")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "--seq-length 12" in err and "--context 10" in err, err
    assert not (tmp_path / "third").exists()


# ---------------------------------------------------------------------- refusals

@pytest.mark.parametrize("flags,words", [
    (["--hidden", "10", "--heads", "4"], ["--heads 4", "--hidden 10"]),
    (["--context", "5000"], ["--context", "4,096"]),
    (["--context", "4000"], ["--context", "fewer than"]),
    (["--seq-length", "20", "--context", "16"], ["--seq-length 20", "--context 16"]),
])
def test_impossible_sizes_are_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, flags, words):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT[:3000])
    folder = tmp_path / "run"
    code, out, err = run(capsys, "train", "--corpus", corpus, "--cell", "gpt", "--out", folder, "--no-progress",
                         *flags)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert all(word in err for word in words), err
    assert not folder.exists()


@pytest.mark.parametrize("eta,decay", [(10.0, 0.1), (0.001, 1e300), (0.5, 3.0)])
def test_a_weight_decay_that_would_wipe_or_flip_the_weights_is_refused_before_training(tmp_path, capsys, eta,
                                                                                       decay):
    assert eta * decay >= 1  # a step multiplies the weights by 1 - eta × decay: 0 or below
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT[:3000])
    folder = tmp_path / "run"
    code, _, err = run(capsys, "train", "--corpus", corpus, "--cell", "gpt", "--hidden", "8", "--context", "8",
                       "--eta", eta, "--weight-decay", decay, "--updates", "5", "--out", folder, "--no-progress")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "--weight-decay" in err and "--eta" in err and "nan" not in err, err
    assert not folder.exists()
    with pytest.raises(ConfigError, match="weight.decay"):
        TrainConfig(optimizer="adamw", eta=eta, weight_decay=decay)
    TrainConfig(optimizer="adam", eta=eta, weight_decay=decay)  # only AdamW decays the weights
    TrainConfig(optimizer="adamw", eta=0.5, weight_decay=1.9)  # 0.95: a large shrink, but a shrink


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_gpt_too_large_for_memory_is_told_to_shrink_what_sizes_a_gpt(tmp_path, capsys, dtype):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    folder = tmp_path / "run"
    # 4,096 heads of width 1 over windows of 4,096: the attention's scores alone are 4096**3 numbers per layer
    code, _, err = run(capsys, "train", "--corpus", corpus, "--cell", "gpt", "--hidden", "4096", "--heads", "4096",
                       "--context", "4096", "--dtype", dtype, "--out", folder, "--no-progress")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "--context or --heads" in err and "--seq-length" not in err, err  # a gpt refuses --seq-length
    assert ("--dtype float32" in err) == (dtype == "float64"), err
    assert not folder.exists()


def test_heads_that_do_not_divide_the_width_are_refused_by_the_api_too():
    with pytest.raises(ConfigError, match="heads"):
        ModelConfig(cell="gpt", hidden=10, heads=3)
    ModelConfig(cell="lstm", hidden=10, heads=3)  # heads mean nothing to a recurrent cell


@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.parametrize("threads", [2, 3])
def test_windows_split_over_threads_give_the_one_threads_loss_and_gradients(dropout, threads):
    network, params, rng = tiny()
    T, B = 5, 4
    inputs, targets = rng.integers(0, 7, (T, B)), rng.integers(0, 7, (T, B))
    one = network.workspace(T, B, threads=1, dropout=0.3 if dropout else 0.0)
    split = network.workspace(T, B, threads=threads, dropout=0.3 if dropout else 0.0)
    assert isinstance(split, G.GPTParallelWorkspace) and isinstance(one, G.GPTWorkspace)
    masks_one = one.draw_masks(np.random.default_rng(5))
    masks_split = split.draw_masks(np.random.default_rng(5))
    if dropout:  # drawn for the whole batch at once, whatever the split
        np.testing.assert_array_equal(masks_one, masks_split)
    else:
        assert masks_one is None and masks_split is None
    state = np.zeros((B, 0))
    loss_one = one.loss_and_grads(params, inputs, targets, state, masks_one)
    loss_split = split.loss_and_grads(params, inputs, targets, state, masks_split)
    expected = G.reference_loss_and_grads(network, params, inputs, targets, masks_one)
    assert abs(loss_split - expected.loss) < 1e-10 and abs(loss_one - expected.loss) < 1e-10
    for name in network.shapes:
        np.testing.assert_allclose(split.grads[name], expected.grads[name], rtol=0, atol=1e-10, err_msg=name)
    one.forward(params, inputs, state, masks_one)  # (the backward pass turned p into dL/do: read p afresh)
    split.forward(params, inputs, state, masks_split)
    log_p = split.target_log_probs(targets)
    assert log_p.shape == (B, T) and np.all(log_p < 0)
    np.testing.assert_allclose(log_p, one.target_log_probs(targets), rtol=0, atol=1e-12)


def test_a_gpt_run_takes_a_thread_per_256_ids_of_windows_by_default_and_records_it():
    network = G.GPTNetwork(1, 8, 7, context=64)
    from textgen.models.base import default_threads
    assert network.default_threads(12) == default_threads(12, 4)  # 4 windows of 64 ids to a thread
    assert network.default_threads(3) == 1  # 192 ids: one thread
    assert G.GPTNetwork(1, 8, 7, context=512).default_threads(2) == default_threads(2, 1)
