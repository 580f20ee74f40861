"""The Python API, and the one door every front end goes through: `train`, `resume`, `load`, `evaluate`,
`gradcheck`, `corpora`, `report`, `plot` and the sweeps, the `Run` and `Model` they return, and the data the
command line renders.

Settings are the names of the settings table (``hidden=128``, ``updates=400``, ``keep_retweets=True``); a
message names them so (``temperature``), where the command line spells the same message with its flags.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from textgen.config import CHECKPOINTS, SETTINGS, ModelConfig, SampleConfig
from textgen.errors import ConfigError, TextgenError, as_keyword, by_origin, path_failure, setting_name
from textgen.fs import check_user_path
from textgen.loaders.base import END_OF_DOCUMENT  # noqa: F401 - for front ends: the marker after each document
from textgen.stopping import Interrupted, StopRequest  # noqa: F401 - for front ends: signals stop a run cleanly

CORPUS_SETTINGS = ("corpus", "kind", "weights", "option") + tuple(
    name for name, entry in SETTINGS.items() if entry.group == "loader")  # how a corpus is read, by name
# train()'s keyword settings: every setting but those it takes as arguments of its own
TRAIN_CALL_SETTINGS = tuple(name for name in SETTINGS if name not in ("corpus", "kind", "weights", "option", "out"))


@contextmanager
def _path_errors(spell: Callable[[str], str] = as_keyword) -> Iterator[None]:
    """A TextgenError read in Python, its settings spelled by ``spell`` (as Python does, by default); an OSError
    the operating system raised on a path (permission denied, say) as a PathError naming it."""
    try:
        try:
            yield
        except OSError as error:
            if error.filename is None:
                raise
            raise path_failure(error) from error
    except TextgenError as error:
        raise error.read_by(spell)


def _python_call(function: Callable) -> Callable:
    """``function`` as Python calls it: its errors spell settings as Python does (`_path_errors`)."""
    import functools

    @functools.wraps(function)
    def call(*args, **kwargs):
        with _path_errors():
            return function(*args, **kwargs)

    return call


@contextmanager
def _stop_on_ctrl_c(stop) -> Iterator[None]:
    """While training in the main thread, Ctrl-C asks the trainer to checkpoint and stop (a second one stops
    at once), as on the command line; elsewhere Python's own handling stays."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.request(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress(progress: bool | None) -> bool | None:
    """``progress``, or False where Python has no standard error to draw the bar on (pythonw, a daemon that
    closed it): the run goes on without one."""
    return False if sys.stderr is None else progress


def _stopped(stopped) -> KeyboardInterrupt:
    """The KeyboardInterrupt a notebook user sees for a run stopped with Ctrl-C, saying what was kept."""
    if stopped.folder is None:
        return KeyboardInterrupt("stopped before the run started; nothing was kept")
    return KeyboardInterrupt(f"stopped at update {stopped.update:,}; checkpoint saved in {stopped.folder}; "
                             f"textgen.resume({str(stopped.folder)!r}) continues it")


