"""Starting and resuming runs: `start_run` and `resume_run`, and the recorder that writes what the trainer reports.

A start reads the corpus, checks every size, writes config.json, vocab.json and a checkpoint at update 0 in
a staging folder and only then moves it into place (`RunFolder.create`). A resume checks everything first and
records itself in config.json only once its first checkpoint is saved. Both hold the folder's lock throughout.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from textgen.checkpoint import Checkpoint
from textgen.config import (
    CELL_DEFAULTS,
    LOADER_SETTINGS,
    WINDOWED_CELLS,
    RNNConfig,
    RunConfig,
    TrainConfig,
    check_count,
    not_applying,
)
from textgen.corpus import (
    EncodedCorpus,
    check_recorded_files,
    corpus_label,
    encode_corpus,
    load_corpus,
    load_planned,
    names_source,
    options_in_effect,
    plan_sources,
    recorded_plan,
    route_options,
    run_name,
    source_digest,
    stream_encode,
    streamable_source,
)
from textgen.errors import (
    CheckpointError,
    ConfigError,
    CorpusError,
    TextgenError,
    TrainingError,
    log_marked,
    setting_name,
)
from textgen.limits import check_memory
from textgen.models import blas_may_run_threads, network_of
from textgen.optim import array_names, learning_rate
from textgen.plots import LossCurve, loss_plot
from textgen.registry import Registry, default_registry
from textgen.reports import write_report
from textgen.runfolder import RunFolder, RunRecord, check_init_from, new_record
from textgen.sample import SampleConfig, generate
from textgen.settings import (
    RunPlan,
    check_init_model,
    check_length_given,
    check_names,
    loader_options_of,
    resume_changes,
    window_is_context,
)
from textgen.stopping import Interrupted, StopRequest
from textgen.trainer import (
    TrainCallbacks,
    TrainingInterrupted,
    TrainState,
    check_corpus_length,
    checkpoints_of,
    first_loss,
    resolved_epochs,
    state_of,
    total_updates,
    train,
    updates_per_epoch,
)
from textgen.vocab import Vocab

log = logging.getLogger(__name__)

PLOT_EVERY_SECONDS = 20.0  # loss.png is redrawn at checkpoints at most this often (and at the end)
SAMPLE_BYTES_PER_CHAR = 24  # a sample's drawn ids (8 bytes each), its text (up to 4), its JSON row and its echo
# A resume holds its rows in memory until its first checkpoint (see `Resumption`); once they take about this much,
# that checkpoint is taken at once, so a --checkpoint-every far beyond the run cannot fill the memory with them.
HELD_BYTES = 4 << 20
ROW_BYTES = 400  # a row held in memory, about (a sample's text adds up to 4 bytes a character)


@dataclass
class RunResult:
    """What a finished run produced."""

    folder: Path  # the run folder
    state: TrainState  # final training state (params, best params, losses)
    vocab: Vocab  # the shared vocabulary
    passage: str  # text from the best model, also in best_passage.txt
    report: Path | None = None  # report.html, once the report is written (None: it failed, which is only a warning)


@dataclass
class Resumption:
    """What a resumed run writes with its first checkpoint (see `RunFolder.commit_resume`): until then its rows
    wait here, so that a resume that fails or is killed before that checkpoint leaves the folder as it was."""

    metrics: list[dict]  # the rows kept from before, then the resumed run's own
    samples: list[dict]
    record: RunRecord  # config.json with this resume recorded
    drop_passage: bool = False  # the run draws its passage anew (one drawn before it was extended is not its own)


CALLBACK_METHODS = ("on_start", "on_log", "on_sample", "on_checkpoint", "on_status")  # what a listener may have


def listeners_of(callbacks: object) -> list[object]:
    """``callbacks`` (None, one object or a sequence of them) as a list; ConfigError for an object that has
    none of CALLBACK_METHODS (most likely a mistake, such as a function passed instead of an object)."""
    if callbacks is None:
        return []
    listed = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    for listener in listed:
        if not any(callable(getattr(listener, name, None)) for name in CALLBACK_METHODS):
            raise ConfigError(f"callbacks: {listener!r} has none of the methods {', '.join(CALLBACK_METHODS)}; "
                              "pass an object with one or more of them")
    return listed


class RunRecorder(TrainCallbacks):
    """Writes what the trainer reports into the run folder as it happens (for a resumed run, from its first
    checkpoint on: see `Resumption`), and passes it on to the caller's listeners (see `CALLBACK_METHODS`)."""

    def __init__(
        self,
        folder: RunFolder,
        vocab: Vocab,
        model_config: RNNConfig,
        config: TrainConfig,
        rng: np.random.Generator,
        per_epoch: int,
        sources: list[dict],
        listeners: list[object] = (),
        resumption: Resumption | None = None,
    ):
        self.folder = folder
        self.vocab, self.model_config, self.config, self.rng = vocab, model_config, config, rng
        self.per_epoch = per_epoch
        self.sources = sources
        self.listeners = list(listeners)
        self.resumption = resumption
        metrics = resumption.metrics if resumption is not None else []
        self.updates = [row["update"] for row in metrics]  # what loss.png draws
        self.smooth_losses = [row["smooth_loss"] for row in metrics]
        self.checkpoint_update = None  # the update of the newest checkpoint saved, None before the first
        self.last_plot = 0.0
        self.plot_failed = False  # loss.png could not be written once (said once)
        self.held_bytes = 0  # what the rows of `resumption` take, about (of a resume not yet under way)

    def tell(self, method: str, record: dict) -> None:
        """Pass a copy of ``record`` to each listener that has ``method`` (so none can change what is kept)."""
        for listener in self.listeners:
            handler = getattr(listener, method, None)
            if callable(handler):
                handler(dict(record))

    def on_log(self, record: dict) -> None:
        if self.resumption is not None:
            self.resumption.metrics.append(record)
            self.held_bytes += ROW_BYTES
        else:
            self.folder.append_metrics(record)
        self.updates.append(record["update"])
        self.smooth_losses.append(record["smooth_loss"])
        self.tell("on_log", record)

    def on_sample(self, record: dict) -> None:
        if self.resumption is not None:
            self.resumption.samples.append(record)
            self.held_bytes += ROW_BYTES + 4 * len(record["text"])
        else:
            self.folder.append_sample(record)
        self.tell("on_sample", record)

    def on_status(self, status: dict) -> None:
        self.tell("on_status", status)

    def wants_checkpoint(self) -> bool:
        return self.resumption is not None and self.held_bytes >= HELD_BYTES

    def on_checkpoint(self, state: TrainState, final: bool) -> None:
        last, best = checkpoints_of(state, self.vocab, self.model_config, self.config, self.rng, self.sources)
        if self.resumption is not None:
            resumption = self.resumption
            self.folder.commit_resume(last, best, resumption.metrics, resumption.samples, resumption.record,
                                      resumption.drop_passage)
            self.resumption = None
        else:
            self.folder.save_checkpoints(last, best)
        self.checkpoint_update = state.update
        now = time.monotonic()
        if final or (self.updates and now - self.last_plot >= PLOT_EVERY_SECONDS):
            self.last_plot = now
            self.plot()
        if not self.folder.staged:  # update 0 of a new run is saved before the folder has its name
            self.tell("on_checkpoint", {"update": state.update, "final": final, "folder": self.folder.path,
                                        "last": self.folder.checkpoint_path("last"),
                                        "best": self.folder.checkpoint_path("best")})

    def plot(self) -> None:
        """Redraw loss.png from the metrics logged so far; a failure is a warning (said once): the run goes on."""
        curve = LossCurve("smooth loss", self.updates, self.smooth_losses, self.per_epoch)
        try:
            shape = network_of(self.model_config, self.vocab.size).describe()
            self.folder.write_plot(loss_plot([curve], title=f"Smooth training loss: {self.folder.path.name} "
                                                            f"({shape})"))
        except TextgenError as error:
            if not self.plot_failed:
                log.warning("loss.png could not be drawn: %s", error)
            self.plot_failed = True


