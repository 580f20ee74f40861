"""The vanilla character RNN of DD2424 Assignment 4: parameters, forward pass, backprop through time, one-step sampling.

Equations (per stream, time step t):
    a_t = W h_{t-1} + U x_t + b,   h_t = tanh(a_t),   o_t = V h_t + c,   p_t = softmax(o_t)
    loss = sum_t -log p_t[y_t]
x_t is one-hot, so U x_t is column x_t of U: we gather columns instead of multiplying.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from textgen.config import RNNConfig

PARAM_NAMES = ("b", "c", "U", "W", "V")  # the order parameters are laid out in the flat buffer
# V right after W, both (·, m) row-major, makes the stacked [W; V] a view (the backward loop uses it)
assert PARAM_NAMES[-2:] == ("W", "V")


def param_shapes(hidden: int, vocab_size: int) -> dict[str, tuple[int, ...]]:
    """Shapes of b, c, U, W, V for m = ``hidden`` and K = ``vocab_size``."""
    m, K = hidden, vocab_size
    return {"b": (m,), "c": (K,), "U": (m, K), "W": (m, m), "V": (K, m)}


def param_count(hidden: int, vocab_size: int) -> int:
    """Numbers in b, c, U, W and V together."""
    m, K = hidden, vocab_size
    return m + K + 2 * m * K + m * m


def training_bytes(hidden: int, vocab_size: int, seq_length: int, batch: int, dtype: str) -> int:
    """Memory a training run allocates for the model, before any of it is allocated.

    θ, its best copy, the gradients, AdaGrad's memory and two scratch buffers (6 × the parameters), plus
    a `Workspace`'s buffers for ``batch`` streams (H, Z, E, D, the logits and the index arrays).
    """
    m, K, n, B = hidden, vocab_size, seq_length, batch
    size = np.dtype(dtype).itemsize
    workspace = (n + 1) * B * m + n * B * (m + K + 1) + (n + 1) * B * (m + K) + n * B * m + m * (m + K + 1) + n * B * K
    return size * (6 * param_count(m, K) + workspace + 4 * B * m) + 8 * 3 * n * B


def sampling_bytes(hidden: int, vocab_size: int, streams: int, dtype: str) -> int:
    """Memory of one step of ``streams`` sampling streams beside the parameters (states, probabilities, draws)."""
    return np.dtype(dtype).itemsize * (param_count(hidden, vocab_size) + 8 * streams * (hidden + vocab_size))


@dataclass
class Params:
    """b, c, U, W, V as views into one flat buffer, so clipping and AdaGrad are a few whole-array calls."""

    flat: np.ndarray  # (n_params,) every parameter, in PARAM_NAMES order
    hidden: int  # m
    vocab_size: int  # K
    arrays: dict[str, np.ndarray] = field(init=False, repr=False)  # name -> view into ``flat``

    def __post_init__(self):
        self.arrays = {}
        offset = 0
        for name, shape in param_shapes(self.hidden, self.vocab_size).items():
            size = int(np.prod(shape))
            self.arrays[name] = self.flat[offset : offset + size].reshape(shape)
            offset += size
        assert offset == self.flat.size, "flat buffer does not match the parameter shapes"

    @classmethod
    def zeros(cls, hidden: int, vocab_size: int, dtype: str | np.dtype = "float64") -> Params:
        """All-zero parameters (also used as gradient and AdaGrad buffers)."""
        size = sum(int(np.prod(s)) for s in param_shapes(hidden, vocab_size).values())
        return cls(np.zeros(size, dtype=dtype), hidden, vocab_size)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], dtype: str | np.dtype | None = None) -> Params:
        """Copy separate arrays into a new flat buffer."""
        hidden, vocab_size = arrays["U"].shape
        params = cls.zeros(hidden, vocab_size, dtype or arrays["U"].dtype)
        for name in PARAM_NAMES:
            params.arrays[name][...] = arrays[name]
        return params

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def copy(self) -> Params:
        """An independent copy."""
        return Params(self.flat.copy(), self.hidden, self.vocab_size)

    def zeros_like(self) -> Params:
        """Zeros of the same shapes and dtype."""
        return Params(np.zeros_like(self.flat), self.hidden, self.vocab_size)


def init_params(config: RNNConfig, vocab_size: int, rng: np.random.Generator) -> Params:
    """U, W, V ~ N(0, sigma^2) drawn in that order from ``rng``; b = c = 0."""
    params = Params.zeros(config.hidden, vocab_size, config.dtype)
    with np.errstate(over="ignore"):  # an absurd sigma gives inf, which training then names as a non-finite loss
        for name in ("U", "W", "V"):
            params[name][...] = config.sigma * rng.standard_normal(params[name].shape)
    return params


@dataclass
class LossAndGrads:
    """What one forward and backward pass over a window returns."""

    loss: float  # summed cross-entropy over the window (mean over streams when batched)
    grads: Params  # dL/dθ keyed like the parameters (mean over streams when batched)
    h_last: np.ndarray  # hidden state after the last step, (m,) or (B, m)


MIN_STREAMS_PER_THREAD = 32  # with fewer streams per thread, handing work over costs what it saves
SHARED_SHIFT_ROWS = 256  # blocks of at least this many rows try one softmax shift for the block (see _softmax)


def default_threads(batch: int) -> int:
    """How many threads `make_workspace` gives ``batch`` streams: one per CPU this process may run on,
    but at most one per MIN_STREAMS_PER_THREAD streams, so a single stream always runs in one thread."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, batch // MIN_STREAMS_PER_THREAD))


