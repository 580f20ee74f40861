"""Text quality for the same wall-clock budget: several models trained on one corpus, best held-out loss each.

    python benchmarks/bench_quality.py ../shared/data/tinyshakespeare.txt            # 10 minutes per model
    python benchmarks/bench_quality.py CORPUS --minutes 2 --only rnn-100 lstm-2x128
    taskset -c 1 python benchmarks/bench_quality.py CORPUS --only rnn-100 --json a.json   # one CPU per run

Every configuration trains through `textgen.trainer.train()` from a fresh model (seed 1) on the corpus minus
its last 5 % (the held-out text, as `textgen train` holds it out), in chunks of about 20 s; after each chunk
its held-out loss per character is measured from the training state (as the trainer does) and the clock
checked. Training and evaluation both count against the budget. The table shows each model's best
held-out loss in nats and bits per character, the updates and training chars/s it managed, and when it
got there; the JSON file (--json) keeps every evaluation and a 500-character sample from each model's
best parameters. Configurations run one after another in this process; to compare runs made in
parallel, give each its own CPU (taskset) so they meet the same conditions. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# name: (cell, layers, hidden, optimizer, batch, dropout, dtype[, eta]): the assignment's RNN; the RNN at the
# batch size that did best in one-minute probes on this machine (B = 1, 8, 16, 32, 64: 32); the gated cells
# at 1 and 2 layers of 128 with RMSprop at its usual rate and B = 16 (RMSprop beat Adam at 0.002 and AdaGrad
# at 0.1 in the same probes, and B = 16 beat 32 and 64), and one 2-layer LSTM with dropout.
CONFIGS = {
    "rnn-100": ("rnn", 1, 100, "adagrad", 1, 0.0, "float64"),
    "rnn-100-b32": ("rnn", 1, 100, "adagrad", 32, 0.0, "float32"),
    "lstm-128": ("lstm", 1, 128, "rmsprop", 16, 0.0, "float32"),
    "lstm-2x128": ("lstm", 2, 128, "rmsprop", 16, 0.0, "float32"),
    "gru-128": ("gru", 1, 128, "rmsprop", 16, 0.0, "float32"),
    "gru-2x128": ("gru", 2, 128, "rmsprop", 16, 0.0, "float32"),
    "lstm-2x128-dropout": ("lstm", 2, 128, "rmsprop", 16, 0.2, "float32"),
}


def train_for(name: str, ids, val_ids, vocab, seconds: float, seed: int) -> dict:
    """Train configuration ``name`` for ``seconds`` of wall clock; every evaluation and the best parameters' sample."""
    import numpy as np

    from textgen.config import RNNConfig, TrainConfig
    from textgen.evaluate import bits_per_char, mean_loss_per_char
    from textgen.models import network_of
    from textgen.sample import SampleConfig, generate
    from textgen.trainer import train

    cell, layers, hidden, optimizer, batch, dropout, dtype, *rest = CONFIGS[name]
    eta = rest[0] if rest else None  # None: the optimizer's usual learning rate
    model = RNNConfig(hidden=hidden, cell=cell, layers=layers, dtype=dtype)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    state, updates, chunk, training_seconds = None, 0, 50, 0.0
    evaluations, best = [], (math.inf, None, 0, 0.0)
    while time.perf_counter() - start < seconds:
        config = TrainConfig(updates=updates + chunk, batch_size=batch, optimizer=optimizer, dropout=dropout, eta=eta,
                             seed=seed, sample_every=10**12, log_every=10**12, checkpoint_every=10**12)
        t0 = time.perf_counter()
        state = train(ids, vocab, config, rng, model, state=state, progress=False)
        spent = time.perf_counter() - t0
        training_seconds += spent
        updates = state.update
        loss = mean_loss_per_char(state.params, val_ids, h0=state.h[0])
        elapsed = time.perf_counter() - start
        evaluations.append({"seconds": round(elapsed, 1), "update": updates, "val_loss": loss})
        if loss < best[0]:
            best = (loss, state.params.copy(), updates, elapsed)
        # chunks of about 20 s, but never past the budget by more than a fraction of one
        remaining = seconds - elapsed
        chunk = max(1, int(chunk * min(20.0, max(remaining, 1.0)) / max(spent, 1e-3)))
    loss, params, best_update, best_seconds = best
    sample = generate(params, vocab, SampleConfig(length=500), np.random.default_rng(seed))
    chars = updates * 25 * batch
    return {
        "name": name, "cell": cell, "layers": layers, "hidden": hidden, "optimizer": optimizer, "batch": batch,
        "dropout": dropout, "dtype": dtype, "parameters": network_of(model, vocab.size).param_count,
        "updates": updates, "chars_per_sec": chars / training_seconds, "best_val_loss": loss,
        "best_val_bpc": bits_per_char(loss), "best_update": best_update, "best_seconds": round(best_seconds, 1),
        "evaluations": evaluations, "sample": sample,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", help="plain-text corpus (e.g. ../shared/data/tinyshakespeare.txt)")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget per model (10)")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), help="run only these")
    parser.add_argument("--seed", type=int, default=1, help="seed of every model (1)")
    parser.add_argument("--json", type=Path, help="also write every result here")
    args = parser.parse_args()

    import numpy as np

    from textgen.vocab import CharVocab

    text = Path(args.corpus).read_text(encoding="utf-8")
    vocab = CharVocab.from_texts([text])
    ids = vocab.encode(text)
    cut = round(ids.size * 0.95)
    train_ids, val_ids = ids[:cut], np.ascontiguousarray(ids[cut:])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.corpus}: {ids.size:,} characters, {vocab.size} distinct; {val_ids.size:,} held out; "
          f"{args.minutes:g} min per model on {cpus} CPU(s); NumPy {np.__version__}", file=sys.stderr)
    results = []
    for name in args.only or list(CONFIGS):
        result = train_for(name, train_ids, val_ids, vocab, args.minutes * 60, args.seed)
        results.append(result)
        print(f"{name}: best {result['best_val_loss']:.3f} nats/char after {result['updates']:,} updates",
              file=sys.stderr)
        if args.json:  # after every model, so a long run that is cut short keeps what it measured
            args.json.write_text(json.dumps(results, indent=1))
    print()
    print("| cell | layers | hidden | parameters | optimizer | batch | updates | chars/s | best held-out nats/char "
          "| bits/char | reached after |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['cell']} | {r['layers']} | {r['hidden']} | {r['parameters']:,} | {r['optimizer']} | {r['batch']} "
              f"| {r['updates']:,} | {r['chars_per_sec']:,.0f} | {r['best_val_loss']:.3f} | {r['best_val_bpc']:.3f} "
              f"| {r['best_seconds'] / 60:.1f} min |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
