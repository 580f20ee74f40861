"""A sweep's results, read from SWEEP_DIR without Ray: one row per trial (its settings, status, updates, best
held-out loss, speed, wall time), ranked by the metric, written as results.jsonl and results.csv."""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from pathlib import Path

from textgen.errors import CheckpointError, setting_name
from textgen.fs import jsonl_bytes, read_json, write_bytes
from textgen.runfolder import RunFolder, holds_run, lock_holder

COLUMNS = ("rank", "trial", "status", "updates", "total_updates", "best_val_loss", "best_val_bpc", "chars_per_sec",
           "wall_seconds")


STATUSES = ("pending", "running", "ended", "error", "failed")  # of a trial in trials.json (see `_trial_row`)
# What a trial's row says (`_trial_row`) of one that --resume runs (again): not "finished" or "stopped early", and
# not "failed", which its run refused (its settings would be refused again)
TO_RUN = ("pending", "running", "unfinished", "error", "damaged")
NOT_DONE = ("failed", "error", "damaged")  # rows of trials that did not end well
TRIAL_NAME = re.compile(r"trial-[0-9]{3,}")  # a trial's name: its folder in SWEEP_DIR/trials


def read_info(folder: Path) -> dict:
    """SWEEP_DIR/sweep.json, checked to be a JSON object; CheckpointError naming it otherwise."""
    path = folder / "sweep.json"
    info = read_json(path, "sweep.json")
    if not isinstance(info, dict) or not isinstance(info.get("spec", ""), str) or not isinstance(
            info.get("runs", []), list):
        raise CheckpointError(f"{path}: not a sweep's sweep.json (an object with spec and runs); was it edited?")
    for number, run in enumerate(info.get("runs", []), start=1):
        if not isinstance(run, dict) or not _is_number(run.get("wall_seconds", 0)):
            raise CheckpointError(f"{path}: run {number} is not an object with its wall_seconds a number, got "
                                  f"{run!r}; was it edited?")
    return info


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


RESULT_NUMBERS = ("update", "characters", "val_loss", "val_bpc", "smooth_loss", "chars_per_sec", "time_total_s")


def _not_a_number(result: dict) -> str | None:
    """The first of a trial's last report's figures (RESULT_NUMBERS) that is not a number, if any."""
    return next((key for key in RESULT_NUMBERS if not _is_number(result.get(key, 0))), None)


def read_trials(folder: Path) -> dict:
    """SWEEP_DIR/trials.json (none if it is missing), every entry checked: a trial's name, its status, its
    settings and seed; CheckpointError naming the file and the trial otherwise."""
    path = folder / "trials.json"
    if not path.exists():
        return {}
    trials = read_json(path, "trials.json")
    if not isinstance(trials, dict):
        raise CheckpointError(f"{path}: not a sweep's trials.json (an object of trials); was it edited?")
    for name, entry in trials.items():
        problem = None
        if not TRIAL_NAME.fullmatch(name):
            problem = "is not a trial's name (trial-NNN)"
        elif not isinstance(entry, dict):
            problem = "is not an object"
        elif entry.get("status", "pending") not in STATUSES:
            problem = f"has status {entry.get('status')!r}, not one of {', '.join(STATUSES)}"
        elif not isinstance(entry.get("settings", {}), dict):
            problem = "has settings that are not an object"
        elif not isinstance(entry.get("last_result", {}), dict):
            problem = "has a last_result that is not an object"
        elif (key := _not_a_number(entry.get("last_result", {}))) is not None:
            problem = f"has a last_result whose {key} is {entry['last_result'][key]!r}, not a number"
        elif entry.get("seed") is not None and (not isinstance(entry["seed"], int) or isinstance(entry["seed"], bool)):
            problem = f"has seed {entry['seed']!r}, not a whole number"
        elif not isinstance(entry.get("reason", ""), str):
            problem = f"has reason {entry['reason']!r}, not text"
        if problem:
            raise CheckpointError(f"{path}: {name!r} {problem}; was it edited?")
    return trials


