"""The run folder: config, vocabulary, metrics, samples, checkpoints, loss plot and final passage of one training run."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson

from textgen import __version__
from textgen.checkpoint import (
    START_ARRAY,
    STATE_ARRAYS,
    Checkpoint,
    atomic_write_bytes,
    load_checkpoint,
    read_json,
    rng_from_json,
    rng_state_to_json,
    save_checkpoint,
    write_json,
)
from textgen.corpus import Corpus, EncodedCorpus, encode_corpus, source_digest, stream_encode
from textgen.errors import CheckpointError, ConfigError, CorpusError, TextgenError
from textgen.plots import LossCurve, plot_loss
from textgen.rnn import Params, RNNConfig, default_threads
from textgen.sample import SampleConfig, generate
from textgen.train import (
    TrainCallbacks,
    TrainConfig,
    TrainingInterrupted,
    TrainState,
    check_corpus_length,
    total_updates,
    train,
)
from textgen.train import updates_per_epoch as count_updates_per_epoch
from textgen.vocab import CharVocab

log = logging.getLogger(__name__)

RUN_FILES = (
    "report.html",
    "report.md",
    "report_loss.png",
    "config.json",
    "vocab.json",
    "metrics.jsonl",
    "samples.jsonl",
    "best.npz",
    "last.npz",
    "loss.png",
    "best_passage.txt",
    "ids.bin",
    "val_ids.bin",
)
CONFIG_FORMAT_VERSION = 1
PLOT_EVERY_SECONDS = 20.0  # loss.png is redrawn at checkpoints at most this often (and at the end)


def default_run_dir(name: str) -> Path:
    """runs/<name>-<timestamp>, for a corpus called ``name`` (see `textgen.corpus.run_name`)."""
    return Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(folder: Path, force: bool) -> None:
    """Create ``folder``; refuse one that already holds a run unless ``force`` (then its run files go)."""
    if folder.exists() and not folder.is_dir():
        raise TextgenError(f"--out {folder}: exists and is not a folder; choose another path")
    existing = [name for name in RUN_FILES if (folder / name).exists()]
    if existing and not force:
        raise TextgenError(
            f"--out {folder}: already holds a run ({', '.join(existing)}); choose another folder or pass --force "
            "to replace it"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in existing:
            (folder / name).unlink()
    except OSError as error:
        raise TextgenError(f"--out {folder}: cannot create or clear the run folder ({error.strerror})") from None


class RunRecorder(TrainCallbacks):
    """Writes what the trainer reports into the run folder as it happens."""

    def __init__(
        self,
        folder: Path,
        vocab: CharVocab,
        model: RNNConfig,
        config: TrainConfig,
        rng: np.random.Generator,
        per_epoch: int,
        corpus_summary: list[dict],
        on_sample: Callable[[dict], None] | None = None,
    ):
        self.folder = folder
        self.vocab = vocab
        self.model = model
        self.config = config
        self.rng = rng
        self.per_epoch = per_epoch
        self.corpus_summary = corpus_summary
        self.echo_sample = on_sample
        self.updates: list[int] = []
        self.smooth_losses: list[float] = []
        self.val_points: list[tuple[int, float]] = []
        self.last_plot = 0.0

    def _append(self, name: str, record: dict) -> None:
        try:
            with (self.folder / name).open("ab") as stream:
                stream.write(orjson.dumps(record) + b"\n")
        except OSError as error:
            raise TextgenError(f"{self.folder / name}: cannot write ({error.strerror})") from None

    def on_log(self, record: dict) -> None:
        self._append("metrics.jsonl", record)
        self.remember(record)

    def remember(self, record: dict) -> None:
        """Keep a metrics row for the loss plot."""
        self.updates.append(record["update"])
        self.smooth_losses.append(record["smooth_loss"])
        if record.get("val_loss") is not None:
            self.val_points.append((record["update"], record["val_loss"]))

    def on_sample(self, record: dict) -> None:
        self._append("samples.jsonl", record)
        if self.echo_sample:
            self.echo_sample(record)

    def _meta(self, update: int, smooth_loss: float | None) -> dict:
        return {
            "train": self.config.to_json(),
            "update": update,
            "smooth_loss": smooth_loss,
            "corpus": [{k: s[k] for k in ("spec", "kind", "characters", "sha256")} for s in self.corpus_summary],
        }

    def on_checkpoint(self, state: TrainState, final: bool) -> None:
        meta = self._meta(state.update, state.smooth_loss)
        meta.update(
            best_loss=state.best_loss if math.isfinite(state.best_loss) else None,
            best_update=state.best_update,
            best_by=state.best_by,
            best_next_id=state.best_next_id,
            sampled_at=state.sampled_at,
            next_id=state.next_id,
            rng=rng_state_to_json(self.rng),
        )
        best_h = state.best_h.reshape(1, -1)
        arrays = {
            "adagrad_memory": state.adagrad_memory,
            "h": state.h,
            "best_flat": state.best_params.flat,
            "best_h": best_h,
            START_ARRAY: state.h[:1],
        }
        save_checkpoint(self.folder / "last.npz", Checkpoint(state.params, self.vocab, self.model, meta, arrays))
        best_meta = self._meta(state.best_update, state.best_loss if math.isfinite(state.best_loss) else None)
        best_meta.update(best_by=state.best_by, next_id=state.best_next_id)
        best = Checkpoint(state.best_params, self.vocab, self.model, best_meta, {START_ARRAY: best_h})
        save_checkpoint(self.folder / "best.npz", best)
        now = time.monotonic()
        if final or now - self.last_plot >= PLOT_EVERY_SECONDS:
            self.last_plot = now
            self.plot()

    def plot(self) -> None:
        """Redraw loss.png from the metrics logged so far."""
        curve = LossCurve("smooth loss", self.updates, self.smooth_losses, self.per_epoch)
        try:
            plot_loss(self.folder / "loss.png", [curve], title=f"Smooth training loss: {self.folder.name}")
        except OSError as error:
            raise TextgenError(f"{self.folder / 'loss.png'}: cannot write ({error.strerror})") from None


@dataclass
class RunResult:
    """What a finished run produced."""

    folder: Path  # the run folder
    state: TrainState  # final training state (params, best params, losses)
    vocab: CharVocab  # the shared vocabulary
    passage: str  # text from the best model, also in best_passage.txt


def _train_in_folder(
    folder: Path,
    ids: np.ndarray,
    val_ids: np.ndarray | None,
    vocab: CharVocab,
    model: RNNConfig,
    config: TrainConfig,
    rng: np.random.Generator,
    state: TrainState | None,
    recorder: RunRecorder,
    progress: bool | None,
    passage_length: int,
    stop: threading.Event | None,
) -> RunResult:
    """Train, then write the final passage; an interrupted run still gets its plot before the exception goes on."""
    try:
        state = train(ids, vocab, config, rng, model, state=state, callbacks=recorder, progress=progress,
                      val_ids=val_ids, stop=stop)
    except TrainingInterrupted:
        recorder.plot()
        _write_report(folder)
        raise
    # As the assignment synthesises: from the hidden state training had when these parameters were in use.
    start = (state.best_h, state.best_next_id)
    passage = generate(state.best_params, vocab, SampleConfig(length=passage_length), rng, start=start)
    try:
        (folder / "best_passage.txt").write_text(passage, encoding="utf-8")
    except OSError as error:
        raise TextgenError(f"{folder / 'best_passage.txt'}: cannot write ({error.strerror})") from None
    _write_report(folder)
    return RunResult(folder, state, vocab, passage)


def _write_report(folder: Path) -> None:
    """Write the run report; a failure is a warning, since the run itself is complete or checkpointed."""
    from textgen.report import write_report  # here, not at the top: report imports this module

    try:
        write_report(folder)
    except TextgenError as error:
        log.warning("the report could not be written: %s (try again with: textgen report %s)", error, folder)


def run_training(
    corpus: Corpus,
    out: Path | None,
    model: RNNConfig,
    config: TrainConfig,
    *,
    force: bool = False,
    progress: bool | None = None,
    on_sample: Callable[[dict], None] | None = None,
    passage_length: int = 1000,
    extra_config: dict | None = None,
    initial: Checkpoint | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Build the vocabulary, train with every file of the run folder written, and sample the final passage.

    With ``initial`` (another run's checkpoint) training starts from its parameters, AdaGrad memory and
    vocabulary; the corpus may then only use characters that vocabulary has. ``stop``: see `train`.
    """
    encoded = encode_corpus(corpus, initial.vocab if initial is not None else None)
    check_corpus_length(encoded.ids.size, config)  # before the folder is made, so a bad corpus leaves nothing
    folder = Path(out) if out is not None else default_run_dir(corpus.name)
    prepare_run_dir(folder, force)
    return _start_run(folder, encoded, model, config, progress, on_sample, passage_length, extra_config, initial, stop)