def _check_settings(settings: dict, allowed: Sequence[str], what: str) -> None:
    unknown = [name for name in settings if name not in allowed]
    if unknown:
        name = unknown[0]
        close = get_close_matches(name, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{what} has no setting {name!r}{hint} It takes: {', '.join(allowed)}")


def _corpus_list(corpus: str | Path | Sequence[str | Path] | None) -> list[str] | None:
    if corpus is None:
        return None
    if isinstance(corpus, (str, Path)):
        return [str(check_user_path(corpus, setting_name("corpus")))]
    if not isinstance(corpus, Sequence) or not all(isinstance(c, (str, Path)) for c in corpus):
        raise ConfigError(f"{setting_name('corpus')} must be a path or spec, or a list of them, got "
                          f"{type(corpus).__name__}")
    if not corpus:
        raise ConfigError(f"{setting_name('corpus')} is an empty list; give at least one source (or None for the "
                          "built-in default)")
    return [str(check_user_path(c, setting_name("corpus"))) for c in corpus]


def _path(name: str, value: object) -> Path:
    """``value`` as a Path, or ConfigError naming the parameter (PathError if no file can have that path)."""
    if not isinstance(value, (str, Path)):
        raise ConfigError(f"{name} must be a path (str or Path), got {value!r}")
    return check_user_path(value, name)


def _folder_of(run: str | Path | Run, name: str) -> Path:
    return run.folder if isinstance(run, Run) else _path(name, run)


def _check_loader_arguments(weights: object, options: object) -> None:
    """ConfigError unless ``weights`` is None, "W1,W2" or numbers, and ``options`` None or a dict."""
    if weights is not None and not isinstance(weights, str) and not (
            isinstance(weights, Sequence) and all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                                  for w in weights)):
        raise ConfigError(f"weights must be a list of numbers or 'W1,W2' text, got {weights!r}")
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"options must be a dict of loader keywords, such as {{'encoding': 'latin-1'}}, got "
                          f"{options!r}")


def _named(corpus, kind, weights, options, settings: dict) -> dict:
    """The corpus arguments of a Python call as settings by name."""
    _check_loader_arguments(weights, options)
    if isinstance(weights, Sequence) and not isinstance(weights, str):
        weights = list(weights)
    named = {**settings, "corpus": _corpus_list(corpus), "kind": kind, "weights": weights, "option": options}
    return {name: value for name, value in named.items() if value is not None}


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class Finished:
    """What a run that finished made, as a front end says it: its folder, final passage and numbers."""

    folder: Path
    passage: str  # best_passage.txt
    update: int  # updates made in all
    smooth_loss: float | None  # the smooth training loss at the end, in nats per window
    best_update: int  # where the best model was
    best_by: str  # "val_loss" (nats per character on the held-out text) or "smooth_loss" (nats per window)
    best_loss: float  # the loss that chose it
    report: Path | None  # report.html, if it was written


def _finished(result) -> Finished:
    state = result.state
    return Finished(result.folder, result.passage, state.update, state.smooth_loss, state.best_update, state.best_by,
                    state.best_loss, result.report)


def given_settings(front: str, settings: dict, config: str | Path | None = None, resume: bool = False):
    """The settings a front end gives a run, over those of a ``config`` file (see `textgen.settings.given_settings`)."""
    from textgen.settings import given_settings as merged

    return merged(front, settings, None if config is None else _path(setting_name("config"), config), resume)


def load_for_training() -> None:
    """Import now what training draws with (the progress bar, matplotlib), not half-way when a signal comes: an
    import a signal cuts short fails for good."""
    import tqdm.auto  # noqa: F401

    from textgen.plots import load_matplotlib

    load_matplotlib()


def start(given, *, progress: bool | None = None, callbacks: object = None, stop=None) -> Finished:
    """Train the new run ``given`` (a `textgen.settings.Given`: the settings by name and where each came from)
    into its run folder: for front ends, which keep ``stop`` (a `textgen.stopping.StopRequest` their signals
    set) and see `textgen.stopping.Interrupted` when it stops the run."""
    from textgen.run import start_planned
    from textgen.settings import plan_run

    with _path_errors():
        plan = plan_run(given.values)
        return _finished(start_planned(plan, progress=_progress(progress), callbacks=callbacks, stop=stop,
                                       extra={"settings_from": given.record}))


def carry_on(folder: str | Path, given, *, progress: bool | None = None, callbacks: object = None,
             stop=None) -> Finished:
    """Resume the run in ``folder`` with the settings ``given`` (see `start`)."""
    from textgen.run import resume_run

    with _path_errors():
        return _finished(resume_run(_path(setting_name("resume"), folder), given.values, progress=_progress(progress),
                                    callbacks=callbacks, stop=stop))


