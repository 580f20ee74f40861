"""Every command on gated and stacked models: train, generate with every control, evaluate (against the
reference pass), gradcheck, report, --init-from."""

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from commands import run

from textgen.checkpoint import load_checkpoint
from textgen.cli import main
from textgen.models import reference_loss_and_grads

SAMPLE_BOOK = Path(__file__).resolve().parent.parent / "corpora" / "sample_book.txt"
QUICK = ["--updates", "90", "--sample-every", "40", "--log-every", "10", "--checkpoint-every", "30",
         "--hidden", "12", "--passage-length", "60", "--no-progress", "--seed", "4"]


@pytest.fixture(scope="module", params=[("lstm", "2", "adam", "0.2"), ("gru", "2", "rmsprop", "0")])
def gated_run(request, tmp_path_factory):
    cell, layers, optimizer, dropout = request.param
    folder = tmp_path_factory.mktemp("runs") / cell
    assert main(["train", "--corpus", str(SAMPLE_BOOK), "--out", str(folder), "--cell", cell, "--layers", layers,
                 "--optimizer", optimizer, "--dropout", dropout, "--batch-size", "2", *QUICK]) == 0
    return folder, cell


def test_a_gated_run_records_its_model_and_trains_down(gated_run):
    folder, cell = gated_run
    config = orjson.loads((folder / "config.json").read_bytes())
    assert config["model"]["cell"] == cell and config["model"]["layers"] == 2
    assert config["train"]["optimizer"] in ("adam", "rmsprop") and config["train"]["eta"] == 0.002
    rows = [orjson.loads(line) for line in (folder / "metrics.jsonl").read_bytes().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]
    last = load_checkpoint(folder / "last.npz")
    assert last.arrays["h"].shape == (2, last.params.network.state_size)
    assert "U_2" in last.params.arrays and last.meta["optimizer_steps"] == 90
    report = (folder / "report.md").read_text()
    assert f"{cell}, 2 layers of m = 12" in report and "parameters" in report


def test_generate_uses_every_sampling_control_on_a_gated_model(gated_run, capsys):
    folder, _ = gated_run
    for extra in (["--temperature", "0.5"], ["--top-k", "3"], ["--top-p", "0.8"], ["--greedy"],
                  ["--prime", "The ", "--count", "3"]):
        code, out, err = run(capsys, "generate", "--run", folder, "--length", "40", "--seed", "2", *extra)
        assert code == 0, err
        assert len(out) > 40  # a model this young may well write only spaces when it plays safe
    code, first, _ = run(capsys, "generate", "--run", folder, "--length", "40", "--greedy")
    code, second, _ = run(capsys, "generate", "--run", folder, "--length", "40", "--greedy")
    assert first == second


def test_evaluate_a_gated_model_equals_the_reference_pass(gated_run, capsys):
    folder, _ = gated_run
    text = SAMPLE_BOOK.read_text()[:700]
    corpus = folder.parent / "piece.txt"
    corpus.write_text(text)
    code, out, err = run(capsys, "evaluate", "--run", folder, "--corpus", corpus, "--json")
    assert code == 0, err
    checkpoint = load_checkpoint(folder / "best.npz")
    ids = checkpoint.vocab.encode(text).astype(int)
    start, _ = checkpoint.start_state()
    expected = reference_loss_and_grads(checkpoint.params.network, checkpoint.params, ids[:-1, None], ids[1:, None],
                                        start[None, :])
    assert json.loads(out)["loss_per_char"] == pytest.approx(expected.loss / (ids.size - 1), rel=1e-9)


def test_init_from_continues_the_same_model_and_refuses_another_shape(gated_run, tmp_path, capsys):
    folder, cell = gated_run
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--init-from", folder, "--out", tmp_path / "next",
                       "--optimizer", "adam", *QUICK[:-2])
    assert code == 0, err
    start = load_checkpoint(tmp_path / "next" / "last.npz")
    assert start.model.cell == cell and start.model.layers == 2
    other = "gru" if cell == "lstm" else "lstm"
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--init-from", folder, "--out", tmp_path / "bad",
                       "--cell", other, *QUICK)
    assert code == 1 and "--cell" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradcheck_of_a_two_layer_model_names_each_layer(cell, capsys):
    code, out, err = run(capsys, "gradcheck", "--corpus", SAMPLE_BOOK, "--cell", cell, "--layers", "2",
                         "--hidden", "4", "--seq-length", "8", "--max-entries", "30", "--sigma", "0.3", "--json")
    assert code == 0, err
    errors = json.loads(out)
    assert set(errors) == {"c", "V", "U_1", "W_1", "b_1", "U_2", "W_2", "b_2"}
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("argv,flag", [
    (["--cell", "transformer"], "--cell"),
    (["--layers", "0"], "--layers"),
    (["--dropout", "1"], "--dropout"),
    (["--optimizer", "sgd"], "--optimizer"),
    (["--beta2", "1.5"], "--beta2"),
])
def test_bad_model_flags_are_one_line_and_nothing_is_written(argv, flag, tmp_path, capsys):
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", tmp_path / "run", *argv, *QUICK)
    assert code == 1 and flag in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_resume_refuses_a_new_cell_or_optimizer(gated_run, capsys):
    folder, _ = gated_run
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for argv in (["--cell", "rnn"], ["--layers", "3"], ["--optimizer", "adagrad"], ["--dropout", "0.5"]):
        code, _, err = run(capsys, "train", "--resume", folder, "--updates", "120", "--no-progress", *argv)
        assert code == 1 and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert np.isfinite(load_checkpoint(folder / "last.npz").params.flat).all()


