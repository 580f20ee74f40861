"""Reproduce DD2424 Assignment 4 on Harry Potter and the Goblet of Fire with textgen's library modules.

(examples/notebook.py shows the top-level Python API, `textgen.train` and friends.)

    python examples/goblet.py --corpus goblet_book.txt          # or --corpus goblet (named corpus)

Steps: gradient check table, training for --epochs (default 2) with a 200-character sample
every 10,000 updates, the smooth-loss plot and a 1000-character passage from the best model,
all written to the run folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from textgen.config import RNNConfig, RunConfig, TrainConfig
from textgen.corpus import load_corpus
from textgen.errors import TextgenError
from textgen.gradients import check_window
from textgen.models import init_params
from textgen.run import start_run
from textgen.vocab import CharVocab


def gradient_check(text: str, seq_length: int, seed: int) -> dict[str, float]:
    """The assignment's check: m = 100, the first window of the book, 200 random entries per parameter."""
    vocab = CharVocab.from_texts([text])
    window = vocab.encode(text[: seq_length + 1])
    rng = np.random.default_rng(seed)
    params = init_params(RNNConfig(hidden=100), vocab.size, rng)
    return check_window(params, window[:-1], window[1:], max_entries=200, rng=rng)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="goblet", help="path of goblet_book.txt, or the named corpus 'goblet'")
    parser.add_argument("--epochs", type=int, default=2, help="passes over the book (default 2)")
    parser.add_argument("--updates", type=int, help="stop after this many updates instead (for a quick look)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--sample-every", type=int, default=10_000, help="updates between samples (10000)")
    parser.add_argument("--out", type=Path, help="run folder (default runs/<corpus>-<time>)")
    parser.add_argument("--force", action="store_true", help="replace a run already in --out")
    args = parser.parse_args(argv)
    try:
        corpus = load_corpus([args.corpus])
        print(f"corpus: {corpus.sources[0]['location']}: {len(corpus.text):,} characters, "
              f"{len(set(corpus.text))} distinct")
        errors = gradient_check(corpus.text, 25, args.seed)
        print("gradient check (m = 100, seq_length = 25, float64): max relative error")
        for name, error in errors.items():
            print(f"  {name}: {error:.2e}")

        class Show:  # the run's callbacks: print each training-time sample as it comes
            def on_sample(self, sample: dict) -> None:
                loss = "n/a" if sample["smooth_loss"] is None else f"{sample['smooth_loss']:.2f}"
                print(f"\n--- update {sample['update']:,} (smooth loss {loss}) ---\n{sample['text']}", flush=True)

        config = TrainConfig(epochs=args.epochs, updates=args.updates, seed=args.seed, sample_every=args.sample_every)
        run = RunConfig(out=args.out, force=args.force, val_fraction=0)  # the whole book, as in the assignment
        result = start_run([args.corpus], RNNConfig(), config, run, callbacks=Show(), extra={"gradcheck": errors})
    except TextgenError as error:
        print(f"goblet.py: error: {error}", file=sys.stderr)
        return 1
    state = result.state
    print(f"\nbest smooth loss {state.best_loss:.2f} at update {state.best_update:,}; "
          f"final {state.smooth_loss:.2f} after {state.update:,} updates")
    print(f"--- 1000 characters from the best model ---\n{result.passage}")
    print(f"\nrun folder: {result.folder} (loss plot: {result.folder / 'loss.png'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
