"""The Python API: `train`, `resume` and `load`, the `Run` they return and the `Model` that writes text.

The same settings as the command line, by their dataclass field names (``hidden=128``, ``updates=400``);
errors name those settings (``temperature``), where the command line names its flags (``--temperature``).
"""

from __future__ import annotations

import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from textgen.config import RNNConfig
from textgen.errors import ConfigError, TextgenError, path_failure
from textgen.fs import check_user_path
from textgen.settings import SETTINGS

SAMPLE_SETTINGS = ("length", "prime", "temperature", "top_k", "top_p", "greedy", "documents", "count", "seed")
# train()'s keyword settings: every setting but those it takes as arguments of its own
TRAIN_CALL_SETTINGS = tuple(name for name in SETTINGS if name not in ("corpus", "kind", "weights", "option", "out"))
SETTING_NAMES = frozenset(SETTINGS + SAMPLE_SETTINGS + ("options", "checkpoint", "resume"))
FLAG = re.compile(r"--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


def _setting_name(match: re.Match) -> str:
    name = match.group(1).replace("-", "_")
    return name if name in SETTING_NAMES else match.group(0)


@contextmanager
def _python_names() -> Iterator[None]:
    """Re-raise a TextgenError with the command line's flags (--top-k) written as the settings (top_k), and an
    OSError the operating system raised on a path (permission denied, say) as a PathError naming it."""
    try:
        try:
            yield
        except OSError as error:
            if error.filename is None:
                raise
            raise path_failure(error) from error
    except TextgenError as error:
        message = FLAG.sub(_setting_name, str(error))
        if message == str(error):
            raise
        renamed = type(error)(message)
        renamed.__cause__ = error.__cause__
        raise renamed from error.__cause__


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
        return [str(check_user_path(corpus, "corpus"))]
    if not isinstance(corpus, Sequence) or not all(isinstance(c, (str, Path)) for c in corpus):
        raise ConfigError(f"corpus must be a path or spec, or a list of them, got {type(corpus).__name__}")
    if not corpus:
        raise ConfigError("corpus is an empty list; give at least one source (or None for the built-in default)")
    return [str(check_user_path(c, "corpus")) for c in corpus]


def _path(name: str, value: object) -> Path:
    """``value`` as a Path, or ConfigError naming the parameter (PathError if no file can have that path)."""
    if not isinstance(value, (str, Path)):
        raise ConfigError(f"{name} must be a path (str or Path), got {value!r}")
    return check_user_path(value, name)


def _check_loader_arguments(weights: object, options: object) -> None:
    """ConfigError unless ``weights`` is None, "W1,W2" or numbers, and ``options`` None or a dict."""
    if weights is not None and not isinstance(weights, str) and not (
            isinstance(weights, Sequence) and all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                                  for w in weights)):
        raise ConfigError(f"weights must be a list of numbers or 'W1,W2' text, got {weights!r}")
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"options must be a dict of loader keywords, such as {{'encoding': 'latin-1'}}, got "
                          f"{options!r}")


