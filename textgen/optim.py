"""`AdaGrad` as in DD2424 Assignment 4; it owns its running sum of squared gradients."""

from __future__ import annotations

import numpy as np


class AdaGrad:
    """m_θ += g²;  θ -= eta · g / sqrt(m_θ + eps), over one flat parameter buffer."""

    def __init__(self, size: int, eta: float = 0.1, eps: float = 1e-8, dtype="float64"):
        self.eta = eta  # learning rate
        self.eps = eps  # inside the square root, as in the assignment
        self.memory = np.zeros(size, dtype=dtype)  # m_θ, the running sum of squared gradients
        self._scratch = np.empty(size, dtype=dtype)

    def step(self, flat_params: np.ndarray, flat_grads: np.ndarray) -> None:
        """Update ``flat_params`` in place from ``flat_grads`` (already clipped); no allocation."""
        scratch = self._scratch
        np.multiply(flat_grads, flat_grads, out=scratch)
        self.memory += scratch
        np.add(self.memory, self.eps, out=scratch)
        np.sqrt(scratch, out=scratch)
        np.divide(flat_grads, scratch, out=scratch)
        scratch *= self.eta
        flat_params -= scratch
