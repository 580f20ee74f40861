"""A sweep's spec, a TOML file: the base settings (``[train]``, as a --config file holds), the search space and
its controls (``[search]``) and early stopping (``[early_stopping]``), every part checked before Ray starts.

Free of Ray: the spec can be read, checked and counted without the ``sweep`` extra installed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from textgen.config import MAX_COUNT, SETTINGS
from textgen.errors import ConfigError, as_keyword, message_of
from textgen.settings import (
    check_names,
    check_value,
    overridden,
    parse_toml,
    plan_run,
    read_settings_text,
    relative_to,
)

METRICS = {"val_bpc": "held-out bits per character", "val_loss": "held-out nats per character"}
CONTROLS = ("samples", "metric", "trials_at_once", "cpus_per_trial", "max_failures")
RANGES = ("uniform", "loguniform", "randint")  # {name = [low, high]}, high included for randint
# The same for every trial (the settings table says which: see `textgen.config.Setting.searchable`)
NOT_SEARCHED = tuple(name for name, entry in SETTINGS.items() if not entry.searchable)
TABLES = ("train", "search", "early_stopping")
MAX_TRIALS = 10_000  # trials in one sweep at most (each is a run folder; every point is checked before any starts)
MAX_COMBINATIONS = 20_000  # combinations of the searched values checked together (about 1 s); every trial is too
CPU_STEP = 0.0001  # Ray counts CPUs in steps of this (a finer fraction is refused by Ray, or rounded down to 0)


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a grid of values, a choice among values, or a range."""

    name: str  # the setting (as in textgen.settings)
    kind: str  # "grid", "choice", or one of RANGES
    values: tuple  # the grid's or choice's values, or (low, high) of a range

    def describe(self) -> str:
        if self.kind == "grid":
            return f"{self.name} in {list(self.values)}"
        if self.kind == "choice":
            return f"{self.name} one of {list(self.values)}"
        return f"{self.name} {self.kind} from {self.values[0]} to {self.values[1]}"


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs: every trial is the base settings with one point of the search space."""

    path: Path  # the spec file
    text: str  # the spec as it was read (what SWEEP_DIR/spec.toml keeps)
    base: dict  # [train]: the settings every trial shares (paths read from the spec's folder)
    space: tuple[Dimension, ...]  # [search]'s settings
    samples: int = 1  # draws of the sampled settings per grid point
    metric: str = "val_bpc"  # what ranks the trials and what early stopping compares (lower is better)
    trials_at_once: int | None = None  # None: as many as the CPUs allow
    cpus_per_trial: float = 1.0  # CPUs Ray reserves for each trial
    max_failures: int = 2  # times a trial whose worker died is started again (from its last checkpoint)
    grace_updates: int | None = None  # early stopping (ASHA): updates before a trial can be stopped; None: off
    reduction_factor: float = 3.0  # ASHA: keep about 1 in this many trials at each rung

    @property
    def trial_count(self) -> int:
        """Trials in all: the grid's points times ``samples``."""
        points = math.prod(len(d.values) for d in self.space if d.kind == "grid")
        return points * self.samples

    @property
    def searched(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.space)

    def check_point(self, settings: object, where: str) -> None:
        """ConfigError unless ``settings`` are values this spec's search can give: every searched setting and
        no other, each a grid's or choice's value or within its range (what a trial of trials.json holds)."""
        if not isinstance(settings, dict):
            raise ConfigError(f"{where}: settings must be an object, got {settings!r}")
        for name in settings:
            if name not in self.searched:
                raise ConfigError(f"{where}: {name} is not a setting the spec searches (it searches "
                                  f"{', '.join(self.searched)})")
        for dimension in self.space:
            if dimension.name not in settings:
                raise ConfigError(f"{where}: no value of {dimension.name}, which the spec searches")
            value = settings[dimension.name]
            check_value(dimension.name, value, where)
            if dimension.kind in ("grid", "choice"):
                ok = any(value == v and type(value) is type(v) for v in dimension.values)
            else:
                ok = dimension.values[0] <= value <= dimension.values[1] and (
                    dimension.kind != "randint" or isinstance(value, int))
            if not ok:
                raise ConfigError(f"{where}: {dimension.name} = {value!r} is not a value the spec's search gives "
                                  f"({dimension.describe()})")


def _count(where: str, name: str, value: object, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}: {name} must be a whole number of at least {minimum}, got {value!r}")
    if value > maximum:
        raise ConfigError(f"{where}: {name} must be at most {maximum:,}, got {value:,}")
    return value


