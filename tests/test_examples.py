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