def default_run_dir(name: str) -> Path:
    """runs/<name>-<timestamp>, for a corpus called ``name`` (see `textgen.corpus.run_name`)."""
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def start_record(folder: Path, record: RunRecord, update: int) -> dict:
    """What ``on_start`` receives: the run folder, what was loaded and how long the run is. Keys: folder,
    sources (spec, documents, characters each), documents, characters (trained on), val_characters (held
    out), distinct (vocabulary size), updates_per_epoch, total_updates, epochs, start_update (0, or where a
    resumed run continues), tokens (the token level), and at word and bpe level token_count and val_token_count
    (the ids the characters and the held-out characters become), characters_per_token and vocab_size_asked
    (--vocab-size or its default; distinct may be more, every character being kept, or fewer)."""
    sources = [{"spec": source["spec"], "documents": source.get("documents"), "characters": source.get("characters")}
               for source in record.sources]
    documents = [source["documents"] for source in sources]
    return {
        "folder": folder,
        "sources": sources,
        "documents": sum(documents) if all(isinstance(d, int) for d in documents) else None,
        "characters": record.characters if record.text_characters is None else record.text_characters,
        "val_characters": record.val_characters if record.text_characters is None else record.val_text_characters,
        "distinct": record.vocab_size,
        "tokens": record.train.tokens,
        **({} if record.text_characters is None else {
            "token_count": record.characters, "val_token_count": record.val_characters,
            "characters_per_token": record.text_characters / max(1, record.characters),
            "vocab_size_asked": record.train.resolved_vocab_size}),
        "updates_per_epoch": record.updates_per_epoch,
        "total_updates": record.total_updates,
        "epochs": record.total_updates / record.updates_per_epoch,
        "start_update": update,
    }


