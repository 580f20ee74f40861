"""`train()`, the DD2424 training loop, and what it is made of: its `TrainState` (with the best model kept in
it), the windows it reads (`StreamWindows`), when it samples, evaluates, logs and checkpoints (`Cadence`), what
it shows as it goes (`Progress`), and the mapping between a state and its two checkpoints, written once and
read once, side by side.

The trainer never opens files: it reports logs, samples and checkpoints to a `TrainCallbacks`
object, and the caller (the run recorder, a test) decides what to keep.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext, suppress
from dataclasses import dataclass

import numpy as np

from textgen.checkpoint import START_ARRAY, STATE_ARRAYS, Checkpoint, CheckpointMeta, rng_from_json, rng_state_to_json
from textgen.config import DEFAULT_EPOCHS, DEFAULT_MIN_CHARACTERS, MAX_COUNT, RNNConfig, TrainConfig
from textgen.errors import CheckpointError, ConfigError, CorpusError, TrainingError, message_of, setting_name
from textgen.scoring import bits_per_char, mean_loss_per_char
from textgen.models import Params, network_of
from textgen.optim import array_names, learning_rate, make_optimizer
from textgen.sample import sample_ids
from textgen.stopping import StopRequest
from textgen.vocab import Vocab


def updates_per_epoch(corpus_length: int, seq_length: int, batch_size: int = 1) -> int:
    """Windows per pass: each of ``batch_size`` streams walks (N - 1) // B characters in steps of seq_length.

    For one stream this is the assignment's count: positions e = 0, n, 2n, ... with e + n + 1 <= N. For windows
    at random positions (`RandomWindows`) it is as many updates as read the corpus's length.
    """
    return ((corpus_length - 1) // batch_size) // seq_length


def total_updates(config: TrainConfig, corpus_length: int) -> int:
    """The number of updates a run makes in all; ConfigError if the epochs asked for make too many to count.

    ``updates`` if set; else ``epochs`` passes (rounded to a whole update, at least one); else the default:
    two passes, but at least DEFAULT_MIN_CHARACTERS characters read, so a small corpus gets a useful model.
    """
    if config.updates is not None:
        return config.updates
    per_epoch = updates_per_epoch(corpus_length, config.seq_length, config.batch_size)
    if config.epochs is not None:
        total = max(1, round(config.epochs * per_epoch))
        if total > MAX_COUNT:
            asked = int(config.epochs) if float(config.epochs).is_integer() else config.epochs
            raise ConfigError(f"{setting_name('epochs')} {asked} would be {total:,} updates, more than the "
                              f"{MAX_COUNT:,} a run can count; ask for fewer")
        return total
    characters_per_update = config.seq_length * config.batch_size
    return max(DEFAULT_EPOCHS * per_epoch, -(-DEFAULT_MIN_CHARACTERS // characters_per_update))


def resolved_epochs(config: TrainConfig, total: int, per_epoch: int) -> float:
    """The passes over the corpus that ``total`` updates make: ``epochs`` itself if given, else total / per_epoch
    to four decimals (four significant digits for a run shorter than that: a few updates of a huge corpus)."""
    if config.epochs is not None:
        return config.epochs
    return round(total / per_epoch, 4) or float(f"{total / per_epoch:.4g}")


@dataclass
class TrainState:
    """Everything that determines how training continues from here (what `last.npz` stores)."""

    params: Params  # current θ
    optimizer_state: dict  # the optimizer's state arrays by name, each (n_params,) (AdaGrad: its running sum of g²)
    h: np.ndarray  # (B, S) each stream's state (`Network.state_size`), carried across windows
    update: int = 0  # updates made so far
    smooth_loss: float | None = None  # None before the first update
    best_loss: float = math.inf  # what chose the best parameters: lowest smooth loss, or validation loss
    best_update: int = 0  # update at which the best parameters were in use
    best_params: Params | None = None  # θ that gave best_loss
    best_h: np.ndarray | None = None  # (S,) stream 0's recurrent state when best_params were in use
    best_next_id: int = 0  # the character stream 0 was about to read then; with best_h, where sampling starts
    best_by: str = "smooth_loss"  # "smooth_loss", or "val_loss" when there is held-out text
    sampled_at: int = -1  # update of the latest training-time sample (so a resumed run does not repeat it)
    next_id: int = 0  # the character stream 0 reads next
    optimizer_steps: int = 0  # updates the optimizer has made (Adam's bias correction counts them)

    @classmethod
    def fresh(
        cls,
        model_config: RNNConfig,
        vocab_size: int,
        batch_size: int,
        rng: np.random.Generator,
        first_id: int = 0,
        best_by: str = "smooth_loss",
        optimizer: str = "adagrad",
    ) -> TrainState:
        """Initial parameters drawn from ``rng``, zero ``optimizer`` and recurrent state, and these
        parameters as the best so far (where sampling starts: h = 0 reading ``first_id``)."""
        params = network_of(model_config, vocab_size).init(rng)
        return cls.starting_from(params, None, batch_size, first_id, best_by, optimizer)

    @classmethod
    def starting_from(
        cls,
        params: Params,
        optimizer_state: dict | None,
        batch_size: int,
        first_id: int = 0,
        best_by: str = "smooth_loss",
        optimizer: str = "adagrad",
        optimizer_steps: int = 0,
    ) -> TrainState:
        """A state at update 0 from given parameters and ``optimizer``'s state arrays (zero if None) with their
        step count, e.g. another run's."""
        dtype, S = params.flat.dtype, params.network.state_size
        if optimizer_state is None:
            optimizer_state = {name: np.zeros_like(params.flat) for name in array_names(optimizer)}
        return cls(
            params=params,
            optimizer_state=optimizer_state,
            h=np.zeros((batch_size, S), dtype=dtype),
            best_params=params.copy(),
            best_h=np.zeros(S, dtype=dtype),
            best_next_id=int(first_id),
            best_by=best_by,
            optimizer_steps=optimizer_steps,
        )

    def keep_if_best(self, loss: float, next_id: int) -> None:
        """Keep the parameters in use now as the best if ``loss``, what chooses the best (``best_by``), beats
        the best so far; with them stream 0's state and ``next_id``, the character it reads next: where
        sampling from them starts."""
        if loss < self.best_loss:
            self.best_loss, self.best_update = loss, self.update
            np.copyto(self.best_params.flat, self.params.flat)
            self.best_h, self.best_next_id = self.h[0].copy(), int(next_id)


