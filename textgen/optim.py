"""The optimizers, each owning its state over one flat parameter buffer: `AdaGrad` (DD2424 Assignment 4's),
`RMSprop`, `Adam` and `AdamW` (Adam with decoupled weight decay). A state is a few named arrays plus a step count, so a checkpoint stores it whole. And the
learning-rate schedules: `learning_rate` is a pure function of the update, so a resumed run takes the same steps.
"""

from __future__ import annotations

import math

import numpy as np


CHUNK = 1 << 16  # numbers a step updates at a time (256 KiB of float32): all its passes over them stay in cache


class _Optimizer:
    """What every optimizer shares: its state arrays by name (as a checkpoint names them), a step count and
    two scratch buffers of a chunk each, all over one flat parameter buffer of ``size`` numbers.

    A step runs its few passes (multiply, add, square root, ...) over CHUNK numbers at a time rather than over
    the whole buffer: every pass then reads what the one before wrote from the CPU's cache, not from memory,
    which makes a step over millions of parameters about 1.7 times faster. Each number's arithmetic is the
    same, so the result is the same to the last bit.
    """

    array_names: tuple[str, ...] = ()

    def __init__(self, size: int, dtype):
        self.arrays = {name: np.zeros(size, dtype=dtype) for name in self.array_names}  # the live state
        self.steps = 0  # updates made (Adam's bias corrections count them)
        self.size = size
        self._step = np.empty(min(size, CHUNK), dtype=dtype)  # scratch: eta · g, then the step
        self._root = np.empty(min(size, CHUNK), dtype=dtype)  # scratch: g², then the root

    def load(self, arrays: dict[str, np.ndarray], steps: int) -> None:
        """Continue from a stored state: copies ``arrays`` (named as `arrays`) and the step count."""
        for name in self.array_names:
            np.copyto(self.arrays[name], arrays[name])
        self.steps = steps

    def _chunks(self, flat_params: np.ndarray, flat_grads: np.ndarray, clip: float | None = None):
        """(params, grads, state slice, step scratch, root scratch) for each chunk of the buffer, in order, the
        chunk's gradients first clipped to [-clip, clip] in place when ``clip`` is given (while in cache)."""
        if self.size <= self._step.size:  # one chunk: the whole buffers, without slicing
            chunks = [(flat_params, flat_grads, slice(None), self._step, self._root)]
        else:
            step = self._step.size
            chunks = ((flat_params[where], flat_grads[where], where, self._step[: where.stop - where.start],
                       self._root[: where.stop - where.start])
                      for where in (slice(start, min(start + step, self.size)) for start in range(0, self.size, step)))
        for chunk in chunks:
            if clip is not None:
                np.clip(chunk[1], -clip, clip, out=chunk[1])
            yield chunk


class AdaGrad(_Optimizer):
    """m_θ += g²;  θ -= eta · g / sqrt(m_θ + eps), over one flat parameter buffer."""

    name = "adagrad"
    array_names = ("adagrad_memory",)

    def __init__(self, size: int, eta: float = 0.1, eps: float = 1e-8, dtype="float64"):
        super().__init__(size, dtype)
        self.eta = eta  # learning rate
        self.eps = eps  # inside the square root, as in the assignment
        self.memory = self.arrays["adagrad_memory"]  # m_θ, the running sum of squared gradients

    def step(self, flat_params: np.ndarray, flat_grads: np.ndarray, clip: float | None = None) -> None:
        """Update ``flat_params`` in place from ``flat_grads`` (clipped to [-clip, clip] first, in place, when
        ``clip`` is given); no allocation.

        Seven passes, each one ufunc call (a chunk at a time), in the textbook's order of operations
        ((eta · g) / sqrt(m + eps)), so the result is the same to the last bit. The square root
        dominates in float64; skipping entries whose gradient is zero would be exact too, but finding
        them costs more than it saves on a dense gradient.
        """
        for params, g, where, step, root in self._chunks(flat_params, flat_grads, clip):
            memory = self.memory[where]
            np.multiply(g, g, root)
            np.add(memory, root, memory)  # m_θ += g²
            np.add(memory, self.eps, root)
            np.sqrt(root, root)
            np.multiply(g, self.eta, step)
            np.divide(step, root, step)
            np.subtract(params, step, params)
        self.steps += 1


