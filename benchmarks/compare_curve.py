"""textgen's exact trainer beside the textbook loop over a long run: same start, same windows, smooth loss side by side.

    python benchmarks/compare_curve.py                       # tinyshakespeare, seeds 1 2 3, 20,000 updates
    python benchmarks/compare_curve.py CORPUS --seeds 1 2 3 4 5 --updates 20000 --workers 2

For each seed, both start from the same parameters (U, W, V drawn from default_rng(seed) in that
order, as `textgen train --seed` draws them) and read the same windows. A third run, the textbook
loop again with one weight moved by 1e-15, shows how fast a rounding-sized difference grows:
training this RNN is chaotic, so two runs that differ only in the order of their sums follow
different paths after a few hundred updates, and what can be compared is where they land, over
several seeds. The tests check the first updates agree to 1e-10. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # before NumPy loads: one run per core, as textgen's CLI does

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from reference import textbook_training

from textgen.config import RNNConfig
from textgen.trainer import TrainCallbacks, TrainConfig, train
from textgen.vocab import CharVocab

DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
LOG_EVERY = 100  # smooth losses are compared at every multiple of this
AGREE = 1e-6  # relative difference below which two smooth losses count as the same


class SmoothLosses(TrainCallbacks):
    """The smooth loss of every row the trainer logs."""

    def __init__(self):
        self.losses = []

    def on_log(self, record: dict) -> None:
        self.losses.append(record["smooth_loss"])


def run_seed(corpus: str, seed: int, updates: int) -> dict[str, list[float]]:
    """Smooth loss at every LOG_EVERY updates for textgen, the textbook loop and the nudged textbook loop."""
    text = Path(corpus).read_text(encoding="utf-8")
    vocab = CharVocab.from_texts([text])
    ids = vocab.encode(text)
    config = TrainConfig(updates=updates, log_every=LOG_EVERY, sample_every=updates + 1)
    logged = SmoothLosses()
    train(ids, vocab, config, np.random.default_rng(seed), RNNConfig(), callbacks=logged, progress=False)
    curves = {"textgen": logged.losses}

    rng = np.random.default_rng(seed)  # the same draws as textgen's init_params: U, W, V, then b = c = 0
    m, K = RNNConfig().hidden, vocab.size
    start = {name: 0.01 * rng.standard_normal(shape) for name, shape in (("U", (m, K)), ("W", (m, m)), ("V", (K, m)))}
    start.update(b=np.zeros(m), c=np.zeros(K))
    nudged = {name: value.copy() for name, value in start.items()}
    nudged["U"][0, 0] += 1e-15
    for name, params in (("textbook", start), ("textbook, U[0,0] + 1e-15", nudged)):
        _, smooth = textbook_training(**params, ids=ids.astype(np.int64), n_updates=updates)
        curves[name] = smooth[LOG_EVERY - 1 :: LOG_EVERY]
    return curves


def agreed_until(a: list[float], b: list[float]) -> int:
    """The last logged update up to which the two curves agree to AGREE (relative), at every point."""
    for index, (x, y) in enumerate(zip(a, b)):
        if abs(x - y) > AGREE * abs(y):
            return index * LOG_EVERY
    return len(a) * LOG_EVERY


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS), help="plain-text corpus (tinyshakespeare)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds (1 2 3)")
    parser.add_argument("--updates", type=int, default=20_000, help="updates per run (20000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="seeds run in parallel (one per CPU)")
    args = parser.parse_args()
    if not Path(args.corpus).is_file():
        raise SystemExit(f"no corpus at {args.corpus}; pass the path of a plain-text file")
    if args.updates < LOG_EVERY:
        raise SystemExit(f"--updates must be at least {LOG_EVERY}")

    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(run_seed, [args.corpus] * len(args.seeds), args.seeds, [args.updates] * len(args.seeds)))
    names = list(runs[0])
    last = args.updates - args.updates % LOG_EVERY

    print(f"{args.corpus}: smooth loss after {last:,} updates, float64, the assignment's settings")
    print()
    print("| seed | " + " | ".join(names) + " | textgen = textbook until | nudged = textbook until |")
    print("|---:|" + "---:|" * (len(names) + 2))
    for seed, curves in zip(args.seeds, runs):
        finals = " | ".join(f"{curves[name][-1]:.3f}" for name in names)
        print(f"| {seed} | {finals} | {agreed_until(curves['textgen'], curves['textbook']):,} "
              f"| {agreed_until(curves[names[2]], curves['textbook']):,} |")
    summary = []
    for name in names:
        finals = [curves[name][-1] for curves in runs]
        summary.append(f"{statistics.mean(finals):.3f} ({min(finals):.3f} .. {max(finals):.3f})")
    print(f"| mean (min .. max) | {' | '.join(summary)} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