class TrainCallbacks:
    """Receives what the trainer produces; every method is optional and does nothing here."""

    def on_log(self, record: dict) -> None:
        """A row of metrics: update, epoch (fractional), loss, smooth_loss, chars_per_sec (+ val_loss, val_bpc)."""

    def on_sample(self, record: dict) -> None:
        """A training-time sample: update, epoch (fractional), smooth_loss (None before any update), text."""

    def on_checkpoint(self, state: TrainState, final: bool) -> None:
        """The state after ``state.update`` updates; ``final`` at the end of training."""

    def wants_checkpoint(self) -> bool:
        """True to have a checkpoint taken after the update just made, besides those every checkpoint_every."""
        return False

    def on_status(self, status: dict) -> None:
        """Where training is, at each log row and at least every STATUS_SECONDS: update, total_updates, epoch, smooth_loss (nats
        per window), val_bpc (the latest evaluation's, or None), chars_per_sec (since the previous status),
        elapsed_seconds and eta_seconds (None until an update has been timed)."""


class TrainingInterrupted(Exception):
    """Raised by `train` when ``stop`` was set (the user asked it to stop; not an error).

    A checkpoint of the state it stopped at was taken just before.
    """

    def __init__(self, state: TrainState, signum: int | None = None):
        super().__init__(f"training stopped at update {state.update}")
        self.state = state
        self.signum = signum  # the signal that asked for the stop


# ---------------------------------------------------------------- a state and its checkpoints, both ways


