"""A sweep's spec, a TOML file: the base settings (``[train]``, as a --config file holds), the search space and
its controls (``[search]``) and early stopping (``[early_stopping]``), every part checked before Ray starts.

Free of Ray: the spec can be read, checked and counted without the ``sweep`` extra installed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from textgen.config import MAX_COUNT
from textgen.errors import ConfigError
from textgen.settings import KINDS, check_names, check_value, load_toml, overridden, plan_run, relative_to

METRICS = {"val_bpc": "held-out bits per character", "val_loss": "held-out nats per character"}
CONTROLS = ("samples", "metric", "trials_at_once", "cpus_per_trial", "max_failures")
RANGES = ("uniform", "loguniform", "randint")  # {name = [low, high]}, high included for randint
NOT_SEARCHED = ("corpus", "kind", "weights", "option", "out", "force", "init_from")  # the same for every trial
TABLES = ("train", "search", "early_stopping")
MAX_TRIALS = 10_000  # trials in one sweep at most (each is a run folder; every point is checked before any starts)


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


def _count(where: str, name: str, value: object, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}: {name} must be a whole number of at least {minimum}, got {value!r}")
    if value > maximum:
        raise ConfigError(f"{where}: {name} must be at most {maximum:,}, got {value:,}")
    return value


def _dimension(where: str, name: str, value: object) -> Dimension:
    """A [search] entry: a list is a grid, {choice = [...]} a choice, {uniform|loguniform|randint = [low, high]}."""
    if name in NOT_SEARCHED:
        raise ConfigError(f"{where}: {name} cannot be searched: every trial shares it; put it in [train]")
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
    if kind != "randint" and KINDS.get(name, ("", ()))[1] == (int,):
        raise ConfigError(f"{where}: {name} takes whole numbers, which {kind} does not draw; use "
                          f"{{randint = [{low}, {high}]}}")
    if low > high:
        raise ConfigError(f"{where}: {name}.{kind} = [{low}, {high}]: low is above high; swap them")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: {name}.loguniform = [{low}, {high}]: a log scale needs low above 0")
    return Dimension(name, kind, (low, high))


def read_spec(path: Path) -> SweepSpec:
    """The spec at ``path``, every setting and control checked; ConfigError (one line) naming what is wrong."""
    path = Path(path)
    data = load_toml(path, f"{path} (the sweep spec)")
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
    base = relative_to(path.resolve().parent, base)
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
    if not isinstance(cpus, (int, float)) or isinstance(cpus, bool) or not 0 < cpus <= 1024:
        raise ConfigError(f"{where} [search]: cpus_per_trial must be a number above 0 and at most 1024, got {cpus!r}")
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
    check_points(spec)
    return spec


def check_points(spec: SweepSpec) -> None:
    """ConfigError, before any trial starts, if a trial's settings would be refused: every grid point with
    each choice and each range's ends (ranges of the dataclasses' checks: hidden > 0, dropout < 1...)."""
    options = [[(d.name, value) for value in d.values] for d in spec.space]  # a range's values are its two ends
    for point in itertools.islice(itertools.product(*options), 10_000):
        settings = {**overridden(spec.base, dict(point)), "out": "trial"}
        shown = ", ".join(f"{name} = {value!r}" for name, value in point)
        if settings.get("val_fraction") == 0 and not settings.get("hf_val_split"):
            searched = "val_fraction" in spec.searched
            raise ConfigError(f"{spec.path}{'' if searched else ' [train]'}: val_fraction = 0 leaves no held-out "
                              f"text for the metric {spec.metric}"
                              f"{f' (the trial with {shown})' if searched else ''}; keep some")
        try:
            from textgen.run import check_plan

            check_plan(plan_run(settings, str(spec.path)))
        except ConfigError as error:
            raise ConfigError(f"{spec.path}: the trial with {shown} would be refused: {error}") from None


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
                elif d.kind == "uniform":
                    settings[d.name] = float(rng.uniform(*d.values))
                elif d.kind == "loguniform":
                    settings[d.name] = float(np.exp(rng.uniform(np.log(d.values[0]), np.log(d.values[1]))))
                elif d.kind == "randint":
                    settings[d.name] = int(rng.integers(d.values[0], d.values[1] + 1))
            points.append({name: settings[name] for name in spec.searched})
    return points
