"""Compares analytic gradients with centred-difference numerical ones; returns the worst relative error per parameter."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from textgen.rnn import PARAM_NAMES, Params, loss_and_grads, window_loss

# The numerical side runs in extended precision where the platform has it (x87 80-bit on
# x86-64): with a summed loss of ~80 nats, float64 round-off alone (~1e-14 / 2h) would swamp
# the relative error of small gradient entries, while the analytic side stays in float64.
NUMERIC_DTYPE = np.longdouble


def relative_error(analytic: np.ndarray, numerical: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """|ga - gn| / max(eps, |ga| + |gn|), elementwise."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numerical = np.asarray(numerical, dtype=np.float64)
    return np.abs(analytic - numerical) / np.maximum(eps, np.abs(analytic) + np.abs(numerical))


def check_gradients(
    params: Params,
    loss_fn: Callable[[Params], float],
    analytic: dict[str, np.ndarray] | Params,
    step: float = 1e-5,
    eps: float = 1e-12,
    max_entries: int | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, float]:
    """Worst relative error between ``analytic`` and centred differences (L(θ+h) - L(θ-h)) / 2h.

    ``loss_fn`` is evaluated on a copy of ``params`` in NUMERIC_DTYPE. With ``max_entries``,
    that many entries per parameter are checked, drawn from ``rng`` (every entry otherwise).
    """
    probe = Params(params.flat.astype(NUMERIC_DTYPE), params.hidden, params.vocab_size)
    errors = {}
    for name in PARAM_NAMES:
        values = probe[name].reshape(-1)
        indices = np.arange(values.size)
        if max_entries is not None and values.size > max_entries:
            assert rng is not None, "sampling entries needs a Generator"
            indices = np.sort(rng.choice(values.size, size=max_entries, replace=False))
        numerical = np.empty(indices.size)
        for slot, index in enumerate(indices):
            original = values[index]
            values[index] = original + step
            loss_plus = loss_fn(probe)
            values[index] = original - step
            loss_minus = loss_fn(probe)
            values[index] = original
            numerical[slot] = (loss_plus - loss_minus) / (2 * step)
        errors[name] = float(relative_error(np.asarray(analytic[name]).reshape(-1)[indices], numerical, eps).max())
    return errors


def check_window(
    params: Params,
    inputs: np.ndarray,
    targets: np.ndarray,
    h_prev: np.ndarray | None = None,
    max_entries: int | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, float]:
    """Gradient check of ``loss_and_grads`` on one window; returns {"b": err, "c": ..., "V": ...}."""
    if h_prev is None:
        h_prev = np.zeros(params.hidden, dtype=params.flat.dtype)
    with np.errstate(all="ignore"):  # parameters that overflow give NaN errors, which say so themselves
        analytic = loss_and_grads(params, inputs, targets, h_prev).grads
        return check_gradients(
            params,
            lambda probe: window_loss(probe, inputs, targets, h_prev),
            analytic,
            max_entries=max_entries,
            rng=rng,
        )