def _python(run_it: Callable) -> Path:
    """Run ``run_it(stop)`` as a Python call: Ctrl-C checkpoints and raises KeyboardInterrupt saying what was kept."""
    stop = StopRequest()
    try:
        with _stop_on_ctrl_c(stop):
            return run_it(stop).folder
    except Interrupted as stopped:
        raise _stopped(stopped) from None


@_python_call
def train(
    corpus: str | Path | Sequence[str | Path] | None = None,
    *,
    out: str | Path | None = None,
    config: str | Path | None = None,
    progress: bool | None = None,
    callbacks: object = None,
    kind: str | None = None,
    weights: str | Sequence[float] | None = None,
    options: dict[str, Any] | None = None,
    **settings: Any,
) -> Run:
    """Train a model on ``corpus`` into a new run folder and return the `Run`.

    ``corpus``: a path (loader chosen by suffix), ``"LOADER:SOURCE"`` (``"hf:NAME"``), a named corpus, or a
    list of them (one shared vocabulary); None trains on the built-in default corpus. ``out``: the run
    folder (default ``runs/<corpus>-<time>``). ``config``: a TOML settings file (its ``[train]`` table), which
    the other arguments override. ``progress``: True shows a progress bar, False hides it, None shows it on a
    terminal. ``callbacks``: an object, or a list of them, with any of ``on_start``, ``on_log``,
    ``on_sample``, ``on_checkpoint`` and ``on_status``, each called with one dict. ``kind``, ``weights`` and
    ``options`` (a dict of loader keywords, as ``--option``) are as ``--kind``, ``--weights`` and ``--option``.
    ``settings`` are the settings table's (`textgen.config.SETTINGS`: the command line's flags with _ for -,
    such as ``hidden=128``, ``updates=400``, ``val_fraction=0.1`` and the loader flags, such as
    ``keep_retweets=True``); ``seed`` defaults to a fresh one, recorded in config.json.
    Ctrl-C checkpoints and raises KeyboardInterrupt; `resume` continues the run.
    """
    _check_settings(settings, TRAIN_CALL_SETTINGS, "textgen.train")
    if isinstance(settings.get("init_from"), Run):
        settings["init_from"] = settings["init_from"].folder  # a Run, as load and resume take it
    named = _named(corpus, kind, weights, options, settings)
    if out is not None:
        named["out"] = out  # checked with the other settings
    given = given_settings("python", named, config)
    with _path_errors(by_origin(given.origins, "python")):  # a settings file's keys as the file has them
        return Run(_python(lambda stop: start(given, progress=progress, callbacks=callbacks, stop=stop)))


@_python_call
def resume(run: str | Path | Run, *, progress: bool | None = None, callbacks: object = None, **settings: Any) -> Run:
    """Continue a stopped run exactly where it was, or train a finished one further.

    ``settings`` may set ``updates`` or ``epochs`` (the new total, counted from the run's start), ``eta``,
    the logging intervals and ``passage_length``; any other setting (by the names `train` takes) must be what
    the run already has: a different one would make the continuation inexact and is refused.
    """
    folder = _folder_of(run, setting_name("run"))
    _check_settings(settings, tuple(SETTINGS), "textgen.resume")
    given = given_settings("python", settings)
    return Run(_python(lambda stop: carry_on(folder, given, progress=progress, callbacks=callbacks, stop=stop)))


@_python_call
def load(run_folder: str | Path | Run, checkpoint: str = "best") -> Model:
    """The ``best`` (lowest validation loss, else smooth loss) or ``last`` model of a run folder, or of the `Run`
    that `train` or `resume` returned."""
    from textgen.runfolder import RunFolder

    with _path_errors():
        if checkpoint not in CHECKPOINTS:
            raise ConfigError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
        return Model(RunFolder(_folder_of(run_folder, setting_name("run_folder"))).load(checkpoint))


# ---------------------------------------------------------------- models and what they write


