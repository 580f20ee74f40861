"""The LSTM cell (as in char-rnn: input, forget and output gates and a candidate), its fast window pass for
stacks, one sampling step, and its readable reference.

Per stream and step, with a_t = W h_{t-1} + U x_t + b split into four blocks of m, in the order i, f, o, g:
    i = σ(a_i),  f = σ(a_f),  o = σ(a_o),  g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
The forget gate's bias starts at 1 (b_f = 1, the rest 0), so a new model keeps its memory by default.
The state of a layer is [h | c].

Backwards, with dh_t = (from above) + W^T da_{t+1} and dc_t = dh_t ⊙ o ⊙ (1 - tanh²(c_t)) + f_{t+1} ⊙ dc_{t+1}:
    da_i = dc ⊙ g ⊙ i(1-i),  da_f = dc ⊙ c_{t-1} ⊙ f(1-f),  da_o = dh ⊙ tanh(c_t) ⊙ o(1-o),  da_g = dc ⊙ i ⊙ (1-g²)
"""

from __future__ import annotations

import numpy as np

from textgen.models.base import sigmoid


class LSTMLayer:
    """One LSTM layer's buffers for windows of n steps over B streams. The stack fills ``A`` with the input
    side of every step (U x_t + b) before `forward`; the loop adds W h_{t-1}, one product per step for all
    four gates."""

    def __init__(self, n: int, B: int, m: int, dtype):
        self.m = m
        self.A = np.zeros((n, B, 4 * m), dtype=dtype)  # U x_t + b, then the whole a_t
        self.Y = np.zeros((n, B, 4 * m), dtype=dtype)  # [i | f | o | g] after their nonlinearities
        self.C = np.zeros((n + 1, B, m), dtype=dtype)  # c_0 .. c_n
        self.TC = np.zeros((n, B, m), dtype=dtype)  # tanh(c_t)
        self.H = np.zeros((n + 1, B, m), dtype=dtype)  # h_0 .. h_n
        self.output = self.H[1:]
        self.dA = np.zeros((n, B, 4 * m), dtype=dtype)  # dL/da_t, all four gates
        # per step, what multiplies [dc, dc, dh, dc] to give [da_i, da_f, da_o, da_g] (filled after forward)
        self._QD = np.zeros((n, B, 4, m), dtype=dtype)
        self._K = np.zeros((n, B, m), dtype=dtype)  # o ⊙ (1 - tanh²(c_t)): dh's share of dc
        self._rec = np.zeros((B, m), dtype=dtype)  # W^T da_{t+1}
        self._dh = np.zeros((B, m), dtype=dtype)
        self._dc = np.zeros((B, m), dtype=dtype)
        self._dc_next = np.zeros((B, m), dtype=dtype)  # f_{t+1} ⊙ dc_{t+1}
        self._step = np.zeros((B, 4 * m), dtype=dtype)
        self._ig = np.zeros((B, m), dtype=dtype)

    def forward(self, W: np.ndarray, state: np.ndarray, last_state: np.ndarray) -> None:
        """The window from ``state`` (B, 2m) = [h_0 | c_0]; [h_n | c_n] into ``last_state``."""
        m, A, Y, C, TC, H = self.m, self.A, self.Y, self.C, self.TC, self.H
        WT, step, ig = W.T, self._step, self._ig
        H[0], C[0] = state[:, :m], state[:, m:]
        for t in range(A.shape[0]):
            a, y = A[t], Y[t]
            np.dot(H[t], WT, step)
            np.add(a, step, a)
            sigmoid(a[:, : 3 * m], y[:, : 3 * m])
            np.tanh(a[:, 3 * m :], y[:, 3 * m :])
            np.multiply(y[:, m : 2 * m], C[t], C[t + 1])  # f ⊙ c_{t-1}
            np.multiply(y[:, :m], y[:, 3 * m :], ig)  # i ⊙ g
            np.add(C[t + 1], ig, C[t + 1])
            np.tanh(C[t + 1], TC[t])
            np.multiply(y[:, 2 * m : 3 * m], TC[t], H[t + 1])
        last_state[:, :m], last_state[:, m:] = H[-1], C[-1]

    def backward(self, W: np.ndarray, dH: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dL/da_t (n, B, 4m) from dL/dh_t ``dH`` (n, B, m) of the layer above, returned twice (input and
        recurrent side share the pre-activation)."""
        m, Y, TC, QD, K = self.m, self.Y, self.TC, self._QD, self._K
        n = Y.shape[0]
        i, f, o, g = (Y[..., k * m : (k + 1) * m] for k in range(4))
        # Whole-window factors first: the loop then costs one product and six small elementwise calls a step.
        np.subtract(1.0, g, QD[:, :, 3])
        np.multiply(QD[:, :, 3], 1.0 + g, QD[:, :, 3])  # 1 - g²
        np.multiply(QD[:, :, 3], i, QD[:, :, 3])  # i (1 - g²)
        for slot, (gate, factor) in enumerate(((i, g), (f, self.C[:-1]), (o, TC))):
            np.subtract(1.0, gate, QD[:, :, slot])
            np.multiply(QD[:, :, slot], gate, QD[:, :, slot])  # σ' = σ(1 - σ)
            np.multiply(QD[:, :, slot], factor, QD[:, :, slot])
        np.multiply(TC, TC, K)
        np.subtract(1.0, K, K)
        np.multiply(K, o, K)
        dA4 = self.dA.reshape(n, -1, 4, m)
        rec, dh, dc, dc_next = self._rec, self._dh, self._dc, self._dc_next
        rec.fill(0.0)
        dc_next.fill(0.0)
        for t in range(n - 1, -1, -1):
            np.add(dH[t], rec, dh)
            np.multiply(dh, K[t], dc)
            np.add(dc, dc_next, dc)
            np.multiply(dc[:, None, :], QD[t], dA4[t])  # da_i, da_f, da_g (and da_o, replaced next)
            np.multiply(dh, QD[t, :, 2], dA4[t, :, 2])
            np.multiply(dc, f[t], dc_next)
            np.dot(self.dA[t], W, rec)
        return self.dA, self.dA


class LSTMCell:
    """The LSTM cell, as the stack sees it: four pre-activations per unit, state [h | c]."""

    name = "lstm"
    gates = 4
    state_parts = 2
    layer_buffers = LSTMLayer

    @staticmethod
    def init_bias(b: np.ndarray, m: int) -> None:
        """b_f = 1 and the other gates' biases 0 (Jozefowicz et al. 2015; what most char-rnn ports do)."""
        b[m : 2 * m] = 1.0

    @staticmethod
    def step(a: np.ndarray, W: np.ndarray, state: np.ndarray, next_state: np.ndarray) -> np.ndarray:
        """One step for sampling from ``state`` (B, 2m) with ``a`` the input side (B, 4m); returns h (B, m)."""
        m = W.shape[1]
        a = a + state[:, :m].dot(W.T)
        gates = sigmoid(a[:, : 3 * m], np.empty_like(a[:, : 3 * m]))
        c = gates[:, m : 2 * m] * state[:, m:] + gates[:, :m] * np.tanh(a[:, 3 * m :])
        next_state[:, m:] = c
        next_state[:, :m] = gates[:, 2 * m :] * np.tanh(c)
        return next_state[:, :m]

    @staticmethod
    def reference_forward(U, W, b, X, state):
        """Textbook forward over X (n, B, d) from [h_0 | c_0] (B, 2m): (outputs (n, B, m), [h_n | c_n], cache)."""
        m = W.shape[1]
        h, c = state[:, :m], state[:, m:]
        cache, outputs = [], []
        for x in X:
            a = x @ U.T + h @ W.T + b
            i, f, o = (1 / (1 + np.exp(-a[:, k * m : (k + 1) * m])) for k in range(3))
            g = np.tanh(a[:, 3 * m :])
            c_prev, h_prev = c, h
            c = f * c_prev + i * g
            h = o * np.tanh(c)
            cache.append((h_prev, c_prev, i, f, o, g, c))
            outputs.append(h)
        return np.stack(outputs), np.concatenate([h, c], axis=1), cache

    @staticmethod
    def reference_backward(U, W, b, X, cache, dH):
        """Textbook backward: (dU, dW, db, dX) from dL/dh_t ``dH`` (n, B, m) of the layer above."""
        dU, dW, db, dX = np.zeros_like(U), np.zeros_like(W), np.zeros_like(b), np.zeros_like(X)
        dh_next = np.zeros_like(dH[0])  # W^T da_{t+1}
        dc_next = np.zeros_like(dH[0])  # dL/dc_t through c_{t+1}
        for t in range(len(X) - 1, -1, -1):
            h_prev, c_prev, i, f, o, g, c = cache[t]
            dh = dH[t] + dh_next
            do = dh * np.tanh(c)
            dc = dh * o * (1 - np.tanh(c) ** 2) + dc_next
            di, df, dg = dc * g, dc * c_prev, dc * i
            da = np.concatenate([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)], axis=1)
            dU += da.T @ X[t]
            dW += da.T @ h_prev
            db += da.sum(axis=0)
            dX[t] = da @ U
            dh_next = da @ W
            dc_next = dc * f
        return dU, dW, db, dX


CELL = LSTMCell()
