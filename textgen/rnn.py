"""The vanilla character RNN of DD2424 Assignment 4: parameters, forward pass, backprop through time, one-step sampling.

Equations (per stream, time step t):
    a_t = W h_{t-1} + U x_t + b,   h_t = tanh(a_t),   o_t = V h_t + c,   p_t = softmax(o_t)
    loss = sum_t -log p_t[y_t]
x_t is one-hot, so U x_t is column x_t of U: we gather columns instead of multiplying.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from textgen.errors import ConfigError

PARAM_NAMES = ("b", "c", "U", "W", "V")  # the order parameters are laid out in the flat buffer
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


class Workspace:
    """Preallocated buffers for windows of ``seq_length`` steps over ``batch`` streams.

    Arrays are time-major: row t of H holds h_t for every stream, H[0] = h_prev.
    Reusing one workspace across updates avoids allocating in the training loop.
    """

    def __init__(self, hidden: int, vocab_size: int, seq_length: int, batch: int = 1, dtype="float64"):
        n, B, m, K = seq_length, batch, hidden, vocab_size
        self.shape = (n, B)
        self.H = np.zeros((n + 1, B, m), dtype=dtype)  # h_0 .. h_n
        self.P = np.zeros((n, B, K), dtype=dtype)  # p_t, later reused for dL/do_t
        self.dA = np.zeros((n, B, m), dtype=dtype)  # dL/da_t (first holds dL/dh_t from the output layer)
        self.D = np.zeros((n, B, m), dtype=dtype)  # tanh'(a_t) = 1 - h_t^2
        self.step = np.zeros((B, m), dtype=dtype)  # scratch for one time step
        self.grads = Params.zeros(hidden, vocab_size, dtype)
        self.rows = np.arange(n * B)  # row index for picking p_t[y_t]

    def forward(self, params: Params, inputs: np.ndarray, h_prev: np.ndarray) -> None:
        """Fill H with h_0..h_n and P with p_1..p_n for ``inputs`` (n, B) from ``h_prev`` (B, m)."""
        U, W, V, b, c = params["U"], params["W"], params["V"], params["b"], params["c"]
        H, P = self.H, self.P
        n = inputs.shape[0]
        H[0] = h_prev
        # U x_t + b for every step at once: x_t is one-hot, so U x_t = U[:, x_t]. Kept in dA as scratch.
        np.add(U.T[inputs], b, out=self.dA)
        step = self.step
        for t in range(n):
            np.dot(H[t], W.T, out=step)  # (W h_{t-1})^T for every stream
            step += self.dA[t]
            np.tanh(step, out=H[t + 1])
        # o_t = V h_t + c for all steps in one product, then a numerically safe softmax per row.
        P2 = P.reshape(-1, P.shape[-1])
        np.dot(H[1:].reshape(-1, H.shape[-1]), V.T, out=P2)
        P2 += c
        P2 -= P2.max(axis=1, keepdims=True)
        np.exp(P2, out=P2)
        P2 /= P2.sum(axis=1, keepdims=True)

    def loss(self, targets: np.ndarray) -> np.floating:
        """Summed cross-entropy of the filled P against ``targets`` (n, B), averaged over streams.

        Returned as a NumPy scalar of the workspace dtype, so an extended-precision check keeps its digits.
        """
        P2 = self.P.reshape(-1, self.P.shape[-1])
        picked = P2[self.rows[: targets.size], targets.reshape(-1)]
        return -np.log(picked).sum() / targets.shape[1]

    def backward(self, params: Params, inputs: np.ndarray, targets: np.ndarray) -> Params:
        """Backprop through time after ``forward``; returns ``self.grads`` (mean over streams)."""
        W, V = params["W"], params["V"]
        g = self.grads
        H, dA, D = self.H, self.dA, self.D
        n, B = inputs.shape
        m = H.shape[-1]
        # dL/do_t = p_t - y_t (softmax with cross-entropy); averaged over streams when B > 1.
        dO = self.P.reshape(-1, self.P.shape[-1])
        dO[self.rows[: n * B], targets.reshape(-1)] -= 1.0
        if B > 1:
            dO /= B
        H_t = H[1:].reshape(-1, m)  # h_1..h_n, rows (t, stream)
        np.dot(dO.T, H_t, out=g["V"])  # dL/dV = sum_t dL/do_t h_t^T
        np.sum(dO, axis=0, out=g["c"])  # dL/dc = sum_t dL/do_t
        dA2 = dA.reshape(-1, m)
        np.dot(dO, V, out=dA2)  # dL/dh_t from the output at step t (before the recurrent term)
        np.multiply(H[1:], H[1:], out=D)
        np.subtract(1.0, D, out=D)  # tanh'(a_t) = 1 - h_t^2
        # Recurrence, backwards: dL/da_t = (dL/dh_t|output + W^T dL/da_{t+1}) * (1 - h_t^2).
        dA[n - 1] *= D[n - 1]
        step = self.step
        for t in range(n - 2, -1, -1):
            np.dot(dA[t + 1], W, out=step)  # (W^T dL/da_{t+1})^T
            dA[t] += step
            dA[t] *= D[t]
        np.dot(dA2.T, H[:-1].reshape(-1, m), out=g["W"])  # dL/dW = sum_t dL/da_t h_{t-1}^T
        np.sum(dA2, axis=0, out=g["b"])  # dL/db = sum_t dL/da_t
        # dL/dU = sum_t dL/da_t x_t^T: add each dL/da_t into column x_t of U.
        g["U"].fill(0.0)
        np.add.at(g["U"].T, inputs.reshape(-1), dA2)
        return g

    def loss_and_grads(self, params: Params, inputs: np.ndarray, targets: np.ndarray, h_prev: np.ndarray) -> float:
        """Forward and backward over one window; gradients land in ``self.grads``, h_n in ``self.H[-1]``."""
        self.forward(params, inputs, h_prev)
        loss = float(self.loss(targets))
        self.backward(params, inputs, targets)
        return loss


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
    h_next = np.tanh(h @ W.T + U.T[x] + b)
    o = h_next @ V.T + c
    o -= o.max(axis=-1, keepdims=True)
    p = np.exp(o)
    p /= p.sum(axis=-1, keepdims=True)
    return h_next, p
