"""Running a sweep on Ray Tune: Ray on this machine (every core) or an existing cluster, a Tuner over the spec's
search space with ASHA early stopping, a driver that can be stopped and resumed, and what each trial did
written down in SWEEP_DIR as it happens.

SWEEP_DIR holds: spec.toml (the spec as it was given), sweep.json (what was run, where, and how it went),
trials.json (each trial's status and settings, as Tune reports them), trials/<id>/ (each trial's run folder),
tune/ (Ray Tune's own experiment state and its TensorBoard and CSV logs), results.jsonl, results.csv and
sweep_report.html.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path

from textgen.errors import ConfigError, one_line, setting_name
from textgen.fs import write_bytes, write_json
from textgen.sweep.results import NOT_DONE, TO_RUN, read_info, read_trials, trial_rows
from textgen.sweep.spec import SweepSpec, check_trial_settings, draw_points, read_spec
from textgen.sweep.trial import FAILURE

log = logging.getLogger(__name__)

INSTALL_HINT = "textgen sweep needs Ray Tune: pip install -e '.[sweep]' in textgen's folder (or pip install 'ray[tune]')"
TUNE_NAME = "tune"  # SWEEP_DIR/tune: Ray Tune's experiment
BLAS_THREADS = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
CONNECT_SECONDS = 5.0  # how long --address may take to answer before it counts as unreachable
# HTTP/2's client connection preface and an empty SETTINGS frame: a gRPC server (as Ray's GCS is) answers with a
# SETTINGS frame of its own; anything else there (a web server, say) made ray.init wait for many minutes
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


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
            raise ConfigError(f"{setting_name('address')} {address!r}: an IPv6 address goes in brackets, as in "
                              "[::1]:6379")
    if not colon or not port.isdigit() or not host:
        raise ConfigError(f"{setting_name('address')} {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS) as connection:
            if os.environ.get("RAY_USE_TLS", "0") not in ("", "0"):
                return  # gRPC inside TLS: nothing more to see before ray.init
            connection.sendall(HTTP2_PREFACE)
            answer = connection.recv(9, socket.MSG_WAITALL)  # the server's first frame's header
    except OSError as error:
        raise ConfigError(f"{setting_name('address')} {address}: cannot reach a Ray cluster there "
                          f"({error.strerror or error}); "
                          "start one with `ray start --head` or check the address") from None
    if len(answer) < 9 or answer[3] != 4:  # a Ray cluster speaks gRPC: HTTP/2, which begins with a SETTINGS frame
        raise ConfigError(f"{setting_name('address')} {address}: something answers there, but not a Ray cluster (it "
                          "does not speak gRPC, as Ray does); check the address (ray start --head prints it)")


def start_ray(address: str | None, verbose: int = 0) -> None:
    """Ray on this machine with every core, or joined to the cluster at ``address``; BLAS at one thread a worker.
    Unless ``verbose``, Ray and Tune keep to errors (textgen says what happens, in its own lines)."""

    level = logging.WARNING if verbose else logging.ERROR
    logging.getLogger("ray").setLevel(level)
    runtime_env = {"env_vars": dict(BLAS_THREADS)}
    if address is None:
        _init_ray(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=bool(verbose),
                  runtime_env=runtime_env, logging_level=level)
    else:
        check_address(address)
        try:
            _init_ray(address=address, log_to_driver=bool(verbose), runtime_env=runtime_env, logging_level=level)
        except ConnectionError as error:
            raise ConfigError(f"{setting_name('address')} {address}: cannot join a Ray cluster there "
                              f"({error})") from None
    if not verbose:
        for handler in logging.getLogger("ray").handlers:  # as ray.init left them
            handler.addFilter(ONE_LINE)


class _OneLine(logging.Filter):
    """Ray's own log records in one line each: a traceback Ray logs with an error it goes on from (Tune failing to
    save its experiment state on a full disk, say) gives way to its exception's line (-v shows it whole)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage().rstrip(': ')}: {type(error).__name__}: {one_line(error)}"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


ONE_LINE = _OneLine()


