"""Run reports: one self-contained HTML page and its Markdown twin summarising a run folder, plus a figure that
overlays several runs' loss curves. matplotlib is imported inside the plotting functions only, with Agg."""

from __future__ import annotations

import base64
import html
import io
import math
import statistics
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import orjson

from textgen.checkpoint import atomic_write_bytes, load_checkpoint, read_json
from textgen.errors import CheckpointError, TextgenError
from textgen.loaders.base import END_OF_DOCUMENT
from textgen.rundir import read_jsonl, read_run_config

REPORT_FILES = ("report.html", "report.md", "report_loss.png")
MAX_EPOCH_LINES = 25  # more epochs than this: a boundary line every k epochs, so the plot stays readable
SECTIONS = (  # (anchor, heading), shared by the HTML and the Markdown so both have the same sections
    ("loss", "Loss curves"),
    ("samples", "Samples during training"),
    ("passage", "Passage from the best model"),
    ("gradcheck", "Gradient check"),
    ("corpus", "Corpus"),
    ("configuration", "Configuration"),
)
SETTING_MEANINGS = {  # the configuration table's third column, for the settings textgen writes today
    "hidden": "hidden units m",
    "sigma": "std of the initial U, W, V",
    "dtype": "floating-point type of the parameters",
    "seq_length": "characters per window (backprop through time)",
    "eta": "AdaGrad learning rate",
    "eps": "AdaGrad epsilon",
    "clip": "gradients clipped to [-clip, clip]",
    "epochs": "passes over the corpus asked for",
    "updates": "parameter updates asked for",
    "sample_every": "updates between training-time samples",
    "sample_length": "characters per training-time sample",
    "log_every": "updates between rows of metrics.jsonl",
    "checkpoint_every": "updates between checkpoints",
    "eval_every": "updates between validation losses",
    "seed": "random seed of the run",
    "batch_size": "parallel streams (1: the assignment's algorithm)",
    "passage_length": "characters in best_passage.txt",
    "init_from": "run whose parameters this run started from",
}


@dataclass
class RunSummary:
    """What a report shows, read from one run folder."""

    folder: Path  # the run folder
    config: dict  # config.json
    metrics: list[dict]  # metrics.jsonl rows
    samples: list[dict]  # samples.jsonl rows
    chars: tuple[str, ...] | None = None  # the vocabulary (None if vocab.json is missing)
    passage: str | None = None  # best_passage.txt (None before the run has finished)
    best: dict | None = None  # best.npz: best_by, update, loss (None if there is none)
    best_problem: str = ""  # why best is None, when best.npz exists but cannot be read

    @property
    def name(self) -> str:
        return self.folder.resolve().name

    @property
    def seq_length(self) -> int:
        return int(self.config.get("train", {}).get("seq_length", 25))

    @property
    def updates_per_epoch(self) -> int | None:
        per_epoch = self.config.get("corpus", {}).get("updates_per_epoch")
        return per_epoch if isinstance(per_epoch, int) and per_epoch > 0 else None

    @property
    def final_smooth_loss(self) -> float | None:
        """smooth_loss of the last metrics row."""
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


def _read_run(run: Path) -> RunSummary:
    """Everything a report needs from ``run``; CheckpointError if it is not a run folder."""
    run = Path(run)
    config = read_run_config(run)
    if not all(isinstance(config.get(key), dict) for key in ("model", "train", "corpus")):
        raise CheckpointError(f"{run}/config.json: not a textgen run configuration (model, train or corpus missing)")
    summary = RunSummary(run, config, read_jsonl(run / "metrics.jsonl"), read_jsonl(run / "samples.jsonl"))
    if (run / "vocab.json").exists():
        from textgen.vocab import CharVocab

        summary.chars = CharVocab.from_json(read_json(run / "vocab.json", "vocabulary"), f"{run}/vocab.json").chars
    if (run / "best_passage.txt").exists():
        summary.passage = (run / "best_passage.txt").read_text(encoding="utf-8")
    if (run / "best.npz").exists():
        try:
            meta = load_checkpoint(run / "best.npz").meta
            summary.best = {"best_by": meta.get("best_by", "smooth_loss"), "update": meta.get("update"),
                            "loss": meta.get("smooth_loss")}  # best.npz keeps the loss that chose it here
        except CheckpointError as error:
            summary.best_problem = str(error)
    return summary


