"""`TrainConfig` and `train()`: the DD2424 training loop, its windowing, smooth loss, best model and progress bar.

The trainer never opens files: it reports logs, samples and checkpoints to a `TrainCallbacks`
object, and the caller (the run folder, a test) decides what to keep.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from textgen.config import DEFAULT_EPOCHS, TrainConfig
from textgen.errors import CorpusError, TrainingError
from textgen.evaluate import bits_per_char, mean_loss_per_char
from textgen.optim import AdaGrad
from textgen.rnn import Params, RNNConfig, init_params, make_workspace
from textgen.sample import sample_ids
from textgen.vocab import CharVocab


def updates_per_epoch(corpus_length: int, seq_length: int, batch_size: int = 1) -> int:
    """Windows per pass: each of ``batch_size`` streams walks (N - 1) // B characters in steps of seq_length.

    For one stream this is the assignment's count: positions e = 0, n, 2n, ... with e + n + 1 <= N.
    """
    return ((corpus_length - 1) // batch_size) // seq_length


def total_updates(config: TrainConfig, corpus_length: int) -> int:
    """The number of updates a run makes in all."""
    if config.updates is not None:
        return config.updates
    return (config.epochs or DEFAULT_EPOCHS) * updates_per_epoch(corpus_length, config.seq_length, config.batch_size)


@dataclass
class TrainState:
    """Everything that determines how training continues from here (what `last.npz` stores)."""

    params: Params  # current θ
    adagrad_memory: np.ndarray  # (n_params,) AdaGrad's running sum of squared gradients
    h: np.ndarray  # (B, m) hidden state of each stream, carried across windows
    update: int = 0  # updates made so far
    smooth_loss: float | None = None  # None before the first update
    best_loss: float = math.inf  # what chose the best parameters: lowest smooth loss, or validation loss
    best_update: int = 0  # update at which the best parameters were in use
    best_params: Params | None = None  # θ that gave best_loss
    best_h: np.ndarray | None = None  # (m,) stream 0's hidden state when best_params were in use
    best_next_id: int = 0  # the character stream 0 was about to read then; with best_h, where sampling starts
    best_by: str = "smooth_loss"  # "smooth_loss", or "val_loss" when there is held-out text
    sampled_at: int = -1  # update of the latest training-time sample (so a resumed run does not repeat it)
    next_id: int = 0  # the character stream 0 reads next
    history: list = field(default_factory=list)  # (update, smooth_loss) pairs every log_every updates

    @classmethod
    def fresh(cls, model: RNNConfig, vocab_size: int, batch_size: int, rng: np.random.Generator) -> TrainState:
        """Initial parameters drawn from ``rng``, zero AdaGrad memory and zero hidden state."""
        params = init_params(model, vocab_size, rng)
        return cls(
            params=params,
            adagrad_memory=np.zeros_like(params.flat),
            h=np.zeros((batch_size, model.hidden), dtype=params.flat.dtype),
        )


class TrainCallbacks:
    """Receives what the trainer produces; every method is optional and does nothing here."""

    def on_log(self, record: dict) -> None:
        """A row of metrics: update, epoch (fractional), loss, smooth_loss, chars_per_sec (+ val_loss, val_bpc)."""

    def on_sample(self, record: dict) -> None:
        """A training-time sample: update, epoch (fractional), smooth_loss (None before any update), text."""

    def on_checkpoint(self, state: TrainState, final: bool) -> None:
        """The state after ``state.update`` updates; ``final`` at the end of training."""


class TrainingInterrupted(Exception):
    """Raised by `train` when ``stop`` was set (the user asked it to stop; not an error).

    A checkpoint of the state it stopped at was taken just before.
    """

    def __init__(self, state: TrainState):
        super().__init__(f"training stopped at update {state.update}")
        self.state = state


def stream_offsets(corpus_length: int, seq_length: int, batch_size: int) -> np.ndarray:
    """(n, B) index of character t of stream j's window at position 0; streams start evenly spaced."""
    starts = np.arange(batch_size) * ((corpus_length - 1) // batch_size)
    return np.arange(seq_length)[:, None] + starts[None, :]


def check_corpus_length(corpus_length: int, config: TrainConfig) -> None:
    """CorpusError unless every stream has at least one window of seq_length + 1 characters."""
    needed = config.batch_size * config.seq_length + 1
    if corpus_length < needed:
        raise CorpusError(
            f"the corpus has {corpus_length} characters, fewer than the {needed} needed for one window "
            f"(seq_length + 1 per stream); use a longer corpus or a smaller --seq-length/--batch-size"
        )


def check_finite(state: TrainState) -> None:
    """TrainingError if a parameter is NaN or infinite, so such a state is never checkpointed."""
    if not np.isfinite(state.params.flat).all():
        raise TrainingError(
            f"the parameters became non-finite by update {state.update}; the last checkpoint is kept. "
            "Try a lower --eta or a smaller --clip"
        )


def train(
    ids: np.ndarray,
    vocab: CharVocab,
    config: TrainConfig,
    rng: np.random.Generator,
    model: RNNConfig | None = None,
    state: TrainState | None = None,
    callbacks: TrainCallbacks | None = None,
    progress: bool | None = None,
    val_ids: np.ndarray | None = None,
    stop: threading.Event | None = None,
) -> TrainState:
    """Train on the encoded corpus ``ids`` (1-D) and return the final state.

    ``state`` continues an earlier run exactly (with ``rng`` restored to its state); otherwise
    parameters are drawn from ``rng``. ``val_ids`` is held-out text: its loss per character (read
    from stream 0's hidden state at that moment) is logged every ``eval_every`` updates and chooses
    the best parameters. When ``stop`` is set, training checkpoints and raises TrainingInterrupted
    at the next window boundary. ``progress``: True shows a tqdm bar, False hides it, None shows it
    only on a terminal.
    """
    from tqdm.auto import tqdm

    callbacks = callbacks or TrainCallbacks()
    model = model or RNNConfig()
    n, B = config.seq_length, config.batch_size
    N = int(ids.shape[0])
    check_corpus_length(N, config)
    per_epoch = updates_per_epoch(N, n, B)
    target = total_updates(config, N)
    eval_every = config.resolved_eval_every(target)
    validating = val_ids is not None and val_ids.size >= 2
    if state is None:
        state = TrainState.fresh(model, vocab.size, B, rng)
        state.best_by = "val_loss" if validating else "smooth_loss"
    params = state.params
    assert params.vocab_size == vocab.size and state.h.shape == (B, params.hidden), "state does not fit"
    workspace = make_workspace(params.hidden, vocab.size, n, B, params.flat.dtype, threads=config.threads)
    optimizer = AdaGrad(params.flat.size, config.eta, config.eps, params.flat.dtype)
    optimizer.memory = state.adagrad_memory
    if state.best_params is None:
        state.best_params = params.copy()
        state.best_h = np.zeros(params.hidden, dtype=params.flat.dtype)
        state.best_next_id = int(ids[0])
    offsets = stream_offsets(N, n + 1, B)
    h = state.h
    chars_per_update = n * B
    bar = tqdm(
        total=target,
        initial=state.update,
        unit="upd",
        disable=None if progress is None else not progress,  # None: only on a terminal
        dynamic_ncols=True,
        mininterval=0.5,
    )
    window_start = time.perf_counter()
    window_updates = 0
    val_loss = None

    def sample_now() -> None:
        # As in the assignment: from stream 0's hidden state, reading the next window's first character.
        x0 = int(ids[offsets[0, 0] + (state.update % per_epoch) * n])  # stream 0's next window starts here
        sample = sample_ids(params, h[0].copy(), x0, config.sample_length, rng)
        state.sampled_at = state.update
        callbacks.on_sample(
            {
                "update": state.update,
                "epoch": state.update / per_epoch,
                "smooth_loss": state.smooth_loss,
                "text": vocab.decode(sample),
            }
        )

    try:
        while state.update < target:
            if stop is not None and stop.is_set():
                callbacks.on_checkpoint(state, final=False)
                raise TrainingInterrupted(state)
            window = state.update % per_epoch
            if window == 0:
                h.fill(0.0)  # the hidden state starts from zero at the beginning of every epoch
            chunk = ids[offsets + window * n]  # (n + 1, B): each stream's window and the character after it
            inputs, targets = chunk[:-1], chunk[1:]
            if state.update % config.sample_every == 0 and state.sampled_at != state.update:
                sample_now()
            loss = workspace.loss_and_grads(params, inputs, targets, h)
            if not math.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss} at update {state.update + 1}; the last checkpoint is kept. "
                    f"Try a lower --eta (now {config.eta}) or a smaller --clip (now {config.clip})"
                )
            if state.smooth_loss is None:
                state.smooth_loss = loss
            else:
                state.smooth_loss = 0.999 * state.smooth_loss + 0.001 * loss
            if not validating and state.smooth_loss < state.best_loss:
                # these parameters produced the loss just measured, so keep them before the update
                state.best_loss = state.smooth_loss
                state.best_update = state.update
                np.copyto(state.best_params.flat, params.flat)
                state.best_h, state.best_next_id = h[0].copy(), int(inputs[0, 0])
            grads = workspace.grads.flat
            np.clip(grads, -config.clip, config.clip, out=grads)
            optimizer.step(params.flat, grads)
            np.copyto(h, workspace.h_last)
            state.next_id = int(targets[-1, 0])
            state.update += 1
            window_updates += 1
            # Only at fixed multiples, so a run stopped and resumed logs and chooses exactly like one that was not.
            evaluate_now = validating and state.update % eval_every == 0
            if evaluate_now:
                evaluation_start = time.perf_counter()
                # From stream 0's current state: the regime the model works in while it trains (see evaluate.py).
                val_loss = mean_loss_per_char(params, val_ids, h0=h[0])
                window_start += time.perf_counter() - evaluation_start  # chars/s counts training time only
                if val_loss < state.best_loss:
                    state.best_loss, state.best_update = val_loss, state.update
                    np.copyto(state.best_params.flat, params.flat)
                    state.best_h, state.best_next_id = h[0].copy(), int(targets[-1, 0])
            if state.update % config.log_every == 0 or evaluate_now:
                now = time.perf_counter()
                chars_per_sec = window_updates * chars_per_update / max(now - window_start, 1e-9)
                window_start, window_updates = now, 0
                state.history.append((state.update, state.smooth_loss))
                record = {
                    "update": state.update,
                    "epoch": state.update / per_epoch,
                    "loss": loss,
                    "smooth_loss": state.smooth_loss,
                    "chars_per_sec": round(chars_per_sec, 1),
                }
                if evaluate_now:
                    record.update(val_loss=val_loss, val_bpc=bits_per_char(val_loss))
                callbacks.on_log(record)
                bar.set_postfix(
                    epoch=f"{state.update / per_epoch:.2f}",
                    smooth_loss=f"{state.smooth_loss:.3f}",
                    **({"val_bpc": f"{bits_per_char(val_loss):.3f}"} if val_loss is not None else {}),
                    chars_s=f"{chars_per_sec:,.0f}",
                    refresh=False,
                )
            bar.update(1)
            if state.update % config.checkpoint_every == 0 and state.update < target:
                check_finite(state)
                callbacks.on_checkpoint(state, final=False)
        if state.update % config.sample_every == 0 and state.update > 0 and state.sampled_at != state.update:
            sample_now()  # the loop stopped just before this sampling point
        check_finite(state)
        callbacks.on_checkpoint(state, final=True)
    finally:
        bar.close()
    return state
