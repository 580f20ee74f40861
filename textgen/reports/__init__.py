"""Run reports: one self-contained HTML page and its Markdown twin summarising a run folder, and a figure that
overlays several runs' loss curves. A run is read only through `RunFolder`; figures come from `textgen.plots`."""

from __future__ import annotations

from pathlib import Path

from textgen.errors import CheckpointError, ConfigError, OutputError, setting_name
from textgen.fs import write_bytes
from textgen.plots import comparison_figure, report_figure
from textgen.reports.html import render_html
from textgen.reports.markdown import render_markdown
from textgen.reports.summary import RunSummary, curves, read_run
from textgen.runfolder import RunFolder

__all__ = ["RunSummary", "plot_runs", "read_run", "write_report"]


def write_report(run: Path) -> tuple[Path, Path]:
    """Write report.html (self-contained) and report.md (+ its figure) into ``run``; returns both paths.

    CheckpointError if ``run`` is not a run folder; works on unfinished runs too (it says what is missing).
    """
    for attempt in range(3):
        folder = RunFolder(run)  # one descriptor of the folder: what is read and written belongs to one run
        try:
            return _write_report(folder)
        except OutputError:
            if attempt == 2 or not folder.replaced():
                raise
            # --force swapped a new run in while this report was made from the old one: report the new one


def _write_report(folder: RunFolder) -> tuple[Path, Path]:
    summary = read_run(folder)
    stamp = folder.report_stamp() + "\n"  # the last line: what the report was made from (see report_is_current)
    figure_png = report_figure(curves(summary)) if summary.metrics else None
    page = render_html(summary, figure_png) + stamp
    markdown = render_markdown(summary, folder.report_figure_name if figure_png is not None else None) + stamp
    return folder.write_report(page, markdown, figure_png)


def plot_runs(runs: list[Path], out: Path) -> Path:
    """Overlay several runs' smooth loss (solid) and validation loss (dashed) in one PNG at ``out``.

    CheckpointError for a folder that is not a run or has no metrics yet.
    """
    if not runs:
        raise CheckpointError("no run folders given to compare")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"{setting_name('out')} {out}: the figure is a PNG; give a name ending in .png")
    target = out.resolve() if out.is_symlink() else out  # a link is written through, not replaced
    if target.exists() and not target.is_file():
        raise OutputError(f"{setting_name('out')} {out}: exists and is not a regular file (a folder or a device); "
                          "choose another path")
    summaries = []
    for run in runs:
        summary = read_run(RunFolder(run))
        if not summary.metrics:
            raise CheckpointError(f"{run}/metrics.jsonl: missing or empty; the run has logged no losses yet")
        summaries.append(summary)
    names = [s.name for s in summaries]
    labels = names if len(set(names)) == len(names) else [str(s.folder) for s in summaries]
    write_bytes(target, comparison_figure([curves(s, label) for s, label in zip(summaries, labels)]))
    return out