def checkpoints_of(
    state: TrainState,
    vocab: Vocab,
    model: RNNConfig,
    config: TrainConfig,
    rng: np.random.Generator,
    corpus: list[dict],
) -> tuple[Checkpoint, Checkpoint]:
    """(last, best): ``last`` holds everything `state_of` needs to continue exactly; ``best`` the best
    parameters with the training state they were used in (where generation starts).

    ``corpus`` is the run's per-source summary; each source's spec, kind, size and SHA-256 go in both.
    """
    sources = [{key: source[key] for key in ("spec", "kind", "characters", "sha256")} for source in corpus]
    best_loss = state.best_loss if math.isfinite(state.best_loss) else None
    best_h = state.best_h.reshape(1, -1)
    last = CheckpointMeta(
        update=state.update,
        best_loss=best_loss,
        best_by=state.best_by,
        next_id=state.next_id,
        train=config.to_json(),
        corpus=sources,
        smooth_loss=state.smooth_loss,
        best_update=state.best_update,
        best_next_id=state.best_next_id,
        sampled_at=state.sampled_at,
        optimizer_steps=state.optimizer_steps,
        rng=rng_state_to_json(rng),
    )
    best = CheckpointMeta(update=state.best_update, best_loss=best_loss, best_by=state.best_by,
                          next_id=state.best_next_id, train=config.to_json(), corpus=sources)
    return (
        Checkpoint(state.params, vocab, model, meta=last.to_json(), arrays={
            **state.optimizer_state,
            "h": state.h,
            "best_flat": state.best_params.flat,
            "best_h": best_h,
            START_ARRAY: state.h[:1],
        }),
        Checkpoint(state.best_params, vocab, model, meta=best.to_json(), arrays={START_ARRAY: best_h}),
    )


def state_of(last: Checkpoint) -> tuple[TrainState, TrainConfig, np.random.Generator]:
    """The state, training configuration and generator `checkpoints_of` stored in ``last`` (CheckpointError
    naming its file and the field that is wrong or missing)."""
    where, arrays = str(last.path or "checkpoint"), last.arrays
    meta = last.training
    if set(STATE_ARRAYS) - set(arrays) or meta.rng is None:
        raise CheckpointError(f"{where}: holds no training state to resume from")
    try:
        config = TrainConfig(**meta.train)
    except (TypeError, ConfigError) as error:
        raise CheckpointError(f"{where}: unreadable training configuration ({message_of(error)})") from None
    if meta.update is None:
        raise CheckpointError(f"{where}: its 'update' is missing or out of range (None)")
    missing = [name for name in array_names(config.optimizer) if name not in arrays]
    if missing:
        raise CheckpointError(f"{where}: holds no {config.optimizer} state ({', '.join(missing)}) to resume from")
    state = TrainState(
        params=last.params,
        optimizer_state={name: arrays[name].copy() for name in array_names(config.optimizer)},
        optimizer_steps=meta.optimizer_steps,
        h=arrays["h"].copy(),
        update=meta.update,
        smooth_loss=meta.smooth_loss,
        best_loss=math.inf if meta.best_loss is None else float(meta.best_loss),
        best_update=meta.best_update,
        best_params=Params(arrays["best_flat"].copy(), last.params.network),
        best_h=arrays["best_h"][0].copy(),
        best_next_id=meta.best_next_id,
        next_id=meta.next_id or 0,
        best_by=meta.best_by,
        sampled_at=meta.sampled_at,
    )
    if state.h.shape != (config.batch_size, last.params.network.state_size):
        raise CheckpointError(f"{where}: recurrent state shape {state.h.shape} does not fit "
                              f"{setting_name('batch_size')} "
                              f"{config.batch_size} and a state of {last.params.network.state_size} numbers "
                              f"({last.params.network.describe()})")
    return state, config, rng_from_json(meta.rng, where)