def _init_ray(**settings) -> None:
    """``ray.init(**settings)``, with the caller's SIGTERM handler kept: ray.init puts in one that exits at once
    (SystemExit), which would skip the sweep's own stop (SIGTERM stops it as SIGINT does). A stop while Ray
    starts its processes on this machine waits until they are up (`stops_deferred`), and is then `Interrupted`,
    as it is anywhere else: cut short, ray.init would leave some of them behind."""
    import ray

    from textgen.stopping import Interrupted

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    local = "address" not in settings
    try:
        with stops_deferred() if local else nullcontext(), _apart_from_the_driver() if local else nullcontext(), \
                _without_rays_sigterm_handler() if local else nullcontext():
            ray.init(**settings)
    except SystemExit as exited:
        if exited.code != signal.SIGTERM:
            raise
        raise Interrupted(signal.SIGTERM) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def _without_rays_sigterm_handler() -> Iterator[None]:
    """ray.init without the SIGTERM handler it puts in first (SystemExit at once), so that a SIGTERM while Ray starts
    waits for it as SIGINT does (`stops_deferred`): cut short, ray.init left its agents (DashboardAgent,
    RuntimeEnvAgent) running for a minute or more after the driver had gone."""
    from ray._private import utils

    setter = getattr(utils, "set_sigterm_handler", None)
    if not callable(setter):  # not the Ray this was written for
        yield
        return
    utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        utils.set_sigterm_handler = setter


@contextmanager
def _apart_from_the_driver() -> Iterator[None]:
    """Ray's processes on this machine (gcs_server and raylet, which start the rest) started in a session of
    their own, as Ray does on Windows: a signal to the driver's process group (Ctrl-C in a terminal, the SIGTERM
    that ``timeout`` or a job scheduler sends) reaches the driver only, which stops Ray in order. (Sent to them
    too, it killed gcs_server at once, and the driver waited 60 s for it and exited with status 1.) They
    still end with the driver, whatever ends it: Ray ties them to it."""
    from ray._private import services

    popen = getattr(services, "ConsolePopen", None)
    if not isinstance(popen, type):  # not the Ray this was written for: its processes stay in the group
        yield
        return

    class ApartPopen(popen):
        def __init__(self, *args, **kwargs):
            kwargs["start_new_session"] = True
            super().__init__(*args, **kwargs)

    services.ConsolePopen = ApartPopen
    try:
        yield
    finally:
        services.ConsolePopen = popen


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOPS_DEFERRED = 2  # signals that wait for Ray's start or stop to finish; one more acts at once


@contextmanager
def stops_deferred() -> Iterator[None]:
    """A block that a stop (SIGINT, SIGTERM) does not cut short: the first STOPS_DEFERRED signals wait for its
    end and are then handed to the handlers that were in place; one more acts at once (Ray hung, say).

    For starting and stopping Ray, which cut short leave its processes (raylet, gcs_server, its agents and
    workers) running after the driver has gone, and the driver exiting with status 1.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    received: list[int] = []

    def deliver(signum: int) -> None:
        handler = previous[signum]
        if callable(handler):
            handler(signum, None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), signum)

    def defer(signum, frame) -> None:
        received.append(signum)
        if len(received) > STOPS_DEFERRED:
            restore()
            deliver(signum)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    for sig in STOP_SIGNALS:
        signal.signal(sig, defer)
    try:
        yield
    finally:
        restore()
    for signum in received[:STOPS_DEFERRED]:
        deliver(signum)


def stop_ray() -> None:
    """``ray.shutdown()``, which a stop does not cut short (`stops_deferred`)."""
    import ray

    with stops_deferred():
        ray.shutdown()


def check_resources(spec: SweepSpec, cpus: float, where: str) -> None:
    """ConfigError if a trial needs more CPUs than ``where`` has (Tune would wait for them forever)."""
    if spec.cpus_per_trial > cpus:
        raise ConfigError(f"{spec.path} [search]: cpus_per_trial = {spec.cpus_per_trial:g} is more than the "
                          f"{cpus:g} CPU(s) {where} has; no trial could start; lower it")


@contextmanager
def _stops_as_tunes(this_run: dict) -> Iterator[None]:
    """While Tune runs, the first SIGINT or SIGTERM ends its run (Tune stops the trials and returns), and
    ``this_run["signal"]`` says which; a second one goes to the handler that was in place (textgen's, which
    stops at once). Tune's stop is the handler it puts on SIGUSR1; its own SIGINT handler is kept out
    (TUNE_DISABLE_SIGINT_HANDLER), so that both signals are told apart and counted alike."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGUSR1"):
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def stop(signum, frame) -> None:
        tunes = signal.getsignal(signal.SIGUSR1)
        if "signal" not in this_run and callable(tunes):
            this_run["signal"] = signal.Signals(signum).name
            tunes(signum, frame)
        elif callable(previous[signum]):
            previous[signum](signum, frame)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _stops_through_ray() -> Iterator[None]:
    """While the driver uses Ray, a stop that the handlers in place raise (`Interrupted`: a second Ctrl-C, say) goes
    through Ray's compiled code as the one exception that code passes on, KeyboardInterrupt, and is `Interrupted`
    again once out of it (raised while ray.wait waited, it came out as a SystemError traceback)."""
    from textgen.stopping import Interrupted

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    raised: list[Interrupted] = []

    def stop(signum, frame) -> None:
        try:
            previous[signum](signum, frame)
        except Interrupted as stopped:
            raised.append(stopped)
            raise KeyboardInterrupt from None

    for sig, handler in previous.items():
        if callable(handler):
            signal.signal(sig, stop)
    try:
        yield
    except KeyboardInterrupt:
        if not raised:
            raise
        raise raised[0] from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if raised:  # a KeyboardInterrupt that Ray or Tune kept to themselves: the stop still stops
        raise raised[0]