def run_training_streamed(
    spec: str,
    out: Path,
    model: RNNConfig,
    config: TrainConfig,
    *,
    kind: str | None = None,
    options: dict | None = None,
    val_fraction: float = 0.0,
    force: bool = False,
    progress: bool | None = None,
    on_sample: Callable[[dict], None] | None = None,
    passage_length: int = 1000,
    extra_config: dict | None = None,
    initial: Checkpoint | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Like `run_training` for one large source: its ids are encoded into the run folder (ids.bin) and
    memory-mapped, so memory does not grow with the corpus. A corpus that fails to load leaves no run."""
    folder = Path(out)
    existed = folder.exists()
    prepare_run_dir(folder, force)
    try:
        encoded = stream_encode(spec, folder, kind, options, val_fraction, initial.vocab if initial else None)
        check_corpus_length(encoded.ids.size, config)
    except TextgenError:
        for name in ("ids.bin", "val_ids.bin"):
            (folder / name).unlink(missing_ok=True)
        if not existed:
            folder.rmdir()
        raise
    return _start_run(folder, encoded, model, config, progress, on_sample, passage_length, extra_config, initial, stop)


def _start_run(
    folder: Path,
    encoded: EncodedCorpus,
    model: RNNConfig,
    config: TrainConfig,
    progress: bool | None,
    on_sample: Callable[[dict], None] | None,
    passage_length: int,
    extra_config: dict | None,
    initial: Checkpoint | None,
    stop: threading.Event | None,
) -> RunResult:
    """Write config.json and vocab.json, then train in the prepared ``folder``."""
    vocab, ids, val_ids = encoded.vocab, encoded.ids, encoded.val_ids
    if initial is not None:
        model = initial.model
    # fixed now and recorded, so a resumed run (whose total may differ) evaluates at the same updates
    # Fixed now and recorded, so a resumed run (whose total may differ, on a machine with other CPUs)
    # evaluates at the same updates and sums its streams' gradients in the same order.
    config = replace(
        config,
        eval_every=config.resolved_eval_every(total_updates(config, ids.size)),
        threads=config.threads or default_threads(config.batch_size),
    )
    per_epoch = count_updates_per_epoch(ids.size, config.seq_length, config.batch_size)
    write_json(
        folder / "config.json",
        {
            "format_version": CONFIG_FORMAT_VERSION,
            "textgen_version": __version__,
            "created": datetime.now().astimezone().isoformat(timespec="seconds"),
            "model": {"hidden": model.hidden, "sigma": model.sigma, "dtype": model.dtype},
            "train": config.to_json(),
            "corpus": {
                "sources": encoded.sources,
                "characters": int(ids.size),
                "val_fraction": encoded.val_fraction,
                "val_characters": 0 if val_ids is None else int(val_ids.size),
                "vocab_size": vocab.size,
                "updates_per_epoch": per_epoch,
                "total_updates": total_updates(config, ids.size),
            },
            "passage_length": passage_length,
            **(extra_config or {}),
        },
    )
    write_json(folder / "vocab.json", vocab.to_json())
    rng = np.random.default_rng(config.seed)
    state = None
    if initial is not None:
        memory = initial.arrays.get("adagrad_memory")
        state = TrainState(
            params=initial.params.copy(),
            adagrad_memory=np.zeros_like(initial.params.flat) if memory is None else memory.copy(),
            h=np.zeros((config.batch_size, model.hidden), dtype=initial.params.flat.dtype),
            best_by="val_loss" if val_ids is not None else "smooth_loss",
        )
    recorder = RunRecorder(folder, vocab, model, config, rng, per_epoch, encoded.sources, on_sample)
    return _train_in_folder(folder, ids, val_ids, vocab, model, config, rng, state, recorder, progress,
                            passage_length, stop)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file of a run; a half-written last line (a killed run) is ignored, other bad lines raise."""
    if not path.exists():
        return []
    lines = path.read_bytes().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            if number == len(lines):
                break  # the continuation of a killed run rewrites it
            raise CheckpointError(f"{path}: line {number} is not valid JSON") from None
        if not isinstance(row, dict):
            raise CheckpointError(f"{path}: line {number} is not a JSON object")
        update = row.get("update", 0)
        if not isinstance(update, int) or isinstance(update, bool):
            raise CheckpointError(f"{path}: line {number} has a non-integer 'update' ({update!r})")
        rows.append(row)
    return rows


def _rewrite_jsonl(path: Path, rows: list[dict]) -> None:
    payload = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    try:
        atomic_write_bytes(path, lambda stream: stream.write(payload))
    except OSError as error:
        raise TextgenError(f"{path}: cannot write ({error.strerror})") from None


RESUMABLE_CHANGES = ("eta", "updates", "epochs", "sample_every", "log_every", "checkpoint_every", "eval_every")


def resume_training(
    run: Path,
    changes: dict | None = None,
    *,
    progress: bool | None = None,
    on_sample: Callable[[dict], None] | None = None,
    passage_length: int | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Continue a run from its ``last.npz`` exactly as if it had never stopped.

    ``changes`` may set the totals (``updates`` or ``epochs``, counted from the run's start), the
    learning rate and the logging intervals; anything else that would make the continuation inexact
    is refused. The corpus is read again and must be unchanged (same SHA-256 per source).
    """
    from textgen.corpus import load_corpus
    from textgen.registry import discover

    run = Path(run)
    config_data = read_run_config(run)
    checkpoint = load_run_checkpoint(run, "last")
    meta = checkpoint.meta
    if set(STATE_ARRAYS) - set(checkpoint.arrays) or "rng" not in meta:
        raise CheckpointError(f"{run}/last.npz: holds no training state to resume from")
    changes = dict(changes or {})
    refused = sorted(set(changes) - set(RESUMABLE_CHANGES))
    if refused:
        raise ConfigError(
            f"--resume cannot change {', '.join('--' + name.replace('_', '-') for name in refused)}: the "
            "continuation would not be exact; start a new run (or --init-from this one) instead"
        )
    try:
        saved = TrainConfig(**meta["train"])
    except (TypeError, ConfigError) as error:
        raise CheckpointError(f"{run}/last.npz: unreadable training configuration ({error})") from None
    if "updates" in changes or "epochs" in changes:
        saved = replace(saved, updates=None, epochs=None)
    config = replace(saved, **changes)
    sources = config_data["corpus"]["sources"]
    options = {}
    for source in sources:
        options.update(source.get("options", {}))
    weights = [source["weight"] for source in sources] if len(sources) > 1 else None
    specs = [f"{source['kind']}:{source['location']}" for source in sources]
    vocab = checkpoint.vocab
    def changed(spec: str) -> CorpusError:
        return CorpusError(
            f"--resume: corpus {spec!r} has changed since the run started (SHA-256 differs); "
            "the continuation would not be exact; start a new run or --init-from this one"
        )

    if sources[0].get("streamed_to"):
        # the ids are on disk already: check the source is unchanged in one streaming pass, then map them
        if source_digest(specs[0], None, options) != sources[0]["sha256"]:
            raise changed(sources[0]["spec"])
        if not (run / "ids.bin").is_file():
            raise CheckpointError(f"{run}/ids.bin: missing; this run's encoded corpus is gone, so it cannot resume")
        ids = np.memmap(run / "ids.bin", dtype=vocab.dtype, mode="r")
        val_path = run / "val_ids.bin"
        has_val = val_path.exists() and val_path.stat().st_size
        val_ids = np.array(np.memmap(val_path, dtype=vocab.dtype, mode="r")) if has_val else None
    else:
        corpus = load_corpus(specs, options=options, registry=discover(), weights=weights,
                             val_fraction=config_data["corpus"].get("val_fraction", 0.0))
        for old, new in zip(sources, corpus.sources):
            if old["sha256"] != new["sha256"]:
                raise changed(old["spec"])
        ids = vocab.encode(corpus.text)
        val_ids = vocab.encode(corpus.validation) if len(corpus.validation) >= 2 else None
    target = total_updates(config, ids.size)
    update = int(meta["update"])
    if target <= update:
        raise ConfigError(
            f"--resume: the run already has {update:,} updates; give a larger total with --updates or --epochs"
        )
    model = checkpoint.model
    arrays = checkpoint.arrays
    best_loss = meta.get("best_loss")
    state = TrainState(
        params=checkpoint.params,
        adagrad_memory=arrays["adagrad_memory"].copy(),
        h=arrays["h"].copy(),
        update=update,
        smooth_loss=meta.get("smooth_loss"),
        best_loss=math.inf if best_loss is None else float(best_loss),
        best_update=int(meta.get("best_update", 0)),
        best_params=Params(arrays["best_flat"].copy(), model.hidden, vocab.size),
        best_h=arrays["best_h"][0].copy(),
        best_next_id=int(meta.get("best_next_id", 0)),
        next_id=int(meta.get("next_id", 0)),
        best_by=meta.get("best_by", "smooth_loss"),
        sampled_at=int(meta.get("sampled_at", -1)),
    )
    if state.h.shape != (config.batch_size, model.hidden):
        raise CheckpointError(f"{run}/last.npz: hidden state shape {state.h.shape} does not fit the configuration")
    rng = rng_from_json(meta["rng"], f"{run}/last.npz")
    for stray in run.glob(".*.tmp"):  # temporaries of writes that a killed process never finished
        stray.unlink(missing_ok=True)
    # Rows written after the checkpoint (by a run that was then killed) are replayed by the continuation.
    metrics = [row for row in read_jsonl(run / "metrics.jsonl") if row.get("update", 0) <= update]
    samples = [
        row for row in read_jsonl(run / "samples.jsonl")
        if row.get("update", 0) < update or (row.get("update") == update and state.sampled_at == update)
    ]
    _rewrite_jsonl(run / "metrics.jsonl", metrics)
    _rewrite_jsonl(run / "samples.jsonl", samples)
    config_data.setdefault("resumes", []).append(
        {"at_update": update, "changes": changes, "when": datetime.now().astimezone().isoformat(timespec="seconds")}
    )
    config_data["train"] = config.to_json()
    config_data["corpus"]["total_updates"] = target
    if passage_length is None:
        passage_length = int(config_data.get("passage_length", 1000))
    config_data["passage_length"] = passage_length
    write_json(run / "config.json", config_data)
    per_epoch = count_updates_per_epoch(ids.size, config.seq_length, config.batch_size)
    recorder = RunRecorder(run, vocab, model, config, rng, per_epoch, config_data["corpus"]["sources"], on_sample)
    for row in metrics:
        recorder.remember(row)
    return _train_in_folder(run, ids, val_ids, vocab, model, config, rng, state, recorder, progress,
                            passage_length, stop)


def load_run_checkpoint(run: Path, which: str = "best") -> Checkpoint:
    """The ``best`` or ``last`` checkpoint of a run folder."""
    run = Path(run)
    if not run.is_dir():
        raise CheckpointError(f"--run {run}: no such run folder")
    if which not in ("best", "last"):
        raise CheckpointError(f"--checkpoint must be best or last, got {which!r}")
    return load_checkpoint(run / f"{which}.npz")


def read_run_config(run: Path) -> dict:
    """The run's config.json."""
    path = Path(run) / "config.json"
    data = read_json(path, "run configuration")
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    for section in ("model", "train", "corpus"):
        if not isinstance(data.get(section), dict):
            raise CheckpointError(f"{path}: no {section!r} section; is this a textgen run folder?")
    sources = data["corpus"].get("sources")
    if (
        not isinstance(sources, list)
        or not sources
        or not all(
            isinstance(source, dict) and all(isinstance(source.get(key), str) for key in ("spec", "kind", "location"))
            for source in sources
        )
    ):
        raise CheckpointError(f"{path}: 'corpus.sources' is not a list of sources with spec, kind and location")
    return data


