import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from textgen.checkpoint import load_checkpoint
from textgen.cli import main

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog, again and again.\n" for i in range(400))
SETTINGS = ["--hidden", "12", "--sample-every", "40", "--sample-length", "20", "--log-every", "10",
            "--checkpoint-every", "30", "--eval-every", "50", "--passage-length", "30", "--no-progress", "--seed", "9"]


def rows(path: Path) -> list[dict]:
    return [{k: v for k, v in orjson.loads(line).items() if k != "chars_per_sec"}
            for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("batch,model", [
    ("1", []),
    ("3", []),
    ("3", ["--cell", "lstm", "--layers", "2", "--dropout", "0.2"]),
    ("3", ["--cell", "gru", "--optimizer", "adam", "--dropout", "0.1"]),
    ("1", ["--cell", "rnn", "--layers", "2", "--optimizer", "rmsprop"]),
    ("3", ["--cell", "gpt", "--layers", "2", "--context", "16", "--dropout", "0.2"]),  # windows drawn at random
    ("3", ["--cell", "gpt", "--context", "16", "--dropout", "0.2", "--threads", "2"]),  # windows over 2 threads
])
def test_a_resumed_run_equals_an_uninterrupted_one_bit_for_bit(tmp_path, batch, model, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    common = ["--corpus", str(corpus), "--batch-size", batch, *SETTINGS, *model]
    assert main(["train", *common, "--updates", "200", "--out", str(tmp_path / "whole")]) == 0
    assert main(["train", *common, "--updates", "110", "--out", str(tmp_path / "split")]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--updates", "200", "--no-progress"]) == 0
    capsys.readouterr()
    whole, split = tmp_path / "whole", tmp_path / "split"
    for name in ("last.npz", "best.npz"):
        a, b = load_checkpoint(whole / name), load_checkpoint(split / name)
        np.testing.assert_array_equal(a.params.flat, b.params.flat)
        assert a.meta["update"] == b.meta["update"]
    a, b = load_checkpoint(whole / "last.npz"), load_checkpoint(split / "last.npz")
    assert set(a.arrays) == set(b.arrays) and {"h", "best_flat"} <= set(a.arrays)
    for name in a.arrays:  # the optimizer's state, the recurrent state of every stream, the best copy
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
    assert a.meta["optimizer_steps"] == b.meta["optimizer_steps"] == 200
    assert rows(whole / "metrics.jsonl") == rows(split / "metrics.jsonl")
    assert any("val_loss" in row for row in rows(whole / "metrics.jsonl"))
    assert rows(whole / "samples.jsonl") == rows(split / "samples.jsonl")
    assert (whole / "best_passage.txt").read_text() == (split / "best_passage.txt").read_text()


def test_resume_refuses_what_would_make_it_inexact(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(corpus), *SETTINGS, "--updates", "60", "--out", str(run)]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    cases = [
        (["--hidden", "20"], "--hidden cannot be changed"),
        (["--option", "encoding=ascii"], "--option cannot be changed"),
        (["--seq-length", "10"], "--seq-length cannot change"),
        (["--updates", "60"], "already has 60 updates"),
    ]
    for extra, message in cases:
        assert main(["train", "--resume", str(run), *extra, "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert message.split()[0] in err and err.count("\n") == 1, err
    corpus.write_text(TEXT.replace("fox", "cat"))
    assert main(["train", "--resume", str(run), "--updates", "90", "--no-progress"]) == 1
    assert "has changed since the run started" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_learning_rate_may_change_on_resume_and_is_recorded(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(corpus), *SETTINGS, "--updates", "60", "--out", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--updates", "90", "--eta", "0.05", "--no-progress"]) == 0
    config = orjson.loads((run / "config.json").read_bytes())
    assert config["train"]["eta"] == 0.05 and config["resumes"][0]["changes"] == {"updates": 90, "eta": 0.05}
    assert load_checkpoint(run / "last.npz").meta["update"] == 90


def start_training(corpus: Path, run: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "textgen.cli", "train", "--corpus", str(corpus), "--hidden", "32",
            "--checkpoint-every", "25", "--log-every", "25", "--sample-every", "500", "--no-progress",
            "--seed", "1", "--out", str(run), *extra]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def wait_for_progress(run: Path, beyond: int, timeout: float = 90) -> None:
    """Wait until the running process has saved a checkpoint past update ``beyond``."""
    deadline = time.monotonic() + timeout
    while load_checkpoint(run / "last.npz").meta["update"] <= beyond:
        assert time.monotonic() < deadline, f"no training progress past update {beyond}"
        time.sleep(0.02)


def test_sigkill_at_random_moments_never_leaves_a_broken_checkpoint(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT * 3)
    run = tmp_path / "run"
    chooser = random.Random(20261123)
    process = start_training(corpus, run, "--updates", "100000")
    wait_for(run / "last.npz")
    kills, seen = 0, [0]
    for _ in range(6):
        wait_for_progress(run, beyond=seen[-1])  # the process is training past the last checkpoint...
        time.sleep(chooser.uniform(0.0, 0.6))  # ...and is killed at a random moment of that
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        kills += 1
        checkpoint = load_checkpoint(run / "last.npz")  # must always load
        seen.append(checkpoint.meta["update"])
        assert seen[-1] > 0 and seen[-1] % 25 == 0
        process = subprocess.Popen(
            [sys.executable, "-m", "textgen.cli", "train", "--resume", str(run), "--no-progress"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert kills == 6 and all(a < b for a, b in itertools.pairwise(seen))  # each resume went on from the last
    final = subprocess.run(
        [sys.executable, "-m", "textgen.cli", "train", "--resume", str(run), "--updates",
         str(load_checkpoint(run / "last.npz").meta["update"] + 50), "--no-progress"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert final.returncode == 0, final.stderr
    updates = [row["update"] for row in rows(run / "metrics.jsonl")]
    assert updates == list(range(25, updates[-1] + 1, 25))  # every row once, none lost, none repeated
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]  # killed writes were cleaned up


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_saves_a_checkpoint_and_says_how_to_resume(tmp_path, sig, code):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    run = tmp_path / "run"
    process = start_training(corpus, run, "--updates", "1000000")
    wait_for(run / "last.npz")
    wait_for_progress(run, beyond=0)  # the run folder appears with its update-0 checkpoint; let it train a little
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert f"textgen train --resume {run}" in err and "Traceback" not in err
    stopped_at = load_checkpoint(run / "last.npz").meta["update"]
    assert stopped_at >= 25
    assert (run / "loss.png").exists()
    result = subprocess.run(
        [sys.executable, "-m", "textgen.cli", "train", "--resume", str(run), "--updates", str(stopped_at + 10),
         "--no-progress"], capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(run / "last.npz").meta["update"] == stopped_at + 10
    assert os.path.exists(run / "best_passage.txt")


def test_a_run_from_before_the_model_settings_existed_resumes(tmp_path, capsys):
    from textgen.checkpoint import save_checkpoint

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(corpus), *SETTINGS, "--updates", "60", "--out", str(run)]) == 0
    new_train = ("optimizer", "rmsprop_decay", "beta1", "beta2", "dropout")
    for name in ("last.npz", "best.npz"):  # as textgen wrote them before cells, optimizers and dropout
        checkpoint = load_checkpoint(run / name)
        for key in new_train:
            del checkpoint.meta["train"][key]
        checkpoint.meta.pop("optimizer_steps", None)
        save_checkpoint(run / name, checkpoint)
    config = orjson.loads((run / "config.json").read_bytes())
    for key in new_train:
        del config["train"][key]
    del config["model"]["cell"], config["model"]["layers"]
    (run / "config.json").write_bytes(orjson.dumps(config))
    assert main(["train", "--resume", str(run), "--updates", "90", "--no-progress"]) == 0, capsys.readouterr().err
    assert load_checkpoint(run / "last.npz").meta["update"] == 90


@pytest.mark.parametrize("older", [False, True], ids=["line ends translated", "run of an older textgen"])
def test_a_run_on_a_crlf_file_resumes_exactly(tmp_path, older, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(TEXT.replace("\n", "\r\n").replace("again.", "again.\r").encode())
    # An older textgen read the CRs as characters and recorded no line-end options: a run with them kept,
    # and the options taken out of config.json, is what it left.
    keep = ["--keep-carriage-returns"] if older else []
    common = ["--corpus", str(corpus), *SETTINGS, *keep]
    assert main(["train", *common, "--updates", "200", "--out", str(tmp_path / "whole")]) == 0
    assert main(["train", *common, "--updates", "110", "--out", str(tmp_path / "split")]) == 0
    config = orjson.loads((tmp_path / "split" / "config.json").read_bytes())
    source = config["corpus"]["sources"][0]
    assert source["options"] == {"keep_carriage_returns": older, "keep_byte_order_mark": False}
    if older:
        source["options"] = {}
        (tmp_path / "split" / "config.json").write_bytes(orjson.dumps(config))
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "split"), "--updates", "200", "--no-progress"]) == 0, \
        capsys.readouterr().err
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert ("\r" in load_checkpoint(split / "last.npz").vocab.chars) is older
    for name in ("last.npz", "best.npz"):
        np.testing.assert_array_equal(load_checkpoint(whole / name).params.flat, load_checkpoint(split / name).params.flat)
    assert rows(whole / "metrics.jsonl") == rows(split / "metrics.jsonl")
    assert rows(whole / "samples.jsonl") == rows(split / "samples.jsonl")


def test_the_held_out_cap_given_is_recorded_and_a_resume_holds_out_the_same(tmp_path, capsys):
    from commands import run

    book = tmp_path / "book.txt"
    book.write_text("".join(f"line {i:04d} of the book\n" for i in range(1000)))
    folder = tmp_path / "run"
    code, _, err = run(capsys, "train", "--corpus", book, "--out", folder, "--updates", "40", "--hidden", "8",
                       "--val-max-characters", "500", "--no-progress", "--seed", "1")
    assert code == 0, err
    corpus = orjson.loads((folder / "config.json").read_bytes())["corpus"]
    assert corpus["val_max_characters"] == 500 and corpus["val_characters"] == 22 * 22  # 22 whole lines of 22
    code, _, err = run(capsys, "train", "--resume", folder, "--updates", "60", "--no-progress")
    assert code == 0, err
    assert orjson.loads((folder / "config.json").read_bytes())["corpus"]["val_characters"] == 22 * 22
    code, _, err = run(capsys, "train", "--resume", folder, "--updates", "80", "--val-max-characters", "900")
    assert code == 1 and "--resume cannot change --val-max-characters (900 given, the run has 500)" in err


def test_a_resume_from_another_folder_says_where_a_relative_corpus_path_is_read_from(tmp_path, monkeypatch, capsys):
    # the run records its corpus as given, relative to the folder it started in; from another folder the file is
    # not found, and the message says why and what to do (it exists: it is not "check the path")
    (tmp_path / "corpus.txt").write_text(TEXT)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--corpus", "corpus.txt", "--out", "run", *SETTINGS, "--updates", "60"]) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["train", "--resume", "../run", "--updates", "90", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corpus.txt" in err and "relative to the folder it was started in" in err, err
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", "run", "--updates", "90", "--no-progress"]) == 0


def test_a_resume_holds_back_only_a_bounded_amount_of_rows_before_its_first_checkpoint(tmp_path):
    # a resume keeps its rows in memory until its first checkpoint; with a checkpoint interval far beyond the run
    # and a row every update, that was every row of the run: it now checkpoints early instead, and stays exact
    import textgen

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    quick = {"hidden": 4, "log_every": 1, "sample_every": 10**6, "checkpoint_every": 10**6, "val_fraction": 0,
             "passage_length": 10, "seed": 3, "progress": False}
    whole = textgen.train(str(corpus), out=tmp_path / "whole", updates=15_000, **quick)
    textgen.train(str(corpus), out=tmp_path / "split", updates=100, **quick)

    class Checkpoints:
        def __init__(self):
            self.updates = []

        def on_checkpoint(self, info):
            if not info["final"]:
                self.updates.append(info["update"])

    seen = Checkpoints()
    split = textgen.resume(tmp_path / "split", updates=15_000, checkpoint_every=10**6, callbacks=seen, progress=False)
    assert seen.updates and seen.updates[0] < 12_000, seen.updates  # a row is a few hundred bytes: ~10,000 rows
    a, b = load_checkpoint(tmp_path / "whole" / "last.npz"), load_checkpoint(tmp_path / "split" / "last.npz")
    np.testing.assert_array_equal(a.params.flat, b.params.flat)
    assert rows(whole.folder / "metrics.jsonl") == rows(split.folder / "metrics.jsonl")
