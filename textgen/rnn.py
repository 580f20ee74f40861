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

from textgen.errors import ConfigError

PARAM_NAMES = ("b", "c", "U", "W", "V")  # the order parameters are laid out in the flat buffer
# V right after W, both (·, m) row-major, makes the stacked [W; V] a view (the backward loop uses it)
assert PARAM_NAMES[-2:] == ("W", "V")
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class RNNConfig:
    """Shape and initialisation of the network."""

    hidden: int = 100  # m, number of hidden units
    sigma: float = 0.01  # standard deviation of the normal initialisation of U, W, V
    dtype: str = "float64"  # float64 (as in the assignment) or float32 (faster)

    def __post_init__(self):
        if not isinstance(self.hidden, int) or self.hidden < 1:
            raise ConfigError(f"--hidden must be a positive integer, got {self.hidden!r}")
        if not self.sigma > 0 or not np.isfinite(self.sigma):
            raise ConfigError(f"--sigma must be a positive number, got {self.sigma!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


def param_shapes(hidden: int, vocab_size: int) -> dict[str, tuple[int, ...]]:
    """Shapes of b, c, U, W, V for m = ``hidden`` and K = ``vocab_size``."""
    m, K = hidden, vocab_size
    return {"b": (m,), "c": (K,), "U": (m, K), "W": (m, m), "V": (K, m)}


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
    """How many threads a Workspace uses for ``batch`` streams: one per CPU this process may run on,
    but at most one per MIN_STREAMS_PER_THREAD streams, so a single stream always runs in one thread."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, batch // MIN_STREAMS_PER_THREAD))


@dataclass
class _StreamGroup:
    """Views for the time loops over some of the streams, which run independently of the others."""

    streams: slice
    step: np.ndarray  # scratch for one time step: (m,) for a single stream, else (streams, m)
    forward_steps: list  # (h_{t-1}, slot of h_t) for t = 1..n
    backward_steps: list  # ([dL/da_{t+1} | dL/do_t], tanh'(a_t), slot of dL/da_t) for t = n..1


@dataclass
class _RowBlock:
    """Views of a block of rows of the (step, stream) matrices, and where their gradient sums go."""

    rows: slice
    H_in: np.ndarray  # h_{t-1}
    H_out: np.ndarray  # h_t
    D: np.ndarray  # tanh'(a_t)
    dA: np.ndarray  # dL/da_t
    P: np.ndarray  # p_t, later dL/do_t
    Z: np.ndarray  # [h_{t-1} | x_t | 1]
    logits: np.ndarray  # o_t, shifted, then exp(o_t)
    row: np.ndarray  # (rows, 1) per-row sum (and max) in the softmax
    ones: np.ndarray  # (rows,) ones, for sums over rows as products
    shared_shift: bool  # big enough to try one softmax shift for the whole block
    c_shifted: np.ndarray  # (K,) c minus the block's softmax shift
    grads: Params  # the workspace's own gradients for the first block, a partial sum for the others
    dWUb: np.ndarray  # (m, m + K + 1) [dL/dW | dL/dU | dL/db] over these rows, before it is split up


class Workspace:
    """Preallocated buffers, and the per-step views the time loops use, for windows of ``seq_length``
    steps over ``batch`` streams.

    Arrays are time-major, one row per (step, stream): row t of H holds h_t for every stream,
    H[0] = h_prev. Row t of E is [dL/da_t | dL/do_{t-1}] side by side, so that one product with the
    stacked [W; V] (how W and V already lie in the flat parameter buffer) gives both terms of dL/dh_t
    in the backward loop. Rows of Z are [h_{t-1} | x_t | 1], so dL/d[W | U | b] is one product.
    Reusing one workspace across updates avoids allocating in the training loop.

    With ``threads`` > 1 (by default: one per CPU, at most one per MIN_STREAMS_PER_THREAD streams,
    so never for a single stream) the streams are split into groups whose time loops run
    concurrently and the whole-window products are split by rows; NumPy releases the GIL inside BLAS
    and elementwise loops, so the groups really run in parallel. Each thread makes its own BLAS
    calls, so such a process is best run with one BLAS thread (OPENBLAS_NUM_THREADS=1, set before
    NumPy is imported) rather than letting both kinds of thread compete for the cores.
    """

    def __init__(self, hidden: int, vocab_size: int, seq_length: int, batch: int = 1, dtype="float64",
                 threads: int | None = None):
        n, B, m, K = seq_length, batch, hidden, vocab_size
        self.shape = (n, B)
        self.H = np.zeros((n + 1, B, m), dtype=dtype)  # h_0 .. h_n; h_t holds U x_t + b until step t
        self.E = np.zeros((n + 1, B, m + K), dtype=dtype)  # [dL/da_t | p_{t-1}, later dL/do_{t-1}]; dL/da_n = 0
        self.D = np.zeros((n, B, m), dtype=dtype)  # tanh'(a_t) = 1 - h_t^2
        self.Z = np.zeros((n * B, m + K + 1), dtype=dtype)  # [h_{t-1} | one-hot x_t | 1], filled in backward
        self.Z[:, -1] = 1.0
        self.grads = Params.zeros(hidden, vocab_size, dtype)
        self._ones_K = np.ones(K, dtype=dtype)
        # exp(x) is a normal number for every x >= -_exp_range: within that range a shared shift is safe
        self._exp_range = 0.9 * -float(np.log(np.finfo(dtype).tiny))
        rows = np.arange(n * B)
        self._p_index = (rows + B) * (m + K) + m  # flat index in E of p_t[0] for each (step, stream)
        self._x_index = rows * (m + K + 1) + m  # flat index in Z of x_t[0] for each (step, stream)
        self._hot = self._x_index  # Z's ones from the last window (a harmless placeholder before the first)

        self.threads = default_threads(B) if threads is None else max(1, min(int(threads), B))
        stream_bounds = np.linspace(0, B, self.threads + 1).astype(int)
        row_bounds = np.linspace(0, n * B, self.threads + 1).astype(int)
        self._groups = [self._stream_group(slice(a, b)) for a, b in pairwise(stream_bounds)]
        self._blocks = [self._row_block(slice(a, b)) for a, b in pairwise(row_bounds)]
        self._pool = ThreadPoolExecutor(self.threads - 1, "textgen-workspace") if self.threads > 1 else None

    def _stream_group(self, streams: slice) -> _StreamGroup:
        """Per-step views for the time loops of these streams, made once; a single stream gets 1-D rows
        (BLAS matrix-vector products, the cheapest call per step)."""
        if self.shape[1] == 1:
            h, e, d = list(self.H[:, 0]), list(self.E[:, 0]), list(self.D[:, 0])
        else:
            h, e, d = list(self.H[:, streams]), list(self.E[:, streams]), list(self.D[:, streams])
        m, n = self.H.shape[-1], self.shape[0]
        return _StreamGroup(
            streams=streams,
            step=np.zeros_like(h[0]),
            forward_steps=list(pairwise(h)),
            backward_steps=[(e[t + 1], d[t], e[t][..., :m]) for t in range(n - 1, -1, -1)],
        )

    def _row_block(self, rows: slice) -> _RowBlock:
        """Views of these rows of the (step, stream) matrices, made once."""
        (n, B), m = self.shape, self.H.shape[-1]
        K, dtype = self.E.shape[-1] - m, self.H.dtype
        size = rows.stop - rows.start
        return _RowBlock(
            rows=rows,
            H_in=self.H[:-1].reshape(n * B, m)[rows],
            H_out=self.H[1:].reshape(n * B, m)[rows],
            D=self.D.reshape(n * B, m)[rows],
            dA=self.E[:-1, :, :m].reshape(n * B, m)[rows],
            P=self.E[1:, :, m:].reshape(n * B, K)[rows],
            Z=self.Z[rows],
            logits=np.zeros((size, K), dtype=dtype),
            row=np.zeros((size, 1), dtype=dtype),
            ones=np.ones(size, dtype=dtype),
            shared_shift=size >= SHARED_SHIFT_ROWS,
            c_shifted=np.zeros(K, dtype=dtype),
            grads=self.grads if rows.start == 0 else Params.zeros(m, K, dtype),
            dWUb=np.zeros((m, m + K + 1), dtype=dtype),
        )

    def _run(self, task, parts: list, *args) -> list:
        """[task(part, *args) for part in parts]: the first in this thread, the others in the pool."""
        if self._pool is None:
            return [task(parts[0], *args)]
        pending = [self._pool.submit(task, part, *args) for part in parts[1:]]
        first = task(parts[0], *args)
        return [first] + [future.result() for future in pending]

    def _target_index(self, targets: np.ndarray) -> np.ndarray:
        """Flat index into E of p_t[y_t] for every (step, stream)."""
        assert targets.shape == self.shape, "targets must be (seq_length, batch)"
        return self._p_index + targets.reshape(-1)

    # ------------------------------------------------------------------ forward

    def forward(self, params: Params, inputs: np.ndarray, h_prev: np.ndarray) -> None:
        """Fill H with h_0..h_n and the probabilities p_1..p_n for ``inputs`` (n, B) from ``h_prev`` (B, m)."""
        assert inputs.shape == self.shape, "inputs must be (seq_length, batch)"
        self.H[0] = h_prev
        self._run(self._forward_loop, self._groups, params, inputs)
        self._run(self._softmax, self._blocks, params)

    def _forward_loop(self, group: _StreamGroup, params: Params, inputs: np.ndarray) -> None:
        U, W, b = params["U"], params["W"], params["b"]
        streams = group.streams
        # U x_t + b for every step at once: x_t is one-hot, so U x_t is column x_t of U (row x_t of U^T).
        np.add(U.T[inputs[:, streams]], b, out=self.H[1:, streams])
        # h_t = tanh(W h_{t-1} + U x_t + b), with the states as rows: h_{t-1}^T W^T.
        WT, step, add, tanh = W.T, group.step, np.add, np.tanh
        for h_prev_t, h_t in group.forward_steps:
            h_prev_t.dot(WT, step)
            add(h_t, step, h_t)
            tanh(h_t, h_t)

    def _softmax(self, block: _RowBlock, params: Params, index: np.ndarray | None = None):
        """p_t = softmax(V h_t + c) over a block of rows; with ``index``, also their loss and output gradients."""
        c, O, row = params["c"], block.logits, block.row
        np.dot(block.H_out, params["V"].T, O)
        # Shift the logits so that exp cannot overflow. Per row by its max; for a big block, one shift
        # for the whole block is much cheaper (two whole-array reductions instead of a reduction per
        # row) and as safe when the block's logits span less than _exp_range, so nothing underflows.
        shared = block.shared_shift
        if shared:
            shift = O.max() + c.max()
            shared = shift - (O.min() + c.min()) < self._exp_range  # False too for NaN
        if shared:
            np.subtract(c, shift, block.c_shifted)
            np.add(O, block.c_shifted, O)
        else:
            np.add(O, c, O)
            np.maximum.reduce(O, axis=1, keepdims=True, out=row)
            np.subtract(O, row, O)
        np.exp(O, O)
        np.dot(O, self._ones_K, row[:, 0])
        np.divide(O, row, block.P)
        if index is not None:
            loss = self._loss(index[block.rows])
            self._output_grads(block, index)
            return loss
        return None

    def _loss(self, index: np.ndarray) -> np.floating:
        """Summed -log p_t[y_t] at these flat indices into E."""
        return -np.log(self.E.reshape(-1).take(index)).sum()

    def loss(self, targets: np.ndarray) -> np.floating:
        """Summed cross-entropy of the filled probabilities against ``targets`` (n, B), averaged over streams.

        Returned as a NumPy scalar of the workspace dtype, so an extended-precision check keeps its digits.
        """
        return self._loss(self._target_index(targets)) / self.shape[1]

    # ------------------------------------------------------------------ backward

    def backward(self, params: Params, inputs: np.ndarray, targets: np.ndarray) -> Params:
        """Backprop through time after ``forward``; returns ``self.grads`` (mean over streams)."""
        self._run(self._output_grads, self._blocks, self._target_index(targets))
        return self._backward(params, inputs)

    def _output_grads(self, block: _RowBlock, index: np.ndarray) -> None:
        """dL/do_t, dL/dV and dL/dc over a block of rows, and tanh'(a_t) there."""
        g, dO, H_out, D = block.grads, block.P, block.H_out, block.D
        self.E.reshape(-1)[index[block.rows]] -= 1.0  # dL/do_t = p_t - y_t (softmax with cross-entropy), over p_t
        np.dot(dO.T, H_out, g["V"])  # dL/dV = sum_t dL/do_t h_t^T
        np.dot(block.ones, dO, g["c"])  # dL/dc = sum_t dL/do_t
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
        self._run(self._backward_loop, self._groups, WV)
        self._run(self._input_grads, self._blocks)
        g = self.grads
        for block in self._blocks[1:]:
            np.add(g.flat, block.grads.flat, g.flat)
        if self.shape[1] > 1:
            np.divide(g.flat, self.shape[1], g.flat)  # the mean over streams
        return g

    def _backward_loop(self, group: _StreamGroup, WV: np.ndarray) -> None:
        # Backwards in time: dL/da_t = (W^T dL/da_{t+1} + V^T dL/do_t) * (1 - h_t^2), with dL/da_n = 0.
        step, multiply = group.step, np.multiply
        for e_next, d_t, da_t in group.backward_steps:
            e_next.dot(WV, step)  # [dL/da_{t+1} | dL/do_t]^T [W; V], as a row
            multiply(step, d_t, da_t)

    def _input_grads(self, block: _RowBlock) -> None:
        # [dL/dW | dL/dU | dL/db] = sum_t dL/da_t [h_{t-1} | x_t | 1]^T over the block, in one product.
        g, dWUb, Z, m = block.grads, block.dWUb, block.Z, self.H.shape[-1]
        np.copyto(Z[:, :m], block.H_in)
        np.dot(block.dA.T, Z, dWUb)
        np.copyto(g["W"], dWUb[:, :m])
        np.copyto(g["U"], dWUb[:, m:-1])
        np.copyto(g["b"], dWUb[:, -1])

    def loss_and_grads(self, params: Params, inputs: np.ndarray, targets: np.ndarray, h_prev: np.ndarray) -> float:
        """Forward and backward over one window; gradients land in ``self.grads``, h_n in ``self.H[-1]``."""
        assert inputs.shape == self.shape, "inputs must be (seq_length, batch)"
        index = self._target_index(targets)
        self.H[0] = h_prev
        self._run(self._forward_loop, self._groups, params, inputs)
        losses = self._run(self._softmax, self._blocks, params, index)  # and dL/do_t, dL/dV, dL/dc
        self._backward(params, inputs)
        return float(sum(losses)) / self.shape[1]


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
    return LossAndGrads(loss, work.grads.copy(), work.H[-1, 0].copy())


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
