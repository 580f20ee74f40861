"""THE settings table: every setting textgen takes, declared once (type, default, bounds, help, meaning,
whether a resume may change it, whether it is a path, which dataclass holds it), and the frozen dataclasses
built from it: `ModelConfig`, `TrainConfig`, `RunConfig` and `SampleConfig`.

The command line's flags, the keys of a TOML settings file, the keywords of the Python API, the settings a
sweep may search and the glossary of the run report are all made from `SETTINGS`. A value is checked here, in
one place, whichever of them it came through; a message names the setting with `errors.setting_name`, and each
front end spells it its own way (``--eta`` on the command line, ``eta`` in a file or in Python). Rules that
join several settings live in `textgen.settings`. Free of NumPy, so the command line starts instantly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from textgen.errors import ConfigError, setting_name

MAX_COUNT = 10**15  # the largest count any setting takes (updates, intervals, lengths): beyond JSON's exact range
MAX_THREADS = 256  # threads that share a batch's streams, at most
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # read as NumPy loads
MAX_LAYERS = 64
MAX_CONTEXT = 4096  # tokens a gpt window sees, at most: its attention is (context × context) per head
DEFAULT_EPOCHS = 2  # when neither updates nor epochs is given: two passes over the corpus, but at least...
DEFAULT_MIN_CHARACTERS = 2_500_000  # ...this many characters read (100,000 updates of 25 at batch 1), for small corpora
DTYPES = ("float64", "float32")
CELL_NAMES = ("rnn", "lstm", "gru", "gpt")  # see textgen.models
OPTIMIZERS = ("adagrad", "rmsprop", "adam", "adamw")  # see textgen.optim
# each optimizer's usual learning rate (AdamW's: nanoGPT's for its character-level Shakespeare)
DEFAULT_ETA = {"adagrad": 0.1, "rmsprop": 0.002, "adam": 0.002, "adamw": 0.001}
# What each cell trains with unless told otherwise: the assignment's RNN keeps the assignment's AdaGrad and
# N(0, 0.01²); the gated cells train far better with RMSprop and larger initial weights (measured: see the
# README's "Defaults that suit the cell"); the transformer trains with AdamW (its rate, 0.001, comes with the
# optimizer) from N(0, 0.02²), as GPT-2 and nanoGPT do.
CELL_DEFAULTS = {
    "rnn": {"optimizer": "adagrad", "sigma": 0.01},
    "lstm": {"optimizer": "rmsprop", "sigma": 0.08},
    "gru": {"optimizer": "rmsprop", "sigma": 0.08},
    "gpt": {"optimizer": "adamw", "sigma": 0.02},
}
# The cells whose windows are all --context ids long, at random positions, each read afresh (they carry no
# state from one to the next): a run of one reads windows of its context, which is then its seq_length.
WINDOWED_CELLS = ("gpt",)
SCHEDULES = ("constant", "cosine", "linear", "exponential")  # how the learning rate moves over a run: see textgen.optim
TOKEN_LEVELS = ("char", "word", "bpe")  # see textgen.vocab
DEFAULT_VOCAB_SIZE = {"word": 2_000, "bpe": 1_000}  # tokens in the vocabulary when --vocab-size is not given
MAX_VOCAB_SIZE = 1_000_000  # the largest vocabulary --vocab-size may ask for
CHECKPOINTS = ("best", "last")  # a run's two models: the best by its validation (or smooth) loss, and the last


@dataclass(frozen=True)
class Setting:
    """One setting: what it holds, what it may be, and how each front end shows it."""

    name: str  # the Python keyword and the TOML key; the flag is --name-with-dashes
    type: type  # what a value is once checked: int, float, str, bool, Path, or list (of str) for repeatable ones
    default: object  # None: not set (a default worked out when the run starts, see ``default_text``)
    help: str  # --help's line (the default is added to it)
    group: str  # "model", "train", "run", "corpus", "loader", "sample", "display" or "gradcheck"
    meaning: str = ""  # the run report's glossary ("" for settings a run does not record)
    low: float | None = None  # the smallest value (for counts), or the bound a number must be above
    high: float | None = None  # the largest value
    open_high: bool = False  # the value must be below ``high`` (a fraction: at least 0 and below 1)
    closed_low: bool = False  # the value may be ``low`` itself (a number: at least ``low``)
    unit: str = ""  # what a number counts, for a setting that may be ``low`` itself (seconds: 0 or more)
    choices: tuple = ()  # the values it may take
    resumable: bool = False  # whether `train --resume` may change it
    path: bool = False  # a path, read from a settings file's folder when relative
    metavar: str = ""  # what --help shows after the flag
    default_text: str = ""  # the default as --help says it, where it is not a plain value
    loader: str = ""  # for a loader's setting: the loader it belongs to
    keyword: str = ""  # ... and the keyword of that loader's constructor it sets
    negated: bool = False  # ... whose value is the setting's opposite (keep_html_entities sets unescape_html)
    # whether a sweep may search it: not where a run goes or what it starts from, nor the corpus and its held-out
    # text, which every trial reads alike so that their held-out losses are measured on the same text
    searchable: bool = True
    # (setting, values): it acts only when that other setting has one of these values (--heads: cell gpt); given
    # otherwise it is ignored, and the run says so (`not_applying`)
    applies: tuple[str, tuple[str, ...]] | None = None

    @property
    def flag(self) -> str:
        """``--name-with-dashes``."""
        return "--" + self.name.replace("_", "-")

    @property
    def is_switch(self) -> bool:
        """True for an on/off setting, which the command line gives as a bare flag."""
        return self.type is bool

    @property
    def shown_default(self) -> str:
        """The default as --help and the README say it ("" for none)."""
        if self.default_text:
            return self.default_text
        if self.default is None or self.default is False or self.default == "":
            return ""
        return f"{self.default:,}" if isinstance(self.default, int) and self.default >= 10_000 else str(self.default)

    def kind(self) -> str:
        """What a value must be, in words (for a value of the wrong type)."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        return {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path",
                list: "a string or a list of them"}[self.type]

    def check(self, value: object) -> None:
        """ConfigError naming the setting unless ``value`` is one it may take (None is "not set")."""
        name = setting_name(self.name)
        if value is None:
            if self.default is None:
                return  # not set: worked out when the run starts, or not used
            raise ConfigError(f"{name} must be {self.kind()}, got None")
        if self.choices:
            if value not in self.choices or isinstance(value, bool):
                raise ConfigError(f"{name} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
            return
        if self.type is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be True or False, got {value!r}")
            return
        if self.type is int:
            minimum = 0 if self.low is None else int(self.low)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                what = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
                raise ConfigError(f"{name} must be {what}, got {value!r}")
            high = MAX_COUNT if self.high is None else self.high
            if value > high:
                raise ConfigError(f"{name} must be at most {high:,}, got {value:,}")
            return
        if self.type is float:
            low, high = (0.0 if self.low is None else self.low), (math.inf if self.high is None else self.high)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if self.unit:  # a number of seconds, say: low itself or more
                if not (ok and low <= value <= high):
                    raise ConfigError(f"{name} must be a number of {self.unit}, {low:g} or more, got {value!r}")
            elif self.closed_low:  # a rate that may be 0
                if not (ok and low <= value <= high):
                    raise ConfigError(f"{name} must be a number of at least {low:g}, got {value!r}")
            elif self.open_high:  # a fraction: at least low, below high
                if not (ok and low <= value < high):
                    raise ConfigError(f"{name} must be at least {low:g} and below {high:g}, got {value!r}")
            elif not (ok and low < value <= high):
                what = "a positive number" if low == 0 and math.isinf(high) else f"a number above {low:g} and at " \
                                                                                   f"most {high:g}"
                raise ConfigError(f"{name} must be {what}, got {value!r}")
            return
        if self.type is Path:
            if not isinstance(value, (str, Path)):
                raise ConfigError(f"{name} must be a path, got {value!r}")
            return
        if self.type is str and not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")


def setting(default: object, help: str, **spec) -> object:
    """A dataclass field that is a setting: the field's name and annotation complete the `Setting`."""
    return field(default=default, metadata={"setting": dict(help=help, **spec)})


_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "Path": Path}


