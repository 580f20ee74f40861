"""What a report shows of a run, read through `RunFolder`, and the numbers and text formatted once for both
the HTML page and its Markdown twin."""

from __future__ import annotations

import math
import statistics
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import orjson

from textgen.checkpoint import CheckpointMeta
from textgen.config import SETTINGS
from textgen.errors import CheckpointError
from textgen.plots import RunCurves, epoch_step
from textgen.runfolder import RunFolder, RunRecord

SECTIONS = (  # (anchor, heading), shared by the HTML and the Markdown so both have the same sections
    ("loss", "Loss curves"),
    ("samples", "Samples during training"),
    ("passage", "Passage from the best model"),
    ("gradcheck", "Gradient check"),
    ("corpus", "Corpus"),
    ("configuration", "Configuration"),
)
SETTING_MEANINGS = {name: entry.meaning for name, entry in SETTINGS.items() if entry.meaning}  # the glossary column



@dataclass
class RunSummary:
    """What a report shows, read from one run folder."""

    folder: Path  # the run folder
    record: RunRecord  # config.json
    metrics: list[dict]  # metrics.jsonl rows
    samples: list[dict]  # samples.jsonl rows
    chars: tuple[str, ...] | None = None  # the vocabulary's tokens, in id order (None if vocab.json is missing)
    token_level: str = "char"  # what a token is: char, word or bpe
    passage: str | None = None  # best_passage.txt (None before the run has finished)
    best: CheckpointMeta | None = None  # best.npz's: best_by, update, best_loss (None if there is none)
    best_problem: str = ""  # why best is None, when best.npz exists but cannot be read
    last: CheckpointMeta | None = None  # last.npz's: update and smooth_loss where training is (None if unreadable)

    @property
    def name(self) -> str:
        return self.folder.resolve().name

    @property
    def seq_length(self) -> int:
        return self.record.train.seq_length

    @property
    def updates_per_epoch(self) -> int:
        return self.record.updates_per_epoch

    @property
    def final_update(self) -> int:
        """The updates made: last.npz's count (metrics rows come only every log_every), else the last row's."""
        if self.last is not None:
            return self.last.update
        return self.metrics[-1]["update"] if self.metrics else 0

    @property
    def final_smooth_loss(self) -> float | None:
        """The smooth loss where training is: last.npz's, else that of the last metrics row."""
        if self.last is not None:
            return self.last.smooth_loss
        return self.metrics[-1]["smooth_loss"] if self.metrics else None

    @property
    def best_val(self) -> tuple[float, float, int] | None:
        """(val_loss in nats per character, val_bpc, update) of the evaluation with the lowest val_loss."""
        rows = [row for row in self.metrics if row.get("val_loss") is not None]
        if not rows:
            return None
        row = min(rows, key=lambda r: r["val_loss"])
        return row["val_loss"], row.get("val_bpc", row["val_loss"] / math.log(2)), row["update"]

    @property
    def median_chars_per_sec(self) -> float | None:
        speeds = [row["chars_per_sec"] for row in self.metrics if row.get("chars_per_sec") is not None]
        return statistics.median(speeds) if speeds else None



def read_run(run: Path | RunFolder) -> RunSummary:
    """Everything a report needs from ``run``; CheckpointError if it is not a run folder."""
    folder = run if isinstance(run, RunFolder) else RunFolder(run)
    summary = RunSummary(folder.path, folder.read_record(), folder.metrics(), folder.samples())
    if folder.has_vocab():
        vocab = folder.read_vocab()
        summary.chars, summary.token_level = vocab.tokens, vocab.level
    summary.passage = folder.passage()
    if folder.has_checkpoint("best"):
        try:
            summary.best = folder.load("best").training
        except CheckpointError as error:
            summary.best_problem = str(error)
    if folder.has_checkpoint("last"):
        try:
            last = folder.load("last").training
        except CheckpointError:
            last = None  # the numbers then come from metrics.jsonl
        if last is not None and last.update is not None:
            summary.last = last
    return summary


def curves(summary: RunSummary, label: str | None = None) -> RunCurves:
    """The run's curves for `textgen.plots`."""
    n = summary.seq_length
    val_rows = [row for row in summary.metrics if row.get("val_loss") is not None]
    best = summary.best
    star = None
    if best is not None and best.update is not None and best.best_loss is not None:
        star = (best.update, best.best_loss * n if best.best_by == "val_loss" else best.best_loss)
    return RunCurves(
        label=label or summary.name,
        seq_length=n,
        updates=[row["update"] for row in summary.metrics],
        smooth_loss=[row["smooth_loss"] for row in summary.metrics],
        val_updates=[row["update"] for row in val_rows],
        val_loss=[row["val_loss"] for row in val_rows],
        updates_per_epoch=summary.updates_per_epoch,
        best=star,
    )


