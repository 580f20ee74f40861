"""The GRU cell (Cho et al. 2014: update and reset gates), its fast window pass for stacks, one sampling
step, and its readable reference.

Of the two common variants this is the one with the reset gate applied after the recurrent product (as in
cuDNN and PyTorch's nn.GRU), so all three blocks of W h_{t-1} are one product per step. Per stream and step,
with the input side u = U x_t + b and the recurrent side v = W h_{t-1}, each split into blocks z, r, n of m:
    z = σ(u_z + v_z),  r = σ(u_r + v_r),  n = tanh(u_n + r ⊙ v_n),  h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
One bias per block, on the input side. The state of a layer is h.

Backwards, with dh_t = (from above) + z_{t+1} ⊙ dh_{t+1} + W^T dv_{t+1}:
    du_n = dh (1 - z)(1 - n²),  du_z = dv_z = dh (h_{t-1} - n) z(1 - z),
    du_r = dv_r = du_n ⊙ v_n ⊙ r(1 - r),  dv_n = du_n ⊙ r
"""

from __future__ import annotations

import numpy as np

from textgen.models.base import RecurrentCell, row_product, sigmoid


class GRULayer:
    """One GRU layer's buffers for windows of n steps over B streams. The stack fills ``A`` with the input
    side u of every step before `forward`. As in the LSTM, σ(x) = (1 + tanh(x / 2)) / 2 with the halving
    done once per window on the rows of W and of A that feed z and r (exact in binary floating point)."""

    def __init__(self, n: int, B: int, m: int, dtype):
        self.m = m
        self.A = np.zeros((n, B, 3 * m), dtype=dtype)  # u_t = U x_t + b (its z, r blocks halved)
        self.AH = np.zeros((n, B, 3 * m), dtype=dtype)  # v_t = W h_{t-1} (its z, r blocks halved)
        self._Wh = np.zeros((3 * m, m), dtype=dtype)  # W with the rows of z and r halved
        self.Y = np.zeros((n, B, 3 * m), dtype=dtype)  # [z | r | n]
        self.H = np.zeros((n + 1, B, m), dtype=dtype)
        self.output = self.H[1:]
        self.dA = np.zeros((n, B, 3 * m), dtype=dtype)  # dL/du_t
        self.dAH = np.zeros((n, B, 3 * m), dtype=dtype)  # dL/dv_t
        self._P = np.zeros((3, n, B, m), dtype=dtype)  # per step: du_z/dh, du_n/dh, du_r/du_n (filled after forward)
        self._zr = np.zeros((B, 2 * m), dtype=dtype)
        self._tmp = np.zeros((B, m), dtype=dtype)
        self._dh = np.zeros((B, m), dtype=dtype)
        self._carry = np.zeros((B, m), dtype=dtype)  # what h_t gets from step t+1

    def forward(self, W: np.ndarray, state: np.ndarray, last_state: np.ndarray) -> None:
        """The window from h_0 = ``state`` (B, m); h_n into ``last_state``."""
        m, A, AH, Y, H = self.m, self.A, self.AH, self.Y, self.H
        np.multiply(A[..., : 2 * m], 0.5, A[..., : 2 * m])
        np.copyto(self._Wh, W)
        np.multiply(W[: 2 * m], 0.5, self._Wh[: 2 * m])
        WT, zr, tmp = self._Wh.T, self._zr, self._tmp
        H[0] = state
        for t in range(A.shape[0]):
            u, v, y = A[t], AH[t], Y[t]
            np.dot(H[t], WT, v)
            np.add(u[:, : 2 * m], v[:, : 2 * m], zr)
            np.tanh(zr, y[:, : 2 * m])
            np.multiply(y[:, : 2 * m], 0.5, y[:, : 2 * m])
            np.add(y[:, : 2 * m], 0.5, y[:, : 2 * m])  # z, r = (1 + tanh(a / 2)) / 2
            n = y[:, 2 * m :]
            np.multiply(y[:, m : 2 * m], v[:, 2 * m :], tmp)  # r ⊙ v_n
            np.add(tmp, u[:, 2 * m :], tmp)
            np.tanh(tmp, n)
            np.subtract(H[t], n, tmp)
            np.multiply(y[:, :m], tmp, tmp)
            np.add(n, tmp, H[t + 1])  # n + z ⊙ (h_{t-1} - n)
        last_state[...] = H[-1]

    def backward(self, W: np.ndarray, dH: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dL/du_t, dL/dv_t), each (n, B, 3m), from dL/dh_t ``dH`` (n, B, m) of the layer above."""
        m, Y, P, dA, dAH = self.m, self.Y, self._P, self.dA, self.dAH
        z, r, n_gate = Y[..., :m], Y[..., m : 2 * m], Y[..., 2 * m :]
        Pz, Pn, Pr = P
        np.subtract(self.H[:-1], n_gate, Pz)
        np.multiply(Pz, z, Pz)
        np.multiply(Pz, 1.0 - z, Pz)  # (h_{t-1} - n) z (1 - z)
        np.multiply(n_gate, n_gate, Pn)
        np.subtract(1.0, Pn, Pn)
        np.multiply(Pn, 1.0 - z, Pn)  # (1 - z)(1 - n²)
        np.subtract(1.0, r, Pr)
        np.multiply(Pr, r, Pr)
        np.multiply(Pr, self.AH[..., 2 * m :], Pr)  # v_n r (1 - r)
        dh, carry, tmp = self._dh, self._carry, self._tmp
        carry.fill(0.0)
        for t in range(Y.shape[0] - 1, -1, -1):
            du, dv = dA[t], dAH[t]
            np.add(dH[t], carry, dh)
            np.multiply(dh, Pz[t], du[:, :m])
            np.multiply(dh, Pn[t], du[:, 2 * m :])
            np.multiply(du[:, 2 * m :], Pr[t], du[:, m : 2 * m])
            dv[:, : 2 * m] = du[:, : 2 * m]
            np.multiply(du[:, 2 * m :], r[t], dv[:, 2 * m :])
            if t:  # h_0's gradient is not needed
                np.dot(dv, W, carry)
                np.multiply(dh, z[t], tmp)
                np.add(carry, tmp, carry)
        return dA, dAH


class GRUCell(RecurrentCell):
    """The GRU cell, as the stack sees it: three pre-activations per unit, state h."""

    name = "gru"
    gates = 3
    state_parts = 1
    layer_buffers = GRULayer

    @staticmethod
    def init_bias(b: np.ndarray, m: int) -> None:
        """Every bias 0."""

    @staticmethod
    def step(a: np.ndarray, W: np.ndarray, state: np.ndarray, next_state: np.ndarray) -> np.ndarray:
        """One step for sampling from h (B, m) with ``a`` the input side (B, 3m); returns the new h."""
        m = W.shape[1]
        v = row_product(state, W.T)
        zr = sigmoid(a[:, : 2 * m] + v[:, : 2 * m], np.empty_like(v[:, : 2 * m]))
        n = np.tanh(a[:, 2 * m :] + zr[:, m:] * v[:, 2 * m :])
        next_state[...] = n + zr[:, :m] * (state - n)
        return next_state

    @staticmethod
    def reference_forward(U, W, b, X, h):
        """Textbook forward over X (n, B, d) from h_0 (B, m): (outputs (n, B, m), h_n, cache)."""
        m = W.shape[1]
        cache, outputs = [], []
        for x in X:
            u, v = x @ U.T + b, h @ W.T
            z = 1 / (1 + np.exp(-(u[:, :m] + v[:, :m])))
            r = 1 / (1 + np.exp(-(u[:, m : 2 * m] + v[:, m : 2 * m])))
            n = np.tanh(u[:, 2 * m :] + r * v[:, 2 * m :])
            cache.append((h, z, r, n, v))
            h = (1 - z) * n + z * h
            outputs.append(h)
        return np.stack(outputs), h, cache

    @staticmethod
    def reference_backward(U, W, b, X, cache, dH):
        """Textbook backward: (dU, dW, db, dX) from dL/dh_t ``dH`` (n, B, m) of the layer above."""
        dU, dW, db, dX = np.zeros_like(U), np.zeros_like(W), np.zeros_like(b), np.zeros_like(X)
        dh_next = np.zeros_like(dH[0])
        for t in range(len(X) - 1, -1, -1):
            h_prev, z, r, n, v = cache[t]
            dh = dH[t] + dh_next
            dn = dh * (1 - z)
            dz = dh * (h_prev - n)
            dpre_n = dn * (1 - n**2)
            dr = dpre_n * v[:, 2 * W.shape[1] :]
            du = np.concatenate([dz * z * (1 - z), dr * r * (1 - r), dpre_n], axis=1)
            dv = np.concatenate([du[:, : 2 * W.shape[1]], dpre_n * r], axis=1)
            dU += du.T @ X[t]
            dW += dv.T @ h_prev
            db += du.sum(axis=0)
            dX[t] = du @ U
            dh_next = dh * z + dv @ W
        return dU, dW, db, dX


CELL = GRUCell()