def train(
    corpus: str | Path | Sequence[str | Path] | None = None,
    *,
    out: str | Path | None = None,
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
    folder (default ``runs/<corpus>-<time>``). ``progress``: True shows a progress bar, False hides it,
    None shows it on a terminal. ``callbacks``: an object, or a list of them, with any of ``on_start``,
    ``on_log``, ``on_sample``, ``on_checkpoint`` and ``on_status``, each called with one dict. ``kind``,
    ``weights`` and ``options`` (a dict of loader keywords, as ``--option``) are as ``--kind``, ``--weights``
    and ``--option``. ``settings`` are the command line's, by the flags' names with _ for - (the fields of
    `RNNConfig`, `TrainConfig` and `RunConfig`, such as ``hidden=128``, ``updates=400``, ``val_fraction=0.1``,
    and the loader flags, such as ``keep_retweets=True``); ``seed`` defaults to a fresh one, recorded in
    config.json.
    Ctrl-C checkpoints and raises KeyboardInterrupt; `resume` continues the run.
    """
    from textgen.run import start_planned
    from textgen.settings import plan_run
    from textgen.stopping import Interrupted, StopRequest

    with _python_names():
        _check_settings(settings, TRAIN_CALL_SETTINGS, "textgen.train")
        _check_loader_arguments(weights, options)
        if isinstance(settings.get("init_from"), Run):
            settings["init_from"] = settings["init_from"].folder  # a Run, as load and resume take it
        for name, value in (("out", out), ("init_from", settings.get("init_from"))):
            if isinstance(value, (str, Path)):
                check_user_path(value, name)
        named = {**settings, "corpus": _corpus_list(corpus), "kind": kind,
                 "weights": list(weights) if isinstance(weights, Sequence) and not isinstance(weights, str) else weights,
                 "option": options, "out": out}
        plan = plan_run(named, "textgen.train")
        stop = StopRequest()
        try:
            with _stop_on_ctrl_c(stop):
                result = start_planned(plan, progress=_progress(progress), callbacks=callbacks, stop=stop,
                                       extra={"settings_from": {"python": sorted(settings)}})
        except Interrupted as stopped:
            raise _stopped(stopped) from None
    return Run(result.folder)


def resume(
    run: str | Path | Run,
    *,
    progress: bool | None = None,
    callbacks: object = None,
    passage_length: int | None = None,
    **changes: Any,
) -> Run:
    """Continue a stopped run exactly where it was, or train a finished one further.

    ``changes`` may set ``updates`` or ``epochs`` (the new total, counted from the run's start), ``eta``
    and the logging intervals; any other setting (by the names `train` takes) must be what the run already
    has: a different one would make the continuation inexact and is refused.
    """
    from textgen.run import resume_run
    from textgen.stopping import Interrupted, StopRequest

    with _python_names():
        folder = run.folder if isinstance(run, Run) else _path("run", run)
        _check_settings(changes, SETTINGS, "textgen.resume")
        stop = StopRequest()
        try:
            with _stop_on_ctrl_c(stop):
                result = resume_run(folder, changes, passage_length=passage_length, progress=_progress(progress),
                                    callbacks=callbacks, stop=stop)
        except Interrupted as stopped:
            raise _stopped(stopped) from None
    return Run(result.folder)


def load(run_folder: str | Path | Run, checkpoint: str = "best") -> Model:
    """The ``best`` (lowest validation loss, else smooth loss) or ``last`` model of a run folder, or of the `Run`
    that `train` or `resume` returned."""
    from textgen.runfolder import RunFolder

    with _python_names():
        if checkpoint not in ("best", "last"):
            raise ConfigError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
        folder = run_folder.folder if isinstance(run_folder, Run) else _path("run_folder", run_folder)
        return Model(RunFolder(folder).load(checkpoint))


class Model:
    """A trained model: its parameters, vocabulary and the training state where sampling starts."""

    def __init__(self, checkpoint, path: Path | None = None):
        self._checkpoint = checkpoint
        self.path = path or checkpoint.path  # the .npz it was read from
        self.config: RNNConfig = checkpoint.model  # cell, layers, hidden units, sigma, dtype
        self.chars: tuple[str, ...] = checkpoint.vocab.chars  # the vocabulary, in id order
        self.update: int | None = checkpoint.training.update  # the update these parameters come from
        self.last_seed: int | None = None  # the seed of the last `generate` (a fresh one when none was given)

    def __repr__(self) -> str:
        model = self.config
        return (f"<textgen.Model {model.cell}, {model.layers} layer(s) of {model.hidden}, K = {len(self.chars)}, "
                f"update {self.update}, from {self.path}>")

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
        from textgen.config import check_count
        from textgen.sample import SampleConfig, generate_texts, sample_seed

        with _python_names():
            if documents is not None:
                check_count("documents", documents)  # (0 is the command line's "off"; here that is None)
            config = SampleConfig(length=length, prime=prime, temperature=temperature, top_k=top_k, top_p=top_p,
                                  greedy=greedy, documents=documents or 0, count=1 if count is None else count)
            if seed is not None:
                check_count("seed", seed, minimum=0)
            seed = sample_seed(seed)
            checkpoint = self._checkpoint
            texts = generate_texts(checkpoint.params, checkpoint.vocab, config, seed, start=checkpoint.start_state())
        self.last_seed = seed
        written = [t.text for t in texts]
        return written if documents is not None or count is not None else written[0]

    def evaluation(self, corpus: str | Path | Sequence[str | Path] | None = None, *, kind: str | None = None,
                   options: dict[str, Any] | None = None, weights: str | Sequence[float] | None = None) -> dict:
        """The model's mean loss per character on ``corpus`` (None: the run's own held-out text), read from its
        training state, as a dict: see `evaluation_of`."""
        with _python_names():
            _check_loader_arguments(weights, options)
            if corpus is not None:
                corpus = _corpus_list(corpus)
            if isinstance(weights, Sequence) and not isinstance(weights, str):
                weights = list(weights)
            return evaluation_of(self._checkpoint, self.path, corpus, kind=kind, options=options, weights=weights)

    def evaluate(self, corpus: str | Path | Sequence[str | Path] | None = None, *, kind: str | None = None,
                 options: dict[str, Any] | None = None) -> float:
        """The model's mean loss in nats per character on ``corpus`` (None: the run's held-out text, or its training
        text when it holds none out; see `evaluation`), from its training state."""
        return self.evaluation(corpus, kind=kind, options=options)["nats_per_char"]

    def bits_per_char(self, corpus: str | Path | Sequence[str | Path] | None = None, *, kind: str | None = None,
                      options: dict[str, Any] | None = None) -> float:
        """`evaluate` in bits per character."""
        return self.evaluation(corpus, kind=kind, options=options)["bits_per_char"]


def evaluation_of(checkpoint, path: Path | None, corpus: list[str] | None = None, *, kind: str | None = None,
                  options: dict | list | None = None, weights: str | list[float] | None = None) -> dict:
    """The mean loss per character of ``checkpoint`` (read from ``path``, a run folder's .npz) on ``corpus``, read
    from the checkpoint's training state, as a dict: ``bits_per_char``, ``nats_per_char``, ``characters``
    scored, ``text`` (what was scored: "corpus"; for ``corpus`` None the run's own "held-out" text, or the first
    ``characters`` of its "training" text when it holds none out) and ``corpus`` (the sources). Errors name the
    command line's flags (`Model.evaluation` gives them Python's names)."""
    from textgen.corpus import corpus_label, load_corpus
    from textgen.evaluate import bits_per_char, score_text

    if corpus is None:
        if kind is not None or options or weights is not None:
            raise ConfigError("--kind, --weights, --option and the loader flags say how to read --corpus; give "
                              "--corpus too (without it, the run's own held-out text is scored, read as it was)")
        if path is None:
            raise ConfigError("this model has no run folder, so no held-out text; give --corpus")
        text, which, specs = run_text(path.parent, checkpoint.vocab)
        what = f"the {which} text of the {corpus_label(specs)}"
    else:
        loaded = load_corpus(corpus, kind, options, weights=weights)
        text, which, specs = loaded.text, "corpus", [source["spec"] for source in loaded.sources]
        what = f"the {corpus_label(specs)}"
    start = checkpoint.start_state()
    nats, characters = score_text(checkpoint.params, checkpoint.vocab, text, what, None if start is None else start[0])
    return {"bits_per_char": bits_per_char(nats), "nats_per_char": nats, "characters": characters, "text": which,
            "corpus": specs}


def run_text(run_folder: Path, vocab) -> tuple[str, str, list[str]]:
    """(text, "held-out" or "training", the sources) of a run: its held-out text, or without one the first
    `val_max_characters` of its training text; its corpora are read again and must be unchanged."""
    from textgen.corpus import check_recorded_files, corpus_label, load_planned, recorded_plan
    from textgen.errors import CorpusError
    from textgen.runfolder import RunFolder

    folder = RunFolder(run_folder)
    record = folder.read_record()
    specs = [source["spec"] for source in record.sources]
    if record.sources[0].get("streamed_to"):  # a large corpus: its ids are in the run folder
        held_out = record.val_characters >= 2
        which = "held-out" if held_out else "training"
        ids = folder.encoded_ids(vocab.dtype, held_out)
        if ids is not None and ids.size >= 2:
            return vocab.decode(ids[: record.val_max_characters]), which, specs
        raise CorpusError(f"{folder.encoded_ids_path(held_out)}: the run's encoded {which} text is missing or damaged; "
                          "give the text to score with --corpus")
    planned = recorded_plan(list(record.sources))
    check_recorded_files(planned, "evaluate", ", or give the text to score with --corpus")
    weights = [source["weight"] for source in record.sources] if len(record.sources) > 1 else None
    corpus = load_planned(planned, weights, record.val_fraction, record.val_max_characters)
    for old, new in zip(record.sources, corpus.sources):
        if old["sha256"] != new["sha256"] or old.get("val_sha256") != new.get("val_sha256"):
            raise CorpusError(f"the {corpus_label([old['spec']])} has changed since the run read it (SHA-256 "
                              "differs), so its held-out text is not the run's; give the text to score with --corpus")
    if len(corpus.validation) >= 2:
        return corpus.validation, "held-out", specs
    return corpus.text[: record.val_max_characters], "training", specs


class Run:
    """A run folder: its settings, metrics, samples and models, read when asked for."""

    def __init__(self, folder: str | Path | Run):
        from textgen.runfolder import RunFolder

        with _python_names():
            self.folder = folder.folder if isinstance(folder, Run) else _path("folder", folder)
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
        with _python_names():
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
        from textgen.evaluate import bits_per_char

        nats = self.best_val_nats_per_char
        return None if nats is None else bits_per_char(nats)

    def report(self) -> Path:
        """Write report.html (self-contained) and report.md into the run folder; returns report.html's path."""
        from textgen.report import write_report

        with _python_names():
            html_path, _ = write_report(self.folder)
        return Path(html_path)
