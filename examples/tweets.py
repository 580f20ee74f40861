"""The tweet experiment of DD2424 Assignment 4 with textgen's library modules: train on tweets, then write some.

(examples/notebook.py shows the top-level Python API, `textgen.train` and friends.)

    python examples/tweets.py --corpus condensed_2018.json       # or --corpus tweets2018 (named corpus)

Each tweet is one document followed by the end-of-document marker, so the best model can write
whole tweets: they are printed at the end, each stopped at the marker (or at --max-length).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from textgen.config import RNNConfig, RunConfig, TrainConfig
from textgen.corpus import load_corpus
from textgen.errors import TextgenError
from textgen.run import start_run
from textgen.sample import SampleConfig, generate_texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="tweets2018", help="a tweet archive file, or the named corpus 'tweets2018'")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the tweets (default 10)")
    parser.add_argument("--updates", type=int, help="stop after this many updates instead")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--sample-every", type=int, default=10_000, help="updates between samples (10000)")
    parser.add_argument("--tweets", type=int, default=10, help="tweets to write with the best model (10)")
    parser.add_argument("--max-length", type=int, default=280, help="characters at most per written tweet (280)")
    parser.add_argument("--keep-retweets", action="store_true", help="train on retweets too")
    parser.add_argument("--out", type=Path, help="run folder (default runs/<corpus>-<time>)")
    parser.add_argument("--force", action="store_true", help="replace a run already in --out")
    args = parser.parse_args(argv)
    try:
        options = {"keep_retweets": True} if args.keep_retweets else None
        corpus = load_corpus([args.corpus], options=options)
        source = corpus.sources[0]
        print(f"corpus: {source['location']}: {source['documents']:,} tweets, {len(corpus.text):,} characters")

        class Show:  # the run's callbacks: print each training-time sample as it comes
            def on_sample(self, sample: dict) -> None:
                loss = "n/a" if sample["smooth_loss"] is None else f"{sample['smooth_loss']:.2f}"
                print(f"\n--- update {sample['update']:,} (smooth loss {loss}) ---\n{sample['text']}", flush=True)

        config = TrainConfig(epochs=args.epochs, updates=args.updates, seed=args.seed, sample_every=args.sample_every)
        run = RunConfig(out=args.out, force=args.force, val_fraction=0)  # every tweet, as in the assignment
        result = start_run([args.corpus], RNNConfig(), config, run, options=options, callbacks=Show())
        tweets = generate_texts(
            result.state.best_params,
            result.vocab,
            SampleConfig(length=args.max_length, documents=args.tweets),
            np.random.default_rng(args.seed),
            start=(result.state.best_h, result.state.best_next_id),
        )
    except TextgenError as error:
        print(f"tweets.py: error: {error}", file=sys.stderr)
        return 1
    state = result.state
    print(f"\nbest smooth loss {state.best_loss:.2f} at update {state.best_update:,}; run folder {result.folder}")
    print(f"--- {args.tweets} tweets from the best model ---")
    for number, tweet in enumerate(tweets, start=1):
        cut = "" if tweet.ended else f"  [cut at {args.max_length} characters: no end marker]"
        print(f"{number:>2}. {tweet.text}{cut}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