@dataclass(frozen=True)
class Evaluation:
    """A model's loss per character on a text (see `evaluate`)."""

    nats_per_char: float
    bits_per_char: float
    characters: int  # characters scored
    text: str  # what was scored: "corpus", or a run's own "held-out" text, or its "training" text
    corpus: list[str]  # the sources, as given or as the run recorded them
    corpus_label: str  # the sources as a message names them
    checkpoint: Path | None  # the .npz the model came from

    def __getitem__(self, key: str) -> object:
        """A field by name, as in the dict `to_json` gives (``evaluation["bits_per_char"]``)."""
        return self.to_json()[key]

    def to_json(self) -> dict:
        """As ``textgen evaluate --json`` prints it."""
        return {"loss_per_char": self.nats_per_char, "bits_per_char": self.bits_per_char,
                "nats_per_char": self.nats_per_char, "characters": self.characters, "text": self.text,
                "corpus": self.corpus, "checkpoint": None if self.checkpoint is None else str(self.checkpoint)}


class Model:
    """A trained model: its parameters, vocabulary and the training state where sampling starts."""

    def __init__(self, checkpoint, path: Path | None = None):
        self._checkpoint = checkpoint
        self.path = path or checkpoint.path  # the .npz it was read from
        self.config: ModelConfig = checkpoint.model  # cell, layers, hidden units, sigma, dtype
        # the characters it knows, in id order (a bpe model knows every character, and lists none)
        self.chars: tuple[str, ...] = checkpoint.vocab.chars
        self.tokens: tuple[str, ...] = checkpoint.vocab.tokens  # the vocabulary, in id order
        self.token_level: str = checkpoint.vocab.level  # "char", "word" or "bpe"
        self.update: int | None = checkpoint.training.update  # the update these parameters come from
        self.last_seed: int | None = None  # the seed of the last `generate` (a fresh one when none was given)

    def __repr__(self) -> str:
        model = self.config
        return (f"<textgen.Model {model.cell}, {model.layers} layer(s) of {model.hidden}, K = {len(self.tokens)}, "
                f"update {self.update}, from {self.path}>")

    @_python_call
    def stream(self, length: int = 1000, *, prime: str = "", temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, greedy: bool = False, documents: int | None = None, count: int | None = None,
               seed: int | None = None) -> Stream:
        """The texts `generate` writes, as they are drawn (see `Stream`): sample i depends only on the seed and i."""
        from textgen.config import check_count
        from textgen.sample import sample_seed, stream_texts

        if documents is not None:
            check_count("documents", documents)  # (0 is the command line's "off"; here that is None)
        config = SampleConfig(length=length, prime=prime, temperature=temperature, top_k=top_k, top_p=top_p,
                              greedy=greedy, documents=documents or 0, count=1 if count is None else count)
        if seed is not None:
            check_count("seed", seed, minimum=0)
        used = sample_seed(seed)
        self.last_seed = used
        checkpoint = self._checkpoint
        return Stream(stream_texts(checkpoint.params, checkpoint.vocab, config, used,
                                   start=checkpoint.start_state()), used, seed is None and not greedy, config)

    @_python_call
    def generate(
        self,
        length: int = 1000,
        *,
        prime: str = "",
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        greedy: bool = False,
        documents: int | None = None,
        count: int | None = None,
        seed: int | None = None,
    ) -> str | list[str]:
        """Text drawn from the model, starting from the state it was trained in, as `textgen generate` does.

        ``length`` characters after ``prime`` (the text starts with ``prime``); with ``documents`` N, N whole
        documents (tweets, rows), each at most ``length`` characters. Returns a string, or a list of strings
        when ``count`` or ``documents`` is given. A text of ``length`` characters from a model of documents
        shows each end-of-document marker as ␃, as training's samples and files do. ``seed`` None draws a
        fresh one, kept in ``last_seed``; text i of a seed is the same whatever ``count`` is.
        """
        from textgen.sample import check_collected_memory

        stream = self.stream(length, prime=prime, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy,
                             documents=documents, count=count, seed=seed)
        check_collected_memory(self._checkpoint.vocab, stream.config)  # every text is held: they must fit
        written = [text for text, _ in stream.texts()]
        return written if documents is not None or count is not None else written[0]

    @_python_call
    def evaluation(self, corpus: str | Path | Sequence[str | Path] | None = None, *, kind: str | None = None,
                   options: dict[str, Any] | None = None, weights: str | Sequence[float] | None = None,
                   **settings: Any) -> Evaluation:
        """The model's mean loss per character on ``corpus`` (None: the run's own held-out text, or its training
        text when it holds none out), read from its training state. ``settings`` are the loader settings by name
        (``encoding="latin-1"``)."""
        _check_settings(settings, CORPUS_SETTINGS, "evaluation")
        return _evaluation(self._checkpoint, self.path, _named(corpus, kind, weights, options, settings))

    @_python_call
    def evaluate(self, corpus: str | Path | Sequence[str | Path] | None = None, **settings: Any) -> float:
        """The model's mean loss in nats per character on ``corpus`` (see `evaluation`)."""
        return self.evaluation(corpus, **settings).nats_per_char

    @_python_call
    def bits_per_char(self, corpus: str | Path | Sequence[str | Path] | None = None, **settings: Any) -> float:
        """`evaluate` in bits per character."""
        return self.evaluation(corpus, **settings).bits_per_char