def smaller_pass(model_config: RNNConfig, threads: int = 1) -> str:
    """The fix of a training pass too large for memory: the settings that size it for this cell (a window is
    the context of a cell that reads windows of its context, where the heads multiply the attention's
    scores; the threads when there are more than one, each with gradients of its own), and float32 unless it
    is that already."""
    names = ["hidden", "layers", "batch_size"] + (["threads"] if threads > 1 else []) + (
        ["context", "heads"] if model_config.cell in WINDOWED_CELLS else ["seq_length"])
    listed = ", ".join(setting_name(name) for name in names[:-1]) + f" or {setting_name(names[-1])}"
    return f"use a smaller {listed}" + ("" if model_config.dtype == "float32" else
                                        f", or {setting_name('dtype')} float32")


def check_sizes(model_config: RNNConfig, config: TrainConfig, passage_length: int,
                vocab_size: int | None = None) -> None:
    """LimitError before anything is allocated if the model's buffers or a sample would not fit in memory.

    Called before the corpus is read without ``vocab_size`` (then a lower bound: 1 token, or the 256 bytes of
    a bpe vocabulary, so an absurd --hidden is refused at once) and again once the vocabulary is known.
    """
    if vocab_size is None:
        vocab_size = 256 if config.tokens == "bpe" else 1
    network = network_of(model_config, vocab_size)
    hidden, layers = model_config.hidden, model_config.layers
    threads = min(config.threads or network.default_threads(config.batch_size), config.batch_size)
    check_memory(
        network.training_bytes(config.seq_length, config.batch_size, dropout=config.dropout, threads=threads),
        f"training {hidden:,} hidden units{'' if layers == 1 else f' × {layers} layers'} over "
        f"{config.batch_size:,} stream{'s' if config.batch_size > 1 else ''} of {config.seq_length:,} "
        f"{'characters' if config.tokens == 'char' else 'tokens'} "
        f"({model_config.dtype})",
        smaller_pass(model_config, threads),
    )
    longest = max(config.sample_length, passage_length)
    check_memory(longest * SAMPLE_BYTES_PER_CHAR, f"a sample of {longest:,} characters",
                 f"ask for a shorter {setting_name('sample_length')} or {setting_name('passage_length')}")


def check_eval_every(config: TrainConfig, total: int, validating: bool) -> None:
    """ConfigError if a run with held-out text would make no evaluation in its ``total`` updates."""
    if validating and config.eval_every > total:
        raise ConfigError(f"{setting_name('eval_every')} {config.eval_every:,} is beyond the run's {total:,} updates: "
                          "no validation loss would choose the best model; give a smaller one, or "
                          f"{setting_name('val_fraction')} 0")


def resumed_schedule(saved: TrainConfig, config: TrainConfig, update: int) -> str | None:
    """What a resume that changes a run's total does to its cosine or linear schedule, in words (None if
    nothing): the decay is spread over the new total, so the rate from ``update`` on is the new schedule's."""
    if config.schedule not in ("cosine", "linear") or saved.updates == config.updates or saved.updates is None:
        return None
    before, after = learning_rate(saved, update, saved.updates), learning_rate(config, update, config.updates)
    return (f"the {config.schedule} schedule now ends at update {config.updates:,} instead of {saved.updates:,}: "
            f"the learning rate at update {update:,} goes from {before:.4g} to {after:.4g} and then falls to "
            f"{config.min_eta:.4g} at the new end")


def resolved(config: TrainConfig, corpus_length: int, threads: int) -> TrainConfig:
    """``config`` with every default fixed as a number, so that config.json says what the run does and a
    resumed run (whose total may differ, on a machine with other CPUs) evaluates at the same updates and
    sums its streams' gradients in the same order: the total of updates and the epochs it makes, the
    evaluation interval and the thread count (``threads`` unless one was given: the network's default)."""
    total = total_updates(config, corpus_length)
    per_epoch = updates_per_epoch(corpus_length, config.seq_length, config.batch_size)
    return replace(config, updates=total, epochs=resolved_epochs(config, total, per_epoch),
                   eval_every=config.resolved_eval_every(total),
                   threads=config.threads or threads)