def trial_name(index: int) -> str:
    return f"trial-{index:03d}"


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def failure_cause(trial) -> str:
    """What a failed trial's worker raised, in one line: the exception's own line of Ray's report (a traceback:
    ``textgen.errors.LimitError: ...``), or its first line (a worker that died: ``The actor died ...``)."""
    try:
        text = Path(trial.error_file).read_text(encoding="utf-8", errors="replace") if trial.error_file else ""
    except OSError:
        text = ""
    report = re.split(r"^Failure # \d+ .*$", text, flags=re.M)[-1]  # Tune appends one report per failure
    lines = [line.strip() for line in report.splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"[\w.]+(Error|Exception|Interrupt)\b.*?: ", line)]
    if "worker process has died" in report:
        return "its worker process died (killed, out of memory, or crashed)"
    cause = raised[-1] if raised else lines[0] if lines else "its worker process failed"
    return one_line(re.sub(r"^textgen\.errors\.\w+: ", "", ANSI.sub("", cause))[:300])


ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the names in its reports


class SweepLog:
    """Every trial's name, settings, status (pending, running, ended, failed, error), the reason it failed and
    its last report, in SWEEP_DIR/trials.json: written when the sweep is made and, through a Tune callback on the
    driver, whenever a trial starts, ends or fails (and every few seconds of reports)."""

    def __init__(self, folder: Path, running: int = 0):
        self.path = folder / "trials.json"
        self.trials: dict = read_trials(folder)
        self.last_write = 0.0
        self.to_go = running  # trials this driver has still to run

    def save(self) -> None:
        write_json(self.path, self.trials)
        self.last_write = time.monotonic()

    def note(self, trial, status: str, result: dict | None = None, force: bool = True, reason: str | None = None
             ) -> None:
        entry = self.trials[trial.config["point"]["name"]]
        entry["status"] = status
        if reason is not None:
            entry["reason"] = reason
        else:
            entry.pop("reason", None)
        if result and FAILURE not in result:
            entry["last_result"] = {k: result[k] for k in ("update", "characters", "val_loss", "val_bpc",
                                                           "smooth_loss", "chars_per_sec", "time_total_s", "node", "pid")
                                    if k in result}
        if force or time.monotonic() - self.last_write > 2.0:
            self.save()

    def make(self, max_failures: int):
        """The Tune callback (made here, so that this module imports without Ray)."""
        from textgen.runfolder import RunFolder, holds_run

        tune = import_tune()
        sweep_log = self

        def over(trial) -> tuple[str, str]:
            """The trial's name, and how many this driver has still to run now that it is over."""
            sweep_log.to_go -= 1
            return trial.config["point"]["name"], (f"{plural(sweep_log.to_go, 'trial')} to go" if sweep_log.to_go
                                                   else "the last one")

        class Callback(tune.Callback):
            def on_trial_start(self, iteration, trials, trial, **info):
                sweep_log.note(trial, "running")

            def on_trial_result(self, iteration, trials, trial, result, **info):
                if FAILURE in result:  # the run refused its input: said once the trial ends
                    sweep_log.note(trial, "failed", reason=result[FAILURE])
                else:
                    sweep_log.note(trial, "running", result, force=False)

            def on_trial_complete(self, iteration, trials, trial, **info):
                result = trial.last_result or {}
                name, left = over(trial)
                if FAILURE in result:
                    sweep_log.note(trial, "failed", reason=result[FAILURE])
                    log.warning("%s failed: %s (%s)", name, result[FAILURE], left)
                    return
                sweep_log.note(trial, "ended", result)
                bpc = result.get("val_bpc")
                folder = sweep_log.path.parent / "trials" / name
                finished = holds_run(folder) and RunFolder(folder).is_finished()
                # a finished run's last update, not its last evaluation's (a run of 130 updates that evaluates
                # every 50 last reported at 100)
                update = RunFolder(folder).read_record().total_updates if finished else result.get("update", 0)
                log.info("%s %s at update %s%s (%s)", name, "finished" if finished else "stopped early",
                         f"{update:,}", "" if bpc is None else f", last val {bpc:.3f} bpc", left)

            def on_trial_recover(self, iteration, trials, trial, **info):
                log.warning("%s: %s; started again from its last checkpoint (retry %d of %d)",
                            trial.config["point"]["name"], failure_cause(trial), trial.num_failures, max_failures)

            def on_trial_error(self, iteration, trials, trial, **info):
                cause = failure_cause(trial)
                sweep_log.note(trial, "error", trial.last_result, reason=cause)
                name, left = over(trial)
                retries = "no retries" if not max_failures else \
                    f"after {max_failures} {'retry' if max_failures == 1 else 'retries'}"
                log.warning("%s failed: %s (%s; %s)", name, cause, retries, left)

        return Callback()