class Workspace:
    """Preallocated buffers for windows of ``seq_length`` steps over ``batch`` streams, all in this thread.

    Arrays are time-major, one row per (step, stream): row t of H holds h_t for every stream,
    H[0] = h_prev. Rows of Z are [h_{t-1} | x_t | 1], so dL/d[W | U | b] is one product. Row t of E is
    [dL/da_t | dL/do_{t-1}] side by side, so that one product with the stacked [W; V] (how W and V
    already lie in the flat parameter buffer) gives both terms of dL/dh_t in the backward loop.
    Reusing one workspace across updates avoids allocating in the training loop.

    With ``average`` (the default) the loss and gradients are means over the streams; without, sums
    (what `ParallelWorkspace` adds up over its parts).
    """

    threads = 1  # everything runs in the calling thread

    def __init__(self, hidden: int, vocab_size: int, seq_length: int, batch: int = 1, dtype="float64",
                 average: bool = True):
        n, B, m, K = seq_length, batch, hidden, vocab_size
        self.shape = (n, B)
        self._divisor = B if average else 1
        self.H = np.zeros((n + 1, B, m), dtype=dtype)  # h_0 .. h_n; h_t holds U x_t + b until step t
        self.Z = np.zeros((n * B, m + K + 1), dtype=dtype)  # [h_{t-1} | one-hot x_t | 1], filled in backward
        self.Z[:, -1] = 1.0
        self.h_last = self.H[-1]  # (B, m), h_n after a forward pass
        self.E = np.zeros((n + 1, B, m + K), dtype=dtype)  # [dL/da_t | p_{t-1}, later dL/do_{t-1}]; dL/da_n = 0
        self.D = np.zeros((n, B, m), dtype=dtype)  # tanh'(a_t) = 1 - h_t^2
        self.grads = Params.zeros(hidden, vocab_size, dtype)
        self._dWUb = np.zeros((m, m + K + 1), dtype=dtype)  # [dL/dW | dL/dU | dL/db] before it is split up
        self._logits = np.zeros((n * B, K), dtype=dtype)  # o_t, shifted, then exp(o_t)
        self._row = np.zeros((n * B, 1), dtype=dtype)  # per-row max, then sum, in the softmax
        self._ones_K = np.ones(K, dtype=dtype)
        self._ones_rows = np.ones(n * B, dtype=dtype)
        self._c_shifted = np.zeros(K, dtype=dtype)
        # exp(x) is a normal number for every x >= -_exp_range: within that range a shared shift is safe
        self._exp_range = 0.9 * -float(np.log(np.finfo(dtype).tiny))
        self._shared_shift = n * B >= SHARED_SHIFT_ROWS
        # (step, stream) matrices as 2-D views
        self._H_in = self.H[:-1].reshape(n * B, m)  # h_{t-1}
        self._H_out = self.H[1:].reshape(n * B, m)  # h_t
        self._D = self.D.reshape(n * B, m)
        self._dA = self.E[:-1, :, :m].reshape(n * B, m)  # dL/da_t
        self._P = self.E[1:, :, m:].reshape(n * B, K)  # p_t, later dL/do_t
        rows = np.arange(n * B)
        self._p_index = (rows + B) * (m + K) + m  # flat index in E of p_t[0] for each (step, stream)
        self._x_index = rows * (m + K + 1) + m  # flat index in Z of x_t[0] for each (step, stream)
        self._hot = self._x_index  # Z's ones from the last window (a harmless placeholder before the first)
        # Per-step views for the time loops, made once; a single stream gets 1-D rows (BLAS
        # matrix-vector products, the cheapest call per step).
        h, e, d = (list(a[:, 0]) if B == 1 else list(a) for a in (self.H, self.E, self.D))
        self._step = np.zeros_like(h[0])  # scratch for one time step: (m,) or (B, m)
        self._forward_steps = list(pairwise(h))  # (h_{t-1}, slot of h_t) for t = 1..n
        # ([dL/da_{t+1} | dL/do_t], tanh'(a_t), slot of dL/da_t) for t = n..1
        self._backward_steps = [(e[t + 1], d[t], e[t][..., :m]) for t in range(n - 1, -1, -1)]

    def _target_index(self, targets: np.ndarray) -> np.ndarray:
        """Flat index into E of p_t[y_t] for every (step, stream)."""
        assert targets.shape == self.shape, "targets must be (seq_length, batch)"
        return self._p_index + targets.reshape(-1)

    # ------------------------------------------------------------------ forward

    def forward(self, params: Params, inputs: np.ndarray, h_prev: np.ndarray) -> None:
        """Fill H with h_0..h_n and the probabilities p_1..p_n for ``inputs`` (n, B) from ``h_prev`` (B, m)."""
        assert inputs.shape == self.shape, "inputs must be (seq_length, batch)"
        self.H[0] = h_prev
        self._forward_loop(params, inputs)
        self._softmax(params)

    def _forward_loop(self, params: Params, inputs: np.ndarray) -> None:
        U, W, b = params["U"], params["W"], params["b"]
        # U x_t + b for every step at once: x_t is one-hot, so U x_t is column x_t of U (row x_t of U^T).
        np.add(U.T[inputs], b, out=self.H[1:])
        # h_t = tanh(W h_{t-1} + U x_t + b), with the states as rows: h_{t-1}^T W^T.
        WT, step, add, tanh = W.T, self._step, np.add, np.tanh
        for h_prev_t, h_t in self._forward_steps:
            h_prev_t.dot(WT, step)
            add(h_t, step, h_t)
            tanh(h_t, h_t)

    def _softmax(self, params: Params) -> None:
        """p_t = softmax(V h_t + c) for every (step, stream)."""
        c, O, row = params["c"], self._logits, self._row
        np.dot(self._H_out, params["V"].T, O)
        # Shift the logits so that exp cannot overflow. Per row by its max; for a big block, one shift
        # for the whole block is much cheaper (two whole-array reductions instead of a reduction per
        # row) and as safe when the block's logits span less than _exp_range, so nothing underflows.
        shared = self._shared_shift
        if shared:
            shift = O.max() + c.max()
            shared = shift - (O.min() + c.min()) < self._exp_range  # False too for NaN
        if shared:
            np.subtract(c, shift, self._c_shifted)
            np.add(O, self._c_shifted, O)
        else:
            np.add(O, c, O)
            np.maximum.reduce(O, axis=1, keepdims=True, out=row)
            np.subtract(O, row, O)
        np.exp(O, O)
        np.dot(O, self._ones_K, row[:, 0])
        np.divide(O, row, self._P)

    def _loss(self, index: np.ndarray) -> np.floating:
        """Summed -log p_t[y_t] at these flat indices into E, divided by the streams when averaging."""
        return -np.log(self.E.reshape(-1).take(index)).sum() / self._divisor

    def loss(self, targets: np.ndarray) -> np.floating:
        """Summed cross-entropy of the filled probabilities against ``targets`` (n, B), averaged over streams.

        Returned as a NumPy scalar of the workspace dtype, so an extended-precision check keeps its digits.
        """
        return self._loss(self._target_index(targets))

    # ------------------------------------------------------------------ backward

    def backward(self, params: Params, inputs: np.ndarray, targets: np.ndarray) -> Params:
        """Backprop through time after ``forward``; returns ``self.grads`` (mean over streams)."""
        self._output_grads(self._target_index(targets))
        return self._backward(params, inputs)

    def _output_grads(self, index: np.ndarray) -> None:
        """dL/do_t, dL/dV and dL/dc, and tanh'(a_t)."""
        g, dO, H_out, D = self.grads, self._P, self._H_out, self._D
        self.E.reshape(-1)[index] -= 1.0  # dL/do_t = p_t - y_t (softmax with cross-entropy), over p_t
        np.dot(dO.T, H_out, g["V"])  # dL/dV = sum_t dL/do_t h_t^T
        np.dot(self._ones_rows, dO, g["c"])  # dL/dc = sum_t dL/do_t
        np.multiply(H_out, H_out, D)
        np.subtract(1.0, D, D)  # tanh'(a_t) = 1 - h_t^2

    def _backward(self, params: Params, inputs: np.ndarray) -> Params:
        """Backprop from dL/do_t on: the loop back in time, then dL/d[W | U | b]; returns ``self.grads``."""
        # x_t as one-hot columns of Z: clear the last window's ones, set this one's.
        Z = self.Z.reshape(-1)
        Z[self._hot] = 0.0
        self._hot = self._x_index + inputs.reshape(-1)
        Z[self._hot] = 1.0
        m, K = params.hidden, params.vocab_size
        # W and V lie next to each other in the flat buffer, so [W; V] is a view: one product per step.
        WV = params.flat[-(m + K) * m :].reshape(m + K, m)
        # Backwards in time: dL/da_t = (W^T dL/da_{t+1} + V^T dL/do_t) * (1 - h_t^2), with dL/da_n = 0.
        step, multiply = self._step, np.multiply
        for e_next, d_t, da_t in self._backward_steps:
            e_next.dot(WV, step)  # [dL/da_{t+1} | dL/do_t]^T [W; V], as a row
            multiply(step, d_t, da_t)
        # [dL/dW | dL/dU | dL/db] = sum_t dL/da_t [h_{t-1} | x_t | 1]^T, in one product.
        g, dWUb = self.grads, self._dWUb
        np.copyto(self.Z[:, :m], self._H_in)
        np.dot(self._dA.T, self.Z, dWUb)
        np.copyto(g["W"], dWUb[:, :m])
        np.copyto(g["U"], dWUb[:, m:-1])
        np.copyto(g["b"], dWUb[:, -1])
        if self._divisor != 1:
            np.divide(g.flat, self._divisor, g.flat)  # the mean over streams
        return g

    def loss_and_grads(self, params: Params, inputs: np.ndarray, targets: np.ndarray, h_prev: np.ndarray) -> float:
        """Forward and backward over one window; gradients land in ``self.grads``, h_n in ``self.h_last``."""
        index = self._target_index(targets)
        self.forward(params, inputs, h_prev)
        loss = self._loss(index)
        self._output_grads(index)
        self._backward(params, inputs)
        return float(loss)


