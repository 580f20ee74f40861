"""Parallel efficiency of `textgen sweep`: N trials as one sweep, beside the same N runs made one after another
with `textgen train`, in the same session. Needs the sweep extra. Run by hand on a quiet machine:

    python benchmarks/bench_sweep.py ../shared/data/tinyshakespeare.txt [--trials 8] [--updates 5000]

Prints both wall times and their ratio (the target on 2 cores: at least 1.8x), and checks that each sweep
trial's final parameters equal those of its sequential twin (same settings and seed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def textgen(*argv: object) -> None:
    beside = Path(sys.executable).parent / "textgen"  # the environment this script runs in
    command = [str(beside) if beside.exists() else shutil.which("textgen") or "textgen", *map(str, argv)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--updates", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    etas = [round(0.02 + 0.03 * i, 3) for i in range(args.trials)]
    spec = work / "spec.toml"
    spec.write_text(f'[train]\ncorpus = ["{args.corpus.resolve()}"]\nupdates = {args.updates}\nval_fraction = 0.05\n'
                    f"seed = 1\n\n[search]\neta = {etas}\n", encoding="utf-8")
    start = time.perf_counter()
    textgen("sweep", spec, "--out", work / "sweep")
    sweep_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for index, eta in enumerate(etas):
        textgen("train", "--corpus", args.corpus, "--updates", args.updates, "--val-fraction", 0.05, "--seed", 1,
                "--eta", eta, "--out", work / f"run-{index}", "-q")
    sequential_seconds = time.perf_counter() - start
    trials = json.loads((work / "sweep" / "trials.json").read_text())
    same = 0
    for name, entry in trials.items():
        index = etas.index(entry["settings"]["eta"])
        with np.load(work / "sweep" / "trials" / name / "last.npz") as ours, \
                np.load(work / f"run-{index}" / "last.npz") as theirs:
            same += all(np.array_equal(ours[key], theirs[key]) for key in ours.files)
    print(f"{args.trials} trials of {args.updates:,} updates on {args.corpus.name}")
    print(f"  one after another (textgen train): {sequential_seconds:7.1f} s")
    print(f"  as one sweep (textgen sweep):      {sweep_seconds:7.1f} s   (Ray's start included)")
    print(f"  ratio: {sequential_seconds / sweep_seconds:.2f}x faster as a sweep; "
          f"{same} of {args.trials} trials bit-identical to their sequential twin")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