@dataclass
class Stream:
    """Texts as they are drawn: iterate for `textgen.sample.TextPiece` (index, text, done, ended), a piece at a
    time, so a front end writes each as it comes (and a closed pipe stops the drawing at once)."""

    pieces: Iterator  # of TextPiece
    seed: int  # the seed the texts are drawn with
    fresh: bool  # the seed was drawn here (say it, so that a text one likes can be drawn again)
    config: SampleConfig

    def __iter__(self):
        return iter(self.pieces)

    @property
    def samples(self) -> int:
        return self.config.documents or self.config.count

    def texts(self) -> list[tuple[str, bool]]:
        """Every text whole, with whether it ended at an end-of-document marker."""
        parts: list[list[str]] = [[] for _ in range(self.samples)]
        ended = [False] * self.samples
        for piece in self.pieces:
            parts[piece.index].append(piece.text)
            if piece.done:
                ended[piece.index] = piece.ended
        return [("".join(text), stopped) for text, stopped in zip(parts, ended)]


def _evaluation(checkpoint, path: Path | None, named: dict) -> Evaluation:
    """The mean loss per character of ``checkpoint`` (read from ``path``, a run folder's .npz) on the corpus the
    settings ``named`` give (none: the run's own held-out text), read from the checkpoint's training state."""
    from textgen.corpus import corpus_label, load_corpus
    from textgen.scoring import bits_per_char, score_text
    from textgen.run import held_out_text
    from textgen.settings import loader_options_of

    with _path_errors():
        if named.get("corpus") is None:
            if named:
                raise ConfigError(f"{setting_name('kind')}, {setting_name('weights')}, {setting_name('option')} "
                                  f"and the loader settings say how to read {setting_name('corpus')}; give "
                                  f"{setting_name('corpus')} too (without it, the run's own held-out text is scored, "
                                  "read as it was)")
            if path is None:
                raise ConfigError(f"this model has no run folder, so no held-out text; give {setting_name('corpus')}")
            text, which, specs = held_out_text(path.parent, checkpoint.vocab)
            what = f"the {which} text of the {corpus_label(specs)}"
        else:
            loaded = load_corpus(named["corpus"], named.get("kind"), loader_options_of(named),
                                 weights=named.get("weights"))
            text, which, specs = loaded.text, "corpus", [source["spec"] for source in loaded.sources]
            what = f"the {corpus_label(specs)}"
        start_state = checkpoint.start_state()
        nats, characters = score_text(checkpoint.params, checkpoint.vocab, text, what,
                                      None if start_state is None else start_state[0])
    return Evaluation(nats, bits_per_char(nats), characters, which, specs, corpus_label(specs), path)


