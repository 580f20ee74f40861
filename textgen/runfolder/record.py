"""`RunRecord`: a run folder's config.json as one typed record, every field checked once when it is read (as the
flags are checked), and checked against the checkpoint it describes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import datetime

from textgen._version import __version__
from textgen.checkpoint import Checkpoint
from textgen.config import RESUMABLE_FIELDS, RNNConfig, TrainConfig, check_count
from textgen.errors import CheckpointError, ConfigError, message_of
from textgen.vocab import Vocab

CONFIG_FORMAT_VERSION = 1


def _check(condition: bool, where: str, key: str, value: object, expected: str) -> None:
    if not condition:
        raise CheckpointError(f"{where}: {key} is {str(value)[:80]!r}, expected {expected}")


def is_count(value: object, minimum: int = 0) -> bool:
    """True for a whole number (not a bool) from ``minimum`` to 10**15."""
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= 10**15


def _dataclass_from(kind, data: object, where: str, section: str):
    """``kind(**data)``, with unknown keys and bad values reported as CheckpointError naming the field."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{where}: {section!r} is not a JSON object; is this a textgen run folder?")
    unknown = sorted(set(data) - {f.name for f in fields(kind)})
    if unknown:
        raise CheckpointError(f"{where}: {section} has unknown settings: {', '.join(map(str, unknown))}")
    try:
        return kind(**data)
    except ConfigError as error:
        raise CheckpointError(f"{where}: {section}: {message_of(error)}") from None


def _check_source(source: object, where: str, index: int, several: bool) -> dict:
    key = f"corpus.sources[{index}]"
    _check(isinstance(source, dict), where, key, source, "a JSON object")
    for name in ("spec", "kind", "location"):
        _check(isinstance(source.get(name), str), where, f"{key}.{name}", source.get(name), "a string")
    options = source.get("options", {})
    _check(isinstance(options, dict) and all(isinstance(k, str) for k in options), where, f"{key}.options",
           options, "an object of loader options")
    sha = source.get("sha256")
    _check(isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha), where,
           f"{key}.sha256", sha, "64 hexadecimal digits")
    for name in ("characters", "documents"):
        _check(is_count(source.get(name)), where, f"{key}.{name}", source.get(name), "a count")
    _check(is_count(source.get("val_characters", 0)), where, f"{key}.val_characters", source.get("val_characters"),
           "a count")
    if several or "weight" in source:
        weight = source.get("weight")
        _check(isinstance(weight, (int, float)) and not isinstance(weight, bool) and math.isfinite(weight)
               and weight > 0, where, f"{key}.weight", weight, "a positive number")
    if "characters_in_mix" in source:
        _check(is_count(source["characters_in_mix"]), where, f"{key}.characters_in_mix", source["characters_in_mix"],
               "a count")
    if "loader_origin" in source:
        _check(isinstance(source["loader_origin"], str), where, f"{key}.loader_origin", source["loader_origin"],
               "a string")
    for name, value in options.items():
        _check(value is None or isinstance(value, (str, int, float, bool)), where, f"{key}.options[{name[:40]!r}]", value,
               "a string, number or true/false")
    _check(source.get("streamed_to") in (None, "ids.bin"), where, f"{key}.streamed_to", source.get("streamed_to"),
           "'ids.bin' or absent")
    _check(isinstance(source.get("continuous", False), bool), where, f"{key}.continuous", source.get("continuous"),
           "true or false")
    return source