class _QuietTune(logging.Filter):
    """Drops Tune's own closing line about trials that did not complete: each was said in one line already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Trials did not complete")


QUIET_TUNE = _QuietTune()


def new_sweep(spec: SweepSpec, out: Path | None, seed: int | None = None) -> Path:
    """Make SWEEP_DIR for ``spec`` (refused if it holds anything): the spec copied into it (the text that was
    read: the file is not read again), sweep.json and trials.json with every trial's settings drawn (from
    ``seed``, fresh if None)."""
    import secrets

    folder = out or default_sweep_dir(spec.path)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"{setting_name('out')} {folder}: already holds files (a sweep? continue it with textgen "
                          f"sweep {setting_name('resume')} {folder}); give a new or empty folder")
    seed = secrets.randbits(32) if seed is None else seed
    points = draw_points(spec, seed)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "trials").mkdir(exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{setting_name('out')} {folder}: cannot make the sweep folder there "
                          f"({error.strerror or error}); give a folder you can write to") from None
    write_bytes(folder / "spec.toml", spec.text.encode("utf-8"))
    # each trial's seed, unless the spec sets or searches one: from the sweep's, so the same seed repeats the sweep
    seeded = "seed" not in spec.base and "seed" not in spec.searched
    write_json(folder / "trials.json", {trial_name(i): {"status": "pending", "settings": point,
                                                        **({"seed": (seed + i) % 2**32} if seeded else {})}
                                        for i, point in enumerate(points)})
    write_json(folder / "sweep.json", {"spec": str(spec.path), "seed": seed, "trials": len(points),
                                       "created": datetime.now().astimezone().isoformat(timespec="seconds"),
                                       "status": "new", "runs": []})
    return folder


def open_sweep(folder: Path) -> tuple[SweepSpec, dict]:
    """A sweep made earlier: its spec and sweep.json. The spec is SWEEP_DIR/spec.toml, the copy made when the
    sweep started (an edit of the original since must not reach the trials not yet run), its relative paths
    read from the original's folder. Every trial of trials.json must hold values the spec's search gives."""
    info_path = folder / "sweep.json"
    if not info_path.is_file() or not (folder / "spec.toml").is_file() or not (folder / "trials.json").is_file():
        raise ConfigError(f"{folder}: not a sweep folder (no sweep.json, spec.toml or trials.json); start one with "
                          "textgen sweep SPEC.toml")
    info = read_info(folder)
    trials = read_trials(folder)  # a hand-edited trials.json is refused before anything starts
    spec = read_spec(folder / "spec.toml", paths_from=Path(info.get("spec") or folder / "spec.toml").parent)
    path = folder / "trials.json"
    for name, entry in trials.items():
        spec.check_point(entry.get("settings"), f"{path}: {name}")
        if ("seed" in entry) != ("seed" not in spec.base and "seed" not in spec.searched):
            raise ConfigError(f"{path}: {name} {'has' if 'seed' in entry else 'lacks'} a seed of its own, which the "
                              "sweep did not draw; was it edited?")
        seed = {"seed": entry["seed"]} if "seed" in entry else {}
        check_trial_settings(spec, {**entry["settings"], **seed}, f"{path}: {name}")  # as its run would
    return spec, info


def trials_to_run(folder: Path, metric: str = "val_bpc") -> dict[str, dict]:
    """The trials (name -> trials.json entry) that running the sweep runs: those whose row says so (`TO_RUN`),
    as --status shows them."""
    entries = read_trials(folder)
    return {row["trial"]: entries[row["trial"]] for row in sorted(trial_rows(folder, metric), key=lambda r: r["trial"])
            if row["status"] in TO_RUN}


def run_sweep(spec: SweepSpec, folder: Path, address: str | None = None, verbose: int = 0,
              on_start: Callable[[int, int], None] | None = None) -> dict:
    """Run the trials of the sweep in ``folder`` that have not ended (all of a new one) and return sweep.json;
    ``on_start(to run, in all)`` is called once Ray is up (or at once, with none to run: then Ray does not
    start). Every trial to run is checked first, as its run
    would check it (`textgen.sweep.check.check_trials`), before Ray starts.

    A trial whose worker dies is started again (from its last checkpoint) up to ``spec.max_failures`` times;
    one whose run refuses its input is not (it is "failed", with the reason). A stop of the driver (Ctrl-C)
    ends Tune's run; the trials it had not finished run on `run_sweep` again.
    """
    from textgen.runfolder import FolderLock

    import_tune()  # says how to install Ray before anything else
    folder = folder.resolve()
    # one driver per sweep: a second (--resume, say) would run the same trials into the same folders
    lock = FolderLock.acquire(folder, f"{folder}: the sweep is being run by")
    try:
        return _run_locked(spec, folder, address, verbose, on_start)
    finally:
        lock.release()


def _run_locked(spec: SweepSpec, folder: Path, address: str | None, verbose: int,
                on_start: Callable[[int, int], None] | None) -> dict:
    """`run_sweep` with the sweep folder locked."""
    from textgen.stopping import Interrupted

    this_run: dict = {}
    try:
        return _run_with(spec, folder, address, verbose, on_start, this_run)
    except Interrupted as stopped:  # a second signal (while Tune stopped, or Ray): the stop is the first one's
        stopped.signum = getattr(signal, this_run.get("signal", ""), stopped.signum)
        raise


def _run_with(spec: SweepSpec, folder: Path, address: str | None, verbose: int,
              on_start: Callable[[int, int], None] | None, this_run: dict) -> dict:
    from textgen.sweep.check import check_trials

    info = read_info(folder)
    to_run = trials_to_run(folder, spec.metric)
    at_once = None
    if address is None:
        cpus = os.cpu_count() or 1
        at_once = min(len(to_run), spec.trials_at_once or max(1, int(cpus // spec.cpus_per_trial)))
    longest = check_trials(spec, to_run, folder / "trials", at_once, new=not info.get("runs"))
    tune = import_tune()
    from ray.tune.schedulers import ASHAScheduler

    from textgen.sweep.trial import run_trial

    sweep_log = SweepLog(folder, len(to_run))
    if not to_run:
        if on_start is not None:
            on_start(0, len(sweep_log.trials))
        info["status"] = sweep_status(folder, spec.metric)
        write_json(folder / "sweep.json", info)
        return info
    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's older reporter, which is silent at verbose 0
        os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")  # each failure is one line of textgen's
        logging.getLogger("ray.tune.tune").addFilter(QUIET_TUNE)
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # the sweep's own handler stops Tune (`_stops_as_tunes`)
    # trials read what check_trials read: a relative path or a named corpus from the driver's folder, not the
    # trial's (Tune would change into SWEEP_DIR/tune/...)
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    import ray

    with _stops_through_ray():  # from here on a stop may be raised inside Ray's compiled code
        try:
            start_ray(address, verbose)
            check_resources(spec, ray.cluster_resources().get("CPU", 0),
                            "this machine" if address is None else "the cluster")
        except BaseException:  # refused, or stopped while Ray started: leave no Ray behind
            stop_ray()
            raise
        started = time.monotonic()
        this_run.update({"when": datetime.now().astimezone().isoformat(timespec="seconds"), "address": address,
                         "ray_version": ray.__version__, "trials": len(to_run)})
        info.update(status="running", ray_version=ray.__version__)
        info["runs"] = [*info.get("runs", []), this_run]
        try:
            for name in to_run:  # as --status said: a trial whose run folder was removed runs again from its start
                sweep_log.trials[name]["status"] = "pending"
                sweep_log.trials[name].pop("reason", None)
            sweep_log.save()
            write_json(folder / "sweep.json", info)
            if on_start is not None:
                on_start(len(to_run), len(sweep_log.trials))
            cpus = ray.cluster_resources().get("CPU", 1)
            at_once = spec.trials_at_once or max(1, int(cpus // spec.cpus_per_trial))
            points = [{"name": name, "settings": entry["settings"], "seed": entry.get("seed")}
                      for name, entry in to_run.items()]
            trainable = tune.with_resources(
                tune.with_parameters(run_trial, base=spec.base, trials_dir=str(folder / "trials"),
                                     cpus=spec.cpus_per_trial),
                {"cpu": spec.cpus_per_trial})
            scheduler = None
            if spec.grace_updates is not None:
                # max_t beyond every trial: ASHA stops a trial that reaches max_t, which would cut a finished
                # run short of its final checkpoint and passage
                scheduler = ASHAScheduler(time_attr="update", grace_period=spec.grace_updates,
                                          reduction_factor=spec.reduction_factor,
                                          max_t=max(longest, spec.grace_updates) + 1)
            # Tune's experiment folder for this run of the driver: tune, tune-2, ..., one that nothing is in the way of
            # (a file of that name, a folder left by an edited sweep.json)
            names = (TUNE_NAME if number == 1 else f"{TUNE_NAME}-{number}"
                     for number in itertools.count(len(info["runs"])))
            name = this_run["tune"] = next(name for name in names if not os.path.lexists(folder / name))
            tuner = tune.Tuner(
                trainable,
                param_space={"point": tune.grid_search(points)},
                tune_config=tune.TuneConfig(metric=spec.metric, mode="min", scheduler=scheduler,
                                            max_concurrent_trials=at_once, reuse_actors=True,
                                            trial_dirname_creator=lambda trial: trial.config["point"]["name"]),
                run_config=tune.RunConfig(name=name, storage_path=str(folder), verbose=verbose,
                                          failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                                          callbacks=[sweep_log.make(spec.max_failures)]),
            )
            with _stops_as_tunes(this_run):
                tuner.fit()
        finally:
            with stops_deferred():  # Ray's processes go, and the sweep's files say how it went, whatever stops
                this_run["wall_seconds"] = round(time.monotonic() - started, 1)
                ray.shutdown()
                sweep_log = SweepLog(folder)  # as the callback left it
                for entry in sweep_log.trials.values():  # Tune was running it when the driver stopped: --resume runs it
                    if entry["status"] == "running":
                        entry["status"] = "pending"
                sweep_log.save()
                info["status"] = sweep_status(folder, spec.metric)
                write_json(folder / "sweep.json", info)
        return info


def sweep_status(folder: Path, metric: str) -> str:
    """How the sweep stands, from its trials' rows: "stopped" (some are still to run), "failed trials" (some did
    not end well), or "done"."""
    statuses = {row["status"] for row in trial_rows(folder, metric)}
    return "stopped" if {"pending", "unfinished"} & statuses else "failed trials" if set(NOT_DONE) & statuses else "done"