@_python_call
def evaluate(run: str | Path | Run, corpus: str | Path | Sequence[str | Path] | None = None, *,
             checkpoint: str = "best", kind: str | None = None, options: dict[str, Any] | None = None,
             weights: str | Sequence[float] | None = None, **settings: Any) -> Evaluation:
    """The loss per character of a run's ``checkpoint`` on ``corpus`` (None: the run's own held-out text, or its
    training text when it holds none out), as `textgen evaluate` prints it."""
    _check_settings(settings, CORPUS_SETTINGS, "textgen.scoring")
    model = load(run, checkpoint)
    return _evaluation(model._checkpoint, model.path, _named(corpus, kind, weights, options, settings))


def bits_per_char(nats: float) -> float:
    """A loss per character in bits (what papers compare) from nats (what metrics.jsonl's val_loss holds)."""
    import math

    return nats / math.log(2)


# ---------------------------------------------------------------- the gradient check


@dataclass(frozen=True)
class GradCheck:
    """A gradient check's result: the worst relative error of each parameter."""

    errors: dict[str, float]  # parameter -> max relative error
    model: str  # the model checked, e.g. "lstm, 2 layers of 20"
    vocab_size: int
    seq_length: int
    dtype: str
    max_entries: int  # entries checked per parameter (0: all)
    sigma: float
    unresolvable: dict[str, float]  # parameters whose gradients are too small to check -> their median size


@_python_call
def gradcheck(corpus: str | Path | Sequence[str | Path] | None = None, *, seq_length: int = 25,
              max_entries: int = 200, seed: int = 0, kind: str | None = None, options: dict[str, Any] | None = None,
              weights: str | Sequence[float] | None = None, **settings: Any) -> GradCheck:
    """Compare the analytic gradients of the first window of ``corpus`` with centred differences (see
    `textgen.gradients`), for the model the model settings describe (``cell``, ``layers``, ``hidden``,
    ``sigma``, ``dtype``); the loader settings read the corpus."""
    import math

    import numpy as np

    from textgen.config import WINDOWED_CELLS, check_count
    from textgen.corpus import load_corpus
    from textgen.errors import TrainingError
    from textgen.gradients import check_window, unresolvable
    from textgen.limits import check_memory
    from textgen.models import network_of
    from textgen.settings import MODEL_SETTINGS, loader_options_of
    from textgen.vocab import CharVocab

    _check_settings(settings, MODEL_SETTINGS + CORPUS_SETTINGS, "textgen.gradients")
    model = ModelConfig(**{name: settings.pop(name) for name in MODEL_SETTINGS if settings.get(name) is not None})
    check_count("seq_length", seq_length)
    if model.cell in WINDOWED_CELLS and seq_length > model.context:
        raise ConfigError(f"{setting_name('seq_length')} {seq_length} is longer than {setting_name('context')} "
                          f"{model.context}, the most a {model.cell} window reads; give a shorter one")
    check_count("max_entries", max_entries, minimum=0)
    check_count("seed", seed, minimum=0)
    named = _named(corpus, kind, weights, options, settings)

    def check_size(vocab_size: int) -> None:
        network = network_of(model, vocab_size)
        needed = network.training_bytes(seq_length, 1)
        needed += 16 * network.param_count  # the extended-precision copy the check perturbs
        check_memory(needed, f"a gradient check of {model.hidden:,} hidden units over {seq_length:,} characters",
                     f"use a smaller {setting_name('hidden')}, {setting_name('layers')} or "
                     f"{setting_name('seq_length')}")

    with _path_errors():
        check_size(1)
        loaded = load_corpus(named.get("corpus"), named.get("kind"), loader_options_of(named),
                             weights=named.get("weights"))
    vocab = CharVocab.from_texts([loaded.text])
    check_size(vocab.size)
    window = vocab.encode(loaded.text[: seq_length + 1])
    if window.size < seq_length + 1:
        raise ConfigError(f"the corpus has fewer than {setting_name('seq_length')} + 1 = {seq_length + 1} characters")
    rng = np.random.default_rng(seed)
    params = network_of(model, vocab.size).init(rng)
    errors = check_window(params, window[:-1], window[1:], max_entries=max_entries or None, rng=rng)
    broken = [name for name, error in errors.items() if not math.isfinite(error)]
    if broken:
        raise TrainingError(f"the gradient check of {', '.join(broken)} is not a number: the loss overflows at "
                            f"{setting_name('sigma')} {model.sigma}; use a smaller {setting_name('sigma')}")
    return GradCheck(errors, params.network.describe(), vocab.size, seq_length, model.dtype, max_entries,
                     model.sigma, unresolvable(params, window[:-1], window[1:]))


