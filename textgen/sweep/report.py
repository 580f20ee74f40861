"""sweep_report.html: one self-contained page for a sweep (the ranked table, every trial's validation curve
against updates and against characters read, and a sample from each of the best trials)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from textgen.errors import CheckpointError, TextgenError
from textgen.fs import write_bytes
from textgen.runfolder import RunFolder

BEST_SAMPLES = 3  # trials whose passage the page shows
SAMPLE_CHARACTERS = 600  # of each


def _curves(rows: list[dict]) -> list[tuple[str, list[int], list[int], list[float]]]:
    curves = []
    for row in rows:
        try:
            run = RunFolder(Path(row["folder"]))
            train = run.read_record().train
            metrics = run.metrics()
        except (CheckpointError, OSError):
            continue
        points = [r for r in metrics if r.get("val_bpc") is not None]
        if points:
            per_update = train.seq_length * train.batch_size
            chosen = ", ".join(format(v, ".3g") if isinstance(v, float) else str(v) for v in row["settings"].values())
            curves.append((f"#{row['rank']} {row['trial']} ({chosen})", [r["update"] for r in points],
                           [r["update"] * per_update for r in points], [r["val_bpc"] for r in points]))
    return curves


def _sample(row: dict) -> str | None:
    try:
        run = RunFolder(Path(row["folder"]))
        passage = run.passage()
        if passage is None:
            samples = run.samples()
            passage = samples[-1]["text"] if samples else None
    except (CheckpointError, OSError):
        return None
    return None if passage is None else passage[:SAMPLE_CHARACTERS]


def render(rows: list[dict], searched: tuple[str, ...], info: dict, figure_png: bytes | None) -> str:
    """The page's HTML."""
    e = html.escape

    def cell(value, spec=""):
        if value is None:
            return "–"
        return e(format(value, spec or (".4g" if isinstance(value, float) else "")))

    head = ["rank", "trial", *searched, "status", "updates", "val bpc", "val nats/char", "chars/s", "wall s"]
    body = []
    for row in rows:
        cells = [str(row["rank"]), e(row["trial"]), *(cell(row["settings"].get(name)) for name in searched),
                 e(row["status"]), f"{row['updates']:,}", cell(row["best_val_bpc"], ".4f"),
                 cell(row["best_val_loss"], ".4f"), cell(row["chars_per_sec"], ","), cell(row["wall_seconds"], ".0f")]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    figure = ("<p>No trial has a validation loss yet.</p>" if figure_png is None else
              f'<img alt="validation curves" src="data:image/png;base64,{base64.b64encode(figure_png).decode()}">')
    samples = []
    for row in rows[:BEST_SAMPLES]:
        text = _sample(row)
        if text is not None:
            samples.append(f"<h3>#{row['rank']} {e(row['trial'])} ({cell(row['best_val_bpc'], '.4f')} bits/char)</h3>"
                           f"<pre>{e(text)}</pre>")
    finished = sum(row["status"] == "finished" for row in rows)
    stopped = sum(row["status"] == "stopped early" for row in rows)
    wall_seconds = sum(run.get("wall_seconds", 0) for run in info.get("runs", []))  # of every run of the driver
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>textgen sweep: {e(Path(info.get('spec', 'sweep')).name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} td, th {{ padding: 0.25em 0.7em; border-bottom: 1px solid #ddd;
text-align: right; }} td:nth-child(2), th:nth-child(2) {{ text-align: left; }}
pre {{ white-space: pre-wrap; background: #f6f6f6; padding: 0.8em; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>Sweep: {e(Path(info.get('spec', 'sweep')).name)}</h1>
<p>{len(rows)} of {info.get('trials', len(rows))} trials: {finished} finished, {stopped} stopped early by ASHA;
status {e(str(info.get('status')))}; Ray {e(str(info.get('ray_version', '?')))}; driver wall time
{cell(wall_seconds, '.0f')} s. Ranked by the best held-out loss (lower is better).</p>
<h2>Trials</h2>
<table><thead><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr></thead><tbody>
{''.join(body)}
</tbody></table>
<h2>Validation curves</h2>
<p>Left against updates, right against characters read (updates × seq_length × batch size), so that runs of
different batch sizes compare fairly.</p>
{figure}
<h2>Samples from the best trials</h2>
{''.join(samples) or '<p>None yet.</p>'}
</body></html>
"""


def write_sweep_report(sweep_dir: Path, rows: list[dict], searched: tuple[str, ...], info: dict) -> Path:
    """Write sweep_report.html; a figure that cannot be drawn leaves the page without it."""
    from textgen.plots import sweep_figure

    curves = _curves(rows)
    try:
        figure = sweep_figure(curves) if curves else None
    except (TextgenError, ValueError):
        figure = None
    path = sweep_dir / "sweep_report.html"
    write_bytes(path, render(rows, searched, info, figure).encode("utf-8"))
    return path
