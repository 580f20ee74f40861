"""Learning-rate schedules: the rate is a pure function of the update (checked against the formulas worked by
hand), the trainer steps with it and records it, a resumed run steps as one that never stopped, and a resume
that changes the total says what it does to the schedule."""

import json
import math
import os
import signal

import numpy as np
import pytest
from commands import run

import textgen
from textgen.config import TrainConfig
from textgen.optim import learning_rate

TEXT = "it was the best of times, it was the worst of times, it was the age of wisdom. " * 30
QUICK = {"hidden": 8, "log_every": 5, "sample_every": 1000, "checkpoint_every": 10, "passage_length": 10,
         "sample_length": 10, "seed": 4, "val_fraction": 0.0}


def test_constant_is_the_configured_rate_itself():
    config = TrainConfig(eta=0.1)
    assert all(learning_rate(config, update, 500) is config.eta for update in (0, 1, 250, 499))


@pytest.mark.parametrize(("update", "expected"), [
    (0, 0.1),  # the top of the curve
    (50, 0.055),  # half way: cos(pi/2) = 0, so the middle of 0.1 and 0.01
    (100, 0.01),  # the end
    (25, 0.01 + 0.09 * (1 + math.sqrt(0.5)) / 2),  # a quarter: cos(pi/4) = sqrt(1/2)
])
def test_cosine_falls_along_half_a_cosine_to_min_eta(update, expected):
    assert learning_rate(TrainConfig(eta=0.1, schedule="cosine", min_eta=0.01), update, 100) == pytest.approx(
        expected, rel=1e-12)


def test_linear_falls_in_a_straight_line_and_min_eta_defaults_to_a_tenth():
    config = TrainConfig(optimizer="adam", schedule="linear")
    assert config.eta == 0.002 and config.min_eta == pytest.approx(0.0002)
    assert learning_rate(config, 25, 100) == pytest.approx(0.002 - 0.0018 / 4, rel=1e-12)