# ---------------------------------------------------------------- corpora, reports, plots


@dataclass(frozen=True)
class LoaderRow:
    """A corpus loader, as `textgen corpora` lists it."""

    name: str
    origin: str  # "built-in", or the plugin's distribution and version
    suffixes: tuple[str, ...]
    broken: str = ""  # why a plugin could not be loaded ("" when it works)


@dataclass(frozen=True)
class NamedCorpusRow:
    """A named corpus, as `textgen corpora` lists it."""

    name: str
    description: str
    found: str  # "built in", the path it was found at, or "missing: FILE"


@_python_call
def corpora() -> tuple[list[LoaderRow], list[NamedCorpusRow]]:
    """Every corpus loader (built-in first) and every named corpus, with where it was found."""
    from textgen.registry import NAMED_CORPORA, default_registry, find_named

    registry = default_registry()
    loaders = [LoaderRow(info.name, info.origin, tuple(info.suffixes))
               for info in sorted(registry.loaders.values(), key=lambda i: (i.origin != "built-in", i.name))]
    loaders += [LoaderRow(broken.name, broken.origin, (), broken.cause) for broken in registry.broken.values()]
    named = []
    for corpus in NAMED_CORPORA.values():
        found = find_named(corpus)
        where = "built in" if not corpus.filename else str(found) if found else f"missing: {corpus.filename}"
        named.append(NamedCorpusRow(corpus.name, corpus.description, where))
    return loaders, named


@_python_call
def report(run: str | Path | Run) -> tuple[Path, Path]:
    """Write report.html (self-contained) and report.md into a run folder; returns their paths."""
    from textgen.reports import write_report

    with _path_errors():
        html_path, md_path = write_report(_folder_of(run, setting_name("run")))
    return Path(html_path), Path(md_path)


@_python_call
def plot(runs: Sequence[str | Path | Run], out: str | Path = "loss_comparison.png") -> Path:
    """Several runs' loss curves in one PNG at ``out``; returns its path."""
    from textgen.reports import plot_runs

    with _path_errors():
        return Path(plot_runs([_folder_of(run, setting_name("runs")) for run in runs], _path(setting_name("out"), out)))


# ---------------------------------------------------------------- sweeps (the optional extra: Ray Tune)


@_python_call
def sweep(spec: str | Path, *, out: str | Path | None = None, address: str | None = None, verbose: bool = False,
          on_start: Callable | None = None):
    """Run the sweep of a spec (see `textgen.sweep.start_sweep`); returns its `textgen.sweep.SweepOutcome`."""
    from textgen.sweep import start_sweep

    with _path_errors():
        return start_sweep(_path(setting_name("spec"), spec), None if out is None else _path(setting_name("out"), out), address,
                           verbose, on_start)


@_python_call
def resume_sweep(folder: str | Path, *, address: str | None = None, verbose: bool = False,
                 on_start: Callable | None = None):
    """Run the trials of a sweep that had not ended (see `textgen.sweep.resume_sweep`)."""
    from textgen.sweep import resume_sweep as resumed

    with _path_errors():
        return resumed(_path(setting_name("resume"), folder), address, verbose, on_start)


