"""Settings by name: `textgen train --config FILE` (a TOML [train] table), the flags overriding it, and
`textgen.settings.plan_run`, which a sweep and `textgen.train` share."""

import json
import re
from pathlib import Path

import pytest
from commands import run

from textgen.config import RNNConfig, TrainConfig
from textgen.errors import ConfigError
from textgen.settings import SETTINGS, plan_run, read_settings_file
from textgen.sweep.spec import read_spec

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE_BOOK = PROJECT / "corpora" / "sample_book.txt"
SAMPLE_TWEETS = PROJECT / "corpora" / "sample_tweets.json"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_config_file_sets_the_run_and_flags_override_it_and_config_json_says_which(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "book.txt").write_bytes(SAMPLE_BOOK.read_bytes())
    config = write(tmp_path / "run.toml", """
[train]
corpus = ["data/book.txt"]   # relative to this file
updates = 80
hidden = 12
eta = 0.05
val_fraction = 0.1
seed = 4
out = "runs/from-file"
""")
    code, _, err = run(capsys, "train", "--config", config, "--hidden", "10", "--no-progress", "--passage-length", 20)
    assert code == 0, err
    folder = tmp_path / "runs" / "from-file"
    recorded = json.loads((folder / "config.json").read_text())
    assert recorded["model"]["hidden"] == 10  # the flag wins
    assert recorded["train"]["updates"] == 80 and recorded["train"]["eta"] == 0.05 and recorded["train"]["seed"] == 4
    assert recorded["corpus"]["val_fraction"] == 0.1 and recorded["passage_length"] == 20
    assert recorded["corpus"]["sources"][0]["location"] == str(tmp_path / "data" / "book.txt")
    assert recorded["settings_from"] == {
        "config_file": str(config), "file": ["corpus", "eta", "out", "seed", "updates", "val_fraction"],
        "command_line": ["hidden", "passage_length"]}
    # the same settings as flags give the same run, bit for bit
    code, _, err = run(capsys, "train", "--corpus", tmp_path / "data" / "book.txt", "--updates", 80, "--hidden", 10,
                       "--eta", 0.05, "--val-fraction", 0.1, "--seed", 4, "--out", tmp_path / "flags",
                       "--no-progress", "--passage-length", 20)
    assert code == 0, err
    assert (tmp_path / "flags" / "last.npz").read_bytes() == (folder / "last.npz").read_bytes()


def test_a_corpus_flag_replaces_the_files_list_and_loader_settings_reach_their_loader(tmp_path, capsys):
    config = write(tmp_path / "run.toml", f"""
[train]
corpus = ["{SAMPLE_BOOK}"]
keep_retweets = true
updates = 30
hidden = 8
""")
    code, _, err = run(capsys, "train", "--config", config, "--corpus", SAMPLE_TWEETS, "--out", tmp_path / "t",
                       "--no-progress")
    assert code == 0, err
    source = json.loads((tmp_path / "t" / "config.json").read_text())["corpus"]["sources"]
    assert [s["kind"] for s in source] == ["tweets"] and source[0]["options"] == {"keep_retweets": True}


def test_a_relative_corpus_in_a_config_file_is_read_from_the_files_folder_not_the_current_one(tmp_path, capsys,
                                                                                               monkeypatch):
    (tmp_path / "settings").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "book.txt").write_bytes(SAMPLE_BOOK.read_bytes())  # a file of that name where we are
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = write(tmp_path / "settings" / "run.toml", '[train]\ncorpus = ["book.txt"]\nupdates = 30\nhidden = 8\n')
    code, _, err = run(capsys, "train", "--config", config, "--out", tmp_path / "out", "-q")
    assert code == 1 and err.count("\n") == 1 and f"{tmp_path / 'settings' / 'book.txt'}: no such file" in err, err
    assert not (tmp_path / "out").exists()
    spec = write(tmp_path / "settings" / "sweep.toml", '[train]\ncorpus = ["book.txt", "text:notes.txt", "pydoc"]\n'
                 '[search]\nhidden = [8]\n')
    (tmp_path / "settings" / "notes.txt").write_text("notes beside the spec")
    assert read_spec(spec).base["corpus"] == [str(tmp_path / "settings" / "book.txt"),
                                              f"text:{tmp_path / 'settings' / 'notes.txt'}", "pydoc"]


