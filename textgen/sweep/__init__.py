"""Sweeps: many runs of one spec on Ray Tune (the optional ``sweep`` extra), each trial a normal run folder.

`read_spec` (spec.py) checks a spec without Ray; `start_sweep` and `resume_sweep` run it (runner.py does the Ray
part) and return a `SweepOutcome`; `sweep_table` reads how a sweep stands from its files, also without Ray.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textgen.errors import ConfigError, TextgenError, setting_name
from textgen.sweep.spec import SweepSpec, read_spec

__all__ = ["SweepOutcome", "SweepSpec", "read_spec", "resume_sweep", "start_sweep", "summarize", "sweep_table"]


def summarize(sweep_dir: Path, spec: SweepSpec, info: dict) -> list[dict]:
    """Rank the trials, mark the early-stopped ones in their folders, write the results and the report."""
    from textgen.sweep.report import write_sweep_report
    from textgen.sweep.results import mark_stopped, trial_rows, write_results

    rows = trial_rows(sweep_dir, spec.metric)
    mark_stopped(rows)
    write_results(sweep_dir, rows, spec.searched)
    write_sweep_report(sweep_dir, rows, spec.searched, info)
    return rows


@dataclass(frozen=True)
class SweepOutcome:
    """How a run of a sweep ended, and its ranked trials."""

    folder: Path
    spec: SweepSpec
    status: str  # "done", "stopped" (trials left to run) or "failed trials"
    signal: str | None  # "SIGTERM" when that stopped it
    rows: list[dict]  # the ranked trials (see textgen.sweep.results.trial_rows)

    @property
    def searched(self) -> tuple[str, ...]:
        """The settings the sweep searches."""
        return self.spec.searched

    @property
    def description(self) -> str:
        """What the sweep searches, in one phrase."""
        return describe(self.spec)

    @property
    def results_csv(self) -> Path:
        return self.folder / "results.csv"

    @property
    def report_html(self) -> Path:
        return self.folder / "sweep_report.html"

    @property
    def failed(self) -> list[dict]:
        """The trials that did not end well, by name."""
        from textgen.sweep.results import NOT_DONE

        return [row for row in sorted(self.rows, key=lambda r: r["trial"]) if row["status"] in NOT_DONE]

    @property
    def again(self) -> list[str]:
        """The failed trials that `resume_sweep` runs again (one whose run refused its input is not)."""
        from textgen.sweep.results import TO_RUN

        return [row["trial"] for row in self.failed if row["status"] in TO_RUN]


def describe(spec: SweepSpec) -> str:
    """What a sweep searches, in one phrase."""
    return "; ".join(d.describe() for d in spec.space) + (
        "" if spec.samples == 1 else f", {spec.samples} samples per grid point")


def start_sweep(spec_path: Path, out: Path | None = None, address: str | None = None, verbose: bool = False,
                on_start: Callable[[Path, str, int, int], None] | None = None) -> SweepOutcome:
    """Run the sweep of the spec at ``spec_path`` in a new folder ``out`` (default sweeps/<spec>-<time>), on this
    machine or the Ray cluster at ``address``. ``on_start(folder, what it searches, trials to run, trials)`` is called once
    Ray is up. A bad spec is refused before anything else, with or without Ray; a sweep refused or stopped
    before any trial made its folder leaves no folder behind (`textgen.stopping.Interrupted` then has ``kept``
    False)."""
    from textgen.sweep.runner import check_address, check_resources, import_tune, new_sweep

    if address is not None:
        check_address(address)  # before any folder is made
    spec = read_spec(spec_path)
    import_tune()
    if address is None:
        check_resources(spec, os.cpu_count() or 1, "this machine")
    folder = new_sweep(spec, out)
    return _run(spec, folder, address, verbose, on_start, new=True)


def resume_sweep(folder: Path, address: str | None = None, verbose: bool = False,
                 on_start: Callable[[Path, str, int, int], None] | None = None) -> SweepOutcome:
    """Run the trials of the sweep in ``folder`` that had not ended (see `start_sweep`)."""
    from textgen.sweep.runner import check_address, open_sweep

    if address is not None:
        check_address(address)
    spec, _ = open_sweep(folder)
    return _run(spec, folder, address, verbose, on_start, new=False)


def _run(spec: SweepSpec, folder: Path, address, verbose, on_start, new: bool) -> SweepOutcome:
    from textgen.stopping import Interrupted
    from textgen.sweep.runner import run_sweep

    def nothing_ran() -> bool:  # a new sweep refused or stopped before any trial made its folder leaves nothing
        if not new or any((folder / "trials").iterdir()):
            return False
        shutil.rmtree(folder)
        return True

    def started(to_run: int, trials: int) -> None:
        if on_start is not None:
            on_start(folder, describe(spec), to_run, trials)

    try:
        info = run_sweep(spec, folder, address=address, verbose=1 if verbose else 0, on_start=started)
    except TextgenError:
        nothing_ran()
        raise
    except Interrupted as stopped:  # a second signal, or a stop before Tune ran (checking the trials, Ray starting)
        from textgen.sweep.runner import sweep_status

        stopped.folder = folder
        stopped.kept = not nothing_ran()
        stopped.all_ended = stopped.kept and sweep_status(folder, spec.metric) == "done"  # as Ray stopped, after all
        raise
    rows = summarize(folder, spec, info)
    return SweepOutcome(folder, spec, info["status"], info["runs"][-1].get("signal") if info["runs"] else None, rows)


def sweep_table(folder: Path) -> SweepOutcome:
    """How the sweep in ``folder`` stands, from its files alone (no Ray needed)."""
    from textgen.sweep.results import trial_rows
    from textgen.sweep.runner import open_sweep, sweep_status

    spec, _ = open_sweep(folder)
    return SweepOutcome(folder, spec, sweep_status(folder, spec.metric), None, trial_rows(folder, spec.metric))


def check_sweep_call(spec: object, resume: object, status: object, out: object) -> None:
    """ConfigError unless one of a spec, a sweep to resume and a sweep to show is given (``out`` only with a spec)."""
    if sum(value is not None for value in (spec, resume, status)) != 1:
        raise ConfigError(f"give one of SPEC.toml, {setting_name('resume')} SWEEP_DIR or {setting_name('status')} "
                          "SWEEP_DIR")
    if resume is not None and out is not None:
        raise ConfigError(f"{setting_name('out')} is the sweep folder; with {setting_name('resume')} it is SWEEP_DIR "
                          "itself")