def check_read(model_config: RNNConfig, config: TrainConfig, run: RunConfig, characters: int, held_out: bool,
               vocab_size: int, level: str | None = None) -> TrainConfig:
    """What a new run checks once its corpus is read (``characters`` to train on, tokens of ``level``, by default
    the run's, some ``held_out`` or none, a vocabulary of ``vocab_size``): the corpus is long enough, every size
    fits, the evaluations fall within the run. Returns ``config`` `resolved`. (A sweep checks each trial with it
    before any starts, counting characters.)"""
    check_corpus_length(characters, config, model_config.cell not in WINDOWED_CELLS, level)
    check_sizes(model_config, config, run.passage_length, vocab_size)
    config = resolved(config, characters, network_of(model_config, vocab_size).default_threads(config.batch_size))
    check_eval_every(config, config.updates, held_out)  # (TrainConfig checks the warm-up against the total)
    return config


def start_run(
    corpus: list[str] | None,
    model_config: RNNConfig | None = None,
    config: TrainConfig | None = None,
    run: RunConfig | None = None,
    *,
    kind: str | None = None,
    options: dict | None = None,
    weights: str | list[float] | None = None,
    registry: Registry | None = None,
    progress: bool | None = None,
    callbacks: object = None,
    stop: StopRequest | None = None,
    extra: dict | None = None,
    model_given: dict | None = None,
    train_given: dict | None = None,
) -> RunResult:
    """Train a new model on ``corpus`` (sources, the default corpus if empty) into a new run folder.

    ``model_config``, ``config`` and ``run`` default to the assignment's settings. With ``run.init_from``,
    training starts from that run's last parameters, optimizer state and vocabulary (and its model
    configuration; ``model_config`` is then ignored, and a setting of ``model_given``, the model settings given
    by name, must be the other run's; the optimizer, unless ``train_given`` names one, is the one that suits
    its cell, see `CELL_DEFAULTS`). ``callbacks``: an object, or a list of them, with any of
    `CALLBACK_METHODS` (see `start_record` for ``on_start``, `TrainCallbacks` for the rest). ``extra`` is
    recorded in config.json (e.g. a gradient check). A run interrupted through ``stop`` raises `Interrupted` with ``folder`` and ``update`` set
    to what was kept.
    """
    config, run = config or TrainConfig(), run or RunConfig()
    listeners = listeners_of(callbacks)
    registry = registry or default_registry()
    planned = plan_sources(corpus, kind, options, registry)  # a bad source or option fails before any work
    initial = None
    if run.init_from is not None:
        check_init_from(run.init_from)
        initial = RunFolder(run.init_from).load("last")
        check_init_model(model_given or {}, initial.model, run.init_from)
        given = train_given or {}
        if "optimizer" not in given:  # the rates that went with the assumed optimizer go too
            unset = {name: None for name in ("eta", "min_eta") if name not in given}
            config = replace(config, optimizer=CELL_DEFAULTS[initial.model.cell]["optimizer"], **unset)
        if given.get("tokens", initial.vocab.level) == initial.vocab.level:  # its vocabulary, as it was asked for
            requested = getattr(initial.vocab, "requested", None)
            config = replace(config, tokens=initial.vocab.level, vocab_size=given.get("vocab_size", requested or 0))
        check_init_tokens(config, initial.vocab, run.init_from)
    model_config = initial.model if initial is not None else (model_config or RNNConfig())
    if model_config.cell in WINDOWED_CELLS and config.seq_length != model_config.context:
        window_is_context(model_config.to_json(), dict(train_given or {}))  # a seq_length given is refused
        config = replace(config, seq_length=model_config.context)  # its windows are its context (plan_run's rule)
    check_sizes(model_config, config, run.passage_length)
    for line in not_applying({**(model_given or {}), **(train_given or {})}, model_config, config):
        log_marked(log, logging.WARNING, line)
    read = tuple(Path(source.location).expanduser() for source, _ in planned if source.location)
    folder = RunFolder.create(run.out or default_run_dir(run_name(planned[0][0].location or planned[0][0].spec)),
                              run.force, keep=read)
    try:
        encoded = _encode(corpus, kind, options, weights, run, registry, folder, initial, config)
        config = check_read(model_config, config, run, encoded.ids.size, encoded.val_ids is not None,
                            encoded.vocab.size)
        vocab, ids, val_ids = encoded.vocab, encoded.ids, encoded.val_ids
        total = total_updates(config, ids.size)
        per_epoch = updates_per_epoch(ids.size, config.seq_length, config.batch_size)
        text_characters = None if vocab.level == "char" else (
            vocab.characters(ids), 0 if val_ids is None else vocab.characters(val_ids))
        record = new_record(
            model=model_config, train=config, sources=tuple(encoded.sources), characters=int(ids.size),
            text_characters=text_characters and text_characters[0],
            val_text_characters=text_characters and text_characters[1],
            val_fraction=encoded.val_fraction, val_max_characters=run.val_max_characters,
            val_characters=0 if val_ids is None else int(val_ids.size),
            vocab_size=vocab.size, updates_per_epoch=per_epoch, total_updates=total,
            passage_length=run.passage_length, init_from=None if run.init_from is None else str(run.init_from),
            extra=dict(extra or {}),
        )
        folder.write_record(record)
        folder.write_vocab(vocab)
        rng = np.random.default_rng(config.seed)
        best_by = "val_loss" if val_ids is not None else "smooth_loss"
        if initial is None:
            state = TrainState.fresh(model_config, vocab.size, config.batch_size, rng, int(ids[0]), best_by,
                                     config.optimizer)
        else:
            # The other run's optimizer state carries over when it used the same optimizer, with its count of
            # steps (Adam's bias corrections depend on it); otherwise the state starts at zero.
            names = array_names(config.optimizer)
            memory, steps = None, 0
            if set(names) <= set(initial.arrays):
                memory = {name: initial.arrays[name].copy() for name in names}
                steps = initial.training.optimizer_steps
            state = TrainState.starting_from(initial.params.copy(), memory, config.batch_size, int(ids[0]), best_by,
                                             config.optimizer, steps)
        check_initial(state, ids, config, model_config, run.init_from)
        recorder = RunRecorder(folder, vocab, model_config, config, rng, per_epoch, encoded.sources, listeners)
        # Update 0 is checkpointed before the folder is moved into place, so a run folder can always be resumed.
        # A first stop asked for in these two steps waits for the trainer, which checkpoints and stops at once.
        with stop.polled() if stop is not None else nullcontext():
            recorder.on_checkpoint(state, final=False)
            folder.publish()
    except BaseException:
        folder.discard()
        raise
    try:
        recorder.tell("on_start", start_record(folder.path, record, 0))
    except BaseException:
        folder.release()
        raise
    try:
        return _train_in(folder, ids, val_ids, vocab, model_config, config, rng, state, recorder, progress, record,
                         stop)
    finally:
        folder.release()