# ---------------------------------------------------------------- numbers and text, formatted once for both outputs


def fmt(value, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def visible(text: str) -> str:
    """``text`` with control characters other than newline and tab written as escapes (\\r, \\x0c, ...)."""
    if text.isprintable() or all(char.isprintable() or char in "\n\t" for char in text):
        return text
    out = []
    for char in text:
        if char == "\r":
            out.append("\\r")
        elif unicodedata.category(char) == "Cc" and char not in "\n\t":
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def readable_char(char: str) -> str:
    """How one vocabulary character is shown: itself, or an escape for whitespace and invisible ones."""
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␣"}
    if char in named:
        return named[char]
    if not char.isprintable():
        return f"U+{ord(char):04X}"
    return char


def readable_token(token: str) -> str:
    """How one vocabulary token is shown: each of its characters as `readable_char` shows it."""
    return "".join(readable_char(char) for char in token)


def vocabulary_title(summary: RunSummary) -> str:
    """The heading of the report's vocabulary: its size and order."""
    if summary.token_level == "char":
        return f"Vocabulary: {len(summary.chars)} characters, sorted by code point"
    what = {"word": "the characters, then the words, each sorted by code point",
            "bpe": "the byte-level pieces in id order (a piece of a character shows as \ufffd)"}[summary.token_level]
    return f"Vocabulary: {len(summary.chars):,} {summary.token_level} tokens, {what}"


def char_title(char: str) -> str:
    """'U+0041 LATIN CAPITAL LETTER A' (the tooltip of a vocabulary character)."""
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}"


def headline(summary: RunSummary) -> list[tuple[str, str, str]]:
    """The header's key numbers as (label, value, detail)."""
    record = summary.record
    n = summary.seq_length
    update = summary.final_update
    progress = f"{update:,}"
    detail = f"of {record.total_updates:,} updates, {update / summary.updates_per_epoch:.2f} epochs"
    numbers = [("Updates", progress, detail),
               ("Smooth loss", fmt(summary.final_smooth_loss, ".3f"), f"final, in nats per {n}-character window")]
    best_val = summary.best_val
    if best_val is not None:
        numbers.append(("Validation loss", f"{best_val[1]:.4f}",
                        f"best, in bits/char ({best_val[0]:.4f} nats/char), at update {best_val[2]:,}"))
    else:
        numbers.append(("Validation loss", "n/a", "no held-out text" if not record.val_characters
                        else "not evaluated yet"))
    best = summary.best
    if best is not None:
        by_val = best.best_by == "val_loss"
        if by_val and best.best_loss is not None:
            loss = f"{best.best_loss / math.log(2):.4f} bits/char ({best.best_loss:.4f} nats/char)"
        else:
            loss = f"{fmt(best.best_loss, '.4f' if by_val else '.3f')} {'nats/char' if by_val else f'nats per {n} chars'}"
        numbers.append(("Best model", fmt(best.update, ","),
                        f"update, chosen by {'validation' if by_val else 'smooth'} loss {loss}"))
    numbers.append(("Speed", fmt(summary.median_chars_per_sec, ",.0f"), "characters/s (median)"))
    model = record.model
    detail = (f"{parameter_count(summary)} parameters, K = {record.vocab_size}, {model.dtype}, "
              f"seq_length {record.train.seq_length}")
    numbers.append(("Model", model_shape(summary, "m = "), detail))
    return numbers


def model_shape(summary: RunSummary, size: str = "") -> str:
    """'lstm, 2 layers of 128' (with ``size`` before the number)."""
    model = summary.record.model
    return f"{model.cell}, {model.layers} layer{'s' if model.layers != 1 else ''} of {size}{model.hidden}"


def parameter_count(summary: RunSummary) -> str:
    """The model's number of parameters, formatted."""
    from textgen.models import network_of

    return f"{network_of(summary.record.model, summary.record.vocab_size).param_count:,}"


def best_sentence(summary: RunSummary) -> str:
    """Plain-text sentence on which criterion chose best.npz."""
    best = summary.best
    if best is None:
        return summary.best_problem or "No best model has been saved yet."
    if best.best_by == "val_loss":
        loss = best.best_loss
        shown = "n/a" if loss is None else f"{loss / math.log(2):.4f} bits per character ({loss:.4f} nats/char)"
        return (f"The best model (best.npz) was chosen by the lowest validation loss: {shown}, at update "
                f"{fmt(best.update, ',')}.")
    return (f"The best model (best.npz) was chosen by the lowest smooth training loss: {fmt(best.best_loss, '.3f')} "
            f"nats per {summary.seq_length}-character window, at update {fmt(best.update, ',')}.")