# ---------------------------------------------------------------- numbers and text, formatted once for both outputs


def _fmt(value, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def _visible(text: str) -> str:
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


def _readable_char(char: str) -> str:
    """How one vocabulary character is shown: itself, or an escape for whitespace and invisible ones."""
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␣"}
    if char in named:
        return named[char]
    if not char.isprintable():
        return f"U+{ord(char):04X}"
    return char


def _char_title(char: str) -> str:
    """'U+0041 LATIN CAPITAL LETTER A' (the tooltip of a vocabulary character)."""
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}"


def _headline(summary: RunSummary) -> list[tuple[str, str, str]]:
    """The header's key numbers as (label, value, detail)."""
    train = summary.config["train"]
    corpus = summary.config["corpus"]
    n = summary.seq_length
    last = summary.metrics[-1] if summary.metrics else {}
    total = corpus.get("total_updates")
    progress = f"{last['update']:,}" if last else "0"
    detail = f"of {total:,} updates" if isinstance(total, int) else "updates"
    if last.get("epoch") is not None:
        detail += f", {last['epoch']:.2f} epochs"
    numbers = [("Updates", progress, detail),
               ("Smooth loss", _fmt(summary.final_smooth_loss, ".3f"), f"final, in nats per {n}-character window")]
    best_val = summary.best_val
    if best_val is not None:
        numbers.append(("Validation loss", f"{best_val[0]:.4f}",
                        f"best, in nats/char ({best_val[1]:.4f} bits/char), at update {best_val[2]:,}"))
    else:
        numbers.append(("Validation loss", "n/a", "no held-out text" if not corpus.get("val_characters")
                        else "not evaluated yet"))
    best = summary.best
    if best is not None:
        by_val = best["best_by"] == "val_loss"
        unit = "nats/char" if by_val else f"nats per {n} chars"
        loss = _fmt(best["loss"], ".4f" if by_val else ".3f")
        numbers.append(("Best model", _fmt(best["update"], ","),
                        f"update, chosen by {'validation' if by_val else 'smooth'} loss {loss} {unit}"))
    numbers.append(("Speed", _fmt(summary.median_chars_per_sec, ",.0f"), "characters/s (median)"))
    model = summary.config["model"]
    numbers.append(("Model", f"m = {model.get('hidden')}",
                    f"K = {corpus.get('vocab_size')}, {model.get('dtype')}, seq_length {train.get('seq_length')}"))
    return numbers


def _best_sentence(summary: RunSummary) -> str:
    """Plain-text sentence on which criterion chose best.npz."""
    best = summary.best
    if best is None:
        return summary.best_problem or "No best model has been saved yet."
    if best["best_by"] == "val_loss":
        loss = best["loss"]
        bits = "" if loss is None else f" ({loss / math.log(2):.4f} bits/char)"
        return (f"The best model (best.npz) was chosen by the lowest validation loss: {_fmt(loss, '.4f')} nats "
                f"per character{bits}, at update {_fmt(best['update'], ',')}.")
    return (f"The best model (best.npz) was chosen by the lowest smooth training loss: {_fmt(best['loss'], '.3f')} "
            f"nats per {summary.seq_length}-character window, at update {_fmt(best['update'], ',')}.")


def _subtitle(summary: RunSummary) -> str:
    config = summary.config
    specs = ", ".join(str(source.get("spec", "")) for source in config["corpus"].get("sources", []))
    started = str(config.get("created", "?")).replace("T", " ")
    return f"Started {started} with textgen {config.get('textgen_version', '?')} · corpus: {specs}"