def check_plan(plan: RunPlan) -> None:
    """ConfigError for what is wrong with ``plan`` beyond its own settings, found without reading the corpus: a
    model setting that differs from the --init-from run's."""
    if plan.run.init_from is not None:
        check_init_from(plan.run.init_from)
        check_init_model(plan.model_given, RunFolder(plan.run.init_from).read_record().model, plan.run.init_from)
        check_init_tokens(plan.train, RunFolder(plan.run.init_from).read_vocab(), plan.run.init_from)


def start_planned(plan: RunPlan, **arguments) -> RunResult:
    """`start_run` of the run ``plan`` describes (see `textgen.settings.plan_run`); ``arguments`` as start_run's."""
    if plan.corpus is None:
        log_marked(log, logging.INFO, f"no {setting_name('corpus')} given, training on the built-in default: the "
                   "Python language reference (pydoc_data.topics, ~465k characters)")
    return start_run(plan.corpus, plan.model, plan.train, plan.run, kind=plan.kind, options=plan.options,
                     weights=plan.weights, model_given=plan.model_given, train_given=plan.train_given, **arguments)


def check_initial(state: TrainState, ids: np.ndarray, config: TrainConfig, model_config: RNNConfig,
                  init_from: Path | None) -> None:
    """ConfigError if the weights a new run starts from are not finite, or overflow on its first windows: such
    a run could never make an update, so it is refused before its folder is put in place (or replaces a run)."""
    loss = first_loss(state, ids, config) if np.isfinite(state.params.flat).all() else math.inf
    if math.isfinite(loss):
        return
    if init_from is not None:
        raise ConfigError(f"{setting_name('init_from')} {init_from}: its weights give a loss of {loss} on this "
                          "corpus's first window; start from another run or from new weights (nothing was written)")
    what = "are not finite" if not np.isfinite(state.params.flat).all() else f"give a loss of {loss} on the first window"
    raise ConfigError(f"{setting_name('sigma')} {model_config.sigma:g}: the initial weights {what} in "
                      f"{model_config.dtype}; use a "
                      f"smaller {setting_name('sigma')} (the default is 0.01; nothing was written)")


def _encode(corpus, kind, options, weights, run: RunConfig, registry, folder: RunFolder,
            initial: Checkpoint | None, config: TrainConfig) -> EncodedCorpus:
    """The corpus as ids: a single large file is encoded into the (staging) folder and memory-mapped."""
    known = initial.vocab if initial is not None else None
    if weights is None and streamable_source(corpus, kind, registry, run.stream_over):
        return stream_encode(corpus[0], folder.encoded_ids_path(), folder.encoded_ids_path(held_out=True), kind,
                             options, run.val_fraction, known, registry, run.val_max_characters, config.tokens,
                             config.vocab_size)
    loaded = load_corpus(corpus, kind, options, registry, weights=weights, val_fraction=run.val_fraction,
                         val_max=run.val_max_characters)
    return encode_corpus(loaded, known, config.tokens, config.vocab_size)


