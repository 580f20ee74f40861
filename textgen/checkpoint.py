"""Checkpoints: parameters (and the training state) in one `.npz`, with its JSON metadata stored inside it.

The metadata (format version, vocabulary, configs, counters) travels in the same file as a
UTF-8 JSON byte array, so one atomic rename replaces both and they can never disagree.
Loading never unpickles and checks every name, shape and dtype against the metadata.
What the metadata says of the training is one typed record, `CheckpointMeta`: written by its
`to_json` and read by its `from_json`, each in one place, and nowhere else.
"""

from __future__ import annotations

import io
import lzma
import math
import tokenize
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from textgen.config import MAX_COUNT, RNNConfig
from textgen.errors import CheckpointError, ConfigError, message_of
from textgen.fs import atomic_write, non_finite_place, read_bytes
from textgen.models import Params, network_of
from textgen.optim import OPTIMIZER_ARRAYS
from textgen.vocab import Vocab, vocab_from_json

FORMAT_VERSION = 1
META_KEY = "meta_json"
STATE_ARRAYS = ("h", "best_flat", "best_h")  # present (with the optimizer's arrays) in checkpoints that can resume
START_ARRAY = "start_h"  # (1, S): the recurrent state generation starts from (every checkpoint written since 0.1)


BEST_BY = ("smooth_loss", "val_loss")  # what chooses the best parameters: see CheckpointMeta.best_loss


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint records of the training its parameters come from (its metadata, beside the model and
    the vocabulary). last.npz holds every field; best.npz, which cannot be resumed, only those up to ``corpus``.

    Written once (`to_json`) and read once (`from_json`), each field checked, with the defaults an older
    textgen's checkpoint is read with.
    """

    update: int | None = None  # the update these parameters come from (None: not recorded)
    best_loss: float | None = None  # the loss that chose the best parameters: a smooth loss per window, or a
    #                                 validation loss in nats per character (see best_by); None before any
    best_by: str = "smooth_loss"  # "smooth_loss", or "val_loss" when the run holds text out
    next_id: int | None = None  # the character stream 0 reads next: with START_ARRAY, where sampling starts
    train: dict | None = None  # the TrainConfig's JSON, as it was saved (`textgen.trainer.state_of` reads it)
    corpus: list | None = None  # per source: spec, kind, characters, sha256
    # last.npz only: the rest of the training state (see `textgen.trainer.state_of`)
    smooth_loss: float | None = None  # the smooth loss per window (None before the first update)
    best_update: int = 0  # the update at which the best parameters were in use
    best_next_id: int = 0  # next_id then
    sampled_at: int = -1  # the update of the latest training-time sample
    optimizer_steps: int = 0  # updates the optimizer has made (Adam's bias correction counts them)
    rng: dict | None = None  # the generator's state (`rng_state_to_json`); None in a checkpoint that cannot resume

    def to_json(self) -> dict:
        """The metadata as stored."""
        data = {
            "train": self.train,
            "update": self.update,
            "best_loss": self.best_loss,
            "corpus": self.corpus,
            "best_by": self.best_by,
            "next_id": self.next_id,
        }
        if self.rng is None:  # best.npz, which kept best_loss as "smooth_loss" up to 0.1.0: kept for it to read
            data["smooth_loss"] = self.best_loss
        else:
            data.update(smooth_loss=self.smooth_loss, best_update=self.best_update, best_next_id=self.best_next_id,
                        sampled_at=self.sampled_at, optimizer_steps=self.optimizer_steps, rng=self.rng)
        return data

    @classmethod
    def from_json(cls, meta: dict, where: str, vocab_size: int) -> CheckpointMeta:
        """The record ``meta`` holds, every field it has checked (CheckpointError naming ``where`` and the field),
        and those it lacks at their defaults: an older textgen recorded fewer."""

        def field_of(name, valid, default=None):
            value = meta.get(name)
            if value is None:
                return default
            if not valid(value):
                raise CheckpointError(f"{where}: its {name!r} is missing or out of range ({str(value)[:60]!r})")
            return value

        def count(low, high=MAX_COUNT):
            return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high

        def loss(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        update = field_of("update", count(0))
        upto = MAX_COUNT if update is None else update
        smooth_loss = field_of("smooth_loss", loss)
        best_loss = field_of("best_loss", loss)
        if "best_loss" not in meta and "rng" not in meta:
            best_loss = smooth_loss  # a best.npz of textgen 0.1.0 or before: the loss that chose it
        return cls(
            update=update,
            best_loss=best_loss,
            best_by=field_of("best_by", lambda v: v in BEST_BY, "smooth_loss"),
            next_id=field_of("next_id", count(0, vocab_size - 1)),
            train=field_of("train", lambda v: isinstance(v, dict)),
            corpus=field_of("corpus", lambda v: isinstance(v, list)),
            smooth_loss=smooth_loss,
            best_update=field_of("best_update", count(0, upto), 0),
            best_next_id=field_of("best_next_id", count(0, vocab_size - 1), 0),
            sampled_at=field_of("sampled_at", count(-1, upto), -1),
            optimizer_steps=field_of("optimizer_steps", count(0), update or 0),  # before it was recorded: one a step
            rng=field_of("rng", lambda v: isinstance(v, dict)),
        )


@dataclass
class Checkpoint:
    """A model (and, for `last.npz`, what resuming needs)."""

    params: Params  # θ
    vocab: Vocab  # the characters the ids refer to
    model: RNNConfig  # cell, layers, hidden size, sigma, dtype
    meta: dict = field(default_factory=dict)  # the stored metadata: `CheckpointMeta.to_json`, as `training` reads it
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # extra state arrays by name
    path: Path | None = None  # the file it was read from (None for one made in memory)

    @property
    def training(self) -> CheckpointMeta:
        """The metadata as a checked record (CheckpointError naming the file and the field that is wrong)."""
        return CheckpointMeta.from_json(self.meta, str(self.path or "checkpoint"), self.vocab.size)

    def start_state(self) -> tuple[np.ndarray, int] | None:
        """(state (S,), next id): the training state these parameters were used in, where sampling starts."""
        start = self.arrays.get(START_ARRAY)
        next_id = self.training.next_id
        if start is None or next_id is None:
            return None
        return start[0], next_id


def save_checkpoint(path: Path, checkpoint: Checkpoint, at: int | None = None) -> None:
    """Write ``checkpoint`` to ``path`` atomically (CheckpointError if the folder is not writable); ``at``:
    see `textgen.fs`."""
    meta = dict(checkpoint.meta)
    meta.update(
        format_version=FORMAT_VERSION,
        vocab=checkpoint.vocab.to_json(),
        model=checkpoint.model.to_json(),
        arrays=sorted(checkpoint.arrays),
    )
    arrays = dict(checkpoint.params.arrays)
    arrays.update(checkpoint.arrays)
    # load_checkpoint refuses NaN and infinity, so such a file would only replace a good one with an unreadable one
    spoilt = [name for name, array in arrays.items() if not np.isfinite(array).all()]
    place = non_finite_place(meta)
    if spoilt or place is not None:
        what = f"array {spoilt[0]!r} holds values that are" if spoilt else f"its metadata's {place} is"
        raise CheckpointError(f"{path}: {what} not finite; the checkpoint was not written")
    arrays[META_KEY] = np.frombuffer(orjson.dumps(meta, option=orjson.OPT_SERIALIZE_NUMPY), dtype=np.uint8)
    try:
        atomic_write(Path(path), lambda stream: np.savez(stream, **arrays), at)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot write checkpoint ({error.strerror})") from None


def _read_npz(path: Path, at: int | None) -> dict[str, np.ndarray]:
    try:
        data = read_bytes(path, at)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read checkpoint ({error.strerror})") from None
    if not data.startswith(_ZIP_MAGIC):  # np.load would read a lone .npy array, or try to unpickle
        raise CheckpointError(f"{path}: not a textgen checkpoint (not an .npz archive)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except _ARCHIVE_ERRORS as error:
        raise CheckpointError(f"{path}: not a readable textgen checkpoint ({type(error).__name__}: {error})") from None


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first member, or the end record of an empty zip
# What zipfile, its decompressors and numpy's .npy header parser raise for a damaged archive;
# MemoryError for an array header that declares an absurd shape.
_ARCHIVE_ERRORS = (
    ValueError, OSError, EOFError, KeyError, RuntimeError, OverflowError, MemoryError, NotImplementedError,
    SyntaxError, tokenize.TokenError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError,
)


def _check_array(path: Path, arrays: dict, name: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    if name not in arrays:
        raise CheckpointError(f"{path}: array {name!r} is missing")
    array = arrays[name]
    if not isinstance(array, np.ndarray):  # a zip member that is not a .npy file comes back as bytes
        raise CheckpointError(f"{path}: {name!r} is not a .npy array")
    if array.shape != tuple(shape) or array.dtype != dtype:
        raise CheckpointError(
            f"{path}: array {name!r} is {array.dtype}{list(array.shape)}, expected {dtype}{list(shape)} "
            "from the stored configuration"
        )
    if not np.all(np.isfinite(array)):
        raise CheckpointError(f"{path}: array {name!r} holds non-finite values")
    return array


def load_checkpoint(path: str | Path, at: int | None = None) -> Checkpoint:
    """Read and validate a checkpoint; any corruption or mismatch raises CheckpointError naming it.
    ``at``: see `textgen.fs`."""
    path = Path(path)
    arrays = _read_npz(path, at)
    meta_array = arrays.get(META_KEY)
    if not isinstance(meta_array, np.ndarray) or meta_array.dtype != np.uint8 or meta_array.ndim != 1:
        raise CheckpointError(f"{path}: no textgen metadata inside; is this a textgen checkpoint?")
    try:
        meta = orjson.loads(arrays.pop(META_KEY).tobytes())
    except orjson.JSONDecodeError:
        raise CheckpointError(f"{path}: its metadata is not valid JSON (the file is corrupt)") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its metadata is not a JSON object (the file is corrupt)")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format_version {version!r}, this textgen reads {FORMAT_VERSION}")
    vocab = vocab_from_json(meta.get("vocab"), where=f"{path}: vocabulary")
    model_meta = meta.get("model")
    try:
        model = RNNConfig(**model_meta)
    except (TypeError, ConfigError) as error:
        raise CheckpointError(f"{path}: bad model configuration {model_meta!r} ({message_of(error)})") from None
    dtype = np.dtype(model.dtype)
    network = network_of(model, vocab.size)
    # checked before allocating, so a corrupt hidden size cannot ask for more memory than the file holds
    checked = {name: _check_array(path, arrays, name, shape, dtype) for name, shape in network.shapes.items()}
    params = network.zeros()
    for name, array in checked.items():
        params[name][...] = array
    extra_names = meta.get("arrays", [])
    if (
        not isinstance(extra_names, list)
        or not all(isinstance(name, str) for name in extra_names)
        or set(extra_names) - set(STATE_ARRAYS) - set(OPTIMIZER_ARRAYS) - {START_ARRAY}
    ):
        raise CheckpointError(f"{path}: unexpected state arrays {extra_names!r}")
    extra = {}
    for name in extra_names:
        if name not in arrays:
            raise CheckpointError(f"{path}: array {name!r} is missing")
        shape = getattr(arrays[name], "shape", ())  # _check_array refuses what is not an array
        if name == "h":
            expected = (shape[0] if len(shape) == 2 else -1, network.state_size)
        elif name in ("best_h", START_ARRAY):
            expected = (1, network.state_size)
        else:
            expected = (params.flat.size,)
        extra[name] = _check_array(path, arrays, name, expected, dtype)
    return Checkpoint(params, vocab, model, meta, extra, path)


BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")  # numpy's; a checkpoint names one


def rng_state_to_json(rng) -> dict:
    """The Generator's bit-generator state, with its 128-bit integers written as strings for JSON."""
    state = rng.bit_generator.state

    def encode(value):
        if isinstance(value, dict):
            return {key: encode(item) for key, item in value.items()}
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            return {"big_int": str(value)}
        return value

    return encode(state)


def rng_from_json(data: dict, where: str):
    """A numpy Generator restored from ``rng_state_to_json``'s output."""

    def decode(value):
        if isinstance(value, dict):
            if set(value) == {"big_int"}:
                return int(value["big_int"])
            return {key: decode(item) for key, item in value.items()}
        return value

    try:
        state = decode(data)
        name = state["bit_generator"]
        if name not in BIT_GENERATORS:
            raise ValueError(f"unknown bit generator {str(name)[:40]!r}")
        bit_generator = getattr(np.random, name)()
        bit_generator.state = state
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
        raise CheckpointError(f"{where}: the random generator state is unreadable ({error})") from None
    return np.random.Generator(bit_generator)