def stream_offsets(corpus_length: int, seq_length: int, batch_size: int) -> np.ndarray:
    """(n, B) index of character t of stream j's window at position 0; streams start evenly spaced."""
    starts = np.arange(batch_size) * ((corpus_length - 1) // batch_size)
    return np.arange(seq_length)[:, None] + starts[None, :]


def window_generator(rng: np.random.Generator) -> np.random.Generator:
    """A Generator in ``rng``'s state that draws what it would next, leaving ``rng`` as it is."""
    twin = np.random.Generator(type(rng.bit_generator)())
    twin.bit_generator.state = rng.bit_generator.state
    return twin


class RandomWindows:
    """How a network that carries no state (`Network.carries_state` False) reads the corpus ``ids``: at each
    update B windows of n characters (with the one after each, to predict) start at positions drawn from the
    run's generator ``rng``, which the checkpoint keeps, so a resumed run reads the same windows. An epoch is
    as many updates as read the corpus's length (`updates_per_epoch`)."""

    def __init__(self, ids: np.ndarray, seq_length: int, batch_size: int, rng: np.random.Generator):
        self.ids, self.seq_length, self.batch_size, self.rng = ids, seq_length, batch_size, rng
        self.per_epoch = updates_per_epoch(int(ids.shape[0]), seq_length, batch_size)
        self._span = np.arange(seq_length + 1)[:, None]  # (n + 1, 1)
        self._first = int(ids[0])

    def starts_epoch(self, update: int) -> bool:
        """False: there is no state to reset."""
        return False

    def chunk(self, update: int) -> np.ndarray:
        """(n + 1, B): the next B windows and the character after each, at positions drawn from ``rng``."""
        starts = self.rng.integers(0, self.ids.shape[0] - self.seq_length, size=self.batch_size)
        chunk = self.ids[starts[None, :] + self._span]
        self._first = int(chunk[0, 0])
        return chunk

    def first_id(self, update: int) -> int:
        """The character window 0 of the latest chunk read first (where a training-time sample starts)."""
        return self._first


def windows_of(network, ids: np.ndarray, seq_length: int, batch_size: int, rng: np.random.Generator):
    """How ``network`` reads ``ids``: `StreamWindows` if it carries its state, else `RandomWindows` from ``rng``."""
    if network.carries_state:
        return StreamWindows(ids, seq_length, batch_size)
    return RandomWindows(ids, seq_length, batch_size, rng)


class StreamWindows:
    """How training reads the corpus ``ids`` (1-D): B streams start evenly spaced, and at each update every
    stream reads its next window of n characters (with the one after it, to predict). An epoch is
    `updates_per_epoch` such windows; then every stream starts over, its state from zero. This is how a
    network that carries its state across windows is trained (`Network.carries_state`)."""

    def __init__(self, ids: np.ndarray, seq_length: int, batch_size: int):
        self.ids, self.seq_length = ids, seq_length
        self.per_epoch = updates_per_epoch(int(ids.shape[0]), seq_length, batch_size)
        self.offsets = stream_offsets(int(ids.shape[0]), seq_length + 1, batch_size)  # (n + 1, B)

    def starts_epoch(self, update: int) -> bool:
        """True if the window read at ``update`` is the first of an epoch (the streams' state starts from zero)."""
        return update % self.per_epoch == 0

    def chunk(self, update: int) -> np.ndarray:
        """(n + 1, B): each stream's window read at ``update``, and the character after it."""
        return self.ids[self.offsets + (update % self.per_epoch) * self.seq_length]

    def first_id(self, update: int) -> int:
        """The character stream 0 reads first at ``update``."""
        return int(self.ids[self.offsets[0, 0] + (update % self.per_epoch) * self.seq_length])


def check_corpus_length(corpus_length: int, config: TrainConfig, carries_state: bool = True,
                        level: str | None = None) -> None:
    """CorpusError unless every stream has at least one window of seq_length + 1 tokens (for a model that
    carries no state, whose windows are its context: unless an update's windows, side by side, fit in it, so
    that an epoch is at least one update). ``corpus_length`` counts tokens of ``level`` (by default the run's)."""
    needed = config.batch_size * config.seq_length + 1
    if corpus_length >= needed:
        return
    level = level or config.tokens
    tokens = "characters" if level == "char" else f"{level} tokens"
    window = setting_name("seq_length" if carries_state else "context")
    raise CorpusError(
        f"the corpus has {corpus_length:,} {tokens} to train on (after any held-out part), fewer than the {needed:,} "
        f"that one update's windows read ({window} × {setting_name('batch_size')} + 1); use a longer corpus, a "
        f"smaller {window} or {setting_name('batch_size')}, or {setting_name('val_fraction')} 0")


def check_finite(state: TrainState, kept: int | None = None) -> None:
    """TrainingError if a parameter is NaN or infinite, so such a state is never checkpointed (``kept``: the
    update of the last checkpoint, for the message)."""
    if not np.isfinite(state.params.flat).all():
        raise TrainingError(f"the parameters became non-finite by update {state.update}; {_kept(kept)}. "
                            f"Try a lower {setting_name('eta')} or a smaller {setting_name('clip')}")


def _kept(update: int | None) -> str:
    return "the last checkpoint is kept" if update is None else f"the last checkpoint (update {update:,}) is kept"


def diverged(what: str, value: float, update: int, kept: int | None, config: TrainConfig) -> TrainingError:
    """The error that stops training when ``what`` (a loss) became ``value`` (not finite) at ``update``."""
    return TrainingError(f"{what} became {value} at update {update}; {_kept(kept)}. Try a lower {setting_name('eta')} "
                         f"(now {config.eta}) or a smaller {setting_name('clip')} (now {config.clip})")


def first_loss(state: TrainState, ids: np.ndarray, config: TrainConfig, workspace=None,
               rng: np.random.Generator | None = None) -> float:
    """The loss the next update of `train` measures first: ``state``'s parameters on each stream's next window,
    from its recurrent state, without dropout and without drawing from any generator (in ``workspace``, or a
    new one). Not finite when the parameters overflow there (an absurd initial scale, a step far too large),
    which is then known before such a state is written: no rate could continue from it. For windows at random
    positions, the windows the run's generator ``rng`` draws next (read from a twin of it), or any if None."""
    network = state.params.network
    windows = windows_of(network, ids, config.seq_length, config.batch_size,
                         window_generator(rng if rng is not None else np.random.default_rng(0)))
    chunk = windows.chunk(state.update)  # (n + 1, B), as `train` reads it
    h = np.zeros_like(state.h) if windows.starts_epoch(state.update) else state.h.copy()  # as `train` starts it
    params = state.params
    work = workspace or params.network.workspace(config.seq_length, config.batch_size, params.flat.dtype, threads=1)
    with np.errstate(all="ignore"):
        work.forward(params, chunk[:-1], h)
        return float(work.loss(chunk[1:]))


@dataclass(frozen=True)
class Cadence:
    """When training samples, evaluates, logs and checkpoints: at multiples of the update count only, so that a
    run stopped and resumed does each at exactly the updates where one that was not does."""

    sample_every: int
    log_every: int
    checkpoint_every: int
    eval_every: int | None  # None without held-out text

    @classmethod
    def of(cls, config: TrainConfig, total: int, validating: bool) -> Cadence:
        """The cadence ``config`` asks for in a run of ``total`` updates, with held-out text or not."""
        return cls(config.sample_every, config.log_every, config.checkpoint_every,
                   config.resolved_eval_every(total) if validating else None)

    def samples(self, state: TrainState) -> bool:
        """True if a sample is due before the next update (unless drawn there already, before a resume)."""
        return state.update % self.sample_every == 0 and state.sampled_at != state.update

    def evaluates(self, update: int) -> bool:
        """True if the held-out text is scored once ``update`` updates are made."""
        return self.eval_every is not None and update % self.eval_every == 0

    def logs(self, update: int, evaluated: bool) -> bool:
        """True if a row of metrics is logged once ``update`` updates are made (always with an evaluation)."""
        return update % self.log_every == 0 or evaluated

    def checkpoints(self, update: int) -> bool:
        """True if a checkpoint is taken once ``update`` updates are made (besides those the caller asks for)."""
        return update % self.checkpoint_every == 0


STATUS_SECONDS = 1.0  # the trainer reports its status (TrainCallbacks.on_status) this often, and at each log row
PROGRESS_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {remaining}"  # the fields first; 80 columns


class BarStream:
    """Where the progress bar is drawn: standard error as it is when training starts. A write or question it
    refuses (closed, a full device) is dropped: a bar that cannot be shown never stops a run."""

    def __init__(self, stream):
        self.stream = stream

    @property
    def encoding(self) -> str | None:
        return getattr(self.stream, "encoding", None)

    def write(self, text: str) -> None:
        with suppress(OSError, ValueError):
            self.stream.write(text)

    def flush(self) -> None:
        with suppress(OSError, ValueError):
            self.stream.flush()

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (OSError, ValueError, AttributeError):
            return False

    def fileno(self) -> int:
        return self.stream.fileno()  # (for the terminal's width; tqdm copes when there is none)


def progress_fields(smooth_loss: float | None, val_bpc: float | None, epoch: float, chars_per_sec: float) -> str:
    """The progress bar's fields, always in this order: smooth loss (nats per window), the latest validation
    bits per character, epoch, thousands of characters per second."""
    loss = "-" if smooth_loss is None else f"{smooth_loss:.2f}"
    val = "-" if val_bpc is None else f"{val_bpc:.2f}"
    return f"loss {loss} val {val} bpc ep {epoch:.2f} {chars_per_sec / 1000:.1f}k ch/s"


class Progress:
    """What training shows of itself as it goes: the progress bar, each log row (with the characters per second
    since the previous one), and the status (`TrainCallbacks.on_status`) at each log_every update and at least
    every STATUS_SECONDS. Speeds count training time only: the time evaluations take is left out."""

    def __init__(self, callbacks: TrainCallbacks, state: TrainState, total: int, per_epoch: int,
                 chars_per_update: float, log_every: int, show: bool | None):
        from tqdm.auto import tqdm

        self.callbacks, self.total, self.per_epoch = callbacks, total, per_epoch
        self.chars_per_update, self.log_every = chars_per_update, log_every
        self.val_loss = None  # the latest evaluation's
        self.bar = tqdm(
            file=BarStream(sys.stderr),
            total=total,
            initial=state.update,
            unit="upd",
            disable=None if show is None else not show,  # None: only on a terminal
            dynamic_ncols=True,
            mininterval=0.5,
            bar_format=PROGRESS_FORMAT,
            desc=progress_fields(state.smooth_loss, None, state.update / per_epoch, 0.0),
        )
        now = time.perf_counter()
        self.session_start, self.session_first = now, state.update  # where this call of `train` began
        self.row_time, self.row_update = now, state.update  # the previous log row's (or the start)
        self.status_time, self.status_update = now, state.update  # the previous status's (or the start)

    def val_bpc(self) -> float | None:
        """The latest evaluation's bits per character (None before any)."""
        return None if self.val_loss is None else bits_per_char(self.val_loss)

    def evaluated(self, val_loss: float, seconds: float) -> None:
        """An evaluation gave ``val_loss`` and took ``seconds``, which no speed counts."""
        self.val_loss = val_loss
        self.row_time += seconds
        self.status_time += seconds

    def log_row(self, state: TrainState, loss: float, evaluated: bool, rate: float) -> dict:
        """The row of metrics after ``state.update`` updates, the last window's ``loss``, the learning ``rate``
        of the last step (and the evaluation just made, if ``evaluated``); the bar shows it."""
        now = time.perf_counter()
        chars_per_sec = (state.update - self.row_update) * self.chars_per_update / max(now - self.row_time, 1e-9)
        self.row_time, self.row_update = now, state.update
        record = {
            "update": state.update,
            "epoch": state.update / self.per_epoch,
            "loss": loss,
            "smooth_loss": state.smooth_loss,
            "chars_per_sec": round(chars_per_sec, 1),
            "eta": rate,
        }
        if evaluated:
            record.update(val_loss=self.val_loss, val_bpc=self.val_bpc())
        self.bar.set_description_str(progress_fields(state.smooth_loss, self.val_bpc(), state.update / self.per_epoch,
                                                     chars_per_sec), refresh=False)
        return record

    def advance(self, state: TrainState) -> None:
        """After each update: the bar moves on, and the status is reported when it is due."""
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.status_time >= STATUS_SECONDS or state.update % self.log_every == 0:
            done = state.update - self.session_first
            rate = done / (now - self.session_start) if done else None  # updates a second, evaluations too
            self.callbacks.on_status({
                "update": state.update,
                "total_updates": self.total,
                "epoch": state.update / self.per_epoch,
                "smooth_loss": state.smooth_loss,
                "val_bpc": self.val_bpc(),
                "chars_per_sec": ((state.update - self.status_update) * self.chars_per_update
                                  / max(now - self.status_time, 1e-9)),
                "elapsed_seconds": now - self.session_start,
                "eta_seconds": None if rate is None else (self.total - state.update) / rate,
            })
            self.status_time, self.status_update = now, state.update

    def close(self) -> None:
        self.bar.close()


def live_optimizer(state: TrainState, config: TrainConfig):
    """``config``'s optimizer, continuing from ``state``'s arrays and step count; the state then holds the
    optimizer's live arrays, so that every checkpoint stores the current ones."""
    params = state.params
    decayed = params.network.zeros(params.flat.dtype)  # 1 where AdamW's weight decay applies
    for name in params.network.decayed:
        decayed[name][...] = 1.0
    optimizer = make_optimizer(config, params.flat.size, params.flat.dtype, decayed.flat)
    assert set(state.optimizer_state) == set(optimizer.arrays), "the state holds another optimizer's arrays"
    optimizer.load(state.optimizer_state, state.optimizer_steps)
    state.optimizer_state = optimizer.arrays
    return optimizer


def train(
    ids: np.ndarray,
    vocab: Vocab,
    config: TrainConfig,
    rng: np.random.Generator,
    model_config: RNNConfig | None = None,
    state: TrainState | None = None,
    callbacks: TrainCallbacks | None = None,
    progress: bool | None = None,
    val_ids: np.ndarray | None = None,
    stop: StopRequest | None = None,
    characters_per_token: float = 1.0,
) -> TrainState:
    """Train on the encoded corpus ``ids`` (1-D) and return the final state.

    ``state`` continues an earlier run exactly (with ``rng`` restored to its state); otherwise
    parameters are drawn from ``rng``. ``val_ids`` is held-out text: its loss per character (read
    from stream 0's hidden state at that moment) is logged every ``eval_every`` updates and chooses
    the best parameters. When ``stop`` is set, training checkpoints and raises TrainingInterrupted
    at the next window boundary (see `StopRequest`). ``progress``: True shows a tqdm bar, False hides it, None shows it
    only on a terminal.
    """
    callbacks = callbacks or TrainCallbacks()
    n, B = config.seq_length, config.batch_size
    target = total_updates(config, int(ids.shape[0]))
    validating = val_ids is not None and val_ids.size >= 2
    # the held-out loss is per character of text at every token level (None: one id a character)
    val_characters = vocab.characters(val_ids[1:]) if validating and vocab.level != "char" else None
    kept = None if state is None else state.update  # the newest checkpoint's (the caller keeps the one given)
    if state is None:
        state = TrainState.fresh(model_config or RNNConfig(), vocab.size, B, rng, int(ids[0]),
                                 "val_loss" if validating else "smooth_loss", config.optimizer)
    params, h, network = state.params, state.h, state.params.network
    assert params.vocab_size == vocab.size and h.shape == (B, network.state_size), "state does not fit"
    check_corpus_length(int(ids.shape[0]), config, network.carries_state)
    windows = windows_of(network, ids, n, B, rng)  # a stateless model's windows are drawn from the run's generator
    workspace = network.workspace(n, B, params.flat.dtype, threads=config.threads, dropout=config.dropout)
    optimizer = live_optimizer(state, config)
    if state.best_params is None:
        state.best_params = params.copy()
        state.best_h = np.zeros(network.state_size, dtype=params.flat.dtype)
        state.best_next_id = int(ids[0])
    cadence = Cadence.of(config, target, validating)
    # characters a second, whatever a token is: its windows' tokens times the characters a token covers on average
    shown = Progress(callbacks, state, target, windows.per_epoch, n * B * characters_per_token, config.log_every,
                     progress)

    def sample_now() -> None:
        # As in the assignment: from stream 0's hidden state, reading the next window's first character.
        sample = sample_ids(params, h[0].copy(), windows.first_id(state.update), config.sample_length, rng)
        state.sampled_at = state.update
        callbacks.on_sample({"update": state.update, "epoch": state.update / windows.per_epoch,
                             "smooth_loss": state.smooth_loss, "text": vocab.decode(sample)[: config.sample_length]})

    def evaluate() -> None:
        # From stream 0's current state: the regime the model works in while it trains (see evaluate.py).
        start = time.perf_counter()
        val_loss = mean_loss_per_char(params, val_ids, h0=h[0], characters=val_characters)
        if not math.isfinite(val_loss):  # a held-out character the model finds impossible (p = 0)
            raise diverged("the validation loss", val_loss, state.update, kept, config)
        shown.evaluated(val_loss, time.perf_counter() - start)
        state.keep_if_best(val_loss, state.next_id)

    def checkpoint() -> None:
        # Only a state training can go on from: finite, and finite on the next window too. A checkpoint whose
        # very next loss overflows could never be continued, whatever --eta a resume gave it.
        nonlocal kept
        check_finite(state, kept)
        loss = first_loss(state, ids, config, workspace, rng)
        if not math.isfinite(loss):
            raise diverged("the loss", loss, state.update + 1, kept, config)
        callbacks.on_checkpoint(state, final=False)
        kept = state.update

    # A loss or parameter that overflows is caught below and named (TrainingError); NumPy's own warnings
    # about it would only clutter the one line that says so.
    with stop.polled() if stop is not None else nullcontext(), np.errstate(all="ignore"):
        try:
            while state.update < target:
                if stop is not None and stop.is_set():
                    checkpoint()
                    raise TrainingInterrupted(state, stop.signum)
                if windows.starts_epoch(state.update):
                    h.fill(0.0)  # the state starts from zero at the beginning of every epoch
                chunk = windows.chunk(state.update)
                inputs, targets = chunk[:-1], chunk[1:]
                if cadence.samples(state):
                    sample_now()
                masks = workspace.draw_masks(rng)  # dropout's, from the run's generator (None without dropout)
                loss = workspace.loss_and_grads(params, inputs, targets, h, masks)
                if not math.isfinite(loss):
                    raise diverged("the loss", loss, state.update + 1, kept, config)
                state.smooth_loss = loss if state.smooth_loss is None else 0.999 * state.smooth_loss + 0.001 * loss
                if not validating:  # these parameters measured it, so they are kept (if best) before the step
                    state.keep_if_best(state.smooth_loss, inputs[0, 0])
                optimizer.eta = learning_rate(config, state.update, target, windows.per_epoch)
                optimizer.step(params.flat, workspace.grads.flat, config.clip)  # clipped to ±clip first
                state.optimizer_steps = optimizer.steps
                np.copyto(h, workspace.last_state)
                state.next_id = int(targets[-1, 0])
                state.update += 1
                evaluated = cadence.evaluates(state.update)
                if evaluated:
                    evaluate()
                if cadence.logs(state.update, evaluated):
                    callbacks.on_log(shown.log_row(state, loss, evaluated, optimizer.eta))
                shown.advance(state)
                if (cadence.checkpoints(state.update) or callbacks.wants_checkpoint()) and state.update < target:
                    checkpoint()
            if cadence.samples(state) and state.update > 0:
                sample_now()  # the loop stopped just before this sampling point
            check_finite(state, kept)
            callbacks.on_checkpoint(state, final=True)
        finally:
            shown.close()
    return state
