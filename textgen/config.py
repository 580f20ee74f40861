"""The settings of a run as frozen dataclasses: `RNNConfig` (the network), `TrainConfig` (training) and
`RunConfig` (the run folder and what a run does around training). Free of NumPy, so the command line
starts instantly and the run folder can validate a hand-edited config.json with the same checks as the flags."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from textgen.errors import ConfigError

DEFAULT_EPOCHS = 2  # when neither updates nor epochs is given: two passes over the corpus, but at least...
DEFAULT_MIN_CHARACTERS = 2_500_000  # ...this many characters read (100,000 updates of 25 at batch 1), for small corpora
MAX_COUNT = 10**15  # the largest count any setting takes (updates, intervals, lengths): beyond JSON's exact range
MAX_THREADS = 256  # threads that share a batch's streams, at most
DTYPES = ("float64", "float32")
CELL_NAMES = ("rnn", "lstm", "gru")  # see textgen.models
MAX_LAYERS = 64
OPTIMIZERS = ("adagrad", "rmsprop", "adam")  # see textgen.optim
DEFAULT_ETA = {"adagrad": 0.1, "rmsprop": 0.002, "adam": 0.002}  # each optimizer's usual learning rate
# What `--resume` may change: the totals, the learning rate and the logging intervals. Anything else
# (the model, the windows, the streams, the seed, the threads' summing order, the optimizer, dropout)
# would make it inexact.
RESUMABLE_FIELDS = ("eta", "updates", "epochs", "sample_every", "log_every", "checkpoint_every", "eval_every")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_count(name: str, value: object, minimum: int = 1, maximum: int = MAX_COUNT) -> None:
    """ConfigError unless ``value`` is an int from ``minimum`` to ``maximum`` (``name`` is the field)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise ConfigError(f"{_flag(name)} must be {kind}, got {value!r}")
    if value > maximum:
        raise ConfigError(f"{_flag(name)} must be at most {maximum:,}, got {value:,}")


def check_number(name: str, value: object, low: float = 0.0, high: float = math.inf) -> None:
    """ConfigError unless ``value`` is a finite number above ``low`` and at most ``high``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and low < value <= high):
        kind = "a positive number" if low == 0 and math.isinf(high) else f"a number above {low:g} and at most {high:g}"
        raise ConfigError(f"{_flag(name)} must be {kind}, got {value!r}")


@dataclass(frozen=True)
class RNNConfig:
    """Shape and initialisation of the network."""

    hidden: int = 100  # m, number of hidden units (of each layer)
    sigma: float = 0.01  # standard deviation of the normal initialisation of U, W, V
    dtype: str = "float64"  # float64 (as in the assignment) or float32 (faster)
    cell: str = "rnn"  # rnn (the assignment's), lstm or gru
    layers: int = 1  # layers stacked; layer l reads layer l-1's h, the softmax reads the top one

    def __post_init__(self):
        check_count("hidden", self.hidden)
        check_number("sigma", self.sigma)
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.cell not in CELL_NAMES:
            raise ConfigError(f"--cell must be one of {', '.join(CELL_NAMES)}, got {self.cell!r}")
        check_count("layers", self.layers, maximum=MAX_LAYERS)

    def to_json(self) -> dict:
        """The config as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """How the model is trained; the defaults are DD2424 Assignment 4's."""

    seq_length: int = 25  # characters per window, the length of backpropagation through time
    eta: float | None = None  # learning rate; None: the optimizer's usual one (DEFAULT_ETA; 0.1 for AdaGrad)
    eps: float = 1e-8  # AdaGrad: inside the square root, as in the assignment; RMSprop, Adam: added to the root
    clip: float = 5.0  # gradients are clipped elementwise to [-clip, clip]
    epochs: float | None = None  # passes over the corpus; None with updates None: 2, but at least 2.5M characters
    updates: int | None = None  # parameter updates in all (overrides epochs); a run records its resolved total here
    sample_every: int = 10_000  # updates between training-time samples (also one before the first update)
    sample_length: int = 200  # characters in each training-time sample
    log_every: int = 100  # updates between rows of metrics
    checkpoint_every: int = 1_000  # updates between checkpoints of the last state (and one at the end)
    eval_every: int | None = None  # updates between validation losses; None: a tenth of the run, at most 5,000
    seed: int = 0  # seed of the run's random generator, recorded so the run can be repeated
    batch_size: int = 1  # parallel streams; 1 is the assignment's exact algorithm
    threads: int | None = None  # threads that share a batch's streams; None: one per CPU, at most one per 32 streams
    optimizer: str = "adagrad"  # adagrad (the assignment's), rmsprop or adam
    rmsprop_decay: float = 0.95  # RMSprop: the mean square's decay per update (char-rnn's default)
    beta1: float = 0.9  # Adam: decay of the gradient's running mean
    beta2: float = 0.999  # Adam: decay of the squared gradient's running mean
    dropout: float = 0.0  # probability of dropping each output of each layer while training (inverted dropout)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.eta is None:
            object.__setattr__(self, "eta", DEFAULT_ETA[self.optimizer])
        for name in ("rmsprop_decay", "beta1", "beta2"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
                raise ConfigError(f"{_flag(name)} must be at least 0 and below 1, got {value!r}")
        dropout = self.dropout
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ConfigError(f"--dropout must be at least 0 and below 1, got {dropout!r}")
        for name in ("seq_length", "sample_every", "sample_length", "log_every", "checkpoint_every", "batch_size"):
            check_count(name, getattr(self, name))
        for name in ("eta", "eps", "clip"):
            check_number(name, getattr(self, name))
        for name in ("updates", "eval_every"):
            if getattr(self, name) is not None:
                check_count(name, getattr(self, name))
        if self.epochs is not None:
            check_number("epochs", self.epochs, high=MAX_COUNT)
        if self.threads is not None:
            check_count("threads", self.threads)
            if self.threads > min(self.batch_size, MAX_THREADS):
                raise ConfigError(f"--threads {self.threads} is more than the {min(self.batch_size, MAX_THREADS)} "
                                  "that can share the work: each thread needs a stream of its own (--batch-size "
                                  f"{self.batch_size}), and at most {MAX_THREADS} threads are used")
        check_count("seed", self.seed, minimum=0)

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


@dataclass(frozen=True)
class RunConfig:
    """What a run does besides training: where it lives, what it holds out, what it writes at the end."""

    out: Path | None = None  # the run folder; None: runs/<corpus>-<time>
    force: bool = False  # replace a run already in ``out`` (the old one stays until the new one has a checkpoint)
    val_fraction: float = 0.05  # the tail of each corpus held out for validation; 0 trains on everything
    passage_length: int = 1000  # characters of the final passage from the best model
    val_max_characters: int = 250_000  # held-out text per source at most: every evaluation reads all of it
    init_from: Path | None = None  # start from this run's last parameters, AdaGrad memory and vocabulary
    stream_over: int = 64 << 20  # a single corpus file of more bytes is encoded to disk and memory-mapped

    def __post_init__(self):
        fraction = self.val_fraction
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 <= fraction < 1:
            raise ConfigError(f"--val-fraction must be at least 0 and below 1, got {fraction!r}")
        check_count("passage_length", self.passage_length, minimum=0)
        check_count("val_max_characters", self.val_max_characters)
        check_count("stream_over", self.stream_over, minimum=0)
        if not isinstance(self.force, bool):
            raise ConfigError(f"force must be True or False, got {self.force!r}")
