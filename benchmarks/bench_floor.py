"""How fast a batch-1 NumPy trainer of this model could possibly be: the calls no implementation can avoid, timed.

    python benchmarks/bench_floor.py                  # vocabulary of 65 (tinyshakespeare), 15 rounds
    python benchmarks/bench_floor.py --vocab 80 --rounds 25

At batch 1 every time step depends on the one before, so a NumPy trainer must make, per step, at
least one matrix-vector product and one tanh going forward and one product and one elementwise
multiply going back (4 calls), and its update must take a square root and divide for every
parameter (AdaGrad). This script times exactly that minimum ("floor"), on the same buffers and
views the real trainer uses, beside one update of textgen's exact trainer (loss_and_grads, clip,
AdaGrad: no training loop) and one update of the textbook loop (tests/reference.py), interleaved
over rounds in one process, and prints medians and the ratios they allow. Not part of the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textgen.config import RNNConfig
from textgen.models import init_params
from textgen.models.rnn import Workspace
from textgen.optim import AdaGrad

SEQ_LENGTH, HIDDEN, CLIP = 25, 100, 5.0


def load_reference():
    spec = importlib.util.spec_from_file_location("reference", REPO / "tests" / "reference.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    return reference


def cases_for(dtype: str, K: int, rng: np.random.Generator) -> dict:
    """name -> function doing one update's worth of that work, all on one model of this dtype."""
    params = init_params(RNNConfig(hidden=HIDDEN, dtype=dtype), K, rng)
    params.flat[...] = 0.05 * rng.standard_normal(params.flat.size)  # past the first updates' tiny values
    work = Workspace(HIDDEN, K, SEQ_LENGTH, 1, dtype)
    ids = rng.integers(0, K, (SEQ_LENGTH + 1, 1))
    inputs, targets = ids[:-1], ids[1:]
    h = np.zeros((1, HIDDEN), dtype=dtype)
    optimizer = AdaGrad(params.flat.size, dtype=dtype)
    flat = params.flat.copy()  # the update cases move this copy, so every case sees the same model
    grads = work.grads.flat

    def textgen_update():
        work.loss_and_grads(params, inputs, targets, h)
        np.clip(grads, -CLIP, CLIP, out=grads)
        optimizer.step(flat, grads)

    textgen_update()  # fills every buffer, so the floor below runs on real values
    W = params["W"]
    WT = W.T
    WV = params.flat[-(HIDDEN + K) * HIDDEN :].reshape(HIDDEN + K, HIDDEN)
    forward = work._forward_steps  # (h_{t-1}, h_t) views, as the trainer's loop uses them
    backward = work._backward_steps  # ([dL/da_{t+1} | dL/do_t], 1 - h_t^2, dL/da_t) views
    step = np.empty(HIDDEN, dtype=dtype)
    memory = optimizer.memory + 1.0
    root = np.empty_like(memory)

    def floor():
        tanh, multiply = np.tanh, np.multiply
        for h_prev_t, h_t in forward:  # one product and one tanh per step (the input term left out)
            h_prev_t.dot(WT, step)
            tanh(step, h_t)
        for e_next, d_t, da_t in backward:  # one product and one multiply per step
            e_next.dot(WV, step)
            multiply(step, d_t, da_t)
        np.sqrt(memory, root)  # AdaGrad's square root and division for every parameter
        np.divide(grads, root, root)

    P, O, row, ones = work._P, work._logits, work._row, work._ones_K
    H_out, D, dA, Z, dWUb = work._H_out, work._D, work._dA, work.Z, work._dWUb
    V_T, index = params["V"].T, work._target_index(targets)
    E, g = work.E.reshape(-1), work.grads
    squares = np.empty_like(memory)

    def floor_and_window_minimum():
        floor()
        # the least whole-window work left: logits, softmax, loss, dL/do, dL/dV, tanh', dL/d[W | U | b]
        np.dot(H_out, V_T, O)
        np.exp(O, O)
        np.dot(O, ones, row[:, 0])
        np.divide(O, row, P)
        -np.log(E.take(index)).sum()
        E[index] -= 1.0
        np.dot(P.T, H_out, g["V"])
        np.multiply(H_out, H_out, D)  # (1 - h^2 needs a second call; counted as one)
        np.dot(dA.T, Z, dWUb)
        # and the rest of the update: clip, accumulate g^2, move the parameters
        np.clip(grads, -CLIP, CLIP, out=grads)
        np.multiply(grads, grads, squares)
        np.add(memory, squares, memory)
        np.subtract(flat, root, flat)

    def time_loops_as_trained():
        work._forward_loop(params, inputs)
        for e_next, d_t, da_t in backward:
            e_next.dot(WV, step)
            np.multiply(step, d_t, da_t)

    def adagrad_and_clip():
        np.clip(grads, -CLIP, CLIP, out=grads)
        optimizer.step(flat, grads)

    return {
        "textgen update": textgen_update,
        "floor": floor,
        "floor + window minimum": floor_and_window_minimum,
        "time loops (as trained)": time_loops_as_trained,
        "clip + AdaGrad": adagrad_and_clip,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=65, help="K, the vocabulary size (65: tinyshakespeare)")
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds (40)")
    parser.add_argument("--seconds", type=float, default=0.1, help="seconds per case per round (0.1)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    reference = load_reference()
    K = args.vocab
    arrays = {name: 0.01 * rng.standard_normal(shape) for name, shape in
              (("U", (HIDDEN, K)), ("W", (HIDDEN, HIDDEN)), ("V", (K, HIDDEN)))}
    arrays.update(b=np.zeros(HIDDEN), c=np.zeros(K))
    text_ids = rng.integers(0, K, 10_000)

    def textbook_update():
        reference.textbook_training(**arrays, ids=text_ids, n_updates=1, seq_length=SEQ_LENGTH)

    cases = {("float64", "textbook update"): textbook_update}
    for dtype in ("float64", "float32"):
        for name, function in cases_for(dtype, K, rng).items():
            cases[(dtype, name)] = function
    times: dict[tuple, list[float]] = {key: [] for key in cases}
    for _ in range(args.rounds):
        for key, function in cases.items():
            function()
            calls, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < args.seconds:
                function()
                calls += 1
            times[key].append(elapsed / calls * 1e6)
    median = {key: statistics.median(values) for key, values in times.items()}
    fastest = {key: min(values) for key, values in times.items()}
    textbook, textbook_fastest = median[("float64", "textbook update")], fastest[("float64", "textbook update")]

    print(f"m = {HIDDEN}, K = {K}, {SEQ_LENGTH} steps per update; {args.rounds} interleaved rounds of "
          f"{args.seconds:g} s per case; NumPy {np.__version__}")
    print()
    print("| dtype | work per update | µs (median) | chars/s if that were all | × textbook "
          "| µs (fastest round) | × textbook (fastest rounds) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for key, value in median.items():
        dtype, name = key
        print(f"| {dtype} | {name} | {value:,.1f} | {SEQ_LENGTH / value * 1e6:,.0f} | {textbook / value:.1f} "
              f"| {fastest[key]:,.1f} | {textbook_fastest / fastest[key]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