def _caption(summary: RunSummary) -> str:
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
    if per_epoch:
        step = _epoch_step(summary.metrics[-1]["update"] if summary.metrics else 0, per_epoch)
        every = "each epoch boundary" if step == 1 else f"every {step} epochs"
        text += f"Dashed grey lines: {every} ({per_epoch:,} updates per epoch; the top axis counts epochs)."
    return text


def _epoch_step(longest: int, per_epoch: int) -> int:
    return max(1, math.ceil(longest / per_epoch / MAX_EPOCH_LINES))


def _config_rows(summary: RunSummary) -> list[tuple[str, str, str, str]]:
    """(group, setting, value, meaning) rows of the configuration table."""
    config = summary.config
    rows = [("model", key, _json_text(value), SETTING_MEANINGS.get(key, "")) for key, value in config["model"].items()]
    rows += [("training", key, _json_text(value), SETTING_MEANINGS.get(key, "")) for key, value in
             config["train"].items()]
    for key in ("passage_length", "init_from"):
        if key in config:
            rows.append(("run", key, _json_text(config[key]), SETTING_MEANINGS.get(key, "")))
    rows.append(("run", "textgen_version", _json_text(config.get("textgen_version")), "textgen that made the run"))
    rows.append(("run", "created", _json_text(config.get("created")), "when the run started"))
    return rows


def _json_text(value) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "—"
    if isinstance(value, float):
        return repr(value)
    return orjson.dumps(value).decode()