@_python_call
def check_sweep_call(spec: object, resume: object, status: object, out: object) -> None:
    """ConfigError unless one of a spec, a sweep to resume and a sweep to show is given (``out`` only with a spec)."""
    from textgen.sweep import check_sweep_call as check

    check(spec, resume, status, out)


@_python_call
def sweep_table(folder: str | Path):
    """How a sweep stands, from its files alone (see `textgen.sweep.sweep_table`)."""
    from textgen.sweep import sweep_table as table

    with _path_errors():
        return table(_path(setting_name("status"), folder))


# ---------------------------------------------------------------- runs made earlier


class Run:
    """A run folder: its settings, metrics, samples and models, read when asked for."""

    @_python_call
    def __init__(self, folder: str | Path | Run):
        from textgen.runfolder import RunFolder

        with _path_errors():
            self.folder = _folder_of(folder, setting_name("folder"))
            self._folder = RunFolder(self.folder)
            self._record = self._folder.read_record()  # config.json, checked
            self.config: dict = self._record.to_json()  # config.json: every setting, resolved

    def __repr__(self) -> str:
        try:  # a repr never raises: a folder whose last.npz is damaged or gone is still shown
            done = f"{self.final_update:,}"
        except TextgenError:
            done = "?"
        return f"<textgen.Run {self.folder}: {done} of {self._record.total_updates:,} updates>"

    @property
    def seed(self) -> int:
        """The run's random seed (give it to `train` to repeat the run)."""
        return self._record.train.seed

    @property
    def metrics(self) -> list[dict]:
        """metrics.jsonl: update, epoch, loss and smooth_loss (nats per window), chars_per_sec, and at each
        evaluation val_loss (nats per character) and val_bpc (bits per character)."""
        return self._folder.metrics()

    @property
    def samples(self) -> list[dict]:
        """samples.jsonl: update, epoch, smooth_loss and text of each training-time sample."""
        return self._folder.samples()

    @property
    def passage(self) -> str | None:
        """best_passage.txt, the final passage from the best model (None before the run has finished)."""
        return self._folder.passage()

    @property
    def best(self) -> Model:
        """The best model (lowest validation loss, or smooth loss without held-out text)."""
        return load(self.folder, "best")

    @property
    def last(self) -> Model:
        """The model where training stopped."""
        return load(self.folder, "last")

    def generate(self, length: int = 1000, **settings: Any) -> str | list[str]:
        """Text from the best model: ``run.best.generate(...)`` (see `Model.generate`)."""
        return self.best.generate(length, **settings)

    def evaluate(self, corpus: str | Path | Sequence[str | Path] | None = None, **settings: Any) -> float:
        """The best model's loss in nats per character: ``run.best.evaluate(...)`` (see `Model.evaluate`); without
        ``corpus``, on the run's held-out text."""
        return self.best.evaluate(corpus, **settings)

    def _last_meta(self):
        """last.npz's `textgen.checkpoint.CheckpointMeta`."""
        with _path_errors():
            return self._folder.load("last").training

    @property
    def final_update(self) -> int:
        """Updates made so far."""
        return self._last_meta().update

    @property
    def final_smooth_loss_per_window(self) -> float | None:
        """The smooth training loss where training stopped, in nats per seq_length-character window."""
        return self._last_meta().smooth_loss

    @property
    def best_val_nats_per_char(self) -> float | None:
        """The lowest validation loss measured, in nats per character (None without held-out text)."""
        losses = [row["val_loss"] for row in self.metrics if row.get("val_loss") is not None]
        return min(losses) if losses else None

    @property
    def best_val_bits_per_char(self) -> float | None:
        """`best_val_nats_per_char` in bits per character."""
        from textgen.scoring import bits_per_char

        nats = self.best_val_nats_per_char
        return None if nats is None else bits_per_char(nats)

    def report(self) -> Path:
        """Write report.html (self-contained) and report.md into the run folder; returns report.html's path."""
        return report(self)[0]
