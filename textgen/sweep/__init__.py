"""Sweeps: many runs of one spec on Ray Tune (the optional ``sweep`` extra), each trial a normal run folder.

`read_spec` (spec.py) checks a spec without Ray; `run_sweep` (runner.py) runs or resumes it; `summarize` writes
results.jsonl, results.csv and sweep_report.html from SWEEP_DIR and returns the ranked rows, also without Ray.
"""

from __future__ import annotations

from pathlib import Path

from textgen.sweep.spec import SweepSpec, read_spec

__all__ = ["SweepSpec", "read_spec", "summarize"]


def summarize(sweep_dir: Path, spec: SweepSpec, info: dict) -> list[dict]:
    """Rank the trials, mark the early-stopped ones in their folders, write the results and the report."""
    from textgen.sweep.report import write_sweep_report
    from textgen.sweep.results import mark_stopped, trial_rows, write_results

    rows = trial_rows(sweep_dir, spec.metric)
    mark_stopped(rows)
    write_results(sweep_dir, rows, spec.searched)
    write_sweep_report(sweep_dir, rows, spec.searched, info)
    return rows
