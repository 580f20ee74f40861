"""One trial of a sweep, as a Ray Tune function: a normal run folder in SWEEP_DIR/trials/<name>, started, or
resumed exactly from its last checkpoint when Tune starts the trial again (a retry after its worker died, or a
sweep resumed after its driver stopped). Each evaluation is reported to Tune, so early stopping can act.

Tune's config holds one ``point``: the trial's name (its folder) and its settings, drawn by the sweep itself
(`textgen.sweep.spec.draw_points`), so that a resumed sweep runs exactly the trials it had not finished.
"""

from __future__ import annotations

from pathlib import Path

FAILURE = "textgen_failure"  # the key of the report with which a trial says its run refused its input


def trial_settings(base: dict, point: dict, folder: Path, cpus: float = 1.0) -> dict:
    """The run settings of a trial: the sweep's base, the point's searched values and seed, the trial's folder,
    and unless set, as many threads as the trial has CPUs (a thread per CPU of the machine would compete)."""
    from textgen.settings import overridden

    seed = {} if point.get("seed") is None else {"seed": point["seed"]}
    settings = {**overridden(base, {**seed, **point["settings"]}), "out": str(folder)}
    if settings.get("threads") is None:
        settings["threads"] = max(1, min(int(cpus), settings.get("batch_size") or 1))
    return settings


def evaluation_report(row: dict, characters_per_update: int) -> dict:
    """What Tune is told of one evaluation row of metrics.jsonl: the metric, updates and characters read."""
    return {"update": row["update"], "characters": row["update"] * characters_per_update, "val_loss": row["val_loss"],
            "val_bpc": row["val_bpc"], "smooth_loss": row["smooth_loss"], "chars_per_sec": row["chars_per_sec"]}


class TuneReporter:
    """The run's callback that hands each evaluation to Tune (``tune.report``): the metric, and the updates and
    characters read so far (what early stopping counts, and what the sweep report draws)."""

    def __init__(self, report, characters_per_update: int):
        self.report = report
        self.characters_per_update = characters_per_update

    def on_log(self, record: dict) -> None:
        if record.get("val_loss") is not None:
            self.report(evaluation_report(record, self.characters_per_update))


def run_trial(config: dict, base: dict, trials_dir: str, cpus: float = 1.0) -> None:
    """Run (or continue) the trial of ``config["point"]`` in ``trials_dir``/<its name>.

    A run that refuses its input (a setting, the corpus, a loss that became non-finite) would refuse it again:
    it is reported to Tune as the trial's failure, with its one line, and the trial ends (Tune does not start
    it again). Anything else (a worker killed, memory or disk short, a bug) is raised, and Tune retries it.
    """
    from ray import tune

    from textgen.errors import LimitError, OutputError, RunFolderError, TextgenError, one_line

    try:
        _run_trial(config, base, trials_dir, cpus)
    except (LimitError, OutputError, RunFolderError):
        raise  # may go away: memory or disk freed, another process gone
    except TextgenError as error:
        tune.report({FAILURE: one_line(str(error)), "val_bpc": None, "val_loss": None})


def _run_trial(config: dict, base: dict, trials_dir: str, cpus: float) -> None:
    import ray
    from ray import tune

    from textgen.run import resume_run, start_planned
    from textgen.runfolder import RunFolder, holds_run
    from textgen.settings import plan_run

    point = config["point"]
    folder = Path(trials_dir) / point["name"]
    plan = plan_run(trial_settings(base, point, folder, cpus), f"trial {point['name']}")
    node = ray.get_runtime_context().get_node_id()

    def report(metrics: dict) -> None:
        tune.report({**metrics, "node": node})

    reporter = TuneReporter(report, plan.train.seq_length * plan.train.batch_size)
    if holds_run(folder):
        if RunFolder(folder).is_finished():  # it finished before Tune saw it end: report what it has
            summary = finished_summary(folder, reporter.characters_per_update)
            if summary is not None:
                report(summary)
            return
        resume_run(folder, progress=False, callbacks=reporter)
    else:
        start_planned(plan, progress=False, callbacks=reporter)


def finished_summary(folder: Path, characters_per_update: int) -> dict | None:
    """The last evaluation of a finished trial's run folder, as its reports said it."""
    from textgen.runfolder import RunFolder

    rows = [row for row in RunFolder(folder).metrics() if row.get("val_loss") is not None]
    if not rows:
        return None
    return evaluation_report(rows[-1], characters_per_update)