def test_gradcheck_says_when_gradients_are_too_small_to_check(capsys):
    code, out, err = run(capsys, "gradcheck", "--corpus", SAMPLE_BOOK, "--cell", "lstm", "--layers", "2",
                         "--hidden", "10", "--max-entries", "20", "--json", "--sigma", "0.01")
    assert code == 0 and set(json.loads(out)) >= {"W_2"}
    assert err.count("\n") == 1 and "W_2" in err and "--sigma" in err
    code, _, err = run(capsys, "gradcheck", "--corpus", SAMPLE_BOOK, "--cell", "lstm", "--layers", "2",
                       "--hidden", "10", "--max-entries", "20")
    assert code == 0 and err == ""  # at the gated cells' own sigma (0.08) every gradient is resolved
    code, _, err = run(capsys, "gradcheck", "--corpus", SAMPLE_BOOK, "--hidden", "10", "--max-entries", "20")
    assert code == 0 and err == ""  # the assignment's model at its own sigma is resolved everywhere


def test_init_from_an_adam_run_keeps_adams_step_count(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--corpus", SAMPLE_BOOK, "--cell", "gru", "--optimizer", "adam", *QUICK]
    assert run(capsys, "train", *common, "--out", first)[0] == 0
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--init-from", first, "--optimizer", "adam",
                       "--out", second, *QUICK[:-2], "--dtype", "float32")
    assert code == 1 and "--dtype" in err  # the model is the other run's
    assert run(capsys, "train", "--corpus", SAMPLE_BOOK, "--init-from", first, "--optimizer", "adam", "--out", second,
               *QUICK)[0] == 0
    assert load_checkpoint(second / "last.npz").meta["optimizer_steps"] == 90 + 90


def test_dropout_trains_in_float32(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--cell", "lstm", "--dropout", "0.3", "--dtype",
                       "float32", "--out", tmp_path / "run", *QUICK)
    assert code == 0, err
    assert load_checkpoint(tmp_path / "run" / "last.npz").params.flat.dtype == np.float32


@pytest.mark.parametrize(("cell", "optimizer", "eta", "sigma"), [("rnn", "adagrad", 0.1, 0.01),
                                                                  ("lstm", "rmsprop", 0.002, 0.08),
                                                                  ("gru", "rmsprop", 0.002, 0.08)])
def test_each_cell_trains_with_its_own_defaults_and_records_them(tmp_path, capsys, cell, optimizer, eta, sigma):
    common = ["--corpus", SAMPLE_BOOK, "--hidden", "8", "--updates", "20", "--no-progress", "--passage-length", "10"]
    code, _, err = run(capsys, "train", *common, "--cell", cell, "--out", tmp_path / "run")
    assert code == 0, err
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (record["train"]["optimizer"], record["train"]["eta"], record["model"]["sigma"]) == (optimizer, eta, sigma)
    # given settings win; a run started from another run's model takes that model's cell's defaults
    code, _, err = run(capsys, "train", *common, "--cell", cell, "--optimizer", "adam", "--sigma", "0.02", "--out",
                       tmp_path / "given")
    assert code == 0, err
    record = json.loads((tmp_path / "given" / "config.json").read_text())
    assert (record["train"]["optimizer"], record["train"]["eta"], record["model"]["sigma"]) == ("adam", 0.002, 0.02)
    code, _, err = run(capsys, "train", *common, "--init-from", tmp_path / "run", "--out", tmp_path / "further")
    assert code == 0, err
    record = json.loads((tmp_path / "further" / "config.json").read_text())
    assert (record["model"]["cell"], record["train"]["optimizer"], record["train"]["eta"]) == (cell, optimizer, eta)
