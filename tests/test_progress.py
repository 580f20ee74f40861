"""The first hour of a new user: how long a run is by default, what config.json and the report say about it,
the progress bar at 80 columns, and the plain status lines a log that is not a terminal gets."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from commands import run
from tqdm import tqdm

from textgen.checkpoint import load_checkpoint, save_checkpoint
from textgen.cli import duration, status_line
from textgen.config import TrainConfig
from textgen.trainer import PROGRESS_FORMAT, progress_fields, total_updates

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE_BOOK = PROJECT / "corpora" / "sample_book.txt"
QUICK = ["--hidden", "8", "--passage-length", "40", "--no-progress", "--seed", "1"]


@pytest.mark.parametrize(("characters", "batch", "expected"), [
    (80_001, 1, 100_000),  # 3,200 per epoch: two epochs are 6,400, the 2.5M characters 100,000 updates of 25
    (10_000_001, 1, 800_000),  # 400,000 per epoch: two epochs are longer
    (80_001, 4, 25_000),  # at batch 4 an update reads 100 characters: 2.5M / 100
    (2_500_001, 1, 200_000),  # 100,000 per epoch: two epochs
])
def test_the_default_length_is_two_epochs_but_at_least_two_and_a_half_million_characters(characters, batch,
                                                                                        expected):
    assert total_updates(TrainConfig(batch_size=batch), characters) == expected


def test_epochs_may_be_a_fraction_and_updates_win():
    assert total_updates(TrainConfig(epochs=0.5), 2_501) == 50  # 100 per epoch
    assert total_updates(TrainConfig(epochs=0.001), 2_501) == 1  # at least one update
    assert total_updates(TrainConfig(epochs=3, updates=7), 2_501) == 7


def test_config_json_records_the_resolved_values_never_null(tmp_path, capsys):
    code, _, _ = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", tmp_path / "a", "--updates", "70", *QUICK)
    assert code == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    per_epoch = config["corpus"]["updates_per_epoch"]
    train = config["train"]
    assert train["updates"] == 70 and train["epochs"] == round(70 / per_epoch, 4)
    assert [name for name, value in train.items() if value is None] == []
    assert train["threads"] == 1 and train["eval_every"] == 70 and train["eta"] == 0.1
    code, _, _ = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", tmp_path / "b", "--epochs", "1", *QUICK)
    assert code == 0
    train = json.loads((tmp_path / "b" / "config.json").read_text())["train"]
    assert train["epochs"] == 1 and train["updates"] == per_epoch


def test_a_run_from_before_totals_were_recorded_resumes_to_its_own_total(tmp_path, capsys):
    folder = tmp_path / "old"
    code, _, _ = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", folder, "--updates", "90",
                     "--checkpoint-every", "30", *QUICK)
    assert code == 0
    # make it look like a run stopped at update 90 of 150 whose config said neither updates nor epochs
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["train"].update(updates=None, epochs=None)
    config["corpus"]["total_updates"] = 150
    config_path.write_text(json.dumps(config))
    last = load_checkpoint(folder / "last.npz")
    last.meta["train"].update(updates=None, epochs=None)
    save_checkpoint(folder / "last.npz", last)
    (folder / "best_passage.txt").unlink()  # not finished yet
    code, _, err = run(capsys, "train", "--resume", folder, "--no-progress")
    assert code == 0, err
    assert "done: 150 updates" in err
    assert json.loads(config_path.read_text())["train"]["updates"] == 150


def test_train_says_what_it_loaded_and_how_long_it_will_run(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--corpus", PROJECT / "corpora" / "sample_tweets.json", "--out",
                       tmp_path / "t", "--updates", "40", *QUICK)
    assert code == 0
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    corpus = config["corpus"]
    documents = corpus["sources"][0]["documents"]
    expected = (f"textgen: loaded {documents:,} documents, {corpus['characters']:,} characters to train on "
                f"({corpus['val_characters']:,} more held out for validation), {corpus['vocab_size']} distinct; "
                f"training 40 updates ({40 / corpus['updates_per_epoch']:.2f} epochs of "
                f"{corpus['updates_per_epoch']:,}) into {tmp_path / 't'}\n")
    assert expected in err


def test_the_report_shows_the_runs_final_numbers_not_the_last_logged_row(tmp_path, capsys):
    folder = tmp_path / "r"
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", folder, "--updates", "135",
                       "--log-every", "20", *QUICK)
    assert code == 0
    final = re.search(r"done: 135 updates, final smooth loss ([0-9.]+) nats", err).group(1)
    last_row = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
    assert last_row["update"] == 135 - 135 % 20 or "val_loss" in last_row
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "| Updates | 135 | of 135 updates" in report
    assert f"| Smooth loss | {final} |" in report


def render(fields: str, n: int, total: int, columns: int = 80) -> str:
    out = io.StringIO()
    bar = tqdm(total=total, initial=n, bar_format=PROGRESS_FORMAT, file=out, ncols=columns, mininterval=0)
    bar.set_description_str(fields)
    bar.refresh()
    bar.close()
    return out.getvalue().replace("\r", "\n").strip("\n").splitlines()[-1]


@pytest.mark.parametrize(("smooth", "bpc", "epoch", "speed", "n", "total"), [
    (None, None, 0.0, 0.0, 0, 100_000),
    (54.8112, 2.3456, 1.2345, 54_321.0, 44_500, 100_000),
    (123.456, 10.123, 1234.56, 9_876_543.0, 445_000, 445_560),
    (9999.99, 99.99, 99999.99, 99_999_999.0, 5, 1_000_000_000),
])
def test_the_progress_bar_keeps_its_fields_in_order_and_fits_80_columns(smooth, bpc, epoch, speed, n, total):
    line = render(progress_fields(smooth, bpc, epoch, speed), n, total)
    assert len(line) <= 80, line
    assert re.match(r"loss \S+ val \S+ bpc ep \S+ \S+k ch/s +\d+%\|", line), line
    assert f"{n}/{total}" in line


def test_the_trainers_progress_bar_shows_the_fields_in_that_order(tmp_path, capsys):
    from textgen.trainer import train
    from textgen.vocab import CharVocab

    text = SAMPLE_BOOK.read_text(encoding="utf-8")
    vocab = CharVocab.from_texts([text])
    ids = vocab.encode(text)
    train(ids, vocab, TrainConfig(updates=60, log_every=20, seed=0), np.random.default_rng(0), progress=True,
          val_ids=ids[:300])
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert lines and all(re.match(r"loss \S+ val \S+ bpc ep \S+ \S+k ch/s ", line) for line in lines), lines
    assert re.match(r"loss \d+\.\d\d val \d\.\d\d bpc ep ", lines[-1]), lines[-1]


def test_a_log_that_is_not_a_terminal_gets_plain_status_lines(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", tmp_path / "s", "--updates", "60",
                       "--log-every", "20", "--status-every", "0.000001", *QUICK)
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("textgen: update ")]
    pattern = (r"textgen: update (\d+)/60 \(\d+%\), epoch \d+\.\d\d, smooth loss \d+\.\d{3}, val (n/a|\d\.\d{3} bits/char \(\d\.\d{3} nats/char\)), "
               r"[\d,]+ chars/s, ETA (\d+s|\d+m \d\ds)$")
    assert lines and all(re.match(pattern, line) for line in lines), lines
    assert [int(re.match(pattern, line).group(1)) for line in lines][-1] == 60


def test_quiet_silences_the_status_and_verbose_adds_the_validation_losses(tmp_path, capsys):
    settings = ["--corpus", SAMPLE_BOOK, "--updates", "60", "--log-every", "20", "--eval-every", "20",
                "--status-every", "0.000001", *QUICK]
    code, out, err = run(capsys, "train", "--out", tmp_path / "q", "-q", *settings)
    assert code == 0 and "textgen: update" not in err and "textgen: loaded" not in err and "done:" in err
    assert "--- update 0" in out  # the samples are the run's output, not chatter
    code, _, err = run(capsys, "train", "--out", tmp_path / "v", "-v", *settings)
    assert code == 0
    measured = [json.loads(line)["val_loss"] for line in (tmp_path / "v" / "metrics.jsonl").read_text().splitlines()
                if "val_loss" in line]
    said = [float(v) for v in re.findall(r"textgen: update [\d,]+: validation loss [\d.]+ bits/char \(([\d.]+) "
                                         r"nats/char\)", err)]
    assert said == [round(v, 4) for v in measured] and len(said) == 3
    assert re.search(r", elapsed \d+s$", err, re.MULTILINE)
    code, _, err = run(capsys, "train", "--out", tmp_path / "z", "--status-every", "0", *settings[:-len(QUICK) - 2],
                       *QUICK)
    assert code == 0 and "textgen: update" not in err


def test_status_every_must_be_a_number_of_seconds(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", tmp_path / "n", "--status-every", "-1")
    assert code == 1 and "--status-every must be a number of seconds" in err and not (tmp_path / "n").exists()


def test_durations_and_a_status_line_read_as_a_person_writes_them():
    assert [duration(s) for s in (0, 59.4, 61, 3599, 3600, 7380)] == ["0s", "59s", "1m 01s", "59m 59s", "1h 00m",
                                                                       "2h 03m"]
    status = {"update": 1500, "total_updates": 6000, "epoch": 0.504, "smooth_loss": 80.1234, "val_bpc": None,
              "chars_per_sec": 51234.5, "elapsed_seconds": 3.2, "eta_seconds": 75}
    assert status_line(status) == ("textgen: update 1,500/6,000 (25%), epoch 0.50, smooth loss 80.123, val n/a, "
                                   "51,234 chars/s, ETA 1m 15s")
    assert status_line(status, verbose=True).endswith(", ETA 1m 15s, elapsed 3s")


def test_quiet_also_silences_the_loaders_notes_but_not_the_text_they_change(tmp_path, capsys):
    book = tmp_path / "crlf.txt"
    book.write_bytes(SAMPLE_BOOK.read_bytes().replace(b"\n", b"\r\n"))
    code, _, loud = run(capsys, "train", "--corpus", book, "--out", tmp_path / "loud", "--updates", "30", *QUICK)
    assert code == 0 and "CRLF line ends" in loud
    code, _, quiet = run(capsys, "train", "--corpus", book, "--out", tmp_path / "quiet", "--updates", "30", "-q",
                         *QUICK)
    assert code == 0 and "CRLF" not in quiet and "textgen: loaded" not in quiet
    configs = [json.loads((tmp_path / name / "config.json").read_text())["corpus"] for name in ("loud", "quiet")]
    assert configs[0] == configs[1] and configs[0]["sources"][0]["characters"] == len(SAMPLE_BOOK.read_text())
