import numpy as np

from textgen.config import RNNConfig
from textgen.gradients import check_gradients, check_window, relative_error
from textgen.models import init_params
from textgen.models.rnn import PARAM_NAMES, loss_and_grads, window_loss


def tiny_model(seed=0, sigma=0.01):
    rng = np.random.default_rng(seed)
    params = init_params(RNNConfig(hidden=6, sigma=sigma), 9, rng)
    ids = rng.integers(0, 9, 26)
    return params, ids[:-1], ids[1:], rng


def test_every_analytic_gradient_agrees_with_the_numerical_one():
    for sigma in (0.01, 0.3):
        params, inputs, targets, _ = tiny_model(sigma=sigma)
        errors = check_window(params, inputs, targets, h_prev=np.full(6, 0.2))
        assert set(errors) == set(PARAM_NAMES)
        assert all(error < 1e-6 for error in errors.values()), errors


def test_a_wrong_gradient_is_caught():
    params, inputs, targets, _ = tiny_model(sigma=0.3)
    grads = loss_and_grads(params, inputs, targets, np.zeros(6)).grads.copy()
    grads["W"][2, 3] *= 1.01
    errors = check_gradients(params, lambda p: window_loss(p, inputs, targets, np.zeros(6)), grads)
    assert errors["W"] > 1e-3
    assert errors["b"] < 1e-6


def test_sampling_entries_checks_that_many():
    params, inputs, targets, rng = tiny_model()
    calls = []

    def counting_loss(probe):
        calls.append(1)
        return window_loss(probe, inputs, targets, np.zeros(6))

    grads = loss_and_grads(params, inputs, targets, np.zeros(6)).grads
    check_gradients(params, counting_loss, grads, max_entries=4, rng=rng)
    # b (6) and c (9), U (54), W (36), V (54) are each cut to 4 entries, two evaluations each
    assert len(calls) == 2 * 4 * 5


def test_relative_error_by_hand():
    np.testing.assert_allclose(relative_error(np.array([1.0, 0.0]), np.array([3.0, 0.0])), [0.5, 0.0])


def test_the_readmes_gradient_checks_pass_as_shown(capsys):
    import json
    import re
    import shlex
    from pathlib import Path

    from textgen.cli import main

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### `textgen gradcheck`", 1)[1].split("###", 1)[0]
    examples = [shlex.split(line)[1:] for line in re.findall(r"^textgen gradcheck .*$", section, flags=re.MULTILINE)]
    runnable = [argv for argv in examples if "--corpus" not in argv]  # (a book the tests do not have)
    assert len(runnable) >= 2
    for argv in runnable:
        code = main([*argv, *([] if "--json" in argv else ["--json"]), "--max-entries", "40"])
        out, err = capsys.readouterr()
        errors = json.loads(out)
        assert code == 0 and err == "" and max(errors.values()) < 1e-6, (argv, errors, err)