class RMSprop(_Optimizer):
    """v = ρ v + (1 - ρ) g²;  θ -= eta · g / (sqrt(v) + eps)  (Tieleman and Hinton 2012; ρ is ``decay``)."""

    name = "rmsprop"
    array_names = ("rmsprop_mean_square",)

    def __init__(self, size: int, eta: float = 0.002, eps: float = 1e-8, decay: float = 0.95, dtype="float64"):
        super().__init__(size, dtype)
        self.eta, self.eps, self.decay = eta, eps, decay
        self.mean_square = self.arrays["rmsprop_mean_square"]  # v, the running mean of g²

    def step(self, flat_params: np.ndarray, flat_grads: np.ndarray, clip: float | None = None) -> None:
        """Update ``flat_params`` in place from ``flat_grads`` (clipped first as `AdaGrad.step` says)."""
        for params, g, where, step, root in self._chunks(flat_params, flat_grads, clip):
            v = self.mean_square[where]
            np.multiply(g, g, root)
            np.multiply(root, 1.0 - self.decay, root)
            np.multiply(v, self.decay, v)
            np.add(v, root, v)
            np.sqrt(v, root)
            np.add(root, self.eps, root)
            np.multiply(g, self.eta, step)
            np.divide(step, root, step)
            np.subtract(params, step, params)
        self.steps += 1


class Adam(_Optimizer):
    """m = β1 m + (1 - β1) g;  v = β2 v + (1 - β2) g²;  θ -= eta · m̂ / (sqrt(v̂) + eps) with the bias
    corrections m̂ = m / (1 - β1^t), v̂ = v / (1 - β2^t) at step t (Kingma and Ba 2015)."""

    name = "adam"
    array_names = ("adam_m", "adam_v")

    def __init__(self, size: int, eta: float = 0.002, eps: float = 1e-8, beta1: float = 0.9, beta2: float = 0.999,
                 dtype="float64"):
        super().__init__(size, dtype)
        self.eta, self.eps, self.beta1, self.beta2 = eta, eps, beta1, beta2
        self.mean, self.mean_square = self.arrays["adam_m"], self.arrays["adam_v"]  # m, v

    def step(self, flat_params: np.ndarray, flat_grads: np.ndarray, clip: float | None = None) -> None:
        """Update ``flat_params`` in place from ``flat_grads`` (clipped first as `AdaGrad.step` says)."""
        self.steps += 1
        self._adam_steps(flat_params, flat_grads, clip, None)

    def _adam_steps(self, flat_params: np.ndarray, flat_grads: np.ndarray, clip: float | None,
                    keep: float | None) -> None:
        """Adam's step a chunk at a time, after AdamW's decay of each chunk's decayed runs (θ *= ``keep``)."""
        t = self.steps
        # eta · m̂ / (sqrt(v̂) + eps) = (eta / (1 - β1^t)) · m / (sqrt(v) / sqrt(1 - β2^t) + eps)
        root_scale, step_scale = 1.0 / np.sqrt(1.0 - self.beta2**t), self.eta / (1.0 - self.beta1**t)
        for index, (params, g, where, step, root) in enumerate(self._chunks(flat_params, flat_grads, clip)):
            if keep is not None:  # θ -= eta · λ · θ, as θ *= 1 - eta · λ, on the chunk's decayed runs only
                for run in self._decayed_runs[index]:
                    np.multiply(params[run], keep, params[run])
            m, v = self.mean[where], self.mean_square[where]
            np.multiply(m, self.beta1, m)
            np.multiply(g, 1.0 - self.beta1, step)
            np.add(m, step, m)
            np.multiply(g, g, root)
            np.multiply(root, 1.0 - self.beta2, root)
            np.multiply(v, self.beta2, v)
            np.add(v, root, v)
            np.sqrt(v, root)
            np.multiply(root, root_scale, root)
            np.add(root, self.eps, root)
            np.multiply(m, step_scale, step)
            np.divide(step, root, step)
            np.subtract(params, step, params)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter 2019): before Adam's step, the decayed entries
    shrink towards zero, θ -= eta · λ · θ, with the step's own rate eta (so a schedule moves both) and λ the
    ``weight_decay``. Only the entries where ``decayed`` is 1 shrink: a model's weight matrices, not its
    biases, norms or embeddings (`Network.decayed`). Its state is Adam's (the arrays keep Adam's names). The
    shrink is computed as θ (1 - eta · λ), one pass over the decayed entries only."""

    name = "adamw"

    def __init__(self, size: int, eta: float = 0.001, eps: float = 1e-8, beta1: float = 0.9, beta2: float = 0.999,
                 weight_decay: float = 0.1, decayed: np.ndarray | None = None, dtype="float64"):
        super().__init__(size, eta, eps, beta1, beta2, dtype)
        self.weight_decay = weight_decay
        self.decayed = np.ones(size, dtype=dtype) if decayed is None else decayed.astype(dtype)  # 1: decays, 0: not
        # the runs of decayed entries (a model's weight matrices lie whole in the buffer) cut at the chunks' edges,
        # as slices within each chunk: the decay is one pass over them, none over the rest
        edges = np.flatnonzero(np.diff(np.concatenate([[0], self.decayed != 0, [0]]).astype(np.int8)))
        runs = list(zip(edges[::2].tolist(), edges[1::2].tolist()))
        chunk = self._step.size
        self._decayed_runs = [[slice(max(a, start) - start, min(b, start + chunk) - start) for a, b in runs
                               if a < start + chunk and b > start] for start in range(0, max(size, 1), chunk)]

    def step(self, flat_params: np.ndarray, flat_grads: np.ndarray, clip: float | None = None) -> None:
        """Decay, then Adam's step, a chunk at a time (the gradients clipped first as `AdaGrad.step` says)."""
        self.steps += 1
        self._adam_steps(flat_params, flat_grads, clip, 1.0 - self.eta * self.weight_decay if self.weight_decay
                         else None)