def _trial_row(trial_id: str, entry: dict, folder: Path, driven: bool) -> dict:
    """One trial as the sweep's table shows it, decided from what trials.json and the trial's run folder hold.

    Its status: "finished" (the run is complete), "stopped early" (Tune ended it before its last update: early
    stopping), "failed" (the run refused its input: ``reason`` says why), "error" (its worker failed more often
    than max_failures allows), "running" (while a driver runs the sweep: ``driven``), "unfinished" (it has a run
    folder, and no driver runs it), "damaged" (its run folder cannot be read), "pending" (no run folder yet, or
    no more: one removed is run again). --resume runs those of `TO_RUN`; --status shows them all.
    """
    row = {"trial": trial_id, "settings": entry.get("settings", {}), "folder": str(folder), "updates": 0,
           "total_updates": None, "best_val_loss": None, "best_val_bpc": None, "chars_per_sec": None,
           "wall_seconds": entry.get("last_result", {}).get("time_total_s"), "reason": entry.get("reason")}
    status = entry.get("status", "pending")
    if status == "running" and not driven:  # its driver was killed: nothing runs it now
        status = "pending"
    if not holds_run(folder):
        row["status"] = status if status in ("error", "failed", "running") else "pending"
        return row
    run = RunFolder(folder)
    try:
        record = run.read_record()
        metrics = run.metrics()
        update = run.load("last").training.update or 0
    except CheckpointError as error:
        row.update(status="damaged", reason=str(error))
        return row
    # the updates trained: the last checkpoint's, or the last logged row's when a stop came between checkpoints
    trained = max([update] + [r["update"] for r in metrics[-1:]])
    row.update(updates=trained, checkpoint_update=update, total_updates=record.total_updates)
    evaluations = [r for r in metrics if r.get("val_loss") is not None]
    if evaluations:
        best = min(evaluations, key=lambda r: r["val_loss"])
        row.update(best_val_loss=best["val_loss"], best_val_bpc=best["val_bpc"])
    speeds = [r["chars_per_sec"] for r in metrics if r.get("chars_per_sec")]
    row["chars_per_sec"] = round(statistics.median(speeds)) if speeds else None
    if run.is_finished():
        row.update(status="finished", reason=None)
    elif status in ("error", "failed", "running"):
        row["status"] = status
    elif status == "ended":
        row["status"] = "stopped early"
    else:
        row["status"] = "unfinished"  # the driver stopped: textgen sweep --resume continues it
    return row


def trial_rows(sweep_dir: Path, metric: str = "val_bpc") -> list[dict]:
    """Every trial of the sweep, ranked: lowest best ``metric`` first, trials without one last."""
    entries = read_trials(sweep_dir)
    driven = lock_holder(sweep_dir) is not None
    rows = [_trial_row(trial_id, entry, sweep_dir / "trials" / trial_id, driven) for trial_id, entry in entries.items()]
    key = "best_val_bpc" if metric == "val_bpc" else "best_val_loss"
    rows.sort(key=lambda r: (r[key] is None, r[key] if r[key] is not None else math.inf, r["trial"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def mark_stopped(rows: list[dict]) -> None:
    """Write into each early-stopped trial's run folder that the sweep stopped it, and at which update."""
    for row in rows:
        if row["status"] == "stopped early":
            RunFolder(Path(row["folder"])).write_sweep_verdict({
                "status": "stopped early", "by": "ASHA (early stopping)", "at_update": row["updates"],
                "of": row["total_updates"], "checkpoint_update": row["checkpoint_update"],
                "best_val_bpc": row["best_val_bpc"],
                "note": "the sweep stopped this trial because others were better at the same point; textgen "
                        f"train {setting_name('resume')} continues it from its last checkpoint"})


def write_results(sweep_dir: Path, rows: list[dict], searched: tuple[str, ...]) -> None:
    """results.jsonl (one JSON object per trial, settings nested) and results.csv (settings as columns)."""
    write_bytes(sweep_dir / "results.jsonl", jsonl_bytes(rows))
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow([*COLUMNS[:2], *searched, *COLUMNS[2:], "folder"])
    for row in rows:
        writer.writerow([row["rank"], row["trial"], *(row["settings"].get(name, "") for name in searched),
                         *(row[name] if row[name] is not None else "" for name in COLUMNS[2:]), row["folder"]])
    write_bytes(sweep_dir / "results.csv", text.getvalue().encode("utf-8"))
