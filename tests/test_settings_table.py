"""The settings table is the one source of every setting: each reaches every front end (a flag of `textgen train`,
a key of a --config file, a keyword of textgen.train, a key of a sweep's spec) with the table's type and default,
and each front end refuses the same values, naming the setting as its user spells it."""

import math
from pathlib import Path

import pytest
from commands import run

import textgen
from textgen.cli import build_parser
from textgen.config import MAX_COUNT, SETTINGS, ModelConfig, RunConfig, TrainConfig
from textgen.errors import ConfigError
from textgen.reports.summary import SETTING_MEANINGS
from textgen.settings import check_value, plan_run

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def train_actions() -> dict:
    """The `textgen train` parser's arguments, by the name they fill."""
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    return {action.dest: action for action in train._actions}


def out_of_range(entry) -> object | None:
    """A value of the setting's own type that its bounds refuse (None for a setting without bounds)."""
    if entry.choices:
        return "nope"
    if entry.type is int and entry.low is not None:
        return int(entry.low) - 1
    if entry.type is float and entry.open_high:
        return float(entry.high)
    if entry.type is float:
        return -1.0 if not entry.high or entry.high >= MAX_COUNT else float(entry.high) * 2
    return None


BOUNDED = [name for name, entry in SETTINGS.items() if out_of_range(entry) is not None]
DATACLASS_SETTINGS = {**ModelConfig.table(), **TrainConfig.table(), **RunConfig.table()}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_setting_is_a_flag_of_train_with_the_tables_type_and_default(name):
    entry, action = SETTINGS[name], train_actions().get(name)
    assert action is not None and entry.flag in action.option_strings, name
    assert action.default is None or (entry.is_switch and action.default is None)  # nothing given is None
    if entry.type in (int, float) and not entry.choices:
        assert action.type is entry.type
    if entry.shown_default:
        assert f"(default: {entry.shown_default})" in action.help


@pytest.mark.parametrize("name", list(DATACLASS_SETTINGS))
def test_every_setting_of_a_run_has_its_tables_default_and_a_meaning_in_the_report(name):
    plan = plan_run({"seed": 3})
    entry = DATACLASS_SETTINGS[name]
    holder = plan.model if name in ModelConfig.table() else plan.train if name in TrainConfig.table() else plan.run
    value = getattr(holder, name)
    # seed: fresh unless given; eta, sigma, the optimizer: the default cell's (the assignment's); min_eta: eta / 10
    resolved = {"eta": 0.1, "sigma": 0.01, "optimizer": "adagrad", "min_eta": 0.01}
    if name in resolved:
        assert entry.default is None and value == resolved[name]
    elif name != "seed":
        assert value == entry.default
    assert SETTING_MEANINGS.get(name), name


@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_setting_is_a_key_of_a_settings_file_and_a_keyword_of_train(name):
    from textgen.api import TRAIN_CALL_SETTINGS

    with pytest.raises(ConfigError, match=r"^--config f\.toml: " + name + " must be "):
        check_value(name, object(), "--config f.toml")  # a value of no setting's type
    assert name in TRAIN_CALL_SETTINGS or name in ("corpus", "kind", "weights", "option", "out")


def refusal(front: str, name: str, value: object, tmp_path: Path, capsys) -> str:
    """The one line in which ``front`` refuses a new run with the setting ``name`` at ``value``."""
    corpus = tmp_path / "book.txt"
    corpus.write_text(TEXT)
    out = tmp_path / f"run-{front}"
    if front == "api":
        with pytest.raises(ConfigError) as raised:
            textgen.train(str(corpus), out=out, progress=False, **{name: value})
        return str(raised.value)
    if front == "cli":
        code, _, err = run(capsys, "train", "--corpus", corpus, "--out", out, "--no-progress", SETTINGS[name].flag,
                           value)
    else:
        literal = f'"{value}"' if isinstance(value, str) else repr(value)
        text = f"[train]\ncorpus = [\"{corpus}\"]\n{name} = {literal}\n"
        if front == "sweep":
            searched = "log_every" if name == "sample_length" else "sample_length"  # the setting refused is the base's
            text += f"[search]\n{searched} = [20, 21]\n"
        (tmp_path / "file.toml").write_text(text)
        argv = ["train", "--config", tmp_path / "file.toml", "--out", out] if front == "toml" else \
            ["sweep", tmp_path / "file.toml", "--out", tmp_path / "sweep"]
        code, _, err = run(capsys, *argv)
        assert not (tmp_path / "sweep").exists()
    assert code == 1 and err.count("\n") == 1 and err.startswith("textgen: error: "), err
    assert not out.exists()
    return err


SPELLED = {"cli": lambda name: "--" + name.replace("_", "-"), "toml": str, "api": str, "sweep": str}


@pytest.mark.parametrize("front", list(SPELLED))
@pytest.mark.parametrize("name", BOUNDED)
def test_every_front_end_refuses_a_value_out_of_a_settings_bounds_naming_it_as_its_user_does(name, front, tmp_path,
                                                                                             capsys):
    value = out_of_range(SETTINGS[name])
    message = refusal(front, name, value, tmp_path, capsys)
    assert f"{SPELLED[front](name)} must be " in message, message


def test_the_bounds_are_the_tables_own():
    # the checks come from the entries: a bound changed in the table is the bound every front end applies
    assert math.isinf(SETTINGS["eta"].high or math.inf) and SETTINGS["layers"].high == 64
    with pytest.raises(ConfigError, match=r"^--layers must be at most 64, got 65$"):
        ModelConfig(layers=65)