def check_init_tokens(config: TrainConfig, other: Vocab, init_from: object) -> None:
    """ConfigError unless ``config`` reads tokens as the --init-from run's vocabulary ``other`` does: a run trained
    further keeps its vocabulary."""
    requested = getattr(other, "requested", None)
    if config.tokens != other.level or (requested is not None and config.vocab_size != requested):
        theirs = f"{setting_name('tokens')} {other.level}" + (
            f" {setting_name('vocab_size')} {requested}" if requested is not None else "")
        raise ConfigError(f"{setting_name('init_from')} {init_from} reads {other.describe()} ({theirs}); a run "
                          f"trained further keeps its vocabulary: give {theirs}")


def _train_in(
    folder: RunFolder,
    ids: np.ndarray,
    val_ids: np.ndarray | None,
    vocab: Vocab,
    model_config: RNNConfig,
    config: TrainConfig,
    rng: np.random.Generator,
    state: TrainState,
    recorder: RunRecorder,
    progress: bool | None,
    record: RunRecord,
    stop: StopRequest | None,
) -> RunResult:
    """Train in the locked ``folder``, then write the final passage, record in config.json (``record``, as the
    run wrote it) that the run has finished, and write the report.

    A stop during training ends in a checkpoint (and the plot and report); a stop afterwards (during the
    passage or the report) comes at once. Either way `Interrupted` goes on with the folder and the update kept.
    """
    finished = False
    if min(config.threads or 1, config.batch_size) > 1 and blas_may_run_threads():
        log_marked(log, logging.WARNING, f"{setting_name('threads')} {config.threads}: BLAS may run threads of its "
                   "own beside these, which halves the speed on two CPUs; set OPENBLAS_NUM_THREADS=1 before Python "
                   "starts (the textgen command does this itself)")
    try:
        try:
            state = train(ids, vocab, config, rng, model_config, state=state, callbacks=recorder, progress=progress,
                          val_ids=val_ids, stop=stop,
                          characters_per_token=1.0 if record.text_characters is None else
                          record.text_characters / max(1, record.characters))
        except TrainingInterrupted:
            recorder.plot()
            _write_report(folder.path)
            stop.check()  # raises Interrupted: the stop the trainer saw
        finished = True
        if stop is not None:
            stop.check()  # a stop that came while the final checkpoint was written
        # As the assignment synthesises: from the hidden state training had when these parameters were in use.
        start = (state.best_h, state.best_next_id)
        passage = generate(state.best_params, vocab, SampleConfig(length=record.passage_length), rng, start=start)
        folder.write_passage(passage)
        folder.write_record(replace(record, finished_at_update=state.update))  # the passage is of this update
        report = _write_report(folder.path)
    except Interrupted as stopped:
        stopped.folder, stopped.update, stopped.finished = folder.path, recorder.checkpoint_update, finished
        raise
    return RunResult(folder.path, state, vocab, passage, report)


def _write_report(folder: Path) -> Path | None:
    """Write the run report and return report.html's path; a failure is a warning (returns None), since the run
    itself is complete or checkpointed."""
    try:
        page, _ = write_report(folder)
    except TextgenError as error:
        log.warning("the report could not be written: %s (try again with: textgen report %s)", error, folder)
        return None
    return page