@dataclass(frozen=True)
class RunRecord:
    """config.json, every field checked: the model, the training settings, the corpus and the run's history."""

    model: RNNConfig  # hidden size, sigma, dtype
    train: TrainConfig  # the training settings in force (resolved: eval_every and threads are numbers)
    sources: tuple[dict, ...]  # per corpus source: spec, kind, location, options, sizes, sha256, weight
    characters: int  # training ids: characters at char level, tokens at word and bpe level
    val_fraction: float  # share of each source held out
    val_characters: int  # held-out ids (characters at char level)
    vocab_size: int  # K, the tokens of the vocabulary
    updates_per_epoch: int  # windows per pass over the corpus
    total_updates: int  # the updates the run makes in all
    passage_length: int = 1000  # characters of best_passage.txt
    finished_at_update: int | None = None  # the update the run finished at (best_passage.txt drawn); None until then
    val_max_characters: int = 250_000  # held-out characters per source at most (250,000 before it was recorded)
    init_from: str | None = None  # the run this one started from
    created: str = ""  # when the run started (ISO 8601)
    textgen_version: str = __version__  # the textgen that started it
    resumes: tuple[dict, ...] = ()  # each resume: at_update, changes, when
    extra: dict = field(default_factory=dict)  # other JSON the caller recorded (e.g. "gradcheck")
    # False for a config.json from before finished_at_update was recorded (see `RunFolder.is_finished`)
    records_finish: bool = field(default=True, compare=False)
    text_characters: int | None = None  # word and bpe: the characters of text the training ids stand for
    val_text_characters: int | None = None  # ... and the held-out ids
    def to_json(self) -> dict:
        """The config.json layout (format_version 1)."""
        data = {
            "format_version": CONFIG_FORMAT_VERSION,
            "textgen_version": self.textgen_version,
            "created": self.created,
            "model": self.model.to_json(),
            "train": self.train.to_json(),
            "corpus": {
                "sources": list(self.sources),
                "characters": self.characters,
                "val_fraction": self.val_fraction,
                "val_max_characters": self.val_max_characters,
                "val_characters": self.val_characters,
                "vocab_size": self.vocab_size,
                "updates_per_epoch": self.updates_per_epoch,
                "total_updates": self.total_updates,
                **({"text_characters": self.text_characters, "val_text_characters": self.val_text_characters}
                   if self.text_characters is not None else {}),
            },
            "passage_length": self.passage_length,
            "finished_at_update": self.finished_at_update,
            **({"init_from": self.init_from} if self.init_from is not None else {}),
            **self.extra,
        }
        if self.resumes:
            data["resumes"] = list(self.resumes)
        return data

    @classmethod
    def from_json(cls, data: object, where: str) -> RunRecord:
        """Check every field of a config.json (CheckpointError naming the file, the field and the value)."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: not a JSON object; is this a textgen run folder?")
        for section in ("model", "train", "corpus"):
            if not isinstance(data.get(section), dict):
                raise CheckpointError(f"{where}: no {section!r} section; is this a textgen run folder?")
        version = data.get("format_version")
        _check(version == CONFIG_FORMAT_VERSION, where, "format_version", version, str(CONFIG_FORMAT_VERSION))
        corpus = data["corpus"]
        sources = corpus.get("sources")
        _check(isinstance(sources, list) and bool(sources), where, "corpus.sources", sources, "a list of sources")
        several = len(sources) > 1
        checked = tuple(_check_source(source, where, index, several) for index, source in enumerate(sources))
        for name in ("characters", "val_characters", "vocab_size", "updates_per_epoch", "total_updates"):
            _check(is_count(corpus.get(name), 1 if name in ("vocab_size", "updates_per_epoch") else 0), where,
                   f"corpus.{name}", corpus.get(name), "a count")
        for name in ("text_characters", "val_text_characters"):
            _check(corpus.get(name) is None or is_count(corpus.get(name)), where, f"corpus.{name}", corpus.get(name),
                   "a count")
        fraction = corpus.get("val_fraction", 0.0)
        _check(isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 <= fraction < 1,
               where, "corpus.val_fraction", fraction, "a number from 0 to below 1")
        val_max = corpus.get("val_max_characters", 250_000)
        _check(is_count(val_max, 1), where, "corpus.val_max_characters", val_max, "a positive count")
        passage = data.get("passage_length", 1000)
        try:
            check_count("passage_length", passage, minimum=0)
        except ConfigError as error:
            raise CheckpointError(f"{where}: {message_of(error)}") from None
        init_from = data.get("init_from")
        _check(init_from is None or isinstance(init_from, str), where, "init_from", init_from, "a path")
        resumes = data.get("resumes", [])
        _check(isinstance(resumes, list) and all(isinstance(r, dict) for r in resumes), where, "resumes", resumes,
               "a list of objects")
        for name in ("created", "textgen_version"):
            _check(isinstance(data.get(name, ""), str), where, name, data.get(name), "a string")
        gradcheck = data.get("gradcheck", {})
        _check(isinstance(gradcheck, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in gradcheck.values()), where, "gradcheck", gradcheck,
               "an object of parameter name to error")
        finished = data.get("finished_at_update")
        _check(finished is None or is_count(finished), where, "finished_at_update", finished, "null or a count")
        known = {"format_version", "textgen_version", "created", "model", "train", "corpus", "passage_length",
                 "finished_at_update", "init_from", "resumes"}
        return cls(
            model=_dataclass_from(RNNConfig, data["model"], where, "model"),
            train=_dataclass_from(TrainConfig, data["train"], where, "train"),
            sources=checked,
            characters=corpus["characters"],
            val_fraction=fraction,
            val_max_characters=val_max,
            val_characters=corpus["val_characters"],
            vocab_size=corpus["vocab_size"],
            updates_per_epoch=corpus["updates_per_epoch"],
            total_updates=corpus["total_updates"],
            passage_length=passage,
            finished_at_update=finished,
            records_finish="finished_at_update" in data,
            init_from=init_from,
            created=data.get("created", ""),
            textgen_version=data.get("textgen_version", ""),
            resumes=tuple(resumes),
            extra={key: value for key, value in data.items() if key not in known},
            text_characters=corpus.get("text_characters"),
            val_text_characters=corpus.get("val_text_characters"),
        )

    def check_against(self, checkpoint: Checkpoint, vocab: Vocab, where: str, name: str) -> None:
        """CheckpointError naming the first field on which config.json, vocab.json and the checkpoint disagree.

        The settings a resume may change (`RESUMABLE_FIELDS`) may differ: config.json records the newest.
        """
        def disagree(key: str, ours: object, theirs: object, file: str = "config.json") -> None:
            if ours != theirs:
                raise CheckpointError(f"{where}: {file} and {name} disagree on {key}: {ours!r} in {file}, "
                                      f"{theirs!r} in {name}; the run folder has been edited or mixed up")

        for key, value in self.model.to_json().items():
            disagree(f"model.{key}", value, getattr(checkpoint.model, key))
        disagree("the vocabulary (vocab.json)", (vocab.level, vocab.tokens), (checkpoint.vocab.level, checkpoint.vocab.tokens))
        disagree("vocab_size", getattr(vocab, "requested", None), getattr(checkpoint.vocab, "requested", None),
                 "vocab.json")
        disagree("corpus.vocab_size", self.vocab_size, checkpoint.vocab.size)
        meta = checkpoint.training
        saved = meta.train
        if saved is not None:
            try:  # with today's defaults for what an older textgen did not record (cell, optimizer, dropout, ...)
                saved = TrainConfig(**saved).to_json()
            except (TypeError, ConfigError):
                pass  # compared as stored, so the first field that differs is named
            for key, value in self.train.to_json().items():
                if key not in RESUMABLE_FIELDS:
                    disagree(f"train.{key}", value, saved.get(key))
        stored = meta.corpus
        if stored is not None:
            disagree("the corpus SHA-256", [s["sha256"] for s in self.sources],
                     [s.get("sha256") if isinstance(s, dict) else s for s in stored])


def new_record(**values) -> RunRecord:
    """A RunRecord stamped with this textgen's version and the time."""
    return RunRecord(created=datetime.now().astimezone().isoformat(timespec="seconds"), **values)
