"""Running a sweep on Ray Tune: Ray on this machine (every core) or an existing cluster, a Tuner over the spec's
search space with ASHA early stopping, a driver that can be stopped and resumed, and what each trial did
written down in SWEEP_DIR as it happens.

SWEEP_DIR holds: spec.toml (the spec as it was given), sweep.json (what was run, where, and how it went),
trials.json (each trial's status and settings, as Tune reports them), trials/<id>/ (each trial's run folder),
tune/ (Ray Tune's own experiment state and its TensorBoard and CSV logs), results.jsonl, results.csv and
sweep_report.html.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from textgen.errors import ConfigError
from textgen.fs import write_json
from textgen.sweep.results import read_info, read_trials
from textgen.sweep.spec import SweepSpec, draw_points, read_spec

log = logging.getLogger(__name__)

INSTALL_HINT = "textgen sweep needs Ray Tune: pip install -e '.[sweep]' in textgen's folder (or pip install 'ray[tune]')"
TUNE_NAME = "tune"  # SWEEP_DIR/tune: Ray Tune's experiment
BLAS_THREADS = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
CONNECT_SECONDS = 5.0  # how long --address may take to answer before it counts as unreachable


def import_tune():
    """``ray.tune``, or ConfigError saying how to install it."""
    # Ray's own SIGTERM handler (read as Ray is imported) prints a stack dump and may abort the driver before
    # textgen's stop can say anything
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    try:
        from ray import tune
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return tune


def default_sweep_dir(spec_path: Path) -> Path:
    return Path("sweeps") / f"{spec_path.stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def check_address(address: str) -> None:
    """ConfigError if ``address`` (auto, HOST:PORT or ray://HOST:PORT) names a port nothing answers on."""
    if address == "auto":
        return  # Ray finds the local cluster itself, and says so at once if there is none
    target = address.removeprefix("ray://")
    if target.startswith("["):  # an IPv6 literal, as in [::1]:6379
        host, bracket, rest = target[1:].partition("]")
        colon, port = rest[:1] == ":", rest[1:]
        colon = colon and bool(bracket)
    else:
        host, colon, port = target.rpartition(":")
        if ":" in host:
            raise ConfigError(f"--address {address!r}: an IPv6 address goes in brackets, as in [::1]:6379")
    if not colon or not port.isdigit() or not host:
        raise ConfigError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as error:
        raise ConfigError(f"--address {address}: cannot reach a Ray cluster there ({error.strerror or error}); "
                          "start one with `ray start --head` or check the address") from None


def start_ray(address: str | None, verbose: int = 0) -> None:
    """Ray on this machine with every core, or joined to the cluster at ``address``; BLAS at one thread a worker.
    Unless ``verbose``, Ray and Tune keep to errors (textgen says what happens, in its own lines)."""

    level = logging.WARNING if verbose else logging.ERROR
    logging.getLogger("ray").setLevel(level)
    runtime_env = {"env_vars": dict(BLAS_THREADS)}
    if address is None:
        _init_ray(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=bool(verbose),
                  runtime_env=runtime_env, logging_level=level)
        return
    check_address(address)
    try:
        _init_ray(address=address, log_to_driver=bool(verbose), runtime_env=runtime_env, logging_level=level)
    except ConnectionError as error:
        raise ConfigError(f"--address {address}: cannot join a Ray cluster there ({error})") from None


def _init_ray(**settings) -> None:
    """``ray.init(**settings)``, with the caller's SIGTERM handler kept: ray.init puts in one that exits at once
    (SystemExit), which would skip the sweep's own stop (SIGTERM stops it as SIGINT does). A SIGTERM while Ray
    starts is `Interrupted`, as it is anywhere else."""
    import ray

    from textgen.stopping import Interrupted

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    try:
        ray.init(**settings)
    except SystemExit as exited:
        if exited.code != signal.SIGTERM:
            raise
        raise Interrupted(signal.SIGTERM) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def check_resources(spec: SweepSpec, cpus: float, where: str) -> None:
    """ConfigError if a trial needs more CPUs than ``where`` has (Tune would wait for them forever)."""
    if spec.cpus_per_trial > cpus:
        raise ConfigError(f"{spec.path} [search]: cpus_per_trial = {spec.cpus_per_trial:g} is more than the "
                          f"{cpus:g} CPU(s) {where} has; no trial could start; lower it")


@contextmanager
def _sigterm_as_tunes_stop(this_run: dict) -> Iterator[None]:
    """While Tune runs, SIGTERM ends its run as SIGINT does (Tune stops the trials and returns; a second signal
    stops at once), ``this_run["signal"]`` saying so. Tune's stop is the handler it puts on SIGUSR1."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGUSR1"):
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum, frame) -> None:
        this_run["signal"] = "SIGTERM"
        signal.signal(signal.SIGTERM, previous)  # a second SIGTERM stops at once
        tunes = signal.getsignal(signal.SIGUSR1)
        if callable(tunes) and tunes is not stop:
            tunes(signum, frame)
        elif callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is stop:
            signal.signal(signal.SIGTERM, previous)


TO_RUN = ("pending", "running", "error")  # statuses of the trials a (resumed) sweep runs; "ended" ones are kept


def trial_name(index: int) -> str:
    return f"trial-{index:03d}"


class SweepLog:
    """Every trial's name, settings, status (pending, running, ended, error) and last report, in
    SWEEP_DIR/trials.json: written when the sweep is made and, through a Tune callback on the driver, whenever a
    trial starts, ends or fails (and every few seconds of reports)."""

    def __init__(self, folder: Path):
        self.path = folder / "trials.json"
        self.trials: dict = read_trials(folder)
        self.last_write = 0.0

    def save(self) -> None:
        write_json(self.path, self.trials)
        self.last_write = time.monotonic()

    def note(self, trial, status: str, result: dict | None = None, force: bool = True) -> None:
        entry = self.trials[trial.config["point"]["name"]]
        entry["status"] = status
        if result:
            entry["last_result"] = {k: result[k] for k in ("update", "characters", "val_loss", "val_bpc",
                                                           "smooth_loss", "chars_per_sec", "time_total_s", "node", "pid")
                                    if k in result}
        if force or time.monotonic() - self.last_write > 2.0:
            self.save()

    def make(self):
        """The Tune callback (made here, so that this module imports without Ray)."""
        tune = import_tune()
        sweep_log = self

        class Callback(tune.Callback):
            def on_trial_start(self, iteration, trials, trial, **info):
                sweep_log.note(trial, "running")

            def on_trial_result(self, iteration, trials, trial, result, **info):
                sweep_log.note(trial, "running", result, force=False)

            def on_trial_complete(self, iteration, trials, trial, **info):
                sweep_log.note(trial, "ended", trial.last_result)
                result = trial.last_result or {}
                done = sum(entry["status"] == "ended" for entry in sweep_log.trials.values())
                bpc = result.get("val_bpc")
                log.info("%s ended at update %s%s (%d of %d ended)", trial.config["point"]["name"],
                         f"{result.get('update', 0):,}", "" if bpc is None else f", val {bpc:.3f} bpc", done,
                         len(sweep_log.trials))

            def on_trial_error(self, iteration, trials, trial, **info):
                sweep_log.note(trial, "error", trial.last_result)
                log.warning("%s failed; textgen sweep --resume tries it again", trial.config["point"]["name"])

        return Callback()


def new_sweep(spec_path: Path, out: Path | None, seed: int | None = None) -> tuple[SweepSpec, Path]:
    """Check the spec and make SWEEP_DIR (refused if it holds anything): the spec copied into it, sweep.json and
    trials.json with every trial's settings drawn (from ``seed``, fresh if None)."""
    import secrets

    spec = read_spec(spec_path)
    folder = out or default_sweep_dir(spec_path)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"--out {folder}: already holds files (a sweep? continue it with textgen sweep --resume "
                          f"{folder}); give a new or empty folder")
    seed = secrets.randbits(32) if seed is None else seed
    points = draw_points(spec, seed)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "trials").mkdir(exist_ok=True)
        shutil.copyfile(spec_path, folder / "spec.toml")
    except OSError as error:
        raise ConfigError(f"--out {folder}: cannot make the sweep folder there ({error.strerror or error}); give a "
                          "folder you can write to") from None
    # each trial's seed, unless the spec sets or searches one: from the sweep's, so the same seed repeats the sweep
    seeded = "seed" not in spec.base and "seed" not in spec.searched
    write_json(folder / "trials.json", {trial_name(i): {"status": "pending", "settings": point,
                                                        **({"seed": (seed + i) % 2**32} if seeded else {})}
                                        for i, point in enumerate(points)})
    write_json(folder / "sweep.json", {"spec": str(spec.path), "seed": seed, "trials": len(points),
                                       "created": datetime.now().astimezone().isoformat(timespec="seconds"),
                                       "status": "new", "runs": []})
    return spec, folder