def test_warmup_climbs_in_equal_steps_then_the_decay_spans_the_rest():
    config = TrainConfig(eta=0.1, schedule="linear", min_eta=0.0, warmup=4)
    assert [learning_rate(config, update, 14) for update in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    # after the warm-up the decay runs over updates 4..14: at 9 it is half done
    assert learning_rate(config, 9, 14) == pytest.approx(0.05, rel=1e-12)
    assert learning_rate(TrainConfig(eta=0.1, warmup=10), 4, 100) == pytest.approx(0.05, rel=1e-12)  # constant too


def test_exponential_decays_at_the_end_of_each_epoch_from_decay_after_on_as_char_rnn_does():
    config = TrainConfig(optimizer="rmsprop", schedule="exponential", decay_rate=0.5, decay_after=3)
    # epochs of 10 updates: epochs 1 and 2 end at the full rate, the end of epoch 3 halves it, of 4 halves it again
    expected = [0.002] * 30 + [0.001] * 10 + [0.0005] * 10
    assert [learning_rate(config, update, 50, per_epoch=10) for update in range(50)] == pytest.approx(expected)


def rows(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_the_trainer_records_the_rate_of_each_row_and_steps_with_it(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text(TEXT)
    cosine = textgen.train(str(book), out=tmp_path / "cosine", progress=False, updates=40, schedule="cosine",
                           warmup=5, **QUICK)
    config = TrainConfig(schedule="cosine", warmup=5, eta=0.1)
    for row in rows(cosine.folder):  # the rate of the step that made the row's update
        assert row["eta"] == learning_rate(config, row["update"] - 1, 40)
    # a linear schedule whose floor is the rate itself steps as the constant one, to the last bit; a warm-up does not
    flat = textgen.train(str(book), out=tmp_path / "flat", progress=False, updates=40, schedule="linear",
                         min_eta=0.1, **QUICK)
    constant = textgen.train(str(book), out=tmp_path / "constant", progress=False, updates=40, **QUICK)
    last = {name: np.load(run.folder / "last.npz") for name, run in
            (("flat", flat), ("constant", constant), ("cosine", cosine))}
    assert all(np.array_equal(last["flat"][name], last["constant"][name]) for name in "UWVbc")
    assert not np.array_equal(last["cosine"]["U"], last["constant"]["U"])


class CtrlC:
    """Presses Ctrl-C once the run has logged ``at`` updates."""

    def __init__(self, at: int):
        self.at = at

    def on_log(self, row: dict) -> None:
        if row["update"] == self.at:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("schedule", [{"schedule": "cosine", "warmup": 7}, {"schedule": "linear", "min_eta": 0.0},
                                      {"warmup": 12}, {"schedule": "exponential", "decay_after": 1,
                                                       "decay_rate": 0.5, "batch_size": 8}])
@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_a_run_stopped_and_resumed_follows_its_schedule_to_the_last_bit(tmp_path, schedule, optimizer):
    book = tmp_path / "book.txt"
    book.write_text(TEXT)
    settings = {**QUICK, **schedule, "optimizer": optimizer, "cell": "lstm", "updates": 40}
    straight = textgen.train(str(book), out=tmp_path / "straight", progress=False, **settings)
    with pytest.raises(KeyboardInterrupt):
        textgen.train(str(book), out=tmp_path / "stopped", progress=False, callbacks=CtrlC(10), **settings)
    assert json.loads((tmp_path / "stopped" / "config.json").read_text())["train"]["schedule"] == \
        settings.get("schedule", "constant")
    resumed = textgen.resume(tmp_path / "stopped", progress=False)
    a, b = np.load(straight.folder / "last.npz"), np.load(resumed.folder / "last.npz")
    assert set(a.files) == set(b.files)
    for name in a.files:
        if a[name].dtype.kind != "U":
            np.testing.assert_array_equal(a[name], b[name])
    rates = [row["eta"] for row in rows(straight.folder)]
    assert len(set(rates)) > 2, rates  # the schedule moved the rate during the run (for exponential: 3 epochs)
    strip = [{k: v for k, v in row.items() if k != "chars_per_sec"} for row in rows(straight.folder)]
    assert strip == [{k: v for k, v in row.items() if k != "chars_per_sec"} for row in rows(resumed.folder)]


def test_a_longer_total_on_resume_spreads_the_decay_and_says_so(tmp_path, capsys):
    book = tmp_path / "book.txt"
    book.write_text(TEXT)
    first = ["--corpus", str(book), "--out", str(tmp_path / "run"), "--no-progress", "--hidden", "8", "--seed", "2",
             "--log-every", "5", "--schedule", "cosine", "--min-eta", "0.01", "--updates", "40"]
    assert run(capsys, "train", *first)[0] == 0
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--updates", "80", "--no-progress")
    assert code == 0, err
    before = learning_rate(TrainConfig(schedule="cosine", min_eta=0.01), 40, 40)
    after = learning_rate(TrainConfig(schedule="cosine", min_eta=0.01), 40, 80)
    assert f"the cosine schedule now ends at update 80 instead of 40: the learning rate at update 40 goes from " \
           f"{before:.4g} to {after:.4g}" in err, err
    config = TrainConfig(schedule="cosine", min_eta=0.01)
    later = [row for row in rows(tmp_path / "run") if row["update"] > 40]
    assert later and all(row["eta"] == learning_rate(config, row["update"] - 1, 80) for row in later)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["updates"] == 80


def test_a_resume_at_a_rate_below_min_eta_is_refused_with_a_fix_that_a_resume_accepts(tmp_path, capsys):
    book = tmp_path / "book.txt"
    book.write_text(TEXT)
    assert run(capsys, "train", "--corpus", book, "--out", tmp_path / "run", "--no-progress", "--hidden", "8",
               "--schedule", "cosine", "--eta", "0.1", "--min-eta", "0.05", "--updates", "20",
               "--log-every", "5")[0] == 0
    before = (tmp_path / "run" / "last.npz").read_bytes()
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--eta", "0.01", "--updates", "40",
                       "--no-progress")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "--min-eta 0.05 is above --eta 0.01" in err and "--min-eta of at most 0.01" in err, err
    assert (tmp_path / "run" / "last.npz").read_bytes() == before
    # the fix the message gives is one a resume takes: the lower floor goes with the lower rate
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--eta", "0.01", "--min-eta", "0.001",
                       "--updates", "40", "--no-progress")
    assert code == 0, err
    config = TrainConfig(schedule="cosine", eta=0.01, min_eta=0.001)
    later = [row for row in rows(tmp_path / "run") if row["update"] > 20]
    assert later and all(row["eta"] == pytest.approx(learning_rate(config, row["update"] - 1, 40)) for row in later)
    assert later[-1]["eta"] < 0.002  # near the new floor, below the old one
    train = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (train["eta"], train["min_eta"]) == (0.01, 0.001)