def _settings_of(cls, group: str) -> dict[str, Setting]:
    """The `Setting` of each field of the dataclass ``cls`` declared with `setting`."""
    table = {}
    for f in fields(cls):
        spec = f.metadata.get("setting")
        if spec is None:
            continue
        annotation = str(f.type).replace(" | None", "").replace("None | ", "")
        table[f.name] = Setting(name=f.name, type=_TYPES[annotation], default=f.default, group=group, **spec)
    return table


class Checked:
    """A frozen dataclass of settings whose every field is checked by its `Setting` when it is made; ``rules``
    adds the checks across fields of the class."""

    def __post_init__(self):
        for name, entry in type(self).table().items():
            entry.check(getattr(self, name))
        self.rules()

    def rules(self) -> None:
        """Checks that join several fields (none here)."""

    @classmethod
    def table(cls) -> dict[str, Setting]:
        """The class's settings by name (each class keeps its own)."""
        cached = cls.__dict__.get("_table")
        if cached is None:
            cached = _settings_of(cls, cls.group)
            setattr(cls, "_table", cached)
        return cached

    def to_json(self) -> dict:
        """The settings as a JSON-ready dict."""
        return {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(self).items()}


_COUNT = {"type": int, "low": 1}


@dataclass(frozen=True)
class ModelConfig(Checked):
    """The network: its cell, depth, width, initialisation and precision."""

    group = "model"

    hidden: int = setting(100, "hidden units of each layer", meaning="hidden units m (of each layer)", low=1,
                          metavar="M")
    sigma: float | None = setting(None, "std of the initial weights", meaning="std of the initial weights",
                                  metavar="SIGMA", default_text="0.01 for rnn (the assignment's), 0.08 for lstm and gru, 0.02 for gpt")
    dtype: str = setting("float64", "float64 (the assignment's) or float32 (faster)", choices=DTYPES,
                         meaning="floating-point type of the parameters", metavar="DTYPE")
    cell: str = setting("rnn", "rnn (the assignment's), lstm, gru, or gpt (a decoder-only transformer)",
                        choices=CELL_NAMES, meaning="rnn (the assignment's), lstm, gru or gpt", metavar="CELL")
    layers: int = setting(1, "layers stacked (gpt: transformer blocks)", meaning="layers stacked", low=1,
                          high=MAX_LAYERS, metavar="L")
    heads: int = setting(4, "gpt: attention heads of each block (they split --hidden between them)", low=1,
                         meaning="attention heads per block (gpt)", metavar="H",
                         applies=("cell", WINDOWED_CELLS))
    context: int = setting(64, "gpt: the tokens a window sees (its training windows are this long)", low=1,
                           high=MAX_CONTEXT, meaning="tokens a window sees (gpt)", metavar="T",
                           applies=("cell", WINDOWED_CELLS))

    def rules(self) -> None:
        if self.sigma is None:
            object.__setattr__(self, "sigma", CELL_DEFAULTS[self.cell]["sigma"])
        if self.cell == "gpt" and self.hidden % self.heads:
            raise ConfigError(f"{setting_name('heads')} {self.heads} does not divide {setting_name('hidden')} "
                              f"{self.hidden}: each head takes an equal share of the width; give a width that is a "
                              f"multiple of the heads")


