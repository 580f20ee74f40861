"""Text quality for the same wall-clock budget: models trained on one corpus, best held-out loss each.

    python benchmarks/bench_quality.py ../shared/data/tinyshakespeare.txt                 # 10 minutes per row
    python benchmarks/bench_quality.py CORPUS --minutes 2 --only rnn-100 lstm-2x128
    taskset -c 1 python benchmarks/bench_quality.py CORPUS --only lstm-2x256-cosine --json b.json  # one CPU a row

Every row is a real run of `textgen.train` (the API, in this process) into a folder of its own under --runs,
on the corpus with its last --held-out share held out (whole documents for tweets; all of it, however long:
``val_max_characters`` is lifted), from seed 1. A schedule that decays over the run needs the run's length
in updates, so each row first trains for a short probe (an eighth of the budget, at most 40 s, not counted)
to measure its speed and the cost of one evaluation, and is then given as many updates as fit in the budget
beside 15 evaluations; a row still training at the end of the budget is stopped there as Ctrl-C would stop
it. The best of the 15 held-out losses is the row's figure, in bits per character and nats per character
(summed over the held-out tokens and divided by its characters, so every token level is on one scale).

The table shows each row's best held-out loss, the updates and training characters a second it managed, the
characters a token covers on average and when it got there; --json keeps every row with a 500-character
sample from its best model. Rows run one after another; to compare rows run in parallel, give each its own
CPU (taskset) so they meet the same conditions; a row with "threads" (lstm-2x512-cosine-2cpu) uses both CPUs
of a 2-CPU machine and runs alone. BLAS gets one thread (as the command line gives it), since such a row
runs its own threads. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

# Rows with threads of their own make their own BLAS calls, so BLAS itself gets one thread (as the CLI does).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LSTM_256 = {"cell": "lstm", "layers": 2, "hidden": 256, "dropout": 0.25, "optimizer": "rmsprop", "batch_size": 32,
            "dtype": "float32"}
# name: the settings of `textgen.train` (its keywords, as the command line's flags). The assignment's RNN; the
# RNN at batch 32 (the best batch in one-minute probes); the gated cells at 1 and 2 layers of 128 with RMSprop
# at B = 16 (RMSprop beat Adam at 0.002 and AdaGrad at 0.1 in the same probes, and B = 16 beat 32 and 64); the
# 2 x 256 LSTM with dropout that did best in 10 minutes, with a constant rate and with each schedule; and the
# same LSTM at each token level.
ROWS = {
    "rnn-100": {"cell": "rnn", "hidden": 100},
    "rnn-100-b32": {"cell": "rnn", "hidden": 100, "batch_size": 32, "dtype": "float32"},
    "lstm-128": {"cell": "lstm", "hidden": 128, "optimizer": "rmsprop", "batch_size": 16, "dtype": "float32"},
    "lstm-2x128": {"cell": "lstm", "layers": 2, "hidden": 128, "optimizer": "rmsprop", "batch_size": 16,
                   "dtype": "float32"},
    "gru-2x128": {"cell": "gru", "layers": 2, "hidden": 128, "optimizer": "rmsprop", "batch_size": 16,
                  "dtype": "float32"},
    "lstm-2x128-defaults": {"cell": "lstm", "layers": 2, "hidden": 128, "batch_size": 32, "dtype": "float32"},
    "lstm-2x128-adagrad": {"cell": "lstm", "layers": 2, "hidden": 128, "batch_size": 32, "dtype": "float32",
                           "optimizer": "adagrad", "sigma": 0.01},
    "lstm-2x256": LSTM_256,
    "lstm-2x256-cosine": {**LSTM_256, "schedule": "cosine", "warmup": 100},
    "lstm-2x256-linear": {**LSTM_256, "schedule": "linear", "warmup": 100},
    "lstm-2x256-exponential": {**LSTM_256, "schedule": "exponential", "decay_after": 1, "decay_rate": 0.9},
    "lstm-2x256-cosine-word": {**LSTM_256, "schedule": "cosine", "warmup": 100, "tokens": "word"},
    "lstm-2x256-cosine-bpe": {**LSTM_256, "schedule": "cosine", "warmup": 100, "tokens": "bpe"},
    # more streams a step: larger products, a higher rate
    "lstm-2x256-b64-cosine": {**LSTM_256, "batch_size": 64, "eta": 0.003, "schedule": "cosine", "warmup": 100},
    # for an hour: twice as wide
    "lstm-2x512-cosine": {**LSTM_256, "hidden": 512, "schedule": "cosine", "warmup": 100},
    "lstm-2x512-cosine-word": {**LSTM_256, "hidden": 512, "schedule": "cosine", "warmup": 100, "tokens": "word"},
    "lstm-2x512-cosine-bpe": {**LSTM_256, "hidden": 512, "schedule": "cosine", "warmup": 100, "tokens": "bpe"},
    # the same on both CPUs of a 2-core machine: each thread runs half of the batch's streams
    "lstm-2x512-cosine-2cpu": {**LSTM_256, "hidden": 512, "schedule": "cosine", "warmup": 100, "threads": 2},
    # for a small corpus (a year of tweets, ~100 KB): one layer of 256, more dropout
    "tweets-char": {"cell": "lstm", "hidden": 256, "dropout": 0.3, "batch_size": 16, "dtype": "float32",
                    "schedule": "cosine", "warmup": 50},
    "tweets-word": {"cell": "lstm", "hidden": 256, "dropout": 0.3, "batch_size": 16, "dtype": "float32",
                    "schedule": "cosine", "warmup": 50, "tokens": "word"},
    "tweets-bpe": {"cell": "lstm", "hidden": 256, "dropout": 0.3, "batch_size": 16, "dtype": "float32",
                   "schedule": "cosine", "warmup": 50, "tokens": "bpe"},
    # the transformer at nanoGPT's CPU configuration: AdamW 1e-3, warm-up 100, cosine down to 1e-4, no dropout
    "gpt-4x128": {"cell": "gpt", "layers": 4, "hidden": 128, "heads": 4, "context": 64, "batch_size": 12,
                  "dtype": "float32", "optimizer": "adamw", "eta": 1e-3, "schedule": "cosine", "warmup": 100,
                  "min_eta": 1e-4, "dropout": 0.0},
}


class Clock:
    """Stops the run once ``seconds`` have passed (as Ctrl-C would: it checkpoints and raises
    KeyboardInterrupt) and notes when each held-out loss was measured."""

    def __init__(self, seconds: float):
        self.start, self.seconds, self.stopped = time.perf_counter(), seconds, False
        self.times: dict[int, float] = {}  # update -> seconds since the start, for each logged row
        self.evaluated: set[int] = set()  # the updates whose row holds a held-out loss

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def on_log(self, row: dict) -> None:
        self.times[row["update"]] = self.elapsed()
        if "val_loss" in row:
            self.evaluated.add(row["update"])
        self.on_status(row)

    def costs(self) -> tuple[float, float]:
        """Seconds per update and per evaluation, from the gaps between logged rows (the first left out: it
        holds the set-up)."""
        updates = sorted(self.times)[1:]
        gaps = [(self.times[b] - self.times[a], b - a, b in self.evaluated) for a, b in zip(updates, updates[1:])]
        plain = sorted(gap / count for gap, count, evaluated in gaps if not evaluated)
        per_update = plain[len(plain) // 2] if plain else 1.0
        extra = sorted(gap - count * per_update for gap, count, evaluated in gaps if evaluated)
        return per_update, max(0.0, extra[len(extra) // 2]) if extra else 0.0

    def on_status(self, status: dict) -> None:
        if not self.stopped and self.elapsed() >= self.seconds:
            self.stopped = True
            os.kill(os.getpid(), signal.SIGINT)


def train_row(name: str, corpus: str, seconds: float, held_out: float, seed: int, runs: Path) -> dict:
    """Row ``name`` trained for ``seconds`` of wall clock: its best held-out loss, speed and a sample."""
    import textgen

    settings = ROWS[name]
    common = {"val_fraction": held_out, "val_max_characters": 10**12, "seed": seed, "sample_every": 10**12,
              "passage_length": 0, "progress": False, "force": True}
    probe_seconds = min(40.0, seconds / 8)
    clock = Clock(probe_seconds)
    constant = {key: value for key, value in settings.items() if key not in ("schedule", "warmup", "decay_after",
                                                                               "decay_rate")}
    try:  # a row logged every 5 updates, every fourth with an evaluation: what each costs
        textgen.train(corpus, out=runs / f"{name}-probe", updates=10**9, eval_every=20, log_every=5,
                      checkpoint_every=10**9, callbacks=clock, **constant, **common)
    except KeyboardInterrupt:
        pass
    per_update, per_evaluation = clock.costs()
    evaluations = 15
    total = max(100, int((seconds - evaluations * per_evaluation) / per_update * 0.95))  # 5 %: set-up, checkpoints
    clock = Clock(seconds)
    warmup = min(settings.get("warmup", 0), total // 10)
    try:
        run = textgen.train(corpus, out=runs / name, updates=total, eval_every=max(10, total // evaluations),
                            log_every=max(10, total // 60), checkpoint_every=max(10, total // 10), callbacks=clock,
                            **{**settings, **({"warmup": warmup} if "warmup" in settings else {})}, **common)
    except KeyboardInterrupt:
        run = textgen.Run(runs / name)
    wall = clock.elapsed()
    metrics = run.metrics
    evaluated = [row for row in metrics if "val_loss" in row]
    best = min(evaluated, key=lambda row: row["val_loss"]) if evaluated else None
    speeds = sorted(row["chars_per_sec"] for row in metrics if row.get("chars_per_sec"))
    record = run.config
    corpus_record = record.get("corpus", {})
    tokens = (corpus_record["text_characters"] / corpus_record["characters"]
              if corpus_record.get("text_characters") else 1.0)  # characters a token covers (1 for char)
    return {
        "name": name, "settings": settings, "planned_updates": total, "updates": metrics[-1]["update"] if metrics else 0,
        "wall_seconds": round(wall, 1), "chars_per_sec": speeds[len(speeds) // 2] if speeds else None,
        "characters_per_token": tokens,
        "best_val_nats_per_char": None if best is None else best["val_loss"],
        "best_val_bits_per_char": None if best is None else best["val_loss"] / math.log(2),
        "best_update": None if best is None else best["update"],
        "best_seconds": None if best is None else round(clock.times.get(best["update"], wall), 1),
        "parameters": record.get("parameters"),
        "evaluations": [{"update": row["update"], "val_loss": row["val_loss"], "eta": row.get("eta")}
                        for row in evaluated],
        "sample": run.generate(500, seed=seed),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", help="a corpus textgen reads (e.g. ../shared/data/tinyshakespeare.txt, a tweet "
                        "archive's JSON)")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget per row (10)")
    parser.add_argument("--only", nargs="+", choices=list(ROWS), help="run only these rows")
    parser.add_argument("--held-out", type=float, default=0.1, help="share of the corpus held out, at its end (0.1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every row (1)")
    parser.add_argument("--runs", type=Path, default=Path("bench-runs"), help="where the rows' run folders go")
    parser.add_argument("--json", type=Path, help="also write every result here")
    args = parser.parse_args()

    import numpy as np

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.corpus}: the last {args.held_out:.0%} held out; {args.minutes:g} min per row on {cpus} CPU(s); "
          f"NumPy {np.__version__}", file=sys.stderr)
    results = []
    for name in args.only or list(ROWS):
        result = train_row(name, args.corpus, args.minutes * 60, args.held_out, args.seed, args.runs)
        results.append(result)
        print(f"{name}: best {result['best_val_nats_per_char']} nats/char after {result['updates']:,} updates",
              file=sys.stderr)
        if args.json:  # after every row, so a long run that is cut short keeps what it measured
            args.json.write_text(json.dumps(results, indent=1))
    print()
    print("| row | updates | chars/s | chars/token | best held-out bits/char | nats/char | reached after |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        bits = "-" if r["best_val_bits_per_char"] is None else f"{r['best_val_bits_per_char']:.3f}"
        nats = "-" if r["best_val_nats_per_char"] is None else f"{r['best_val_nats_per_char']:.3f}"
        when = "-" if r["best_seconds"] is None else f"{r['best_seconds'] / 60:.1f} min"
        speed = "-" if r["chars_per_sec"] is None else f"{r['chars_per_sec']:,.0f}"
        print(f"| {r['name']} | {r['updates']:,} | {speed} | {r['characters_per_token']:.2f} | {bits} | {nats} "
              f"| {when} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