def open_sweep(folder: Path) -> tuple[SweepSpec, dict]:
    """A sweep made earlier: its spec (the original file if it is still there, else the copy) and sweep.json."""
    info_path = folder / "sweep.json"
    if not info_path.is_file() or not (folder / "spec.toml").is_file() or not (folder / "trials.json").is_file():
        raise ConfigError(f"{folder}: not a sweep folder (no sweep.json, spec.toml or trials.json); start one with "
                          "textgen sweep SPEC.toml")
    info = read_info(folder)
    read_trials(folder)  # a hand-edited trials.json is refused before anything starts
    original = Path(info.get("spec", ""))
    spec = read_spec(original if original.is_file() else folder / "spec.toml")
    return spec, info


def run_sweep(spec: SweepSpec, folder: Path, address: str | None = None, verbose: int = 0,
              on_ray_up: Callable[[], None] | None = None) -> dict:
    """Run the trials of the sweep in ``folder`` that have not ended (all of a new one) and return sweep.json;
    ``on_ray_up`` is called once Ray is up.

    A trial whose worker dies is started again (from its last checkpoint) up to ``spec.max_failures`` times.
    A stop of the driver (Ctrl-C) ends Tune's run; the trials it had not finished run on `run_sweep` again.
    """
    from textgen.runfolder import FolderLock

    import_tune()  # says how to install Ray before anything else
    folder = folder.resolve()
    # one driver per sweep: a second (--resume, say) would run the same trials into the same folders
    lock = FolderLock.acquire(folder, f"{folder}: the sweep is being run by")
    try:
        return _run_locked(spec, folder, address, verbose, on_ray_up)
    finally:
        lock.release()


