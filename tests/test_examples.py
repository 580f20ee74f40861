import json
import runpy
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def test_goblet_example_runs_the_whole_experiment_on_a_small_book(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["goblet.py", "--corpus", str(PROJECT / "corpora" / "sample_book.txt"), "--updates", "60",
            "--sample-every", "30", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    module = runpy.run_path(str(PROJECT / "examples" / "goblet.py"))
    assert module["main"](argv[1:]) == 0
    printed = capsys.readouterr().out
    assert "gradient check" in printed and "--- update 30" in printed and "1000 characters" in printed
    config = json.loads((out / "config.json").read_text())
    assert all(error < 1e-6 for error in config["gradcheck"].values())
    assert len((out / "best_passage.txt").read_text(encoding="utf-8")) == 1000
    assert (out / "loss.png").stat().st_size > 0


def test_tweets_example_trains_and_writes_whole_tweets(tmp_path, capsys):
    module = runpy.run_path(str(PROJECT / "examples" / "tweets.py"))
    argv = ["--corpus", str(PROJECT / "corpora" / "sample_tweets.json"), "--updates", "80", "--sample-every", "40",
            "--tweets", "3", "--max-length", "50", "--out", str(tmp_path / "run")]
    assert module["main"](argv) == 0
    printed = capsys.readouterr().out
    assert "--- update 40" in printed and "--- 3 tweets from the best model ---" in printed
    written = [line for line in printed.splitlines() if line[:3] in (" 1.", " 2.", " 3.")]
    assert len(written) == 3
    assert all(len(line) <= 4 + 50 or "[cut at 50 characters" in line for line in written)
    assert (tmp_path / "run" / "best.npz").exists()


def test_the_csv_sample_reads_through_the_hf_loader():
    from textgen.corpus import load_corpus

    corpus = load_corpus([f"hf:{PROJECT / 'corpora' / 'sample_rows.csv'}"], options={"text_column": "body"})
    assert corpus.sources[0]["documents"] == 12
    assert corpus.text.startswith("Boils quickly and switches itself off, which is all I ask of a kettle.\u2403")
