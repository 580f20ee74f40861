"""`TrainConfig`, the training settings; kept free of NumPy so the command line starts instantly."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from textgen.errors import ConfigError

DEFAULT_EPOCHS = 2  # when neither updates nor epochs is given


@dataclass(frozen=True)
class TrainConfig:
    """How the model is trained; the defaults are DD2424 Assignment 4's."""

    seq_length: int = 25  # characters per window, the length of backpropagation through time
    eta: float = 0.1  # AdaGrad learning rate
    eps: float = 1e-8  # AdaGrad epsilon, inside the square root
    clip: float = 5.0  # gradients are clipped elementwise to [-clip, clip]
    epochs: int | None = None  # stop after this many passes over the corpus (default 2 if updates is unset)
    updates: int | None = None  # stop after this many parameter updates in all (overrides epochs)
    sample_every: int = 10_000  # updates between training-time samples (also one before the first update)
    sample_length: int = 200  # characters in each training-time sample
    log_every: int = 100  # updates between rows of metrics
    checkpoint_every: int = 1_000  # updates between checkpoints of the last state (and one at the end)
    eval_every: int | None = None  # updates between validation losses; None: a tenth of the run, at most 5,000
    seed: int = 0  # seed of the run's random generator, recorded so the run can be repeated
    batch_size: int = 1  # parallel streams; 1 is the assignment's exact algorithm
    threads: int | None = None  # threads that share a batch's streams; None: one per CPU, at most one per 32 streams

    def __post_init__(self):
        positive = ("seq_length", "sample_every", "sample_length", "log_every", "checkpoint_every", "batch_size")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("eta", "eps", "clip"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"--{name} must be a positive number, got {value!r}")
        for name in ("epochs", "updates", "eval_every", "threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"--{name} must be a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed must be a non-negative integer, got {self.seed!r}")

    def resolved_eval_every(self, total: int) -> int:
        """``eval_every``, or when unset a tenth of a run of ``total`` updates, kept between 2,500 (an
        evaluation reads the whole held-out text, so not too often) and 5,000, and never beyond the run
        itself; rounded down to a multiple of ``log_every`` so evaluations land on logged rows."""
        if self.eval_every is not None:
            return self.eval_every
        every = max(1, total) if total < 2_500 else min(5_000, max(total // 10, 2_500))
        return every - every % self.log_every if every >= self.log_every else every

    def to_json(self) -> dict:
        """The config as a JSON-ready dict."""
        return asdict(self)