def _run_locked(spec: SweepSpec, folder: Path, address: str | None, verbose: int,
                on_ray_up: Callable[[], None] | None) -> dict:
    """`run_sweep` with the sweep folder locked."""
    tune = import_tune()
    from ray.tune.schedulers import ASHAScheduler

    from textgen.sweep.trial import run_trial

    info = read_info(folder)
    sweep_log = SweepLog(folder)
    to_run = [{"name": name, "settings": entry["settings"], "seed": entry.get("seed")}
              for name, entry in sweep_log.trials.items() if entry["status"] in TO_RUN]
    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's older reporter, which is silent at verbose 0
    import ray

    try:
        start_ray(address, verbose)
        if to_run:
            check_resources(spec, ray.cluster_resources().get("CPU", 0),
                            "this machine" if address is None else "the cluster")
    except BaseException:  # refused, or stopped while Ray started: leave no Ray behind
        ray.shutdown()
        raise
    if on_ray_up is not None:
        on_ray_up()

    started = time.monotonic()
    this_run = {"when": datetime.now().astimezone().isoformat(timespec="seconds"), "address": address,
                "ray_version": ray.__version__, "trials": len(to_run)}
    info.update(status="running", ray_version=ray.__version__)
    info["runs"] = [*info.get("runs", []), this_run]
    write_json(folder / "sweep.json", info)
    try:
        if to_run:
            cpus = ray.cluster_resources().get("CPU", 1)
            at_once = spec.trials_at_once or max(1, int(cpus // spec.cpus_per_trial))
            trainable = tune.with_resources(
                tune.with_parameters(run_trial, base=spec.base, trials_dir=str(folder / "trials"),
                                     cpus=spec.cpus_per_trial),
                {"cpu": spec.cpus_per_trial})
            scheduler = None
            if spec.grace_updates is not None:
                # max_t beyond any run: ASHA stops a trial that reaches max_t, which would cut a finished run
                # short of its final checkpoint and passage
                scheduler = ASHAScheduler(time_attr="update", grace_period=spec.grace_updates,
                                          reduction_factor=spec.reduction_factor, max_t=10**15)
            name = TUNE_NAME if len(info["runs"]) == 1 else f"{TUNE_NAME}-{len(info['runs'])}"
            tuner = tune.Tuner(
                trainable,
                param_space={"point": tune.grid_search(to_run)},
                tune_config=tune.TuneConfig(metric=spec.metric, mode="min", scheduler=scheduler,
                                            max_concurrent_trials=at_once, reuse_actors=True,
                                            trial_dirname_creator=lambda trial: trial.config["point"]["name"]),
                run_config=tune.RunConfig(name=name, storage_path=str(folder), verbose=verbose,
                                          failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                                          callbacks=[sweep_log.make()]),
            )
            with _sigterm_as_tunes_stop(this_run):
                tuner.fit()
    finally:
        this_run["wall_seconds"] = round(time.monotonic() - started, 1)
        ray.shutdown()
        sweep_log = SweepLog(folder)  # as the callback left it
        for entry in sweep_log.trials.values():  # one Tune was running when the driver stopped: --resume continues it
            if entry["status"] == "running":
                entry["status"] = "pending"
        sweep_log.save()
        statuses = [entry["status"] for entry in sweep_log.trials.values()]
        info["status"] = "stopped" if "pending" in statuses else "failed trials" if "error" in statuses else "done"
        write_json(folder / "sweep.json", info)
    return info
