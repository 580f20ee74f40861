"""Compares analytic gradients with centred-difference numerical ones; returns the worst relative error per
parameter."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from textgen.models import Params, Workspace

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
    probe = Params(params.flat.astype(NUMERIC_DTYPE), params.network)
    errors = {}
    for name in params.network.shapes:
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


GIVEN_MASKS = 0.5  # the dropout asked of a workspace that applies masks given to it: it draws none, so any rate


def _workspace(params: Params, n: int, dtype, masks) -> Workspace:
    """A one-stream workspace in ``dtype`` in this thread; one that applies dropout masks if ``masks`` are given."""
    return params.network.workspace(n, 1, dtype, threads=1, dropout=0.0 if masks is None else GIVEN_MASKS)


RESOLVABLE = 1e-7  # a parameter whose typical gradient is smaller than this is below what the check resolves


def unresolvable(params: Params, inputs: np.ndarray, targets: np.ndarray,
                 h_prev: np.ndarray | None = None) -> dict[str, float]:
    """{name: median |gradient|} for the parameters whose typical (median non-zero) gradient on this window is
    below RESOLVABLE.

    Centred differences of a summed loss of ~100 nats in extended precision resolve about 1e-12 absolute;
    a gradient far smaller than the check's noise gives a large relative error that says nothing about the
    code (a deep gated stack at sigma 0.01 has such gradients). A larger --sigma makes them resolvable.
    """
    inputs = np.asarray(inputs, dtype=np.intp).reshape(-1, 1)
    targets = np.asarray(targets, dtype=np.intp).reshape(-1, 1)
    S = params.network.state_size
    state = np.zeros((1, S), dtype=params.flat.dtype) if h_prev is None else np.asarray(h_prev).reshape(1, S)
    work = _workspace(params, inputs.shape[0], params.flat.dtype, None)
    with np.errstate(all="ignore"):
        work.loss_and_grads(params, inputs, targets, state)
    typical = {}
    for name in params.network.shapes:
        nonzero = np.abs(work.grads[name][work.grads[name] != 0])
        if nonzero.size and np.median(nonzero) < RESOLVABLE:
            typical[name] = float(np.median(nonzero))
    return typical


def check_window(
    params: Params,
    inputs: np.ndarray,
    targets: np.ndarray,
    h_prev: np.ndarray | None = None,
    max_entries: int | None = None,
    rng: np.random.Generator | None = None,
    masks: np.ndarray | None = None,
) -> dict[str, float]:
    """Gradient check of one window's forward and backward pass (any cell, any depth); returns the worst
    relative error per parameter, {"b": err, "c": ..., "V": ...} or {"U_1": ..., "W_2": ...} for a stack.

    ``h_prev`` is the starting state (S,) (zero if None); ``masks`` (L, n, 1, m) fixed dropout masks, so
    that dropout's backward is checked too.
    """
    inputs = np.asarray(inputs, dtype=np.intp).reshape(-1, 1)
    targets = np.asarray(targets, dtype=np.intp).reshape(-1, 1)
    n, S = inputs.shape[0], params.network.state_size
    state = np.zeros((1, S), dtype=params.flat.dtype) if h_prev is None else np.asarray(h_prev).reshape(1, S)
    with np.errstate(all="ignore"):  # parameters that overflow give NaN errors, which say so themselves
        work = _workspace(params, n, params.flat.dtype, masks)
        work.loss_and_grads(params, inputs, targets, state, masks)
        analytic = work.grads.copy()
        probe_work = _workspace(params, n, NUMERIC_DTYPE, masks)
        probe_state = state.astype(NUMERIC_DTYPE)
        probe_masks = None if masks is None else masks.astype(NUMERIC_DTYPE)

        def loss_fn(probe: Params):
            probe_work.forward(probe, inputs, probe_state, probe_masks)
            return probe_work.loss(targets)

        return check_gradients(params, loss_fn, analytic, max_entries=max_entries, rng=rng)