def _source_table(summary: RunSummary) -> tuple[list[str], list[list[str]], set[int]]:
    """The corpus sources as (columns, rows of text cells, numeric column indexes); sha256 cells hold the full hash.

    The weight and options columns appear only when some source has them.
    """
    sources = summary.config["corpus"].get("sources", [])
    cells = []
    for source in sources:
        options = source.get("options") or {}
        cells.append({
            "spec": str(source.get("spec", "")),
            "loader": str(source.get("kind", "")),
            "origin": str(source.get("loader_origin", "")),
            "documents": _fmt(source.get("documents"), ","),
            "characters": _fmt(source.get("characters"), ","),
            "val characters": _fmt(source.get("val_characters"), ","),
            "weight": _fmt(source.get("weight"), ".3g", "—"),
            "options": ", ".join(f"{key}={_json_text(value)}" for key, value in options.items()) or "—",
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


def _corpus_totals(summary: RunSummary) -> list[tuple[str, str]]:
    corpus = summary.config["corpus"]
    return [
        ("training characters", _fmt(corpus.get("characters"), ",")),
        ("validation characters", _fmt(corpus.get("val_characters"), ",")
         + (f" (val_fraction {corpus['val_fraction']})" if corpus.get("val_fraction") is not None else "")),
        ("vocabulary size K", _fmt(corpus.get("vocab_size"), ",")),
        ("updates per epoch", _fmt(corpus.get("updates_per_epoch"), ",")),
        ("total updates", _fmt(corpus.get("total_updates"), ",")),
    ]


# ---------------------------------------------------------------- figures


def _epoch_lines(axis, longest: int, per_epoch: int | None) -> None:
    if not per_epoch:
        return
    step = _epoch_step(longest, per_epoch)
    label = "epoch boundary" if step == 1 else f"every {step} epochs"
    for index, x in enumerate(range(per_epoch * step, longest + 1, per_epoch * step)):
        axis.axvline(x, color="grey", linestyle="--", linewidth=0.7, alpha=0.5, label=None if index else label)
    axis.grid(False, axis="x")  # the epoch lines are the vertical guides; a second set would only clutter


def _loss_figure_png(summary: RunSummary) -> bytes:
    """The report's loss figure as PNG bytes: smooth loss, validation loss × seq_length, best model, epochs."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    n = summary.seq_length
    figure = Figure(figsize=(9, 4.8), dpi=150)
    axis = figure.add_subplot()
    rows = summary.metrics
    updates = [row["update"] for row in rows]
    axis.plot(updates, [row["smooth_loss"] for row in rows], color="C0", linewidth=1.6,
              label=f"smooth training loss (per {n} chars)")
    val_rows = [row for row in rows if row.get("val_loss") is not None]
    if val_rows:
        axis.plot([row["update"] for row in val_rows], [row["val_loss"] * n for row in val_rows], color="C1",
                  linewidth=1.5, marker="o", markersize=4, label=f"validation loss × {n}")
    best = summary.best
    if best is not None and best["update"] is not None and best["loss"] is not None:
        y = best["loss"] * n if best["best_by"] == "val_loss" else best["loss"]
        axis.plot([best["update"]], [y], linestyle="none", marker="*", markersize=14, color="C3",
                  markeredgecolor="white", label=f"best model (update {best['update']:,})", zorder=5)
    longest = max(updates, default=0)
    per_epoch = summary.updates_per_epoch
    axis.grid(alpha=0.3)
    _epoch_lines(axis, longest, per_epoch)
    axis.set_xlabel("update")
    axis.set_ylabel(f"nats per {n}-character window")
    if val_rows:
        right = axis.secondary_yaxis("right", functions=(lambda y: y / n, lambda y: y * n))
        right.set_ylabel("nats per character")
    if per_epoch:
        top = axis.secondary_xaxis("top", functions=(lambda u: u / per_epoch, lambda e: e * per_epoch))
        top.xaxis.set_major_locator(MaxNLocator(integer=True))
        top.set_xlabel("epoch")
    axis.set_xlim(0, max(longest, 1) * 1.02)  # a little room so a marker at the last update is not cut
    axis.legend(loc="best", framealpha=0.9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_runs(runs: list[Path], out: Path) -> Path:
    """Overlay several runs' smooth loss (solid) and validation loss (dashed) in one PNG at ``out``.

    Runs with one seq_length are drawn in nats per window (validation × seq_length); runs with different
    seq_lengths are all drawn in nats per character, so the curves stay comparable. CheckpointError for a
    folder that is not a run or has no metrics yet.
    """
    if not runs:
        raise CheckpointError("no run folders given to compare")
    summaries = []
    for run in runs:
        summary = _read_run(Path(run))
        if not summary.metrics:
            raise CheckpointError(f"{run}/metrics.jsonl: missing or empty; the run has logged no losses yet")
        summaries.append(summary)
    names = [s.name for s in summaries]
    labels = names if len(set(names)) == len(names) else [str(s.folder) for s in summaries]
    same_window = len({s.seq_length for s in summaries}) == 1

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5), dpi=150)
    axis = figure.add_subplot()
    longest = 0
    any_val = False
    for index, (summary, label) in enumerate(zip(summaries, labels)):
        n = summary.seq_length
        scale = 1.0 if same_window else 1.0 / n  # smooth loss is per window; per character when windows differ
        val_scale = n if same_window else 1.0  # val_loss is per character
        updates = [row["update"] for row in summary.metrics]
        longest = max(longest, max(updates))
        colour = f"C{index % 10}"
        axis.plot(updates, [row["smooth_loss"] * scale for row in summary.metrics], color=colour, linewidth=1.5,
                  label=label)
        val_rows = [row for row in summary.metrics if row.get("val_loss") is not None]
        if val_rows:
            any_val = True
            axis.plot([row["update"] for row in val_rows], [row["val_loss"] * val_scale for row in val_rows],
                      color=colour, linestyle="--", linewidth=1.2, marker="o", markersize=2.5,
                      label=f"{label} (validation{f' × {n}' if same_window else ''})")
    axis.grid(alpha=0.3)
    per_epoch = {s.updates_per_epoch for s in summaries}
    if len(per_epoch) == 1:
        _epoch_lines(axis, longest, per_epoch.pop())
    n = summaries[0].seq_length
    axis.set_ylabel(f"nats per {n}-character window" if same_window else "nats per character")
    axis.set_xlabel("update")
    what = "Smooth training loss (solid)" + (" and validation loss (dashed)" if any_val else "")
    axis.set_title(what if same_window else what + ", per character")
    axis.legend(loc="best", fontsize="small", framealpha=0.9)
    figure.tight_layout()
    out = Path(out)
    try:
        atomic_write_bytes(out, lambda stream: figure.savefig(stream, format="png"))
    except OSError as error:
        raise TextgenError(f"{out}: cannot write ({error.strerror})") from None
    return out


# ---------------------------------------------------------------- HTML

STYLE = """
:root { --ink: #1c2230; --muted: #5d6677; --line: #e2e5eb; --paper: #ffffff; --ground: #f3f4f7;
  --accent: #2f5fb3; --code: #f6f7f9; }
* { box-sizing: border-box; }
html { background: var(--ground); }
body { margin: 0; color: var(--ink);
  font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.wrap { max-width: 1100px; margin: 0 auto; padding: 0 24px; }
header { background: linear-gradient(135deg, #1f3b6e, #2f5fb3); color: #fff; padding: 28px 0 24px; }
header h1 { margin: 0 0 4px; font-size: 28px; font-weight: 650; letter-spacing: -0.01em; word-break: break-all; }
header .sub { color: #d5e0f5; margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(165px, 1fr)); gap: 10px; }
.card { background: rgba(255, 255, 255, 0.12); border: 1px solid rgba(255, 255, 255, 0.22); border-radius: 10px;
  padding: 10px 14px; }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: 0.06em; color: #d5e0f5;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.card .value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .detail { font-size: 12.5px; color: #e6edfa; }
nav { background: var(--paper); border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
nav a { display: inline-block; padding: 10px 12px 9px; color: var(--accent); text-decoration: none; font-size: 14px;
  border-bottom: 2px solid transparent; }
nav a:hover { border-bottom-color: var(--accent); }
main { padding: 20px 24px 56px; }
section { background: var(--paper); border: 1px solid var(--line); border-radius: 10px; padding: 6px 22px 18px;
  margin: 0 0 18px; }
h2 { font-size: 20px; margin: 16px 0 10px; }
h3 { font-size: 15px; margin: 18px 0 8px; color: var(--muted); }
p { margin: 8px 0; }
.muted { color: var(--muted); }
figure { margin: 6px 0 0; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; display: block; }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 8px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
table.compact { width: auto; min-width: 420px; }
table.sources td { white-space: nowrap; }
table.sources td.spec { white-space: normal; overflow-wrap: anywhere; min-width: 180px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; background: var(--code); white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
pre.text { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 13px; line-height: 1.5;
  background: var(--code); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
pre.passage { font-size: 14px; padding: 14px 16px; }
td.text { width: 70%; min-width: 320px; }
.chars { display: flex; flex-wrap: wrap; gap: 4px; margin: 6px 0; }
.ch { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 13px;
  min-width: 26px; text-align: center; padding: 2px 5px; border: 1px solid var(--line); border-radius: 5px;
  background: var(--code); }
.ch.esc { color: #9a3d00; background: #fff4e8; border-color: #f3d7bb; }
.mark { font-size: 0; }
.mark::before { content: attr(data-label); font: 600 10px/1 system-ui, sans-serif; color: #2f5fb3;
  background: #e6edfb; border: 1px solid #c4d3f2; border-radius: 3px; padding: 1px 3px; margin: 0 2px;
  vertical-align: 1px; }
.note { background: #fff8e6; border: 1px solid #f0dca8; border-radius: 6px; padding: 8px 12px; }
@media print { nav { display: none; } header { background: #1f3b6e; } section { break-inside: avoid-page; } }
"""


def _e(text) -> str:
    return html.escape(str(text))


# The end-of-document marker is drawn as a small "end" label: many fonts lack a glyph for U+2403 and would
# show an empty box. The character itself stays in the page (hidden by font-size 0), so copying keeps it.
END_MARK_HTML = (f'<span class="mark" data-label="end" title="U+{ord(END_OF_DOCUMENT):04X} end-of-document '
                 f'marker">{END_OF_DOCUMENT}</span>')


def _html_text(text: str) -> str:
    """Escaped, control characters made visible, end-of-document markers labelled."""
    return _e(_visible(text)).replace(END_OF_DOCUMENT, END_MARK_HTML)


def _html_table(head: list[str] | None, rows: list[list[str]], numeric: set[int] = frozenset(),
                classes: dict[int, str] | None = None, table_class: str = "") -> str:
    """A table; cells are already HTML. ``numeric``: column indexes aligned right; ``classes``: a CSS class per
    column index; ``head`` None: no header row."""
    classes = classes or {}

    def cell(tag: str, index: int, content: str) -> str:
        names = (["num"] if index in numeric else []) + ([classes[index]] if index in classes else [])
        attribute = f' class="{" ".join(names)}"' if names else ""
        return f"<{tag}{attribute}>{content}</{tag}>"

    lines = [f'<div class="scroll"><table class="{table_class}">' if table_class else '<div class="scroll"><table>']
    if head is not None:
        lines.append("<thead><tr>" + "".join(cell("th", i, h) for i, h in enumerate(head)) + "</tr></thead>")
    lines.append("<tbody>")
    lines += ["<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows]
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def _html_pre(text: str, classes: str = "text") -> str:
    """``text`` in a <pre>, escaped; the newline after the start tag is there because HTML drops the first one."""
    return f'<pre class="{classes}">\n{_html_text(text)}</pre>'


def _html_sections(summary: RunSummary, figure_png: bytes | None) -> dict[str, str]:
    """The body of each section by anchor (a section left out is absent)."""
    body: dict[str, str] = {}

    if figure_png is not None:
        data = base64.b64encode(figure_png).decode("ascii")
        body["loss"] = (f'<figure><img alt="Loss curves of {_e(summary.name)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_e(_caption(summary))}</figcaption></figure>")
    else:
        body["loss"] = '<p class="note">No metrics have been logged yet, so there is nothing to plot.</p>'

    if summary.samples:
        rows = [[f"{row['update']:,}", _fmt(row.get("epoch"), ".2f"), _fmt(row.get("smooth_loss"), ".3f"),
                 _html_pre(row.get("text", ""))] for row in summary.samples]
        body["samples"] = (f'<p class="muted">{len(summary.samples)} samples of '
                           f'{summary.config["train"].get("sample_length", "")} characters, drawn from the model as '
                           "it was at each sampling point (temperature 1). Control characters other than newline "
                           "and tab are written as escapes such as \\x0c.</p>"
                           + _html_table(["update", "epoch", "smooth loss", "text"], rows, {0, 1, 2}, {3: "text"}))
    else:
        body["samples"] = '<p class="note">No samples have been written yet.</p>'

    best = f"<p>{_e(_best_sentence(summary))}</p>"
    if summary.passage is None:
        body["passage"] = best + '<p class="note">best_passage.txt is written when training finishes; ' \
                                 "this run has not finished.</p>"
    else:
        body["passage"] = (best + f'<p class="muted">{len(summary.passage):,} characters sampled from the best model '
                           f"(temperature 1).</p>{_html_pre(summary.passage, 'text passage')}")

    gradcheck = summary.config.get("gradcheck")
    if isinstance(gradcheck, dict) and gradcheck:
        rows = [[f"<code>{_e(name)}</code>", _e(_fmt_error(error))] for name, error in gradcheck.items()]
        body["gradcheck"] = ("<p>Largest relative error |g<sub>a</sub> − g<sub>n</sub>| / max(eps, |g<sub>a</sub>| "
                             "+ |g<sub>n</sub>|) between analytic and centred-difference gradients, per parameter."
                             "</p>" + _html_table(["parameter", "max relative error"], rows, {1},
                                                             table_class="compact"))

    columns, rows, numeric = _source_table(summary)

    def source_cell(column: str, text: str) -> str:
        if column == "spec":
            return f'<span class="mono">{_e(text)}</span>'
        if column == "sha256":
            return f'<span class="mono" title="{_e(text)}">{_e(text[:12])}…</span>'
        return _e(text)

    rows = [[source_cell(column, text) for column, text in zip(columns, row)] for row in rows]
    corpus = _html_table(columns, rows, numeric, {0: "spec"}, table_class="sources")
    corpus += "<h3>Totals</h3>" + _html_table(None, [[_e(k), _e(v)] for k, v in _corpus_totals(summary)], {1},
                                              table_class="compact")
    if summary.chars is not None:
        chips = "".join(
            f'<span class="ch{" esc" if _readable_char(c) != c else ""}" title="{_e(_char_title(c))}">'
            f"{_html_text(_readable_char(c))}</span>" for c in summary.chars)
        corpus += (f"<h3>Vocabulary: {len(summary.chars)} characters, sorted by code point</h3>"
                   f'<div class="chars">{chips}</div><p class="muted">Escapes: \\n newline, \\t tab, ␣ space, '
                   "U+XXXX an invisible character, <i>end</i> the end-of-document marker U+2403. Hover a "
                   "character for its Unicode name.</p>")
    else:
        corpus += '<p class="note">vocab.json is missing.</p>'
    body["corpus"] = corpus

    rows = [[_e(group), f"<code>{_e(key)}</code>", f'<span class="mono">{_e(value)}</span>', _e(meaning)]
            for group, key, value, meaning in _config_rows(summary)]
    configuration = _html_table(["group", "setting", "value", "meaning"], rows)
    resumes = summary.config.get("resumes")
    if isinstance(resumes, list) and resumes:
        rows = [[_fmt(r.get("at_update"), ","), _e(_json_text(r.get("changes") or {})), _e(r.get("when", ""))]
                for r in resumes if isinstance(r, dict)]
        configuration += "<h3>Resumed</h3>" + _html_table(["at update", "changes", "when"], rows, {0})
    body["configuration"] = configuration
    return body


def _fmt_error(error) -> str:
    return f"{error:.2e}" if isinstance(error, (int, float)) else _json_text(error)


def _render_html(summary: RunSummary, figure_png: bytes | None) -> str:
    """The whole report page: inline CSS, the figure as a data: URI, no external resources, no scripts."""
    cards = "".join(f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{_e(value)}</div>'
                    f'<div class="detail">{_e(detail)}</div></div>' for label, value, detail in _headline(summary))
    body = _html_sections(summary, figure_png)
    present = [(anchor, title) for anchor, title in SECTIONS if anchor in body]
    nav = "".join(f'<a href="#{anchor}">{_e(title)}</a>' for anchor, title in present)
    sections = "\n".join(f'<section id="{anchor}"><h2>{_e(title)}</h2>\n{body[anchor]}</section>'
                         for anchor, title in present)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>textgen run {_e(summary.name)}</title>
<style>{STYLE}</style>
</head>
<body>
<header><div class="wrap">
<h1>textgen run <span class="mono">{_e(summary.name)}</span></h1>
<p class="sub">{_e(_subtitle(summary))}</p>
<div class="cards">{cards}</div>
</div></header>
<nav><div class="wrap">{nav}</div></nav>
<main class="wrap">
{sections}
</main>
</body>
</html>
"""


# ---------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    align = ["---:" if i in numeric else "---" for i in range(len(head))]
    lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_code(text: str) -> str:
    """A fenced block holding ``text`` verbatim: the fence is longer than any run of backticks inside."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}{'' if text.endswith(chr(10)) else chr(10)}{fence}"


def _render_markdown(summary: RunSummary, figure_name: str | None) -> str:
    """The report in Markdown, the figure referenced as the relative file ``figure_name``."""
    config = summary.config
    parts = [f"# textgen run {summary.name}",
             _subtitle(summary),
             _md_table(["measure", "value", "detail"], [[label, value, detail] for label, value, detail in _headline(summary)])]
    titles = dict(SECTIONS)

    parts.append(f"## {titles['loss']}")
    if figure_name is not None:
        parts += [f"![Loss curves of {summary.name}]({figure_name})", f"*{_caption(summary)}*"]
    else:
        parts.append("No metrics have been logged yet, so there is nothing to plot.")

    parts.append(f"## {titles['samples']}")
    if summary.samples:
        parts.append(f"{len(summary.samples)} samples of {config['train'].get('sample_length', '')} characters, "
                     "drawn from the model as it was at each sampling point (temperature 1).")
        for row in summary.samples:
            parts.append(f"### Update {row['update']:,} · epoch {_fmt(row.get('epoch'), '.2f')} · smooth loss "
                         f"{_fmt(row.get('smooth_loss'), '.3f')}")
            parts.append(_md_code(_visible(row.get("text", ""))))
    else:
        parts.append("No samples have been written yet.")

    parts += [f"## {titles['passage']}", _best_sentence(summary)]
    if summary.passage is None:
        parts.append("best_passage.txt is written when training finishes; this run has not finished.")
    else:
        parts += [f"{len(summary.passage):,} characters sampled from the best model (temperature 1).",
                  _md_code(_visible(summary.passage))]

    gradcheck = config.get("gradcheck")
    if isinstance(gradcheck, dict) and gradcheck:
        parts += [f"## {titles['gradcheck']}",
                  ("Largest relative error |ga − gn| / max(eps, |ga| + |gn|) between analytic and centred-difference "
                   "gradients, per parameter."),
                  _md_table(["parameter", "max relative error"],
                            [[f"`{name}`", _fmt_error(error)] for name, error in gradcheck.items()], {1})]

    parts.append(f"## {titles['corpus']}")
    columns, rows, numeric = _source_table(summary)
    parts.append(_md_table(columns, [[f"`{row[0]}`", *row[1:-1], f"`{row[-1][:12]}…`"] for row in rows], numeric))
    parts += ["### Totals", _md_table(["", ""], [[k, v] for k, v in _corpus_totals(summary)], {1})]
    if summary.chars is not None:
        parts += [f"### Vocabulary: {len(summary.chars)} characters, sorted by code point",
                  _md_code(" ".join(_readable_char(c) for c in summary.chars)),
                  "Escapes: \\n newline, \\t tab, ␣ space, U+XXXX an invisible character."]
    else:
        parts.append("vocab.json is missing.")

    parts.append(f"## {titles['configuration']}")
    parts.append(_md_table(["group", "setting", "value", "meaning"],
                           [[g, f"`{k}`", v, m] for g, k, v, m in _config_rows(summary)]))
    resumes = config.get("resumes")
    if isinstance(resumes, list) and resumes:
        parts += ["### Resumed", _md_table(["at update", "changes", "when"],
                                           [[_fmt(r.get("at_update"), ","), _json_text(r.get("changes") or {}),
                                             str(r.get("when", ""))] for r in resumes if isinstance(r, dict)], {0})]
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- the entry point


def write_report(run: Path) -> tuple[Path, Path]:
    """Write report.html (self-contained) and report.md (+ report_loss.png) into ``run``; returns both paths.

    CheckpointError if ``run`` is not a run folder; works on unfinished runs too (it says what is missing).
    """
    run = Path(run)
    summary = _read_run(run)
    figure_png = _loss_figure_png(summary) if summary.metrics else None
    html_path, md_path, figure_path = (run / name for name in REPORT_FILES)
    page = _render_html(summary, figure_png).encode("utf-8")
    markdown = _render_markdown(summary, figure_path.name if figure_png is not None else None).encode("utf-8")
    try:
        if figure_png is not None:
            atomic_write_bytes(figure_path, lambda stream: stream.write(figure_png))
        atomic_write_bytes(html_path, lambda stream: stream.write(page))
        atomic_write_bytes(md_path, lambda stream: stream.write(markdown))
    except OSError as error:
        raise TextgenError(f"{run}: cannot write the report ({error.strerror})") from None
    return html_path, md_path
