"""Peak memory of `textgen train` against corpus size: it should stay flat as the corpus grows.

    python benchmarks/bench_memory.py                  # 10 MB, 100 MB and 1 GB generated corpora
    python benchmarks/bench_memory.py --sizes-mb 10 200

Each size gets a generated plain-text corpus (random words, line breaks, punctuation) in a
temporary folder, then `textgen train --updates N` runs in a child process and that child's own
peak resident memory (ru_maxrss from wait4) is read. Files above the streaming threshold are encoded to ids.bin in the run
folder and memory-mapped; the table shows the encoded size beside the peak so the two can be told apart.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he", "I", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "they", "you", "were", "her", "she", "there", "one", "all", "we", "their", "been", "has", "when", "who", "will", "more", "no", "if", "out", "so", "said", "what", "up", "its", "about", "into", "than", "them", "can", "only", "other", "new", "some", "could", "time", "these", "two", "may", "then", "do", "first", "any", "my", "now", "such", "like", "our", "over", "man", "me", "even", "most", "made", "after", "also", "did", "many", "before", "must", "through", "back", "years", "where", "much"]


def write_corpus(path: Path, size_bytes: int, seed: int = 0) -> None:
    """Random English-looking text of about ``size_bytes``, written in blocks."""
    rng = random.Random(seed)
    block = []
    for _ in range(20_000):
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
        block.append(sentence.capitalize() + rng.choice(".,;!?") + ("\n" if rng.random() < 0.3 else " "))
    chunk = "".join(block).encode()
    with path.open("wb") as stream:
        written = 0
        while written < size_bytes:
            part = chunk[: size_bytes - written]
            stream.write(part)
            written += len(part)


def peak_of_training(corpus: Path, run: Path, updates: int) -> tuple[float, float]:
    """Run `textgen train` in a child process; returns (its own peak RSS in MiB, seconds)."""
    command = [sys.executable, "-m", "textgen.cli", "train", "--corpus", str(corpus), "--updates", str(updates),
               "--no-progress", "--seed", "1", "--out", str(run), "--sample-every", str(updates)]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own resource usage
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        if child.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"textgen train failed on {corpus}:\n{errors.read().decode()}")
    return usage.ru_maxrss / 1024, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[10, 100, 1000], help="corpus sizes in MB")
    parser.add_argument("--updates", type=int, default=2000, help="updates per training run (2000)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="textgen-bench-memory-") as folder:
        for size_mb in sorted(args.sizes_mb):
            corpus = Path(folder) / f"corpus-{size_mb}mb.txt"
            write_corpus(corpus, size_mb * 1_000_000)
            run = Path(folder) / f"run-{size_mb}"
            peak, seconds = peak_of_training(corpus, run, args.updates)
            ids = run / "ids.bin"
            mapped = ids.stat().st_size / 2**20 if ids.exists() else 0.0
            rows.append((size_mb, peak, mapped, seconds))
            corpus.unlink()
    print(f"{'corpus MB':>10} {'peak RSS MiB':>13} {'mapped ids MiB':>15} {'seconds':>8}")
    for size_mb, peak, mapped, seconds in rows:
        print(f"{size_mb:>10} {peak:>13.0f} {mapped:>15.0f} {seconds:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