class ParallelWorkspace:
    """A `Workspace` whose streams are split into groups that run in threads of their own.

    Each group makes its whole window (both time loops and every whole-window product) on its own
    buffers, so the threads meet once per window, to add up their gradients. NumPy releases the GIL
    inside BLAS and elementwise loops on more than a few hundred numbers, so the groups really run
    in parallel. Each thread makes its own BLAS calls, so such a process is best run with one BLAS
    thread rather than letting both kinds of thread compete for the cores (the CLI sets that up
    before NumPy loads; see `textgen.cli.use_one_blas_thread`).
    """

    def __init__(self, hidden: int, vocab_size: int, seq_length: int, batch: int, dtype="float64", threads: int = 2):
        assert 2 <= threads <= batch, "a parallel workspace needs 2 to batch threads"
        self.shape = (seq_length, batch)
        self.threads = threads
        bounds = np.linspace(0, batch, threads + 1).astype(int)
        self._streams = [slice(int(a), int(b)) for a, b in pairwise(bounds)]
        self._parts = [
            Workspace(hidden, vocab_size, seq_length, s.stop - s.start, dtype, average=False) for s in self._streams
        ]
        self.grads = self._parts[0].grads  # the other parts' sums are added into the first's
        self.h_last = np.zeros((batch, hidden), dtype=dtype)
        self._pool = ThreadPoolExecutor(threads - 1, "textgen-workspace")

    def _run(self, task, *args) -> list:
        """[task(part, streams, *args) for each part]: the first in this thread, the others in the pool."""
        pending = [self._pool.submit(task, part, s, *args) for part, s in zip(self._parts[1:], self._streams[1:])]
        first = task(self._parts[0], self._streams[0], *args)
        return [first] + [future.result() for future in pending]

    def _mean_grads(self) -> Params:
        """Add the parts' gradient sums into the first part's buffer and divide by the streams."""
        g = self.grads
        for part in self._parts[1:]:
            np.add(g.flat, part.grads.flat, g.flat)
        np.divide(g.flat, self.shape[1], g.flat)
        return g

    def forward(self, params: Params, inputs: np.ndarray, h_prev: np.ndarray) -> None:
        """As `Workspace.forward`."""
        def task(part, s):
            part.forward(params, inputs[:, s], h_prev[s])
            self.h_last[s] = part.h_last

        self._run(task)

    def loss(self, targets: np.ndarray) -> np.floating:
        """As `Workspace.loss`."""
        return sum(part.loss(targets[:, s]) for part, s in zip(self._parts, self._streams)) / self.shape[1]

    def backward(self, params: Params, inputs: np.ndarray, targets: np.ndarray) -> Params:
        """As `Workspace.backward`."""
        self._run(lambda part, s: part.backward(params, inputs[:, s], targets[:, s]))
        return self._mean_grads()

    def loss_and_grads(self, params: Params, inputs: np.ndarray, targets: np.ndarray, h_prev: np.ndarray) -> float:
        """As `Workspace.loss_and_grads`."""
        assert inputs.shape == self.shape, "inputs must be (seq_length, batch)"

        def task(part, s):
            loss = part.loss_and_grads(params, inputs[:, s], targets[:, s], h_prev[s])
            self.h_last[s] = part.h_last
            return loss

        loss = sum(self._run(task)) / self.shape[1]
        self._mean_grads()
        return loss