def resume_run(
    path: Path,
    settings: dict | None = None,
    *,
    passage_length: int | None = None,
    registry: Registry | None = None,
    progress: bool | None = None,
    callbacks: object = None,
    stop: StopRequest | None = None,
) -> RunResult:
    """Continue a run from its ``last.npz`` exactly as if it had never stopped.

    ``settings`` are by name, as for a new run (see `textgen.settings.resume_changes`): the totals
    (``updates`` or ``epochs``, counted from the run's start), the learning rate, the logging intervals and
    ``passage_length`` may change; any other setting given must be what the run already has. config.json,
    vocab.json and last.npz are checked against each other, the corpus is read again and must be
    unchanged, every size is checked, and only then is anything written. The resume is recorded in
    config.json once its first checkpoint is saved; until then a failure leaves the folder as it was.
    A run stopped after its last update, before its final passage or its report, is finished off.
    """
    settings = dict(settings or {})
    if passage_length is not None:
        settings["passage_length"] = passage_length
    check_names(settings, f"{setting_name('resume')}")
    if settings.get("passage_length") is not None:
        check_count("passage_length", settings["passage_length"], minimum=0)  # before anything is written with it
    check_length_given(settings)
    listeners = listeners_of(callbacks)
    folder = RunFolder.open_for_writing(path)
    try:
        record, last = folder.load_for_resume()
        registry = registry or default_registry()
        changes = resume_changes(settings, recorded_settings(record, folder.path, settings, registry))
        passage_length = changes.pop("passage_length", None)
        state, saved, rng = state_of(last)
        if {"updates", "epochs"} & set(changes):
            base = replace(saved, updates=None, epochs=None)
        elif saved.updates is None and saved.epochs is None:
            base = replace(saved, updates=record.total_updates)  # a run from before defaults were recorded
        else:
            base = saved
        config = replace(base, **changes)
        passage_length = record.passage_length if passage_length is None else passage_length
        ids, val_ids = _reencode(record, last.vocab, folder, registry)
        target = total_updates(config, ids.size)
        config = replace(config, updates=target, epochs=resolved_epochs(config, target, record.updates_per_epoch))
        if target == state.update and folder.is_finished() and not folder.report_is_current():
            report = _write_report(folder.path)  # stopped while its report was written: only that is left to do
            return RunResult(folder.path, state, last.vocab, folder.passage() or "", report)
        unfinished = target == state.update and not folder.is_finished()  # stopped after training
        if target <= state.update and not unfinished:
            asked = next((f"{setting_name(name)} {changes[name]} makes {target:,} in all, and "
                          for name in ("updates", "epochs") if name in changes), "")
            raise ConfigError(f"{setting_name('resume')}: {asked}the run already has {state.update:,} updates; give a "
                              f"larger total with {setting_name('updates')} or {setting_name('epochs')}")
        check_sizes(last.model, config, passage_length, last.vocab.size)
        if "eval_every" in changes:
            check_eval_every(config, target, val_ids is not None)
        if (note := resumed_schedule(saved, config, state.update)) is not None:
            log_marked(log, logging.INFO, note)
        if target > state.update and not math.isfinite(loss := first_loss(state, ids, config)):
            # saved by a textgen that did not yet look one window ahead: no --eta can change this loss
            raise TrainingError(f"{setting_name('resume')} {folder.path}: the weights in last.npz (update "
                                f"{state.update:,}) give a "
                                f"loss of {loss} on the next window, so no learning rate can continue from them; "
                                "start a new run (nothing was changed)")
        metrics, samples = folder.rows_up_to(state.update, state.sampled_at)
        entry = {"at_update": state.update, "changes": changes,
                 "when": datetime.now().astimezone().isoformat(timespec="seconds")}
        updated = replace(record, train=config, total_updates=target, passage_length=passage_length,
                          resumes=(*record.resumes, entry), finished_at_update=None)
        recorder = RunRecorder(folder, last.vocab, last.model, config, rng, record.updates_per_epoch,
                               list(record.sources), listeners,
                               Resumption(metrics, samples, updated, drop_passage=target > state.update))
        recorder.tell("on_start", start_record(folder.path, updated, state.update))
        return _train_in(folder, ids, val_ids, last.vocab, last.model, config, rng, state, recorder, progress,
                         updated, stop)
    finally:
        folder.release()


def recorded_settings(record: RunRecord, folder: Path, given: dict, registry: Registry) -> dict:
    """A run's own value of each setting, by name (see `textgen.settings.SETTINGS`), as config.json records it:
    what a setting ``given`` to `resume_run` is compared with. The corpus is as the run read it: sources given
    by other paths to its files are its own, and each loader flag and ``option`` has the value the run's loaders
    took, a loader's default included, so that one given again as the run read it is no change."""
    sources = list(record.sources)
    planned = recorded_plan(sources, registry)
    in_effect = [options_in_effect(source, options) for source, options in planned]
    recorded = {**record.model.to_json(), **record.train.to_json(), "out": folder, "init_from": record.init_from,
                "val_fraction": record.val_fraction, "val_max_characters": record.val_max_characters,
                "passage_length": record.passage_length, "force": False,
                "corpus": [source["spec"] for source in sources]}
    specs = given.get("corpus")
    specs = [specs] if isinstance(specs, (str, Path)) else specs
    if isinstance(specs, list) and len(specs) == len(planned) and all(
            names_source(str(spec), given.get("kind"), source, registry) for spec, (source, _) in zip(specs, planned)):
        recorded["corpus"] = given["corpus"]
    kinds = {source["kind"] for source in sources}
    recorded["kind"] = kinds.pop() if len(kinds) == 1 else None
    if len(sources) > 1:
        recorded["weights"] = [source["weight"] for source in sources]
    for name, entry in LOADER_SETTINGS.items():
        values = [options.get(entry.keyword) for (source, _), options in zip(planned, in_effect)
                  if source.kind == entry.loader]
        if values and all(value == values[0] for value in values):
            recorded[name] = (not values[0]) if entry.negated and values[0] is not None else values[0]
    flags = {name: given[name] for name in LOADER_SETTINGS if given.get(name) is not None}
    route_options([source for source, _ in planned], loader_options_of(flags))  # refuses one for a loader not used
    if given.get("option") is not None:
        taken = route_options([source for source, _ in planned], loader_options_of({"option": given["option"]}))
        read = [f"{key}={options[key]}" for chosen, options in zip(taken, in_effect) for key in chosen]
        same = all(value == options.get(key) for chosen, options in zip(taken, in_effect)
                   for key, value in chosen.items())
        recorded["option"] = given["option"] if same else list(dict.fromkeys(read))
    return recorded