@pytest.mark.parametrize(("text", "message"), [
    ("[train]\nhiden = 3\n", r"'hiden' is not a setting \(did you mean 'hidden'\?\)"),
    ("[train]\nhidden = '3'\n", r"hidden must be an integer, got '3'"),
    ("[train]\nhidden = true\n", r"hidden must be an integer, got True"),
    ("[train]\neta = 'fast'\n", r"eta must be a number, got 'fast'"),
    ("[train]\neta = nan\n", r"eta must be a number, got nan"),
    ("[train]\nforce = 1\n", r"force must be true or false, got 1"),
    ("[train]\ncorpus = []\n", r"corpus must be a source or a list of them, got \[\]"),
    ("[train]\nhidden = -3\n", r"(?<!-)hidden must be a positive integer, got -3"),
    ("hidden = 3\n", r"no \[train\] table"),
    ("[train]\n[search]\n", r"only a \[train\] table is read here, found 'search' too"),
    ("[train\n", r"not valid TOML"),
])
def test_a_bad_config_file_is_one_line_naming_it_and_starts_nothing(tmp_path, capsys, text, message):
    config = write(tmp_path / "bad.toml", text)
    code, _, err = run(capsys, "train", "--config", config, "--out", tmp_path / "out", "--updates", 5)
    assert code == 1 and err.count("\n") == 1 and err.startswith("textgen: error: "), err
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_a_missing_config_file_and_config_with_resume_are_refused(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--config", tmp_path / "none.toml")
    assert code == 1 and "cannot read it" in err
    code, _, err = run(capsys, "train", "--config", tmp_path / "none.toml", "--resume", tmp_path)
    assert code == 1 and "--config sets up a new run" in err


def test_epochs_on_the_command_line_replaces_the_files_updates(tmp_path, capsys):
    config = write(tmp_path / "run.toml", f'[train]\ncorpus = "{SAMPLE_BOOK}"\nupdates = 500\nhidden = 8\n'
                   "passage_length = 10\nsample_every = 1000\n")
    code, _, err = run(capsys, "train", "--config", config, "--out", tmp_path / "out", "--epochs", 0.05, "-q")
    assert code == 0, err
    record = json.loads((tmp_path / "out" / "config.json").read_text())
    assert record["train"]["updates"] < 500 and "updates" not in record["settings_from"]["file"]


def test_plan_run_turns_settings_into_configs_with_a_fresh_recorded_seed():
    plan = plan_run({"corpus": "book.txt", "hidden": 7, "cell": "gru", "updates": 9, "val_fraction": 0.2,
                     "hf_split": "test", "option": {"column": "title"}})
    assert plan.corpus == ["book.txt"] and plan.model == RNNConfig(hidden=7, cell="gru")
    # a GRU trains with the gated cells' defaults: RMSprop at its usual rate, N(0, 0.08²)
    assert plan.model.sigma == 0.08 and plan.train.optimizer == "rmsprop" and plan.train.eta == 0.002
    assert plan.train == TrainConfig(updates=9, seed=plan.train.seed, optimizer="rmsprop")
    assert plan.run.val_fraction == 0.2
    assert [(o.key, o.value, o.loader) for o in plan.options] == [("split", "test", "hf"), ("column", "title", "")]
    seeds = {plan_run({}).train.seed for _ in range(5)}
    assert len(seeds) == 5
    with pytest.raises(ConfigError, match="give --updates or --epochs, not both"):
        plan_run({"updates": 3, "epochs": 1})
    init = plan_run({"init_from": "x", "sigma": 0.1})  # checked against the other run's model when it is read
    assert init.model is None and init.model_given == {"sigma": 0.1}


def test_every_train_flag_is_a_setting_of_the_same_name(capsys):
    from textgen.cli import build_parser

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = [a.option_strings[-1] for a in train._actions if a.option_strings]
    not_settings = {"--help", "--config", "--resume", "--no-progress", "--status-every", "--quiet", "--verbose"}
    names = {flag[2:].replace("-", "_") for flag in flags if flag not in not_settings}
    assert names <= set(SETTINGS), names - set(SETTINGS)
    assert read_settings_file  # the same checks read a sweep's [train] table


def _special_files(tmp_path: Path) -> dict[str, Path]:
    """What a settings file must not be (each read would never end, or end only after gigabytes): a device, a
    link to one, a folder, a file over the cap, a key nested 200,000 deep (tomllib: minutes and gigabytes)."""
    (tmp_path / "zero-link.toml").symlink_to("/dev/zero")
    (tmp_path / "folder.toml").mkdir()
    with open(tmp_path / "huge.toml", "wb") as stream:  # sparse: 2 GiB of nothing, no disk used
        stream.truncate(2 << 30)
    deep = write(tmp_path / "deep.toml", "[train]\n" + "a" + ".a" * 200_000 + " = 1\n")
    nested = write(tmp_path / "nested.toml", "[train]\nhidden = " + "[" * 5000 + "]" * 5000 + "\n")
    return {"/dev/zero": Path("/dev/zero"), "a link to /dev/zero": tmp_path / "zero-link.toml",
            "a folder": tmp_path / "folder.toml", "a 2 GiB file": tmp_path / "huge.toml", "a deep key": deep,
            "deep arrays": nested}


@pytest.mark.parametrize("what", ["/dev/zero", "a link to /dev/zero", "a folder", "a 2 GiB file", "a deep key",
                                  "deep arrays"])
@pytest.mark.parametrize("command", ["train --config", "sweep"])
def test_a_settings_file_that_is_no_file_or_too_large_is_one_line_at_once(tmp_path, capsys, what, command):
    path = _special_files(tmp_path)[what]
    code, out, err = run(capsys, *command.split(), path, "--out", tmp_path / "out")
    assert code == 1 and out == "" and err.count("\n") == 1 and err.startswith("textgen: error: "), err
    assert re.search(r"not a regular file|is a folder|larger than the 1 MiB|more than 32 parts|nested too deeply",
                     err), err
    assert not (tmp_path / "out").exists()


def test_a_settings_file_through_a_pipe_is_read(tmp_path, capsys):
    import os
    import threading

    (tmp_path / "book.txt").write_bytes(SAMPLE_BOOK.read_bytes())
    fifo = tmp_path / "settings.fifo"
    os.mkfifo(fifo)
    text = f'[train]\ncorpus = ["{tmp_path / "book.txt"}"]\nupdates = 20\nhidden = 6\n'
    writer = threading.Thread(target=lambda: fifo.write_text(text, encoding="utf-8"))
    writer.start()
    code, _, err = run(capsys, "train", "--config", fifo, "--out", tmp_path / "run", "-q", "--passage-length", 10)
    writer.join()
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["hidden"] == 6


@pytest.mark.parametrize(("signum", "status"), [(2, 130), (15, 143)])
@pytest.mark.parametrize("command", ["train --config", "sweep"])
def test_a_stop_while_waiting_on_a_pipe_nobody_writes_ends_at_once(tmp_path, signum, status, command):
    import os

    from commands import start, wait_until

    fifo = tmp_path / "settings.fifo"
    os.mkfifo(fifo)
    child = start(*command.split(), fifo, "--out", tmp_path / "out")
    # the kernel's wait channel of a process opening a FIFO that has no writer
    wait_until(lambda: Path(f"/proc/{child.pid}/wchan").read_text() == "wait_for_partner", timeout=60,
               what="the child waiting on the FIFO", interval=0.05)
    child.send_signal(signum)
    _, err = child.communicate(timeout=30)
    assert child.returncode == status, err
    assert err.splitlines()[-1].startswith("textgen: stopped") and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