def make_workspace(hidden: int, vocab_size: int, seq_length: int, batch: int = 1, dtype="float64",
                   threads: int | None = None) -> Workspace | ParallelWorkspace:
    """A workspace for ``batch`` streams: split over ``threads`` threads (by default `default_threads`)."""
    threads = default_threads(batch) if threads is None else max(1, min(int(threads), batch))
    if threads == 1:
        return Workspace(hidden, vocab_size, seq_length, batch, dtype)
    return ParallelWorkspace(hidden, vocab_size, seq_length, batch, dtype, threads)


def loss_and_grads(params: Params, inputs, targets, h_prev: np.ndarray) -> LossAndGrads:
    """One window of one stream, as in the assignment.

    ``inputs`` and ``targets`` are id sequences of length n (targets are inputs shifted by one
    character); ``h_prev`` is (m,). Returns the summed loss, fresh gradient arrays and h_n (m,).
    """
    inputs = np.asarray(inputs, dtype=np.intp).reshape(-1, 1)
    targets = np.asarray(targets, dtype=np.intp).reshape(-1, 1)
    assert inputs.shape == targets.shape, "inputs and targets must have the same length"
    work = Workspace(params.hidden, params.vocab_size, inputs.shape[0], 1, params.flat.dtype)
    loss = work.loss_and_grads(params, inputs, targets, np.asarray(h_prev).reshape(1, -1))
    return LossAndGrads(loss, work.grads.copy(), work.h_last[0].copy())