def subtitle(summary: RunSummary) -> str:
    record = summary.record
    specs = ", ".join(str(source["spec"]) for source in record.sources)
    started = record.created.replace("T", " ")
    return (f"Started {started} with textgen {record.textgen_version} · model: {model_shape(summary)} · corpus: "
            f"{specs}")


def caption(summary: RunSummary) -> str:
    n = summary.seq_length
    text = (f"Smooth training loss, in nats per window of {n} characters (left axis), against updates. "
            "It is an exponential average with a time constant of about 1,000 updates, so it lags the model. ")
    if summary.best_val is not None:
        text += (f"Validation loss is measured in nats per character; it is drawn multiplied by seq_length = {n} "
                 "on the same axes so both curves share one scale, and the right axis gives the per-character "
                 f"value (left ÷ {n}). ")
    if summary.best is not None:
        text += "The star marks the update of the best model. "
    per_epoch = summary.updates_per_epoch
    step = epoch_step(summary.metrics[-1]["update"] if summary.metrics else 0, per_epoch)
    every = "each epoch boundary" if step == 1 else f"every {step} epochs"
    text += f"Dashed grey lines: {every} ({per_epoch:,} updates per epoch; the top axis counts epochs)."
    return text


def config_rows(summary: RunSummary) -> list[tuple[str, str, str, str]]:
    """(group, setting, value, meaning) rows of the configuration table."""
    record = summary.record
    rows = [("model", key, json_text(value), SETTING_MEANINGS.get(key, "")) for key, value in
            record.model.to_json().items()]
    rows += [("training", key, json_text(value), SETTING_MEANINGS.get(key, "")) for key, value in
             record.train.to_json().items()]
    rows.append(("run", "passage_length", json_text(record.passage_length), SETTING_MEANINGS["passage_length"]))
    if record.init_from is not None:
        rows.append(("run", "init_from", json_text(record.init_from), SETTING_MEANINGS["init_from"]))
    rows.append(("run", "textgen_version", json_text(record.textgen_version), "textgen that made the run"))
    rows.append(("run", "created", json_text(record.created), "when the run started"))
    return rows


def json_text(value) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "—"
    if isinstance(value, float):
        return repr(value)
    return orjson.dumps(value).decode()


def source_table(summary: RunSummary) -> tuple[list[str], list[list[str]], set[int]]:
    """The corpus sources as (columns, rows of text cells, numeric column indexes); sha256 cells hold the full hash.

    The weight and options columns appear only when some source has them.
    """
    sources = summary.record.sources
    cells = []
    for source in sources:
        options = source.get("options") or {}
        cells.append({
            "spec": str(source.get("spec", "")),
            "loader": str(source.get("kind", "")),
            "origin": str(source.get("loader_origin", "")),
            "documents": fmt(source.get("documents"), ","),
            "characters": fmt(source.get("characters"), ","),
            "val characters": fmt(source.get("val_characters"), ","),
            "weight": fmt(source.get("weight"), ".3g", "—"),
            "options": ", ".join(f"{key}={json_text(value)}" for key, value in options.items()) or "—",
            "sha256": str(source.get("sha256", "")),
        })
    columns = ["spec", "loader", "origin", "documents", "characters", "val characters"]
    if len(sources) > 1 and any(row["weight"] != "—" for row in cells):
        columns.append("weight")
    if any(row["options"] != "—" for row in cells):
        columns.append("options")
    columns.append("sha256")
    numeric = {i for i, name in enumerate(columns) if name in ("documents", "characters", "val characters", "weight")}
    return columns, [[row[name] for name in columns] for row in cells], numeric


def corpus_totals(summary: RunSummary) -> list[tuple[str, str]]:
    record = summary.record
    if record.text_characters is not None:  # word and bpe: the characters, the tokens they became, the ratio
        return [
            ("token level", record.train.tokens),
            ("training characters", fmt(record.text_characters, ",")),
            ("training tokens", fmt(record.characters, ",")),
            ("characters per token", fmt(record.text_characters / max(1, record.characters), ".3f")),
            ("validation characters", f"{fmt(record.val_text_characters, ',')} (val_fraction {record.val_fraction}),"
                                      f" {fmt(record.val_characters, ',')} tokens"),
            ("vocabulary size K (tokens)", fmt(record.vocab_size, ",")),
            ("updates per epoch", fmt(record.updates_per_epoch, ",")),
            ("total updates", fmt(record.total_updates, ",")),
        ]
    return [
        ("training characters", fmt(record.characters, ",")),
        ("validation characters", f"{fmt(record.val_characters, ',')} (val_fraction {record.val_fraction})"),
        ("vocabulary size K", fmt(record.vocab_size, ",")),
        ("updates per epoch", fmt(record.updates_per_epoch, ",")),
        ("total updates", fmt(record.total_updates, ",")),
    ]



def fmt_error(error) -> str:
    return f"{error:.2e}" if isinstance(error, (int, float)) else json_text(error)