def _dimension(where: str, name: str, value: object) -> Dimension:
    """A [search] entry: a list is a grid, {choice = [...]} a choice, {uniform|loguniform|randint = [low, high]}."""
    if name in NOT_SEARCHED:
        why = "every trial shares it" if name in ("out", "force", "init_from") else (
            "every trial reads the same corpus and holds out the same text, so that their held-out losses compare")
        raise ConfigError(f"{where}: {name} cannot be searched: {why}; put it in [train]")
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: {name} = []: a grid needs at least one value")
        for item in value:
            check_value(name, item, where)
        return Dimension(name, "grid", tuple(value))
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(f"{where}: {name} must be a list (a grid), {{choice = [...]}} or one of "
                          f"{', '.join('{' + r + ' = [low, high]}' for r in RANGES)}, got {value!r}")
    (kind, values), = value.items()
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: {name}.choice must be a list of at least one value, got {values!r}")
        for item in values:
            check_value(name, item, where)
        return Dimension(name, "choice", tuple(values))
    if kind not in RANGES:
        raise ConfigError(f"{where}: {name}: {kind!r} is not a kind of range; use choice, {', '.join(RANGES)}")
    if not isinstance(values, list) or len(values) != 2:
        raise ConfigError(f"{where}: {name}.{kind} must be [low, high], got {values!r}")
    for item in values:
        check_value(name, item, where)
    low, high = values
    if kind == "randint" and not all(isinstance(v, int) for v in values):
        raise ConfigError(f"{where}: {name}.randint must be two whole numbers, got {values!r}")
    if kind != "randint" and SETTINGS[name].type is int:
        raise ConfigError(f"{where}: {name} takes whole numbers, which {kind} does not draw; use "
                          f"{{randint = [{low}, {high}]}}")
    if low > high:
        raise ConfigError(f"{where}: {name}.{kind} = [{low}, {high}]: low is above high; swap them")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: {name}.loguniform = [{low}, {high}]: a log scale needs low above 0")
    return Dimension(name, kind, (low, high))


def read_spec(path: Path, paths_from: Path | None = None) -> SweepSpec:
    """The spec at ``path``, every setting and control checked; ConfigError (one line) naming what is wrong, its
    settings spelled as the spec's keys. Relative paths in it are read from ``paths_from`` (default: the spec's own
    folder; a sweep's copy of its spec reads them from the original's)."""
    try:
        return _read_spec(Path(path), paths_from)
    except ConfigError as error:
        raise error.read_by(as_keyword) from None


def _read_spec(path: Path, paths_from: Path | None) -> SweepSpec:
    text = read_settings_text(path, f"{path} (the sweep spec)")
    data = parse_toml(text, f"{path} (the sweep spec)")
    where = str(path)
    unknown = [name for name in data if name not in TABLES]
    if unknown:
        raise ConfigError(f"{where}: [{unknown[0]}] is not a table a sweep spec has; it has {', '.join(TABLES)}")
    for table in TABLES:
        if table in data and not isinstance(data[table], dict):
            raise ConfigError(f"{where}: {table} must be a table ([{table}])")
    base = dict(data.get("train", {}))
    check_names(base, f"{where} [train]")
    for name, value in base.items():
        check_value(name, value, f"{where} [train]")
    base = relative_to(Path(paths_from) if paths_from is not None else path.resolve().parent, base)
    if "out" in base:
        raise ConfigError(f"{where} [train]: out is chosen by the sweep (each trial is a folder in SWEEP_DIR/trials)")
    search = dict(data.get("search", {}))
    controls = {name: search.pop(name) for name in CONTROLS if name in search}
    check_names(search, f"{where} [search]")
    space = tuple(_dimension(f"{where} [search]", name, value) for name, value in search.items())
    if not space:
        raise ConfigError(f"{where}: the search space is empty; give [search] at least one setting to vary, such "
                          "as hidden = [64, 128]")
    metric = controls.get("metric", "val_bpc")
    if not isinstance(metric, str) or metric not in METRICS:
        raise ConfigError(f"{where} [search]: metric must be one of {', '.join(METRICS)}, got {metric!r}")
    cpus = controls.get("cpus_per_trial", 1)
    if not isinstance(cpus, (int, float)) or isinstance(cpus, bool) or not CPU_STEP <= cpus <= 1024:
        raise ConfigError(f"{where} [search]: cpus_per_trial must be a number from {CPU_STEP} to 1024, got {cpus!r}")
    if abs(cpus / CPU_STEP - round(cpus / CPU_STEP)) > 1e-6:
        raise ConfigError(f"{where} [search]: cpus_per_trial = {cpus!r}: Ray counts CPUs in steps of {CPU_STEP}; "
                          f"give {math.floor(cpus / CPU_STEP + 1e-6) * CPU_STEP:.4f}")
    stopping = dict(data.get("early_stopping", {}))
    unknown = [name for name in stopping if name not in ("grace_updates", "reduction_factor")]
    if unknown:
        raise ConfigError(f"{where} [early_stopping]: {unknown[0]!r} is not a setting; it takes grace_updates and "
                          "reduction_factor")
    if "reduction_factor" in stopping and "grace_updates" not in stopping:
        raise ConfigError(f"{where} [early_stopping]: give grace_updates (the updates before a trial can be stopped)")
    factor = stopping.get("reduction_factor", 3)
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not 1 < factor < math.inf:
        raise ConfigError(f"{where} [early_stopping]: reduction_factor must be a number above 1, got {factor!r}")
    spec = SweepSpec(
        path=path.resolve(),
        text=text,
        base=base,
        space=space,
        samples=_count(f"{where} [search]", "samples", controls.get("samples", 1)),
        metric=metric,
        trials_at_once=None if "trials_at_once" not in controls else _count(f"{where} [search]", "trials_at_once",
                                                                             controls["trials_at_once"]),
        cpus_per_trial=float(cpus),
        max_failures=_count(f"{where} [search]", "max_failures", controls.get("max_failures", 2), minimum=0),
        grace_updates=None if "grace_updates" not in stopping else _count(
            f"{where} [early_stopping]", "grace_updates", stopping["grace_updates"]),
        reduction_factor=float(factor),
    )
    if spec.trial_count > MAX_TRIALS:
        raise ConfigError(f"{where}: the spec makes {spec.trial_count:,} trials, more than the {MAX_TRIALS:,} a sweep "
                          "runs; search fewer values or lower samples")
    if base.get("val_fraction") == 0 and not base.get("hf_val_split"):
        raise ConfigError(f"{where} [train]: val_fraction = 0 leaves no held-out text for the metric {metric}; "
                          "keep some")
    check_points(spec)
    return spec