def window_loss(params: Params, inputs, targets, h_prev: np.ndarray) -> np.floating:
    """Only the summed cross-entropy of one window (the forward pass), in the parameters' dtype."""
    inputs = np.asarray(inputs, dtype=np.intp).reshape(-1, 1)
    targets = np.asarray(targets, dtype=np.intp).reshape(-1, 1)
    work = Workspace(params.hidden, params.vocab_size, inputs.shape[0], 1, params.flat.dtype)
    work.forward(params, inputs, np.asarray(h_prev).reshape(1, -1))
    return work.loss(targets)


def step_probabilities(params: Params, h: np.ndarray, x: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """One step for sampling: h_t = tanh(W h + U x + b), p = softmax(V h_t + c).

    ``h`` is (m,) or (B, m) and ``x`` an id or (B,) ids; returns (h_t, p) with p of shape (K,) or (B, K).
    """
    U, W, V, b, c = params["U"], params["W"], params["V"], params["b"], params["c"]
    # Few, in-place calls: the sampler makes one of these per character.
    h_next = np.add(U.T[x], b)
    np.add(h_next, h.dot(W.T), h_next)
    np.tanh(h_next, h_next)
    p = h_next.dot(V.T)
    np.add(p, c, p)
    np.subtract(p, np.maximum.reduce(p, axis=-1, keepdims=True), p)
    np.exp(p, p)
    np.divide(p, np.add.reduce(p, axis=-1, keepdims=True), p)
    return h_next, p
