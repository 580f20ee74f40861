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

from textgen.models.base import RecurrentCell, row_product, sigmoid


class LSTMLayer:
    """One LSTM layer's buffers for windows of n steps over B streams. The stack fills ``A`` with the input
    side of every step (U x_t + b) before `forward`; the loop adds W h_{t-1}, one product per step for all
    four gates.

    Two layouts save calls per step, which is what a single stream's speed is made of:
    - σ(x) = (1 + tanh(x / 2)) / 2, and the halving is done on the rows of W and of A once per window, so
      one tanh per step covers all four gates (halving is exact in binary floating point);
    - row t of Y holds [i | f | o | g | c_{t-1}], so [i ⊙ g, f ⊙ c_{t-1}] is one product per step.
    """

    def __init__(self, n: int, B: int, m: int, dtype):
        self.m = m
        self.A = np.zeros((n, B, 4 * m), dtype=dtype)  # U x_t + b, then the whole a_t (its σ rows halved)
        self.Y = np.zeros((n, B, 5 * m), dtype=dtype)  # [i | f | o | g | c_{t-1}]
        self._Y5 = self.Y.reshape(n, B, 5, m)
        self.TC = np.zeros((n, B, m), dtype=dtype)  # tanh(c_t)
        self.H = np.zeros((n + 1, B, m), dtype=dtype)  # h_0 .. h_n
        self.output = self.H[1:]
        self._c_last = np.zeros((B, m), dtype=dtype)  # c_n (c_t for t < n lives in row t + 1 of Y)
        self._Wh = np.zeros((4 * m, m), dtype=dtype)  # W with the rows of i, f, o halved
        self._ig = np.zeros((B, 2, m), dtype=dtype)  # [i ⊙ g, f ⊙ c_{t-1}]
        self._step = np.zeros((B, 4 * m), dtype=dtype)
        # dL/da_t in slots 0-3 (i, f, o, g) and f ⊙ dc_t, what c_{t-1} gets, in slot 4
        self._dA5 = np.zeros((n, B, 5, m), dtype=dtype)
        self.dA = self._dA5.reshape(n, B, 5 * m)[..., : 4 * m]
        # per step, what multiplies [dc, dc, dh, dc, dc] to give [da_i, da_f, da_o, da_g, f ⊙ dc] (after forward)
        self._QD = np.zeros((n, B, 5, m), dtype=dtype)
        self._K = np.zeros((n, B, m), dtype=dtype)  # o ⊙ (1 - tanh²(c_t)): dh's share of dc
        self._rec = np.zeros((B, m), dtype=dtype)  # W^T da_{t+1}
        self._dh = np.zeros((B, m), dtype=dtype)
        self._dc = np.zeros((B, m), dtype=dtype)
        self._c_out = [self._Y5[t + 1, :, 4] for t in range(n - 1)] + [self._c_last]  # where step t writes c_t

    def forward(self, W: np.ndarray, state: np.ndarray, last_state: np.ndarray) -> None:
        """The window from ``state`` (B, 2m) = [h_0 | c_0]; [h_n | c_n] into ``last_state``."""
        m, A, Y, Y5, TC, H = self.m, self.A, self.Y, self._Y5, self.TC, self.H
        np.multiply(A[..., : 3 * m], 0.5, A[..., : 3 * m])
        np.copyto(self._Wh, W)
        np.multiply(W[: 3 * m], 0.5, self._Wh[: 3 * m])
        WT, step, ig, c_out = self._Wh.T, self._step, self._ig, self._c_out
        dot, add, multiply, tanh = np.dot, np.add, np.multiply, np.tanh
        H[0] = state[:, :m]
        Y5[0, :, 4] = state[:, m:]
        for t in range(A.shape[0]):
            a, y, y5 = A[t], Y[t], Y5[t]
            dot(H[t], WT, step)
            add(a, step, a)
            tanh(a, y[:, : 4 * m])
            sigmoids = y[:, : 3 * m]
            multiply(sigmoids, 0.5, sigmoids)
            add(sigmoids, 0.5, sigmoids)  # i, f, o = (1 + tanh(a / 2)) / 2
            multiply(y5[:, 0:2], y5[:, 3:5], ig)  # [i ⊙ g, f ⊙ c_{t-1}]
            add(ig[:, 0], ig[:, 1], c_out[t])  # c_t
            tanh(c_out[t], TC[t])
            multiply(y5[:, 2], TC[t], H[t + 1])  # h_t = o ⊙ tanh(c_t)
        last_state[:, :m], last_state[:, m:] = H[-1], self._c_last

    def backward(self, W: np.ndarray, dH: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dL/da_t (n, B, 4m) from dL/dh_t ``dH`` (n, B, m) of the layer above, returned twice (input and
        recurrent side share the pre-activation)."""
        Y5, TC, QD, K = self._Y5, self.TC, self._QD, self._K
        n = TC.shape[0]
        i, f, o, g, c_prev = (Y5[:, :, k] for k in range(5))
        # Whole-window factors first: the loop then costs one product and five small elementwise calls a step.
        np.subtract(1.0, g, QD[:, :, 3])
        np.multiply(QD[:, :, 3], 1.0 + g, QD[:, :, 3])  # 1 - g²
        np.multiply(QD[:, :, 3], i, QD[:, :, 3])  # i (1 - g²)
        for slot, (gate, factor) in enumerate(((i, g), (f, c_prev), (o, TC))):
            np.subtract(1.0, gate, QD[:, :, slot])
            np.multiply(QD[:, :, slot], gate, QD[:, :, slot])  # σ' = σ(1 - σ)
            np.multiply(QD[:, :, slot], factor, QD[:, :, slot])
        QD[:, :, 4] = f  # step t hands f_t ⊙ dc_t on to c_{t-1}
        np.multiply(TC, TC, K)
        np.subtract(1.0, K, K)
        np.multiply(K, o, K)
        dA5, rec, dh, dc = self._dA5, self._rec, self._dh, self._dc
        dot, add, multiply = np.dot, np.add, np.multiply
        for t in range(n - 1, -1, -1):
            if t == n - 1:  # nothing comes back from beyond the window
                multiply(dH[t], K[t], dc)
                multiply(dc[:, None, :], QD[t], dA5[t])
                multiply(dH[t], QD[t, :, 2], dA5[t, :, 2])
            else:
                add(dH[t], rec, dh)
                multiply(dh, K[t], dc)
                add(dc, dA5[t + 1, :, 4], dc)  # dc_t = dh ⊙ o ⊙ (1 - tanh²(c_t)) + f_{t+1} ⊙ dc_{t+1}
                multiply(dc[:, None, :], QD[t], dA5[t])  # da_i, da_f, da_g, f_t ⊙ dc_t (and da_o, replaced next)
                multiply(dh, QD[t, :, 2], dA5[t, :, 2])
            if t:  # h_0's gradient is not needed
                dot(self.dA[t], W, rec)
        return self.dA, self.dA


class LSTMCell(RecurrentCell):
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
        a = a + row_product(state[:, :m], W.T)
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