OPTIMIZER_ARRAYS = AdaGrad.array_names + RMSprop.array_names + Adam.array_names  # every name a checkpoint may hold


def make_optimizer(config, size: int, dtype, decayed: np.ndarray | None = None):
    """The optimizer ``config`` (a `TrainConfig`) names, with zero state, over ``size`` parameters; ``decayed``
    (size,) is 1 where AdamW's weight decay applies (everywhere if None)."""
    if config.optimizer == "adagrad":
        return AdaGrad(size, config.eta, config.eps, dtype)
    if config.optimizer == "rmsprop":
        return RMSprop(size, config.eta, config.eps, config.rmsprop_decay, dtype)
    if config.optimizer == "adamw":
        return AdamW(size, config.eta, config.eps, config.beta1, config.beta2, config.weight_decay, decayed, dtype)
    return Adam(size, config.eta, config.eps, config.beta1, config.beta2, dtype)


def array_names(optimizer: str) -> tuple[str, ...]:
    """The state arrays of the optimizer called ``optimizer``."""
    return {"adagrad": AdaGrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}[optimizer].array_names


def learning_rate(config, update: int, total: int, per_epoch: int = 1) -> float:
    """The rate of the step from update ``update`` to ``update + 1`` of a run of ``total`` updates, as
    ``config`` (a `TrainConfig`) schedules it. A function of the update alone, so that a resumed run steps as
    one that never stopped.

    - constant: ``eta`` (the assignment's: exactly ``config.eta``, with no arithmetic on it);
    - cosine: from ``eta`` at the end of the warm-up down to ``min_eta`` at update ``total``, along half a
      cosine, ``min_eta + (eta - min_eta) (1 + cos(pi p)) / 2`` with p the share of the decay done;
    - linear: the same, along a straight line ``eta + (min_eta - eta) p``;
    - exponential (char-rnn's): ``eta`` times ``decay_rate`` at the end of every epoch (of ``per_epoch``
      updates) from epoch ``decay_after`` on, ``eta · decay_rate^max(0, e - decay_after + 1)`` after e epochs;

    and over the first ``warmup`` updates any of them is multiplied by ``(update + 1) / warmup``, so the rate
    climbs in equal steps to what the schedule gives.
    """
    rate = config.eta
    if config.schedule in ("cosine", "linear"):
        span = total - config.warmup
        done = min(1.0, max(0.0, (update - config.warmup) / span)) if span > 0 else 1.0
        fall = (1.0 + math.cos(math.pi * done)) / 2 if config.schedule == "cosine" else 1.0 - done
        rate = config.min_eta + (config.eta - config.min_eta) * fall
    elif config.schedule == "exponential":
        rate = config.eta * config.decay_rate ** max(0, update // per_epoch - config.decay_after + 1)
    if update < config.warmup:
        rate *= (update + 1) / config.warmup
    return rate
