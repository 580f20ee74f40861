"""The vanilla RNN cell: the assignment's own network of one layer (`AssignmentNetwork`: its layout, its fast
pass `Workspace` and its sampling step, kept exactly as they were), the cell for stacks and dropout
(`RNNLayer`), and the readable reference of both.

Equations (per stream, time step t):
    a_t = W h_{t-1} + U x_t + b,   h_t = tanh(a_t),   o_t = V h_t + c,   p_t = softmax(o_t)
    loss = sum_t -log p_t[y_t]
x_t is one-hot, so U x_t is column x_t of U: we gather columns instead of multiplying.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from textgen.models.base import LossAndGrads, Network, Params, RecurrentCell, RecurrentNetwork, row_product

PARAM_NAMES = ("b", "c", "U", "W", "V")  # the order parameters are laid out in the flat buffer
# V right after W, both (·, m) row-major, makes the stacked [W; V] a view (the backward loop uses it)
assert PARAM_NAMES[-2:] == ("W", "V")


def assignment_network(hidden: int, vocab_size: int, dtype="float64") -> Network:
    """The assignment's network: one vanilla layer of ``hidden`` units over ``vocab_size`` characters."""
    return CELL.network(1, hidden, vocab_size, dtype=np.dtype(dtype).name)


class AssignmentNetwork(RecurrentNetwork):
    """The assignment's model, one vanilla layer: a `RecurrentNetwork` that keeps the assignment's own layout,
    window pass (`Workspace`, when there is no dropout) and sampling step (`step_probabilities`)."""

    def layout(self) -> dict[str, tuple[int, ...]]:
        """b, c, U, W, V as it always was (`PARAM_NAMES`): W and V last, so that [W; V] is one view."""
        m, K = self.hidden, self.vocab_size
        return {"b": (m,), "c": (K,), "U": (m, K), "W": (m, m), "V": (K, m)}

    def single_workspace(self, seq_length: int, batch: int, dtype, dropout: float = 0.0, average: bool = True):
        """The assignment's `Workspace`; with dropout, the stack's (the assignment's pass takes no masks)."""
        if dropout:
            return super().single_workspace(seq_length, batch, dtype, dropout, average)
        return Workspace(self.hidden, self.vocab_size, seq_length, batch, dtype, average)

    def step(self, params: Params, state: np.ndarray, x: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """`step_probabilities`."""
        return step_probabilities(params, state, x)


SHARED_SHIFT_ROWS = 256  # blocks of at least this many rows try one softmax shift for the block (see _softmax)


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
        self.last_state = self.H[-1]  # (B, m), h_n after a forward pass
        self.E = np.zeros((n + 1, B, m + K), dtype=dtype)  # [dL/da_t | p_{t-1}, later dL/do_{t-1}]; dL/da_n = 0
        self.D = np.zeros((n, B, m), dtype=dtype)  # tanh'(a_t) = 1 - h_t^2
        self.grads = assignment_network(hidden, vocab_size).zeros(dtype)
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

    def draw_masks(self, rng: np.random.Generator) -> None:
        """No dropout in the assignment's model: nothing is drawn."""
        return

    def forward(self, params: Params, inputs: np.ndarray, h_prev: np.ndarray, masks: None = None) -> None:
        """Fill H with h_0..h_n and the probabilities p_1..p_n for ``inputs`` (n, B) from ``h_prev`` (B, m)."""
        assert inputs.shape == self.shape, "inputs must be (seq_length, batch)"
        assert masks is None, "the assignment's pass has no dropout (a StackWorkspace takes masks)"
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

    def backward(self, params: Params, inputs: np.ndarray, targets: np.ndarray, masks: None = None) -> Params:
        """Backprop through time after ``forward``; returns ``self.grads`` (mean over streams)."""
        assert masks is None, "the assignment's pass has no dropout (a StackWorkspace takes masks)"
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

    def loss_and_grads(self, params: Params, inputs: np.ndarray, targets: np.ndarray, h_prev: np.ndarray,
                       masks: None = None) -> float:
        """Forward and backward over one window; gradients land in ``self.grads``, h_n in ``self.last_state``."""
        index = self._target_index(targets)
        self.forward(params, inputs, h_prev)
        loss = self._loss(index)
        self._output_grads(index)
        self._backward(params, inputs)
        return float(loss)


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
    return LossAndGrads(loss, work.grads.copy(), work.last_state[0].copy())


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
    # each row on its own, so that a sample does not depend on the others drawn beside it
    np.add(h_next, row_product(np.atleast_2d(h), W.T).reshape(h_next.shape), h_next)
    np.tanh(h_next, h_next)
    p = row_product(np.atleast_2d(h_next), V.T).reshape(*h_next.shape[:-1], -1)
    np.add(p, c, p)
    np.subtract(p, np.maximum.reduce(p, axis=-1, keepdims=True), p)
    np.exp(p, p)
    np.divide(p, np.add.reduce(p, axis=-1, keepdims=True), p)
    return h_next, p


# ---------------------------------------------------------------------- the cell in a stack

class RNNLayer:
    """One vanilla layer's buffers for windows of n steps over B streams: h_t = tanh(a_t), with the input
    side of a_t (U x_t + b) filled in ``A`` by the stack before `forward`."""

    def __init__(self, n: int, B: int, m: int, dtype):
        self.A = np.zeros((n, B, m), dtype=dtype)  # U x_t + b, then the whole a_t
        self.H = np.zeros((n + 1, B, m), dtype=dtype)  # h_0 .. h_n
        self.output = self.H[1:]  # h_1 .. h_n, what the layer above (or the softmax) reads
        self.dA = np.zeros((n, B, m), dtype=dtype)  # dL/da_t
        self._D = np.zeros((n, B, m), dtype=dtype)  # tanh'(a_t) = 1 - h_t^2
        self._carry = np.zeros((B, m), dtype=dtype)  # W^T dL/da_{t+1}, what h_t owes the next step
        self._dh = np.zeros((B, m), dtype=dtype)

    def forward(self, W: np.ndarray, state: np.ndarray, last_state: np.ndarray) -> None:
        """h_t = tanh(W h_{t-1} + A_t) for t = 1..n from h_0 = ``state`` (B, m); h_n into ``last_state``."""
        A, H, WT, step = self.A, self.H, W.T, self._dh
        H[0] = state
        for t in range(A.shape[0]):
            np.dot(H[t], WT, step)
            np.add(A[t], step, H[t + 1])
            np.tanh(H[t + 1], H[t + 1])
        last_state[...] = H[-1]

    def backward(self, W: np.ndarray, dH: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dL/da_t for every step from dL/dh_t ``dH`` (n, B, m) of the layer above: the gradient of both U x_t
        and W h_{t-1} (the same pre-activation), so it is returned twice."""
        D, dA, carry, dh = self._D, self.dA, self._carry, self._dh
        np.multiply(self.output, self.output, D)
        np.subtract(1.0, D, D)
        carry.fill(0.0)
        for t in range(dA.shape[0] - 1, -1, -1):
            np.add(dH[t], carry, dh)  # dL/dh_t = (from above) + W^T dL/da_{t+1}
            np.multiply(dh, D[t], dA[t])  # dL/da_t = dL/dh_t * (1 - h_t^2)
            if t:  # h_0's gradient is not needed
                np.dot(dA[t], W, carry)
        return dA, dA


class RNNCell(RecurrentCell):
    """The vanilla cell: one pre-activation per unit, state h; one layer is the assignment's own network."""

    name = "rnn"
    gates = 1  # pre-activations per hidden unit
    state_parts = 1  # h
    layer_buffers = RNNLayer

    def network(self, layers: int, hidden: int, vocab_size: int, sigma: float = 0.01,
                dtype: str = "float64", heads: int = 1, context: int = 0) -> Network:
        """`AssignmentNetwork` for one layer, a stack of this cell for more (``heads``, ``context``: unused)."""
        kind = AssignmentNetwork if layers == 1 else RecurrentNetwork
        return kind(self, layers, hidden, vocab_size, sigma, dtype)

    @staticmethod
    def init_bias(b: np.ndarray, m: int) -> None:
        """b = 0, as in the assignment."""

    @staticmethod
    def step(a: np.ndarray, W: np.ndarray, state: np.ndarray, next_state: np.ndarray) -> np.ndarray:
        """One step for sampling: h = tanh(a + W h_prev) with ``a`` the input side (B, m); returns h."""
        np.tanh(a + row_product(state, W.T), next_state)
        return next_state

    @staticmethod
    def reference_forward(U, W, b, X, h0):
        """Textbook forward over X (n, B, d) from h0 (B, m): (outputs (n, B, m), h_n, cache)."""
        hs = [h0]
        for x in X:
            hs.append(np.tanh(hs[-1] @ W.T + x @ U.T + b))
        return np.stack(hs[1:]), hs[-1], hs

    @staticmethod
    def reference_backward(U, W, b, X, hs, dH):
        """Textbook backward: (dU, dW, db, dX) from dL/dh_t ``dH`` (n, B, m) of the layer above.

        dL/dh_t = dH_t + W^T dL/da_{t+1};  dL/da_t = dL/dh_t (1 - h_t^2);  dU = sum_t da_t x_t^T, and so on."""
        dU, dW, db = np.zeros_like(U), np.zeros_like(W), np.zeros_like(b)
        dX = np.zeros_like(X)
        da_next = np.zeros_like(hs[0])
        for t in range(len(X) - 1, -1, -1):
            dh = dH[t] + da_next @ W
            da = dh * (1 - hs[t + 1] ** 2)
            dU += da.T @ X[t]
            dW += da.T @ hs[t]
            db += da.sum(axis=0)
            dX[t] = da @ U
            da_next = da
        return dU, dW, db, dX


CELL = RNNCell()
