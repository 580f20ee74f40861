import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from commands import as_another_user, run, shared_folder, textgen

from textgen.cli import main
from textgen.loaders.base import END_OF_DOCUMENT
from textgen.runfolder import RUN_FILES

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE_BOOK = PROJECT / "corpora" / "sample_book.txt"
QUICK = ["--updates", "120", "--sample-every", "50", "--log-every", "10", "--checkpoint-every", "40",
         "--hidden", "16", "--passage-length", "80", "--no-progress", "--seed", "3"]


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "book"
    assert main(["train", "--corpus", str(SAMPLE_BOOK), "--out", str(folder), *QUICK]) == 0
    return folder


def test_train_writes_every_file_of_the_run_folder(trained_run):
    expected = {"config.json", "vocab.json", "metrics.jsonl", "samples.jsonl", "best.npz", "last.npz", "loss.png",
                "best_passage.txt", "report.html", "report.md", "report_loss.png"}
    assert {p.name for p in trained_run.iterdir()} == expected and expected <= set(RUN_FILES)
    config = json.loads((trained_run / "config.json").read_text())
    assert config["train"]["updates"] == 120 and config["train"]["seed"] == 3
    assert config["model"] == {"hidden": 16, "sigma": 0.01, "dtype": "float64", "cell": "rnn", "layers": 1, "heads": 4,
                               "context": 64}
    corpus = config["corpus"]
    assert corpus["characters"] + corpus["val_characters"] == len(SAMPLE_BOOK.read_text())
    assert corpus["val_characters"] == pytest.approx(0.05 * len(SAMPLE_BOOK.read_text()), abs=80)
    vocab = json.loads((trained_run / "vocab.json").read_text())
    assert vocab["chars"] == sorted(set(SAMPLE_BOOK.read_text()))
    metrics = [orjson.loads(line) for line in (trained_run / "metrics.jsonl").read_bytes().splitlines()]
    assert [m["update"] for m in metrics] == list(range(10, 121, 10))
    assert {"update", "epoch", "loss", "smooth_loss", "chars_per_sec"} <= set(metrics[0])
    samples = [orjson.loads(line) for line in (trained_run / "samples.jsonl").read_bytes().splitlines()]
    assert [s["update"] for s in samples] == [0, 50, 100] and len(samples[1]["text"]) == 200
    assert len((trained_run / "best_passage.txt").read_text(encoding="utf-8")) == 80
    assert (trained_run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generate_with_the_same_seed_prints_the_same_text(trained_run, capsys):
    first = run(capsys, "generate", "--run", trained_run, "--length", "300", "--seed", "5")
    second = run(capsys, "generate", "--run", trained_run, "--length", "300", "--seed", "5")
    assert first[0] == 0 and first == second
    assert len(first[1]) == 301  # 300 characters and a newline
    code, out, _ = run(capsys, "generate", "--run", trained_run, "--length", "50", "--prime", "The lamp",
                       "--checkpoint", "last", "--seed", "1")
    assert code == 0 and out.startswith("The lamp") and len(out) == len("The lamp") + 50 + 1


def test_generate_and_evaluate_take_the_run_folder_as_run_dir_or_as_run(trained_run, tmp_path, capsys):
    sample = ["--length", "40", "--seed", "2"]
    as_flag = run(capsys, "generate", "--run", trained_run, *sample)
    assert as_flag[0] == 0 and len(as_flag[1]) == 41
    assert run(capsys, "generate", trained_run, *sample) == as_flag
    assert run(capsys, "generate", *sample, trained_run, "--run", f"{trained_run}/") == as_flag  # the same folder
    score = ["--corpus", SAMPLE_BOOK, "--json"]
    assert run(capsys, "evaluate", trained_run, *score) == run(capsys, "evaluate", "--run", trained_run, *score)
    for argv, message in [(["generate", trained_run, "--run", tmp_path], "name different run folders"),
                          (["evaluate", *score], "the run folder is missing")]:
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("textgen: error: ") and message in err


def test_prime_outside_the_vocabulary_lists_the_characters(trained_run, capsys):
    code, out, err = run(capsys, "generate", "--run", trained_run, "--prime", "Zebra§")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "'Z§'" in err and "Traceback" not in err


def test_gradcheck_json_reports_every_parameter_below_1e_6(capsys):
    code, out, _ = run(capsys, "gradcheck", "--corpus", SAMPLE_BOOK, "--hidden", "8", "--max-entries", "0", "--json")
    errors = json.loads(out)
    assert code == 0 and set(errors) == {"b", "c", "U", "W", "V"}
    assert all(error < 1e-6 for error in errors.values()), errors


def test_gradcheck_prints_a_table(capsys):
    code, out, _ = run(capsys, "gradcheck", "--corpus", SAMPLE_BOOK, "--hidden", "5", "--max-entries", "20")
    assert code == 0
    assert out.splitlines()[1] == "parameter  max relative error"
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["b", "c", "U", "W", "V"]


def test_corpora_lists_loaders_and_named_corpora(capsys):
    code, out, _ = run(capsys, "corpora")
    assert code == 0
    assert "text" in out and "built-in" in out and ".txt" in out and "goblet" in out and "pydoc" in out


BAD_INPUTS = {  # case: (argv, with {tmp} for the test's folder; what the one line must say)
    "missing file": (["train", "--corpus", "{tmp}/absent.txt"], "absent.txt: no such file"),
    "empty corpus": (["train", "--corpus", "{tmp}/empty.txt"], "empty"),
    "short corpus": (["train", "--corpus", "{tmp}/short.txt"], "fewer than the 26"),
    "not utf-8": (["train", "--corpus", "{tmp}/latin1.txt"], "offset 3 .*--encoding"),
    "unknown loader": (["train", "--corpus", "x.txt", "--kind", "nope"], "unknown corpus loader 'nope'"),
    "unknown named corpus": (["train", "--corpus", "nosuchcorpus"], "named corpora: .*goblet"),
    "bad hyperparameter": (["train", "--corpus", str(SAMPLE_BOOK), "--eta", "-1"], "--eta must be a positive"),
    "flag for another loader": (["train", "--corpus", str(SAMPLE_BOOK), "--keep-retweets"], "--keep-retweets"),
    "missing run": (["generate", "--run", "{tmp}/norun"], "no such run folder"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_line_and_exit_1(case, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "short.txt").write_text("too short")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 20)
    argv, expected = BAD_INPUTS[case]
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run")]
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("textgen: error: ") and "Traceback" not in err
    assert re.search(expected, err), err
    assert not (tmp_path / "run").exists()  # nothing was created for a bad input


@pytest.mark.parametrize("below", ["run", "deeper/run"])
def test_an_out_below_a_file_is_named_with_the_file_that_is_in_the_way(below, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / below
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", out, *QUICK)
    assert code == 1 and err == (f"textgen: error: --out {out}: {tmp_path / 'notes.txt'} is not a folder; "
                                 "choose another path\n")
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("command", ["generate", "evaluate", "report"])
def test_a_run_folder_no_file_can_have_is_named_as_it_was_given(command, tmp_path, capsys):
    bad = str(tmp_path / "run\udcff")  # not UTF-8 (a byte 0xff, as Python gives it from the command line)
    code, _, err = run(capsys, command, bad)
    assert code == 1 and err.startswith("textgen: error: RUN_DIR ") and "not valid UTF-8" in err, err
    if command != "report":
        code, _, err = run(capsys, command, "--run", bad)
        assert code == 1 and err.startswith("textgen: error: --run ") and "not valid UTF-8" in err, err


USAGE_ERRORS = {  # case: (argv, what argparse's one line must say)
    "non-number flag": (["train", "--hidden", "many"], r"argument --hidden: invalid int value: 'many' \(see textgen train"),
    "unknown flag": (["generate", "run", "--lenght", "5"], r"unrecognized arguments: --lenght 5 \(see textgen generate"),
    "missing value": (["evaluate", "run", "--corpus"], "argument --corpus: expected one argument"),
    "unknown command": (["trian"], r"invalid choice: 'trian' .*\(see textgen --help\)"),
    "value outside the choices": (["generate", "run", "--checkpoint", "first"], "invalid choice: 'first'"),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_what_argparse_finds_is_one_line_and_exit_2(case, capsys):
    argv, expected = USAGE_ERRORS[case]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("textgen: error: ") and err.count("error:") == 1, err
    assert re.search(expected, err), err


def test_an_existing_run_is_refused_untouched_unless_forced(trained_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    before = snapshot(copy)
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", copy, *QUICK)
    assert code == 1 and "already holds a run" in err and "--force" in err
    assert snapshot(copy) == before
    code, _, _ = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", copy, "--force", *QUICK[:-1], "4")
    assert code == 0 and json.loads((copy / "config.json").read_text())["train"]["seed"] == 4


def test_the_same_seed_reproduces_a_run_bit_for_bit(trained_run, tmp_path, capsys):
    assert run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", tmp_path / "again", *QUICK)[0] == 0
    for name in ("metrics.jsonl", "samples.jsonl", "best_passage.txt", "vocab.json"):
        if name == "metrics.jsonl":  # chars_per_sec is a wall-clock measurement
            strip = [{k: v for k, v in orjson.loads(x).items() if k != "chars_per_sec"}
                     for x in (trained_run / name).read_bytes().splitlines()]
            again = [{k: v for k, v in orjson.loads(x).items() if k != "chars_per_sec"}
                     for x in (tmp_path / "again" / name).read_bytes().splitlines()]
            assert strip == again
        else:
            assert (trained_run / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    with np.load(trained_run / "last.npz") as a, np.load(tmp_path / "again" / "last.npz") as b:
        for key in ("U", "W", "V", "b", "c"):
            np.testing.assert_array_equal(a[key], b[key])


def test_the_console_script_runs_and_help_does_not_import_heavy_modules():
    script = shutil.which("textgen", path=os.path.dirname(sys.executable)) or shutil.which("textgen")
    assert script, "the textgen console script is not installed"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "train" in result.stdout and "generate" in result.stdout
    probe = ("import sys, textgen.cli; textgen.cli.build_parser(); "
             "print(sorted(m for m in ('datasets', 'matplotlib', 'pyarrow', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def tweets_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "tweets"
    assert main(["train", "--corpus", str(PROJECT / "corpora" / "sample_tweets.json"), "--out", str(folder), *QUICK]) == 0
    return folder


def drawn_by_the_library(run_dir: Path, seed: int, **settings) -> list:
    """What `generate_texts` draws from the run's best model, as `generate` starts it."""
    from textgen.checkpoint import load_checkpoint
    from textgen.sample import SampleConfig, generate_texts

    checkpoint = load_checkpoint(run_dir / "best.npz")
    return generate_texts(checkpoint.params, checkpoint.vocab, SampleConfig(**settings), seed, checkpoint.start_state())


def test_tweets_train_and_generate_whole_documents(tweets_run, capsys):
    code, out, err = run(capsys, "generate", "--run", tweets_run, "--documents", "4", "--length", "60",
                         "--seed", "1")
    assert code == 0
    documents = out.split("\n\n")
    assert len(documents) == 4 or err.count("without an end-of-document marker") > 0
    assert "\u2403" not in out


def test_length_mode_shows_the_end_of_document_marker_as_training_samples_do(tweets_run, capsys):
    [sample] = drawn_by_the_library(tweets_run, 4, length=600)
    assert END_OF_DOCUMENT in sample.text  # the model ended some tweets in these 600 characters
    code, out, err = run(capsys, "generate", tweets_run, "--length", "600", "--seed", "4")
    assert code == 0 and err == ""
    assert out == sample.text + ("" if sample.text.endswith("\n") else "\n")  # ␃ as in samples.jsonl


def test_generate_json_prints_the_texts_as_one_list(tweets_run, capsys):
    samples = drawn_by_the_library(tweets_run, 6, length=300, count=3)
    code, out, err = run(capsys, "generate", tweets_run, "--length", "300", "--count", "3", "--seed", "6", "--json")
    assert code == 0 and err == "" and out.endswith("]\n") and out.count("\n") == 1
    assert json.loads(out) == [sample.text for sample in samples]
    code, out, _ = run(capsys, "generate", tweets_run, "--length", "5", "--prime", "the", "--seed", "6", "--json")
    assert code == 0 and len(json.loads(out)) == 1 and json.loads(out)[0].startswith("the")  # one: a list
    documents = drawn_by_the_library(tweets_run, 1, length=60, documents=4)
    assert not all(document.ended for document in documents)  # so that a note is due
    code, out, err = run(capsys, "generate", tweets_run, "--documents", "4", "--length", "60", "--seed", "1", "--json")
    assert code == 0 and json.loads(out) == [document.text for document in documents]
    assert err.count("was cut there\n") == sum(not document.ended for document in documents) == err.count("\n")


def test_a_crlf_book_is_read_with_newlines_and_said_in_one_line(tmp_path):
    book = tmp_path / "windows.txt"
    book.write_bytes(b"\xef\xbb\xbf" + SAMPLE_BOOK.read_bytes().replace(b"\n", b"\r\n"))
    lines = SAMPLE_BOOK.read_bytes().count(b"\n")
    result = textgen("gradcheck", "--corpus", book, "--hidden", "3", "--max-entries", "5", "--sigma", "0.3", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)
    assert result.stderr == (f"textgen: {book}: translated {lines:,} CRLF line ends to \\n and removed the byte-order "
                             "mark (U+FEFF) at its start; --keep-carriage-returns keeps the CRs\n")
    kept = textgen("gradcheck", "--corpus", book, "--hidden", "3", "--max-entries", "5", "--sigma", "0.3",
                   "--keep-carriage-returns")
    assert kept.returncode == 0 and kept.stderr == f"textgen: {book}: removed the byte-order mark (U+FEFF) at its start\n"


def test_weights_must_match_the_corpora(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--weights", "0.5,0.5", "--out", tmp_path / "r")
    assert code == 1 and "2 values for 1 corpora" in err


def test_evaluate_reports_the_loss_per_character_of_a_checkpoint(trained_run, capsys):
    from reference import textbook_loss_and_grads

    from textgen.checkpoint import load_checkpoint

    code, out, _ = run(capsys, "evaluate", "--run", trained_run, "--corpus", SAMPLE_BOOK, "--json")
    assert code == 0
    result = json.loads(out)
    checkpoint = load_checkpoint(trained_run / "best.npz")
    ids = checkpoint.vocab.encode(SAMPLE_BOOK.read_text()).astype(int)
    start_h, _ = checkpoint.start_state()  # evaluation starts from the training state the checkpoint keeps
    assert np.abs(start_h).max() > 0
    loss, _, _ = textbook_loss_and_grads(**checkpoint.params.arrays, inputs=ids[:-1], targets=ids[1:],
                                         h_prev=start_h)
    assert result["characters"] == ids.size
    assert result["loss_per_char"] == pytest.approx(loss / (ids.size - 1), rel=1e-9)
    assert result["bits_per_char"] == pytest.approx(result["loss_per_char"] / np.log(2))
    tweets = PROJECT / "corpora" / "sample_tweets.json"
    code, _, err = run(capsys, "evaluate", "--run", trained_run, "--corpus", tweets)
    assert code == 1 and f"the corpus '{tweets}' has characters that are not in the model's vocabulary: '" in err


BLAS_PROBE = (
    "import os, sys; from textgen.cli import BLAS_THREAD_VARIABLES, use_one_blas_thread; {before}"
    "use_one_blas_thread(); print([os.environ.get(name) for name in BLAS_THREAD_VARIABLES])"
)


@pytest.mark.parametrize(
    "user_setting, before, expected",
    [
        ({}, "", ["1", "1", "1"]),  # nothing chosen: one BLAS thread
        ({"OMP_NUM_THREADS": "3"}, "", [None, "3", None]),  # the user's choice is left alone
        ({}, "import numpy; ", [None, None, None]),  # too late once NumPy is loaded: nothing is pretended
    ],
)
def test_the_cli_asks_for_one_blas_thread_unless_the_user_chose(user_setting, before, expected):
    env = {key: value for key, value in os.environ.items() if key not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                                          "MKL_NUM_THREADS")}
    env.update(user_setting)
    probe = BLAS_PROBE.format(before=before)
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str(expected)


def test_a_fresh_seed_is_said_on_stderr_and_draws_the_same_text_again(trained_run, capsys):
    for extra in ([], ["--json"], ["--count", "3"]):
        code, out, err = run(capsys, "generate", trained_run, "--length", "60", *extra)
        seed = re.fullmatch(r"textgen: seed (\d+) \(give --seed \1 to draw the same text again\)\n", err)
        assert code == 0 and seed, err
        assert run(capsys, "generate", trained_run, "--length", "60", *extra, "--seed", seed[1]) == (0, out, "")
    assert run(capsys, "generate", trained_run, "--length", "60", "--greedy")[2] == ""  # no randomness, no seed


def test_the_first_text_of_a_seed_does_not_depend_on_the_count(trained_run, capsys):
    _, one, _ = run(capsys, "generate", trained_run, "--length", "100", "--seed", "9")
    _, two, _ = run(capsys, "generate", trained_run, "--length", "100", "--seed", "9", "--count", "2")
    _, many, _ = run(capsys, "generate", trained_run, "--length", "100", "--seed", "9", "--count", "40", "--json")
    assert two.split("\n\n")[0] + "\n" == one and json.loads(many)[:2] == two.rstrip("\n").split("\n\n")


def test_evaluate_without_a_corpus_scores_the_runs_held_out_text_and_says_so(trained_run, tmp_path, capsys):
    metrics = [orjson.loads(line) for line in (trained_run / "metrics.jsonl").read_bytes().splitlines()]
    best = min(row["val_loss"] for row in metrics if "val_loss" in row)  # as training measured it
    code, out, _ = run(capsys, "evaluate", trained_run, "--json")
    result = json.loads(out)
    assert code == 0 and result["text"] == "held-out" and result["loss_per_char"] == pytest.approx(best, rel=1e-9)
    code, out, _ = run(capsys, "evaluate", trained_run)
    assert code == 0 and out == (f"{trained_run}/best.npz on the run's held-out text of its corpus '{SAMPLE_BOOK}', "
                                 f"{result['characters']:,} characters: {best / math.log(2):.4f} bits/char "
                                 f"({best:.4f} nats/char)\n")
    folder = tmp_path / "everything"
    assert main(["train", "--corpus", str(SAMPLE_BOOK), "--out", str(folder), "--val-fraction", "0", *QUICK]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "evaluate", folder)
    _, given, _ = run(capsys, "evaluate", folder, "--corpus", SAMPLE_BOOK)
    assert code == 0 and "the run's training text of its corpus" in out and "(it holds none out)" in out
    assert out.split(": ")[-1] == given.split(": ")[-1]  # the same numbers as the book given by hand


def test_evaluate_of_a_run_whose_corpus_is_not_found_says_it_is_the_runs_and_what_to_do(tmp_path, monkeypatch,
                                                                                         capsys):
    (tmp_path / "book.txt").write_text(SAMPLE_BOOK.read_text())
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--corpus", "book.txt", "--out", "run", *QUICK]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the run reads book.txt from the folder it was started in
    capsys.readouterr()
    code, _, err = run(capsys, "evaluate", "../run")
    assert code == 1 and err.count("\n") == 1 and "book.txt" in err, err
    assert "relative to the folder it was started in" in err and "--corpus" in err and "named corpus" not in err
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.txt").rename(tmp_path / "moved.txt")
    code, _, err = run(capsys, "evaluate", "run")
    assert code == 1 and "--corpus" in err and "named corpus" not in err, err
    from textgen import CorpusError, load

    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(CorpusError, match="relative to the folder it was started in"):
        load("../run").evaluation()


def test_evaluate_of_a_streamed_run_whose_held_out_ids_are_gone_says_so(tmp_path, capsys):
    big = tmp_path / "big.txt"
    text = SAMPLE_BOOK.read_text()
    with big.open("w") as stream:  # over 64 MB: streamed into ids.bin and val_ids.bin in the run folder
        for _ in range(65 * 2**20 // len(text) + 1):
            stream.write(text)
    folder = tmp_path / "run"
    assert main(["train", "--corpus", str(big), "--out", str(folder), *QUICK, "--updates", "10"]) == 0
    big.unlink()
    (folder / "val_ids.bin").unlink()
    capsys.readouterr()
    code, out, err = run(capsys, "evaluate", folder)
    assert code == 1 and out == "" and err.count("\n") == 1 and "val_ids.bin" in err and "--corpus" in err, err


@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_a_folder_that_holds_no_run_is_named_as_such_not_as_a_missing_checkpoint(command, trained_run, tmp_path,
                                                                                capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "book.txt").write_text("some text")
    shutil.copytree(trained_run, tmp_path / "sweep" / "trials" / "trial-000")
    for folder, says in (("empty", "not a run folder"), ("data", "not a run folder"),
                         ("sweep", f"a sweep folder, not a run folder; give one of its trials, such as "
                                   f"{tmp_path / 'sweep' / 'trials' / 'trial-000'}")):
        code, out, err = run(capsys, command, tmp_path / folder)
        assert code == 1 and out == "" and err.count("\n") == 1 and f"{tmp_path / folder}: {says}" in err, err
    (tmp_path / "half").mkdir()
    shutil.copy(trained_run / "config.json", tmp_path / "half")  # a run without its best.npz: that is what is missing
    code, _, err = run(capsys, command, tmp_path / "half")
    assert code == 1 and "half/best.npz: no such checkpoint" in err, err


def test_every_held_out_loss_is_shown_in_bits_with_nats_beside(tmp_path, capsys):
    code, out, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", tmp_path / "run", "-v",
                         "--status-every", "0.000001", "--eval-every", "60", *QUICK)
    metrics = [orjson.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_bytes().splitlines()]
    evaluated = [row for row in metrics if "val_loss" in row]
    shown = [f"{row['val_bpc']:.4f} bits/char ({row['val_loss']:.4f} nats/char)" for row in evaluated]
    assert code == 0 and all(f"validation loss {text}" in err for text in shown), err
    best = min(evaluated, key=lambda row: row["val_loss"])
    short = f"{best['val_bpc']:.3f} bits/char ({best['val_loss']:.3f} nats/char)"
    assert f"best model by validation loss {short} at update {best['update']}" in err
    assert f"validation loss {short}) ---" in out
    assert re.search(r", val \d\.\d{3} bits/char \(\d\.\d{3} nats/char\), ", err)  # the status lines
    assert "nats/char" not in err.replace("bits/char (", "").replace(" nats/char)", "")  # nats never on their own


def test_a_permission_the_system_refuses_is_one_line(trained_run, capsys):
    with shared_folder() as base:
        locked = base / "locked"
        shutil.copytree(trained_run, locked)
        shutil.copy(SAMPLE_BOOK, base / "readable.txt")  # the checkout itself may be private to its owner
        locked.chmod(0)
        with as_another_user():
            code, _, err = run(capsys, "train", "--corpus", base / "readable.txt", "--out", locked, "--force", *QUICK)
    assert code == 1 and err.count("\n") == 1 and "Permission denied" in err and str(locked) in err, err


@pytest.mark.parametrize("name", ["out", "init_from"])
def test_a_settings_files_path_no_file_can_have_is_one_line(name, tmp_path, capsys):
    settings = tmp_path / "run.toml"
    settings.write_text(f'[train]\ncorpus = ["{SAMPLE_BOOK}"]\n{name} = "run\\u0000name"\nupdates = 5\n')
    code, _, err = run(capsys, "train", "--config", settings)
    assert code == 1 and err.count("\n") == 1 and "a path cannot hold a NUL byte" in err, err