def check_points(spec: SweepSpec) -> None:
    """ConfigError, before any trial starts, if a trial's settings would be refused: each grid's and choice's
    value and each range's ends alone with the base, then together (every combination while there are at most
    MAX_COMBINATIONS; every trial drawn is checked as well, see `textgen.sweep.check`)."""
    options = [[(d.name, value) for value in d.values] for d in spec.space]  # a range's values are its two ends
    for dimension in options:
        for name, value in dimension:
            check_trial_settings(spec, {name: value})
    if math.prod(len(values) for values in options) <= MAX_COMBINATIONS:
        for point in itertools.product(*options):
            check_trial_settings(spec, dict(point))


def check_trial_settings(spec: SweepSpec, searched: dict, trial: str | None = None) -> None:
    """ConfigError if the base with the ``searched`` values would not make a run (`plan_run`'s checks), naming
    ``trial`` or else the values."""
    settings = {**overridden(spec.base, searched), "out": "trial"}
    shown = trial or "the trial with " + ", ".join(f"{name} = {value!r}" for name, value in searched.items())
    try:
        from textgen.run import check_plan

        check_plan(plan_run(settings, str(spec.path)))
    except ConfigError as error:
        raise ConfigError(f"{spec.path}: {shown} would be refused: {message_of(error)}").read_by(as_keyword) from None


def draw_points(spec: SweepSpec, seed: int) -> list[dict]:
    """Every trial's settings, in order: each grid point (the first dimension slowest) ``samples`` times, the
    choices and ranges drawn from a generator seeded with ``seed`` (recorded, so the same spec and seed give
    the same trials)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    grids = [[(d.name, value) for value in d.values] for d in spec.space if d.kind == "grid"]
    points = []
    for grid_point in itertools.product(*grids):
        for _ in range(spec.samples):
            settings = dict(grid_point)
            for d in spec.space:
                if d.kind == "choice":
                    settings[d.name] = d.values[int(rng.integers(len(d.values)))]
                elif d.kind == "uniform":  # within the ends, which were checked (rounding may step past them)
                    settings[d.name] = float(min(max(rng.uniform(*d.values), d.values[0]), d.values[1]))
                elif d.kind == "loguniform":
                    drawn = float(np.exp(rng.uniform(np.log(d.values[0]), np.log(d.values[1]))))
                    settings[d.name] = float(min(max(drawn, d.values[0]), d.values[1]))
                elif d.kind == "randint":
                    settings[d.name] = int(rng.integers(d.values[0], d.values[1] + 1))
            points.append({name: settings[name] for name in spec.searched})
    return points
