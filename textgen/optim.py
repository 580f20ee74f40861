"""`AdaGrad` as in DD2424 Assignment 4; it owns its running sum of squared gradients."""

from __future__ import annotations

import numpy as np


class AdaGrad:
    """m_θ += g²;  θ -= eta · g / sqrt(m_θ + eps), over one flat parameter buffer."""

    def __init__(self, size: int, eta: float = 0.1, eps: float = 1e-8, dtype="float64"):
        self.eta = eta  # learning rate
        self.eps = eps  # inside the square root, as in the assignment
        self.memory = np.zeros(size, dtype=dtype)  # m_θ, the running sum of squared gradients
        self._step = np.empty(size, dtype=dtype)  # scratch: eta · g, then the step
        self._root = np.empty(size, dtype=dtype)  # scratch: g², then sqrt(m_θ + eps)

    def step(self, flat_params: np.ndarray, flat_grads: np.ndarray) -> None:
        """Update ``flat_params`` in place from ``flat_grads`` (already clipped); no allocation.

        Seven whole-buffer passes, each one ufunc call, in the textbook's order of operations
        ((eta · g) / sqrt(m + eps)), so the result is the same to the last bit. The square root
        dominates in float64; skipping entries whose gradient is zero would be exact too, but finding
        them costs more than it saves on a dense gradient.
        """
        g, step, root, memory = flat_grads, self._step, self._root, self.memory
        np.multiply(g, g, root)
        np.add(memory, root, memory)  # m_θ += g²
        np.add(memory, self.eps, root)
        np.sqrt(root, root)
        np.multiply(g, self.eta, step)
        np.divide(step, root, step)
        np.subtract(flat_params, step, flat_params)