def held_out_text(run_folder: Path, vocab: Vocab) -> tuple[str, str, list[str]]:
    """(text, "held-out" or "training", the sources) of a run, for scoring a model on it: its held-out text, or
    without one the first `val_max_characters` of its training text; its corpora are read again and must be
    unchanged."""
    folder = RunFolder(run_folder)
    record = folder.read_record()
    specs = [source["spec"] for source in record.sources]
    if record.sources[0].get("streamed_to"):  # a large corpus: its ids are in the run folder
        held_out = record.val_characters >= 2
        which = "held-out" if held_out else "training"
        ids = folder.encoded_ids(vocab.dtype, held_out)
        if ids is not None and ids.size >= 2:
            if vocab.level == "char":
                return vocab.decode(ids[: record.val_max_characters]), which, specs
            if held_out:  # at most about val_max_characters already
                return vocab.decode(ids), which, specs
            # the first val_max_characters of the training text: no more ids than characters are decoded
            return vocab.decode(ids[: record.val_max_characters])[: record.val_max_characters], which, specs
        raise CorpusError(f"{folder.encoded_ids_path(held_out)}: the run's encoded {which} text is missing or damaged; "
                          f"give the text to score with {setting_name('corpus')}")
    planned = recorded_plan(list(record.sources))
    check_recorded_files(planned, "evaluate", f", or give the text to score with {setting_name('corpus')}")
    weights = [source["weight"] for source in record.sources] if len(record.sources) > 1 else None
    corpus = load_planned(planned, weights, record.val_fraction, record.val_max_characters)
    for old, new in zip(record.sources, corpus.sources):
        if old["sha256"] != new["sha256"] or old.get("val_sha256") != new.get("val_sha256"):
            raise CorpusError(f"the {corpus_label([old['spec']])} has changed since the run read it (SHA-256 "
                              "differs), so its held-out text is not the run's; give the text to score with "
                              f"{setting_name('corpus')}")
    if len(corpus.validation) >= 2:
        return corpus.validation, "held-out", specs
    return corpus.text[: record.val_max_characters], "training", specs


def _reencode(record: RunRecord, vocab: Vocab, folder: RunFolder,
              registry: Registry) -> tuple[np.ndarray, np.ndarray | None]:
    """The run's training and held-out ids, from a corpus that must be unchanged (same SHA-256 per source)."""
    sources = record.sources
    planned = recorded_plan(list(sources), registry)
    check_recorded_files(planned, "resume", " (nothing was changed)", flag=f"{setting_name('resume')}: ")

    def changed(spec: str) -> CorpusError:
        return CorpusError(
            f"{setting_name('resume')}: corpus {spec!r} has changed since the run started (SHA-256 differs); "
            f"the continuation would not be exact; start a new run or {setting_name('init_from')} this one"
        )

    if sources[0].get("streamed_to"):
        # the ids are on disk already: check the source is unchanged in one streaming pass, then map them
        if source_digest(*planned[0]) != sources[0]["sha256"]:
            raise changed(sources[0]["spec"])
        ids, val_ids = folder.encoded_ids(vocab.dtype), folder.encoded_ids(vocab.dtype, held_out=True)
        if ids is None or ids.size != record.characters:
            raise CheckpointError(f"{folder.encoded_ids_path()}: missing or of the wrong size; this run's encoded "
                                  "corpus is damaged, so it cannot resume")
        return ids, None if val_ids is None else np.array(val_ids)
    weights = [source["weight"] for source in sources] if len(sources) > 1 else None
    corpus = load_planned(planned, weights, record.val_fraction, record.val_max_characters)
    for old, new in zip(sources, corpus.sources):
        if old["sha256"] != new["sha256"] or old.get("val_sha256") != new.get("val_sha256"):
            raise changed(old["spec"])
    ids = vocab.encode(corpus.text)
    if ids.size != record.characters:
        raise CheckpointError(f"{folder.record_path()}: corpus.characters is {record.characters:,} but the "
                              f"corpus has {ids.size:,}; the run folder has been edited")
    val_ids = vocab.encode(corpus.validation) if len(corpus.validation) >= 2 else None
    return ids, val_ids
