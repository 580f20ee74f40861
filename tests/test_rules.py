"""Every rule a setting obeys is the library's: the command line, a --config file, the Python API and a sweep's
spec refuse the same settings, each in one line naming the setting; a resume refuses the same changes from the
command line and from Python, and takes a setting repeated as the run already has it."""

import json
import os
from datetime import date
from pathlib import Path

import pytest
from commands import run

import textgen
from textgen.errors import ConfigError

TEXT = "the quick brown fox jumps over the lazy dog. " * 40
QUICK = {"hidden": 8, "updates": 20, "log_every": 10, "sample_every": 10, "checkpoint_every": 10, "passage_length": 20,
         "sample_length": 20, "seed": 1}


@pytest.fixture()
def corpus(tmp_path) -> Path:
    path = tmp_path / "book.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture()
def other_run(tmp_path, corpus) -> Path:
    """A finished run of the assignment's model with 8 hidden units, for --init-from."""
    folder = tmp_path / "other"
    textgen.train(str(corpus), out=folder, progress=False, **QUICK)
    return folder


def toml_value(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()  # a TOML date
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return '"' + str(value) + '"'
    return repr(value)


def flags(settings: dict) -> list[str]:
    argv = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return argv


def refusal(front: str, settings: dict, tmp_path: Path, corpus: Path, capsys) -> str:
    """The one line in which ``front`` refuses ``settings`` (a new run on ``corpus``); fails if it does not."""
    out = tmp_path / f"run-{front}"
    if front == "api":
        with pytest.raises(ConfigError) as raised:
            textgen.train(str(corpus), out=out, progress=False, **settings)
        assert not out.exists()
        return str(raised.value)
    if front == "cli":
        code, _, err = run(capsys, "train", "--corpus", corpus, "--out", out, "--no-progress", *flags(settings))
    elif front == "toml":
        file = tmp_path / "settings.toml"
        file.write_text("[train]\n" + "".join(f"{name} = {toml_value(value)}\n" for name, value in
                                              {"corpus": str(corpus), **settings}.items()))
        code, _, err = run(capsys, "train", "--config", file, "--out", out, "--no-progress")
    else:  # a sweep whose trials all would have these settings: refused before any trial (and before Ray)
        file = tmp_path / "sweep.toml"
        base = {"corpus": str(corpus), **{k: v for k, v in settings.items() if k != "seed"}}
        file.write_text("[train]\n" + "".join(f"{name} = {toml_value(value)}\n" for name, value in base.items())
                        + "[search]\nsample_length = [20, 21]\n")
        code, _, err = run(capsys, "sweep", file, "--out", tmp_path / "sweep")
        assert not (tmp_path / "sweep").exists()
    assert code == 1 and err.count("\n") == 1 and err.startswith("textgen: error: "), err
    assert not out.exists()
    return err


RULES = {
    "a length in updates and in epochs": ({"updates": 30, "epochs": 1.5}, "not both"),
    "a bad value": ({"eta": -1.0}, "eta must be a positive number"),
    "more threads than streams": ({"threads": 4, "batch_size": 2}, "threads 4 is more than"),
    "another size than the --init-from run's": ({"hidden": 64, "init_from": "OTHER"}, "hidden 64 differs from"),
    "another cell than the --init-from run's": ({"cell": "lstm", "init_from": "OTHER"}, "cell lstm differs from"),
    "another sigma than the --init-from run's": ({"sigma": 0.5, "init_from": "OTHER"}, "sigma 0.5 differs from"),
    "another dtype than the --init-from run's": ({"dtype": "float32", "init_from": "OTHER"}, "dtype float32 differs"),
    "dropout of 1": ({"dropout": 1.0}, "dropout must be at least 0 and below 1"),
    "more layers than the most, beyond any count": ({"layers": 10**16}, "layers must be at most 64, got"),
    "a schedule's floor above its rate": ({"schedule": "cosine", "min_eta": 0.5}, "eta 0.5 is above"),
    "a warm-up as long as the run": ({"warmup": 30, "updates": 30}, "warmup 30 is not below the run's 30 updates"),
}


@pytest.mark.parametrize("front", ["cli", "toml", "api", "sweep"])
@pytest.mark.parametrize("rule", list(RULES))
def test_every_front_end_refuses_what_the_library_refuses(rule, front, tmp_path, corpus, other_run, capsys):
    settings, expected = RULES[rule]
    settings = {name: other_run if value == "OTHER" else value for name, value in settings.items()}
    message = refusal(front, settings, tmp_path, corpus, capsys)
    assert expected in message, message


@pytest.mark.parametrize("front", ["cli", "toml", "api", "sweep"])
def test_every_front_end_takes_a_date_for_since_as_its_flag_does(front, tmp_path, capsys):
    # --since 2018-03-01 on the command line; the same date as TOML writes a date, or as a datetime.date in Python
    tweets = tmp_path / "tweets.json"
    tweets.write_text(json.dumps([{"text": f"tweet number {i} about the weather", "created_at": f"2018-0{month}-15",
                                   "is_retweet": False} for i, month in enumerate([1, 2, 3, 4] * 30)]))
    out, settings = tmp_path / "run", {"since": date(2018, 3, 1), **QUICK}
    if front == "api":
        textgen.train(str(tweets), out=out, progress=False, **settings)
    elif front == "sweep":  # its spec takes it as --config does
        from textgen.sweep.spec import read_spec

        spec = tmp_path / "sweep.toml"
        spec.write_text(f'[train]\ncorpus = "{tweets}"\nsince = 2018-03-01\n[search]\nhidden = [8]\n')
        assert read_spec(spec).base["since"] == date(2018, 3, 1)
        return
    else:
        if front == "toml":
            file = tmp_path / "settings.toml"
            file.write_text("[train]\n" + "".join(f"{name} = {toml_value(value)}\n" for name, value in
                                                  {"corpus": str(tweets), **settings}.items()))
            argv = ["--config", file]
        else:
            argv = ["--corpus", tweets, *flags(settings)]
        code, _, err = run(capsys, "train", "--out", out, "--no-progress", *argv)
        assert code == 0, err
    source = json.loads((out / "config.json").read_text())["corpus"]["sources"][0]
    assert source["options"]["since"] == "2018-03-01" and source["documents"] == 60, source


def test_the_init_from_model_given_as_it_is_is_taken(tmp_path, corpus, other_run, capsys):
    # the shape repeated as the other run has it is no contradiction: it trains (on from that model)
    code, _, err = run(capsys, "train", "--corpus", corpus, "--out", tmp_path / "again", "--init-from", other_run,
                       "--hidden", "8", "--cell", "rnn", "--updates", "20", "--no-progress")
    assert code == 0, err
    again = textgen.train(str(corpus), out=tmp_path / "again-api", init_from=other_run, hidden=8, layers=1,
                          progress=False, updates=20)
    assert again.config["model"]["hidden"] == 8


def test_the_init_from_initialisation_given_as_it_is_is_taken(tmp_path, corpus, other_run, capsys):
    # --sigma and --dtype follow the rule of the other model settings: the other run's own values are no change
    code, _, err = run(capsys, "train", "--corpus", corpus, "--out", tmp_path / "again", "--init-from", other_run,
                       "--sigma", "0.01", "--dtype", "float64", "--updates", "20", "--no-progress")
    assert code == 0, err
    again = textgen.train(str(corpus), out=tmp_path / "again-api", init_from=other_run, sigma=0.01, dtype="float64",
                          progress=False, updates=20)
    assert again.config["model"]["sigma"] == 0.01


@pytest.mark.parametrize("front", ["cli", "toml", "api", "sweep"])
@pytest.mark.parametrize("where,expected", [("nowhere", "no such folder"), ("book.txt", "not a folder"),
                                            ("empty", "not a run folder"), ("a-sweep", "a sweep folder")])
def test_an_init_from_that_is_no_run_is_named_as_such(where, expected, front, tmp_path, corpus, capsys):
    (tmp_path / "empty").mkdir()
    for name in ("spec.toml", "sweep.json", "trials.json"):  # what a sweep folder holds, and a run of its trials
        (tmp_path / "a-sweep" / "trials" / "trial-000").mkdir(parents=True, exist_ok=True)
        (tmp_path / "a-sweep" / name).write_text("{}")
    (tmp_path / "a-sweep" / "trials" / "trial-000" / "last.npz").write_bytes(b"")
    message = refusal(front, {"init_from": str(tmp_path / where)}, tmp_path, corpus, capsys)
    assert f"init_from {tmp_path / where}: {expected}" in message.replace("--init-from", "init_from"), message


def test_a_resume_refuses_the_same_changes_from_the_command_line_and_python(tmp_path, corpus, other_run, capsys):
    before = {path.name: path.read_bytes() for path in other_run.iterdir()}
    for settings, expected in [({"updates": 40, "epochs": 3.0}, "not both"),
                               ({"dropout": 0.5, "updates": 40}, "cannot change"),
                               ({"hidden": 9, "updates": 40}, "cannot change"),
                               ({"corpus": str(tmp_path / "elsewhere.txt"), "updates": 40}, "cannot change")]:
        code, _, err = run(capsys, "train", "--resume", other_run, "--no-progress", *flags(settings))
        assert code == 1 and expected in err and err.count("\n") == 1, err
        with pytest.raises(ConfigError, match=expected):
            textgen.resume(other_run, progress=False, **settings)
    assert {path.name: path.read_bytes() for path in other_run.iterdir()} == before


def test_a_resume_takes_settings_repeated_as_the_run_has_them(tmp_path, corpus, other_run, capsys):
    # the run's own values, given again (as a script that always passes the same flags does), are no change
    same = ["--hidden", "8", "--dropout", "0", "--seed", "1", "--corpus", corpus, "--cell", "rnn", "--seq-length", "25",
            "--val-fraction", "0.05", "--out", other_run]
    code, _, err = run(capsys, "train", "--resume", other_run, "--updates", "30", "--no-progress", *same)
    assert code == 0, err
    resumed = textgen.resume(other_run, updates=40, hidden=8, dropout=0.0, seed=1, cell="rnn", progress=False)
    assert resumed.final_update == 40


def test_a_resume_names_what_is_wrong_with_its_folder_and_its_total(tmp_path, corpus, other_run, capsys):
    code, _, err = run(capsys, "train", "--resume", tmp_path / "nowhere", "--updates", "40")
    assert code == 1 and "--resume" in err and "no such folder" in err, err
    code, _, err = run(capsys, "train", "--resume", corpus, "--updates", "40")
    assert code == 1 and "not a folder" in err, err
    code, _, err = run(capsys, "train", "--resume", other_run, "--epochs", "0.01")
    assert code == 1 and "--epochs 0.01 makes 1 in all, and the run already has 20 updates" in err, err


def test_a_resume_takes_the_corpus_given_by_another_path_to_the_same_file(tmp_path, corpus, other_run, capsys):
    # the run read `corpus` by its absolute path; the same file by a relative path, through "." or with its
    # loader's prefix is the same corpus, from the command line and from Python
    for update, spec in [(30, os.path.relpath(corpus)), (40, f"{tmp_path}/./{corpus.name}"), (50, f"text:{corpus}")]:
        code, _, err = run(capsys, "train", "--resume", other_run, "--updates", update, "--corpus", spec,
                           "--no-progress")
        assert code == 0, err
    resumed = textgen.resume(other_run, updates=60, corpus=Path(os.path.relpath(corpus)), progress=False)
    assert resumed.final_update == 60
    other = tmp_path / "other-book.txt"
    other.write_text(TEXT)  # the same text in another file is another corpus
    code, _, err = run(capsys, "train", "--resume", other_run, "--updates", 70, "--corpus", other, "--no-progress")
    assert code == 1 and "cannot change --corpus" in err, err


def test_a_resume_takes_loader_settings_repeated_as_the_run_read_them(tmp_path, corpus, other_run, capsys):
    # the text loader read the run's corpus as utf-8 without --strip-gutenberg: saying so again is no change,
    # whether as its flag or as --option, and one that differs is named with the value the run read it with
    for update, given in [(30, ["--encoding", "utf-8"]), (40, ["--option", "encoding=utf-8"]),
                          (50, ["--option", "keep_carriage_returns=false", "--option", "strip_gutenberg=false"])]:
        code, _, err = run(capsys, "train", "--resume", other_run, "--updates", update, "--no-progress", *given)
        assert code == 0, err
    assert textgen.resume(other_run, updates=60, encoding="utf-8", option=["encoding=utf-8"],
                          progress=False).final_update == 60
    before = {path.name: path.read_bytes() for path in other_run.iterdir()}
    for given, expected in [(["--encoding", "latin-1"], "--encoding (latin-1 given, the run has utf-8)"),
                            (["--strip-gutenberg"], "--strip-gutenberg (True given, the run has False)"),
                            (["--option", "encoding=latin-1"], "encoding=utf-8"),
                            (["--keep-retweets"], "--keep-retweets is for the tweets loader")]:
        code, _, err = run(capsys, "train", "--resume", other_run, "--updates", 70, "--no-progress", *given)
        assert code == 1 and expected in err and err.count("\n") == 1, err
    assert {path.name: path.read_bytes() for path in other_run.iterdir()} == before


def test_a_resume_with_force_says_that_force_is_for_a_new_run(tmp_path, corpus, other_run, capsys):
    code, _, err = run(capsys, "train", "--resume", other_run, "--updates", 30, "--force", "--no-progress")
    assert code == 1 and err.count("\n") == 1 and "--force" in err, err
    assert "not be exact" not in err and "the run has" not in err, err  # --force is no setting of the run
    with pytest.raises(ConfigError, match="force"):
        textgen.resume(other_run, updates=30, force=True, progress=False)


def test_a_resume_refuses_an_evaluation_interval_beyond_its_new_total_as_a_new_run_does(other_run, capsys):
    code, _, err = run(capsys, "train", "--resume", other_run, "--updates", "40", "--eval-every", "50")
    assert code == 1 and "--eval-every 50 is beyond the run's 40 updates" in err, err
    with pytest.raises(ConfigError, match="eval_every 50 is beyond the run's 40 updates"):
        textgen.resume(other_run, updates=40, eval_every=50, progress=False)