RNNConfig = ModelConfig  # its name before the table (it configures every cell, not only the RNN)


@dataclass(frozen=True)
class TrainConfig(Checked):
    """How the model is trained; the defaults are DD2424 Assignment 4's."""

    group = "train"

    seq_length: int = setting(25, "tokens (characters at --tokens char) per window, the length of backprop through "
                              "time", low=1, metavar="N", meaning="tokens per window (backprop through time)")
    tokens: str = setting("char", "what a token is: char (one character, the assignment's), word (a frequent word, "
                          "else its characters, one by one) or bpe (byte-pair pieces learned from the training text)",
                          choices=TOKEN_LEVELS, meaning="what a token is: char, word or bpe", metavar="LEVEL")
    vocab_size: int = setting(
        0, "tokens in the vocabulary with --tokens word or bpe (0: the default); word keeps every character of the "
        "corpus besides (so it has at least as many tokens as distinct characters), bpe every byte (at least 257)",
        low=0,
        high=MAX_VOCAB_SIZE, metavar="N", meaning="tokens in the vocabulary asked for (word, bpe)",
        default_text="2,000 for word, 1,000 for bpe")
    eta: float | None = setting(None, "learning rate", meaning="learning rate", resumable=True, metavar="ETA",
                                default_text="0.1 for adagrad, 0.002 for rmsprop and adam, 0.001 for adamw")
    eps: float = setting(1e-8, "adagrad: inside the square root; rmsprop, adam: added to it", metavar="EPS",
                         meaning="the optimizer's epsilon (AdaGrad: inside the square root)")
    clip: float = setting(5.0, "clip gradients to [-C, C]", meaning="gradients clipped to [-clip, clip]", metavar="C")
    epochs: float | None = setting(
        None, "passes over the corpus; neither this nor --updates: 2 epochs, but at least 2.5 million characters "
        "(100,000 updates at batch 1), so that a small corpus gets a useful model", resumable=True, high=MAX_COUNT,
        meaning="passes over the corpus (resolved: the passes the updates make)", metavar="E")
    updates: int | None = setting(None, "parameter updates in all (instead of --epochs)", low=1, resumable=True,
                                  meaning="parameter updates in all (resolved from epochs or the default)",
                                  metavar="N")
    sample_every: int = setting(10_000, "updates between training-time samples", low=1, resumable=True,
                                meaning="updates between training-time samples", metavar="N")
    sample_length: int = setting(200, "characters per training-time sample", low=1, metavar="N",
                                 meaning="characters per training-time sample")
    log_every: int = setting(100, "updates between rows of metrics.jsonl", low=1, resumable=True, metavar="N",
                             meaning="updates between rows of metrics.jsonl")
    checkpoint_every: int = setting(1_000, "updates between saves of last.npz and best.npz", low=1, resumable=True,
                                    meaning="updates between checkpoints", metavar="N")
    eval_every: int | None = setting(
        None, "updates between validation losses", low=1, resumable=True, metavar="N",
        meaning="updates between validation losses",
        default_text="a tenth of the run, kept between 2,500 and 5,000 and never beyond the run, rounded down to a "
        "multiple of --log-every")
    seed: int = setting(0, "random seed", low=0, meaning="random seed of the run", metavar="S",
                        default_text="a fresh one, recorded in config.json")
    batch_size: int = setting(1, "parallel streams (1 is the assignment's exact algorithm)", low=1, metavar="B",
                              meaning="parallel streams (1: the assignment's algorithm)")
    threads: int | None = setting(None, "threads sharing a batch's streams", low=1, metavar="T",
                                  meaning="threads sharing a batch's streams",
                                  default_text="one per CPU, at most one per 32 streams (gpt: per 256 ids of its "
                                  "windows)")
    optimizer: str | None = setting(None, "adagrad (the assignment's), rmsprop, adam or adamw (adam with decoupled "
                                    "weight decay)", choices=OPTIMIZERS,
                                    meaning="adagrad (the assignment's), rmsprop, adam or adamw", metavar="NAME",
                                    default_text="adagrad for rnn (the assignment's), rmsprop for lstm and gru, "
                                    "adamw for gpt")
    weight_decay: float = setting(0.1, "adamw: each step shrinks the weight matrices by eta × D (not biases, norms "
                                  "or embeddings)", closed_low=True, metavar="D",
                                  meaning="AdamW: decoupled weight decay of the weight matrices",
                                  applies=("optimizer", ("adamw",)))
    rmsprop_decay: float = setting(0.95, "rmsprop: decay of the running mean of squared gradients", high=1.0,
                                   open_high=True, metavar="RHO",
                                   meaning="RMSprop: decay of the mean of squared gradients",
                                   applies=("optimizer", ("rmsprop",)))
    beta1: float = setting(0.9, "adam: decay of the running mean of gradients", high=1.0, open_high=True,
                           meaning="Adam: decay of the mean of gradients", metavar="B1",
                           applies=("optimizer", ("adam", "adamw")))
    beta2: float = setting(0.999, "adam: decay of the running mean of squared gradients", high=1.0, open_high=True,
                           meaning="Adam: decay of the mean of squared gradients", metavar="B2",
                           applies=("optimizer", ("adam", "adamw")))
    schedule: str = setting(
        "constant", "how the learning rate moves: constant (the assignment's), cosine or linear from --eta down to "
        "--min-eta at the run's last update, or exponential (char-rnn's)", choices=SCHEDULES, meaning="learning-rate schedule", metavar="NAME")
    warmup: int = setting(0, "updates over which the rate first climbs in equal steps to what the schedule gives "
                          "(any schedule)", low=0, meaning="updates of linear learning-rate warm-up", metavar="N")
    min_eta: float | None = setting(None, "cosine, linear: the rate at the run's last update", closed_low=True,
                                    resumable=True,
                                    meaning="learning rate at the end of a cosine or linear schedule",
                                    default_text="a tenth of --eta", metavar="ETA",
                                    applies=("schedule", ("cosine", "linear")))
    decay_rate: float = setting(0.97, "exponential: the rate is multiplied by R at the end of each epoch from "
                                "--decay-after on (char-rnn's)", high=1.0, metavar="R",
                                meaning="exponential schedule: the rate's factor per epoch",
                                applies=("schedule", ("exponential",)))
    decay_after: int = setting(10, "exponential: the first epoch at whose end the rate decays", low=1, metavar="E",
                               meaning="exponential schedule: the first epoch at whose end the rate decays",
                               applies=("schedule", ("exponential",)))
    dropout: float = setting(0.0, "drop each output of each layer with probability P while training", high=1.0,
                             open_high=True, meaning="probability of dropping each layer output while training",
                             metavar="P")

    def rules(self) -> None:
        if self.vocab_size and self.tokens == "char":
            raise ConfigError(f"{setting_name('vocab_size')} is for {setting_name('tokens')} word or bpe; at "
                              f"{setting_name('tokens')} char the vocabulary is the corpus's characters: leave "
                              f"{setting_name('vocab_size')} out")
        if self.optimizer is None:  # a TrainConfig made alone: the assignment's (a run's settings name the cell's)
            object.__setattr__(self, "optimizer", CELL_DEFAULTS["rnn"]["optimizer"])
        if self.eta is None:
            object.__setattr__(self, "eta", DEFAULT_ETA[self.optimizer])
        if self.updates is not None and self.warmup >= self.updates:
            raise ConfigError(f"{setting_name('warmup')} {self.warmup:,} is not below the run's {self.updates:,} "
                              f"updates: the rate would never reach {setting_name('eta')}; give a shorter warm-up")
        if self.min_eta is None:  # resolved whatever the schedule, so that config.json says what it is
            object.__setattr__(self, "min_eta", self.eta / 10)
        if self.schedule in ("cosine", "linear"):
            if self.min_eta > self.eta:
                raise ConfigError(f"{setting_name('min_eta')} {self.min_eta:g} is above {setting_name('eta')} "
                                  f"{self.eta:g}: a {self.schedule} schedule falls from the rate to the minimum; "
                                  f"give a {setting_name('min_eta')} of at most {self.eta:g} or a higher "
                                  f"{setting_name('eta')}")
        if self.optimizer == "adamw" and self.eta * self.weight_decay >= 1:
            # each step multiplies a weight matrix by 1 - eta × D: at 1 it is wiped, beyond it flips and grows
            raise ConfigError(f"{setting_name('weight_decay')} {self.weight_decay:g} × {setting_name('eta')} "
                              f"{self.eta:g} is {self.eta * self.weight_decay:g}, not below 1: each step would "
                              f"wipe or flip the weights instead of shrinking them; give a smaller "
                              f"{setting_name('weight_decay')} or {setting_name('eta')}")
        if not self.vocab_size and self.tokens != "char":  # recorded resolved, as eta is
            object.__setattr__(self, "vocab_size", DEFAULT_VOCAB_SIZE[self.tokens])
        if self.threads is not None and self.threads > min(self.batch_size, MAX_THREADS):
            raise ConfigError(f"{setting_name('threads')} {self.threads} is more than the "
                              f"{min(self.batch_size, MAX_THREADS)} that can share the work: each thread needs a "
                              f"stream of its own ({setting_name('batch_size')} {self.batch_size}), and at most "
                              f"{MAX_THREADS} threads are used")

    @property
    def resolved_vocab_size(self) -> int | None:
        """``vocab_size`` at word and bpe level (resolved: never 0), None at char level."""
        return self.vocab_size or DEFAULT_VOCAB_SIZE.get(self.tokens)

    def resolved_eval_every(self, total: int) -> int:
        """``eval_every``, or when unset a tenth of a run of ``total`` updates, kept between 2,500 (an
        evaluation reads the whole held-out text, so not too often) and 5,000, and never beyond the run
        itself; rounded down to a multiple of ``log_every`` so evaluations land on logged rows."""
        if self.eval_every is not None:
            return self.eval_every
        every = max(1, total) if total < 2_500 else min(5_000, max(total // 10, 2_500))
        return every - every % self.log_every if every >= self.log_every else every


@dataclass(frozen=True)
class RunConfig(Checked):
    """What a run does besides training: where it lives, what it holds out, what it writes at the end."""

    group = "run"

    out: Path | None = setting(None, "the run folder", path=True, metavar="RUN_DIR", meaning="the run folder",
                               default_text="runs/<corpus>-<time>", searchable=False)
    force: bool = setting(False, "replace the run already in --out", meaning="replace a run already in the folder",
                          searchable=False)
    val_fraction: float = setting(
        0.05, "hold out the tail of each corpus (whole documents for tweets and rows) for a validation loss, unless "
        "it has held-out text of its own (--hf-val-split); 0 trains on everything", high=1.0, open_high=True,
        meaning="share of each corpus held out for validation", metavar="F", searchable=False)
    passage_length: int = setting(1000, "length of the final passage from the best model", low=0, resumable=True,
                                  meaning="characters in best_passage.txt", metavar="N")
    val_max_characters: int = setting(
        250_000, "hold out at most about N characters of each corpus (whole documents for tweets and rows): every "
        "evaluation reads all of the held-out text", low=1, meaning="held-out characters per corpus at most",
        metavar="N", searchable=False)
    init_from: Path | None = setting(
        None, "start from another run's last parameters and vocabulary (train a model further on new text whose "
        "characters it knows)", path=True, meaning="run whose parameters this run started from", metavar="RUN_DIR",
        searchable=False)
    stream_over: int = 64 << 20  # not a setting: a single corpus file of more bytes is encoded to disk and mapped

    def rules(self) -> None:
        if not isinstance(self.stream_over, int) or self.stream_over < 0:
            raise ConfigError(f"stream_over must be a count of bytes, got {self.stream_over!r}")


@dataclass(frozen=True)
class SampleConfig(Checked):
    """How text is drawn from a model."""

    group = "sample"

    length: int = setting(1000, "characters after the prime (the limit per document with --documents); a word or "
                          "bpe model draws tokens until the text has N characters and is cut there", low=0,
                          metavar="N")
    temperature: float = setting(1.0, "divides the logits: below 1 is safer and more repetitive, above 1 wilder",
                                 metavar="T")
    top_k: int = setting(0, "draw among the K likeliest characters (0: all)", low=0, metavar="K")
    top_p: float = setting(1.0, "draw among the likeliest characters that together have probability P (nucleus)",
                           high=1.0, metavar="P")
    greedy: bool = setting(False, "always take the likeliest character")
    prime: str = setting("", "text the model reads first; the output starts with it", metavar="TEXT")
    count: int = setting(1, "N independent samples", low=1, metavar="N")
    documents: int = setting(0, "N whole documents (e.g. tweets), each stopped at the end-of-document marker; "
                             "--length is then the limit per document", low=0, metavar="N")

    def rules(self) -> None:
        if self.documents and self.count != 1:
            raise ConfigError(f"{setting_name('documents')} and {setting_name('count')} cannot be combined; "
                              f"{setting_name('documents')} N already draws N samples")


def _entries(group: str, *entries: Setting) -> dict[str, Setting]:
    searchable = group not in ("corpus", "loader")
    return {entry.name: Setting(**{**entry.__dict__, "group": group, "searchable": searchable}) for entry in entries}


# The corpus a run reads: its sources, the loader for them, how several mix, and any loader's own keywords.
CORPUS_SETTINGS = _entries(
    "corpus",
    Setting("corpus", list, None, "PATH (loader chosen by suffix), LOADER:SOURCE (e.g. hf:NAME) or a named corpus "
            "(see `textgen corpora`); repeat for several corpora, which share one vocabulary", "",
            metavar="SOURCE", default_text="pydoc, the Python reference"),
    Setting("kind", str, None, "use this loader for every --corpus", "", metavar="LOADER"),
    Setting("weights", str, None, "mix several corpora in these proportions", "", metavar="W1,W2,...",
            default_text="by size, each used once"),
    Setting("option", list, None, "a keyword of the chosen loader's constructor, such as a plugin's (--option "
            "column=title; true/false and numbers are converted); it goes to every chosen loader that takes KEY, "
            "LOADER.KEY=VALUE to that loader only; repeat for several", "", metavar="KEY=VALUE"),
)


def _loader(name: str, type_: type, loader: str, keyword: str, help: str, metavar: str = "",
            negated: bool = False) -> Setting:
    return Setting(name, type_, None, f"{loader}: {help}", "loader", loader=loader, keyword=keyword, metavar=metavar,
                   negated=negated, searchable=False)


# The built-in loaders' own settings: each reaches only its loader (any loader's keywords come through option).
LOADER_SETTINGS = {entry.name: entry for entry in (
    _loader("encoding", str, "text", "encoding", "encoding of the file (default utf-8)", "NAME"),
    _loader("strip_gutenberg", bool, "text", "strip_gutenberg", "drop Project Gutenberg's licence header and footer"),
    _loader("keep_carriage_returns", bool, "text", "keep_carriage_returns",
            "keep CRLF and CR line ends as they are (by default they become \\n)"),
    _loader("keep_retweets", bool, "tweets", "keep_retweets", "keep retweets (dropped by default)"),
    _loader("keep_html_entities", bool, "tweets", "unescape_html", "leave &amp; and friends as they are",
            negated=True),
    _loader("keep_links", bool, "tweets", "keep_links", "keep https://t.co/... links (dropped by default)"),
    _loader("since", str, "tweets", "since", "only those from this date on", "YYYY-MM-DD"),
    _loader("until", str, "tweets", "until", "only those up to this date", "YYYY-MM-DD"),
    _loader("min_length", int, "tweets", "min_length", "drop shorter ones", "N"),
    _loader("hf_config", str, "hf", "config", "dataset configuration", "NAME"),
    _loader("hf_split", str, "hf", "split", "split to read (default train)", "SPLIT"),
    _loader("text_column", str, "hf", "text_column", "column holding the text", "COLUMN"),
    _loader("hf_val_split", str, "hf", "val_split", "hold out this split of the dataset (e.g. validation; up to 250k "
            "characters) instead of the tail of the split trained on", "SPLIT"),
)}
HELD_OUT_LOADER_SETTINGS = ("hf_val_split",)  # loader settings only `train` takes: they choose the held-out text

# How `train` shows its progress (the command line's; the API has ``progress`` and callbacks).
DISPLAY_SETTINGS = _entries(
    "display",
    Setting("no_progress", bool, False, "hide the progress bar", ""),
    Setting("status_every", float, 10.0, "when standard error is not a terminal (CI, nohup, Slurm), print one plain "
            "status line this often instead of a progress bar; 0 for none", "", unit="seconds", metavar="SECONDS"),
    Setting("quiet", bool, False, "no progress bar, status lines or notices", ""),
    Setting("verbose", bool, False, "more detail: each validation loss as it is measured, and elapsed time in "
            "status lines", ""),
)

# The gradient check's own settings (it takes the model's and seq_length as well).
GRADCHECK_SETTINGS = _entries(
    "gradcheck",
    Setting("max_entries", int, 200, "entries checked per parameter, drawn at random; 0 for all", "", low=0,
            metavar="N"),
)

SETTINGS: dict[str, Setting] = {
    **ModelConfig.table(), **TrainConfig.table(), **RunConfig.table(), **CORPUS_SETTINGS, **LOADER_SETTINGS,
}  # what a run takes: the flags of `textgen train`, the keys of its TOML file, the keywords of textgen.train
ALL_SETTINGS: dict[str, Setting] = {**SETTINGS, **SampleConfig.table(), **DISPLAY_SETTINGS, **GRADCHECK_SETTINGS}
RESUMABLE = tuple(name for name, entry in SETTINGS.items() if entry.resumable)  # what `--resume` may change
RESUMABLE_FIELDS = tuple(name for name in RESUMABLE if name in TrainConfig.table())  # ... of TrainConfig


def not_applying(given: set[str] | dict, model: ModelConfig, train: TrainConfig) -> list[str]:
    """What a run says of the settings ``given`` (by name) that its ``model`` and ``train`` settings leave idle
    (`Setting.applies`: --heads for an lstm, --decay-rate with a cosine, --weight-decay with adam): one line
    per rule they break, with the settings marked (`setting_name`). Empty when every one given acts."""
    values = {**model.to_json(), **train.to_json()}
    idle: dict[tuple, list[str]] = {}
    for name in given:
        entry = SETTINGS.get(name)
        if entry is not None and entry.applies is not None and values.get(entry.applies[0]) not in entry.applies[1]:
            idle.setdefault(entry.applies, []).append(name)
    lines = []
    for (on, acting), names in idle.items():
        listed = " and ".join(setting_name(name) for name in names)
        lines.append(f"{listed} {'has' if len(names) == 1 else 'have'} no effect with {setting_name(on)} "
                     f"{values.get(on)} (only with {setting_name(on)} {' or '.join(acting)}): ignored")
    return lines


def check_count(name: str, value: object, minimum: int = 1) -> None:
    """ConfigError unless ``value`` is an int from ``minimum`` to MAX_COUNT (``name`` is the setting)."""
    Setting(name, int, None, "", "", low=minimum).check(value)


def check_number(name: str, value: object, low: float = 0.0, high: float = math.inf) -> None:
    """ConfigError unless ``value`` is a finite number above ``low`` and at most ``high``."""
    Setting(name, float, None, "", "", low=low, high=high).check(value)
