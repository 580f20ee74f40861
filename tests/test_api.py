"""The Python API: textgen.train / resume / load, Run and Model, callbacks, errors in Python's names."""

import ast
import inspect
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from commands import as_another_user, run, shared_folder

import textgen

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE_BOOK = PROJECT / "corpora" / "sample_book.txt"
SAMPLE_TWEETS = PROJECT / "corpora" / "sample_tweets.json"
QUICK = {"updates": 130, "hidden": 12, "log_every": 10, "sample_every": 50, "checkpoint_every": 40, "eval_every": 50,
         "passage_length": 60, "progress": False}


def rows(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


class Listener:
    """Keeps every call of every callback."""

    def __init__(self):
        self.calls = {name: [] for name in ("on_start", "on_log", "on_sample", "on_checkpoint", "on_status")}

    def __getattr__(self, name):
        if name in ("on_start", "on_log", "on_sample", "on_checkpoint", "on_status"):
            return self.calls[name].append
        raise AttributeError(name)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    listener = Listener()
    folder = tmp_path_factory.mktemp("api") / "book"
    result = textgen.train(str(SAMPLE_BOOK), out=folder, seed=3, callbacks=listener, **QUICK)
    return result, listener


def test_train_takes_the_settings_by_field_name_and_returns_the_run(trained):
    result, _ = trained
    config = json.loads((result.folder / "config.json").read_text())
    assert config["model"]["hidden"] == 12 and config["train"]["seed"] == 3 and config["train"]["updates"] == 130
    assert result.metrics == rows(result.folder / "metrics.jsonl") and result.metrics[-1]["update"] == 130
    assert result.samples == rows(result.folder / "samples.jsonl")
    assert [s["update"] for s in result.samples] == [0, 50, 100]
    assert result.passage == (result.folder / "best_passage.txt").read_text(encoding="utf-8")
    assert isinstance(result.best, textgen.Model) and isinstance(result.last, textgen.Model)
    assert result.last.update == 130 == result.final_update


def test_the_runs_numbers_say_their_unit_and_match_its_files(trained):
    result, _ = trained
    vals = [r["val_loss"] for r in rows(result.folder / "metrics.jsonl") if "val_loss" in r]
    assert result.best_val_nats_per_char == min(vals)
    assert result.best_val_bits_per_char == pytest.approx(min(vals) / math.log(2), rel=1e-12)
    assert result.final_smooth_loss_per_window == result.metrics[-1]["smooth_loss"]  # 130 is a logged update


def test_callbacks_see_what_the_run_folder_keeps(trained):
    result, listener = trained
    assert listener.calls["on_log"] == rows(result.folder / "metrics.jsonl")
    assert listener.calls["on_sample"] == rows(result.folder / "samples.jsonl")
    # checkpoints every 40 and at the end (update 0's is saved before the folder has its name)
    assert [c["update"] for c in listener.calls["on_checkpoint"]] == [40, 80, 120, 130]
    assert [c["final"] for c in listener.calls["on_checkpoint"]] == [False, False, False, True]
    assert all(c["last"] == result.folder / "last.npz" for c in listener.calls["on_checkpoint"])
    [start] = listener.calls["on_start"]
    config = json.loads((result.folder / "config.json").read_text())
    assert start["characters"] == config["corpus"]["characters"] and start["distinct"] == config["corpus"]["vocab_size"]
    assert start["total_updates"] == 130 and start["start_update"] == 0
    statuses = listener.calls["on_status"]
    assert [s["update"] for s in statuses if s["update"] % 10 == 0][-1] == 130  # at every log row, at least
    assert all(s["total_updates"] == 130 and s["chars_per_sec"] >= 0 for s in statuses)


def test_the_default_seed_is_fresh_and_recorded_and_repeats_the_run(tmp_path):
    settings = dict(QUICK, updates=60)
    first = textgen.train(str(SAMPLE_BOOK), out=tmp_path / "a", **settings)
    second = textgen.train(str(SAMPLE_BOOK), out=tmp_path / "b", **settings)
    assert first.seed != second.seed
    again = textgen.train(str(SAMPLE_BOOK), out=tmp_path / "c", seed=first.seed, **settings)
    strip = [{k: v for k, v in r.items() if k != "chars_per_sec"} for r in first.metrics]
    assert [{k: v for k, v in r.items() if k != "chars_per_sec"} for r in again.metrics] == strip


def test_generate_returns_text_from_the_training_state_as_the_command_line_does(trained, capsys):
    result, _ = trained
    model = textgen.load(result.folder)
    text = model.generate(150, temperature=0.7, top_k=5, seed=11)
    assert isinstance(text, str) and len(text) == 150
    code, out, _ = run(capsys, "generate", "--run", result.folder, "--length", 150, "--temperature", 0.7,
                       "--top-k", 5, "--seed", 11)
    assert code == 0 and out == text + "\n"
    primed = model.generate(40, prime="The ", count=3, seed=2)
    assert isinstance(primed, list) and len(primed) == 3 and all(t.startswith("The ") and len(t) == 44
                                                                   for t in primed)
    assert model.generate(20, count=1, seed=4) == [model.generate(20, seed=4)]
    assert model.generate(30, greedy=True) == model.generate(30, greedy=True, seed=99)


def test_generate_documents_returns_whole_documents(tmp_path):
    tweets = textgen.train(str(SAMPLE_TWEETS), out=tmp_path / "tweets", seed=1, **dict(QUICK, updates=80))
    docs = tweets.best.generate(60, documents=3, seed=5)
    assert isinstance(docs, list) and len(docs) == 3 and all(len(d) <= 60 and "\u2403" not in d for d in docs)
    assert "\u2403" in tweets.best.generate(400, seed=5)  # shown as ␃, as in training's samples


def test_evaluate_and_bits_per_char_match_textgen_evaluate(trained, capsys):
    result, _ = trained
    model = result.best
    code, out, _ = run(capsys, "evaluate", "--run", result.folder, "--corpus", SAMPLE_BOOK, "--json")
    assert code == 0
    expected = json.loads(out)
    assert model.evaluate(SAMPLE_BOOK) == expected["loss_per_char"]
    assert model.bits_per_char(str(SAMPLE_BOOK)) == pytest.approx(expected["loss_per_char"] / math.log(2), rel=1e-12)


def test_resume_continues_the_run_and_refuses_what_would_make_it_inexact(tmp_path):
    whole = textgen.train(str(SAMPLE_BOOK), out=tmp_path / "whole", seed=5, **dict(QUICK, updates=100))
    part = textgen.train(str(SAMPLE_BOOK), out=tmp_path / "part", seed=5, **dict(QUICK, updates=60))
    continued = textgen.resume(part, updates=100, progress=False)
    assert continued.final_update == 100
    assert (continued.folder / "last.npz").read_bytes() != b""
    assert textgen.load(continued.folder, "last").generate(50, seed=1) == whole.last.generate(50, seed=1)
    with pytest.raises(textgen.ConfigError, match=r"cannot change hidden \(50 given, the run has 12\)"):
        textgen.resume(continued, hidden=50)


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.generate(10, temperature=0), r"^temperature must be a positive number, got 0$"),
    (lambda m: m.generate(10, top_p=2), r"^top_p must be a number above 0 and at most 1, got 2$"),
    (lambda m: m.generate(10, count=2, documents=2), r"^documents and count cannot be combined"),
    (lambda m: m.generate(10, prime="\u00e9\u00e9"), r"^prime has characters that are not in the model"),
    (lambda m: m.generate(10, prime=None), r"^prime must be a string, got None$"),
    (lambda m: m.generate(10, prime=b"The"), r"^prime must be a string, got b'The'$"),
    (lambda m: m.generate(10, greedy="yes"), r"^greedy must be True or False, got 'yes'$"),
    (lambda m: m.generate(10, documents=0), r"^documents must be a positive integer, got 0"),
    (lambda m: m.generate(10, documents=False), r"^documents must be a positive integer, got False"),
])
def test_errors_from_python_name_the_setting(trained, call, message):
    with pytest.raises(textgen.TextgenError, match=message):
        call(trained[0].best)


@pytest.mark.parametrize(("call", "message"), [
    (lambda folder, out: textgen.train(str(SAMPLE_BOOK), out=123, **QUICK), r"^out must be a path, got 123$"),
    (lambda folder, out: textgen.train(str(SAMPLE_BOOK), out=out, init_from=7, **QUICK),
     r"^init_from must be a path, got 7$"),
    (lambda folder, out: textgen.train([], out=out, **QUICK), r"^corpus is an empty list"),
    (lambda folder, out: textgen.train(str(SAMPLE_BOOK), out=out, weights=5, **QUICK),
     r"^weights must be a list of numbers or 'W1,W2' text, got 5$"),
    (lambda folder, out: textgen.train(str(SAMPLE_BOOK), out=out, options=["encoding=utf-8"], **QUICK),
     r"^options must be a dict of loader keywords"),
    (lambda folder, out: textgen.load(folder).evaluate(str(SAMPLE_BOOK), options=[1]),
     r"^options must be a dict of loader keywords"),
    (lambda folder, out: textgen.train(str(SAMPLE_BOOK), out=out, encoding=5, **QUICK),
     r"^encoding must be a string, got 5$"),  # a number, not the text '5'
    (lambda folder, out: textgen.train(str(SAMPLE_BOOK), out=out, options={"keep_carriage_returns": 1}, **QUICK),
     r"^keep_carriage_returns must be true or false, got 1$"),
    (lambda folder, out: textgen.load(123), r"^run_folder must be a path \(str or Path\), got 123$"),
    (lambda folder, out: textgen.Run(123), r"^folder must be a path \(str or Path\), got 123$"),
    (lambda folder, out: textgen.resume(123), r"^run must be a path \(str or Path\), got 123$"),
])
def test_wrong_types_are_errors_naming_the_parameter(trained, tmp_path, call, message):
    with pytest.raises(textgen.ConfigError, match=message):
        call(trained[0].folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_bad_passage_length_on_resume_is_refused_and_leaves_the_run_as_it_was(tmp_path):
    part = textgen.train(str(SAMPLE_BOOK), out=tmp_path / "part", seed=5, **dict(QUICK, updates=60))
    before = {path.name: path.read_bytes() for path in part.folder.iterdir() if path.is_file()}
    with pytest.raises(textgen.ConfigError, match=r"^passage_length must be an integer of at least 0, got -1$"):
        textgen.resume(part, updates=100, passage_length=-1, progress=False)
    assert {path.name: path.read_bytes() for path in part.folder.iterdir() if path.is_file()} == before
    assert textgen.resume(part, updates=100, progress=False).final_update == 100


def test_the_command_line_names_the_flag_for_the_same_error(trained, capsys):
    code, _, err = run(capsys, "generate", "--run", trained[0].folder, "--temperature", 0)
    assert code == 1 and err == "textgen: error: --temperature must be a positive number, got 0.0\n"


def test_train_refuses_an_unknown_setting_and_suggests_the_near_one(tmp_path):
    with pytest.raises(textgen.ConfigError, match=r"no setting 'hiden'; did you mean 'hidden'\?"):
        textgen.train(str(SAMPLE_BOOK), out=tmp_path / "x", hiden=10)
    with pytest.raises(textgen.ConfigError, match=r"^eta must be a positive number, got -1$"):
        textgen.train(str(SAMPLE_BOOK), out=tmp_path / "x", eta=-1)
    with pytest.raises(textgen.ConfigError, match="give updates or epochs, not both"):
        textgen.train(str(SAMPLE_BOOK), out=tmp_path / "x", updates=5, epochs=1)
    with pytest.raises(textgen.ConfigError, match="has none of the methods"):
        textgen.train(str(SAMPLE_BOOK), out=tmp_path / "x", callbacks=print, **QUICK)
    assert not (tmp_path / "x").exists()


def test_ctrl_c_in_python_checkpoints_and_says_how_to_resume(tmp_path):
    class CtrlC:
        def on_log(self, record):
            if record["update"] == 50:
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match=r"stopped at update 5\d; checkpoint saved in .*textgen.resume"):
        textgen.train(str(SAMPLE_BOOK), out=tmp_path / "stopped", seed=2, callbacks=CtrlC(), **QUICK)
    stopped = textgen.Run(tmp_path / "stopped")
    assert 50 <= stopped.final_update < 130
    assert textgen.resume(stopped, progress=False).final_update == 130


def test_every_public_name_resolves_and_importing_textgen_loads_nothing_heavy():
    for name in textgen.__all__:
        assert getattr(textgen, name) is not None
    assert set(textgen.__all__) <= set(dir(textgen))
    with pytest.raises(AttributeError):
        textgen.no_such_name  # noqa: B018
    probe = "import sys, textgen; print(sorted(m for m in ('numpy', 'datasets', 'matplotlib') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert (Path(textgen.__file__).parent / "py.typed").is_file()


def test_train_is_the_function_even_after_the_trainer_module_is_imported():
    import textgen.trainer

    assert callable(textgen.train) and textgen.train.__module__ == "textgen.api"


def test_the_notebook_example_uses_only_top_level_names_and_runs(tmp_path):
    path = PROJECT / "examples" / "notebook.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [n for n in imported if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("textgen")]
    assert not [a.name for n in imported if isinstance(n, ast.Import) for a in n.names if a.name.startswith("textgen.")]
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "textgen"}
    assert used and used <= set(textgen.__all__), used - set(textgen.__all__)
    done = subprocess.run([sys.executable, str(path), "--updates", "300", "--out", str(tmp_path / "nb")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert "best held-out loss:" in done.stdout and "refused: temperature must be a positive number" in done.stdout
    assert "1,300 updates now" in done.stdout


# ---------------------------------------------------------------- paths the operating system refuses

def bad_path(kind: str, tmp_path: Path) -> str:
    return {
        "NUL byte": str(tmp_path / "run\0name"),
        "name too long": str(tmp_path / ("n" * 300)),
        "path too long": str(tmp_path / "/".join(["d" * 200] * 25)),
        "not UTF-8": os.fsdecode(bytes(tmp_path / "r") + b"\xff\xfe"),
        "a device": "/dev/null",
        "a folder for a file": str(tmp_path),
        "a file for a folder": str(SAMPLE_BOOK),
    }[kind]


PATH_CALLS = {
    "train corpus": lambda path, good, out: textgen.train(path, out=out, **QUICK),
    "train out": lambda path, good, out: textgen.train(str(SAMPLE_BOOK), out=path, **QUICK),
    "train init_from": lambda path, good, out: textgen.train(str(SAMPLE_BOOK), out=out, init_from=path, **QUICK),
    "resume": lambda path, good, out: textgen.resume(path, updates=200, progress=False),
    "load": lambda path, good, out: textgen.load(path),
    "Run": lambda path, good, out: textgen.Run(path),
    "evaluate": lambda path, good, out: textgen.load(good).evaluate(path),
}


FINE_THERE = {("a file for a folder", "train corpus"), ("a file for a folder", "evaluate"),
              ("a folder for a file", "train out")}  # what the call takes


@pytest.mark.parametrize(("kind", "call"), [
    (kind, call) for kind in ("NUL byte", "name too long", "path too long", "not UTF-8", "a device",
                              "a folder for a file", "a file for a folder")
    for call in PATH_CALLS if (kind, call) not in FINE_THERE])
def test_a_path_no_file_can_have_is_a_textgen_error_naming_it(kind, call, trained, tmp_path):
    path = bad_path(kind, tmp_path)
    with pytest.raises(textgen.TextgenError) as raised:
        PATH_CALLS[call](path, trained[0].folder, tmp_path / "out")
    shown = str(raised.value)
    assert "\n" not in shown and (path[:40] in shown or repr(path)[:40] in shown or "valid UTF-8" in shown), shown
    assert not (tmp_path / "out").exists()


def test_permission_denied_on_a_users_path_is_a_textgen_error_naming_it(trained):
    with shared_folder() as base:
        shutil.copytree(trained[0].folder, base / "good")
        shutil.copytree(trained[0].folder, base / "locked")
        shutil.copy(SAMPLE_BOOK, base / "book.txt")
        shutil.copy(SAMPLE_BOOK, base / "readable.txt")  # the checkout itself may be private to its owner
        readable = str(base / "readable.txt")
        (base / "read-only").mkdir()
        for path, mode in ((base / "locked", 0), (base / "book.txt", 0), (base / "read-only", 0o555)):
            path.chmod(mode)
        calls = [
            lambda: textgen.train(str(base / "book.txt"), out=base / "good" / "new", **QUICK),
            lambda: textgen.train(readable, out=base / "read-only" / "run", **QUICK),
            lambda: textgen.train(readable, out=base / "locked", force=True, **QUICK),
            lambda: textgen.train(readable, out=base / "read-only" / "run", init_from=base / "locked",
                                  **QUICK),
            lambda: textgen.resume(base / "locked", updates=200, progress=False),
            lambda: textgen.load(base / "locked"),
            lambda: textgen.Run(base / "locked"),
            lambda: textgen.load(base / "good").evaluate(str(base / "book.txt")),
        ]
        with as_another_user():
            for number, call in enumerate(calls):
                with pytest.raises(textgen.TextgenError) as raised:
                    call()
                assert "Permission denied" in str(raised.value) and str(base) in str(raised.value), (number, raised)


def test_sample_i_of_a_seed_is_the_same_whatever_the_count(trained, tmp_path):
    model = trained[0].best
    alone = model.generate(80, seed=7)
    many = model.generate(80, count=70, seed=7)
    assert many[0] == alone and len(set(many)) == 70
    assert model.generate(80, count=2, seed=7) == many[:2]
    assert model.generate(80, count=66, seed=7)[65] == many[65]  # past the samples drawn side by side
    assert model.generate(80, count=3, seed=7, temperature=0.5)[0] != model.generate(80, count=3, seed=8,
                                                                                     temperature=0.5)[0]
    tweets = textgen.train(str(SAMPLE_TWEETS), out=tmp_path / "tweets", seed=1, **dict(QUICK, updates=80)).best
    documents = tweets.generate(60, documents=40, seed=3)
    assert tweets.generate(60, documents=1, seed=3) == documents[:1]
    assert tweets.generate(60, documents=37, seed=3)[36] == documents[36]


def test_a_fresh_seed_is_kept_so_that_a_text_can_be_drawn_again(trained):
    model = trained[0].best
    first = model.generate(120)
    assert isinstance(model.last_seed, int)
    again = model.generate(120, seed=model.last_seed)
    assert again == first and model.generate(120) != first


def test_the_run_train_returns_generates_and_loads_as_its_folder_does(trained):
    result = trained[0]
    assert result.generate(90, seed=4) == result.best.generate(90, seed=4) == textgen.load(result).generate(90, seed=4)
    assert textgen.load(result, "last").update == result.final_update == textgen.Run(result).final_update
    assert result.evaluate() == result.best.evaluate()


def test_evaluate_without_a_corpus_scores_the_runs_held_out_text(trained, tmp_path):
    result = trained[0]
    scored = result.best.evaluation()
    assert scored["text"] == "held-out" and scored["corpus"] == [str(SAMPLE_BOOK)]
    assert scored["characters"] == result.config["corpus"]["val_characters"]
    assert scored["nats_per_char"] == pytest.approx(result.best_val_nats_per_char, rel=1e-9)  # as training measured
    assert scored["bits_per_char"] == pytest.approx(scored["nats_per_char"] / math.log(2))
    everything = textgen.train(str(SAMPLE_BOOK), out=tmp_path / "all", seed=2, val_fraction=0, **QUICK)
    scored = everything.best.evaluation()
    assert scored["text"] == "training" and scored["characters"] == len(SAMPLE_BOOK.read_text(encoding="utf-8"))
    assert scored["nats_per_char"] == everything.best.evaluate(str(SAMPLE_BOOK))


def test_training_from_python_without_a_standard_error_finishes_the_run(tmp_path):
    script = (f"import textgen; run = textgen.train({str(SAMPLE_BOOK)!r}, out={str(tmp_path / 'run')!r}, progress=True, "
              f"seed=1, **{ {k: v for k, v in QUICK.items() if k != 'progress'}!r}); print(textgen.resume(run, updates=160).final_update)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False,
                            preexec_fn=lambda: os.close(2))  # as pythonw, or a daemon that closed it: sys.stderr is None
    assert result.returncode == 0 and result.stdout == "160\n", result
    assert (tmp_path / "run" / "best_passage.txt").is_file()


@pytest.mark.parametrize("stderr", ["sys.stderr.close()", "sys.stderr = open('/dev/full', 'w')"],
                         ids=["closed", "full device"])
@pytest.mark.parametrize("progress", [None, True])
def test_training_from_python_with_a_standard_error_that_fails_finishes_the_run(stderr, progress, tmp_path):
    settings = {k: v for k, v in QUICK.items() if k != "progress"}
    script = (f"import sys, textgen\n{stderr}\nrun = textgen.train({str(SAMPLE_TWEETS)!r}, "
              f"out={str(tmp_path / 'run')!r}, progress={progress}, seed=1, **{settings!r})\nprint(run.final_update)\n"
              "sys.stderr = sys.__stderr__")  # (what the bar left in the full device's buffer is not textgen's to drop)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0 and result.stdout == "130\n", result
    assert (tmp_path / "run" / "best_passage.txt").is_file()


def test_a_runs_repr_never_raises_even_without_its_last_checkpoint(tmp_path):
    run = textgen.train(str(SAMPLE_BOOK), out=tmp_path / "run", seed=1, **dict(QUICK, updates=20, eval_every=10))
    (run.folder / "last.npz").unlink()
    assert repr(textgen.Run(run.folder)) == f"<textgen.Run {run.folder}: ? of 20 updates>"


@pytest.mark.parametrize("call", ["generate(50, count=10**12)", "generate(50, documents=10**12)",
                                  "generate(10**15)", "generate(10**13, count=3, prime='The ')"])
def test_texts_too_many_or_too_long_to_return_are_refused_before_any_is_drawn(trained, call):
    script = (f"import textgen\nmodel = textgen.load({str(trained[0].folder)!r})\ntry:\n    model.{call}\n"
              "except textgen.TextgenError as error:\n    print(type(error).__name__, error)\n")
    limit = 4 << 30  # the address space of the child: a list of 10^12 texts fails at once, not after the machine's

    def limited() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False,
                            preexec_fn=limited)
    assert result.returncode == 0 and result.stdout.startswith("LimitError "), result
    assert "would need about" in result.stdout and "count, documents" in result.stdout


def test_a_run_is_taken_wherever_a_run_folder_is(trained, tmp_path):
    result = trained[0]
    again = textgen.train(str(SAMPLE_BOOK), out=tmp_path / "further", init_from=result, seed=4,
                          **dict(QUICK, updates=20, eval_every=10))
    assert again.config["init_from"] == str(result.folder) and again.final_update == 20


def test_every_public_name_is_the_apis_even_once_the_whole_library_is_loaded(tmp_path):
    # a submodule named like a function (textgen.evaluate once was one) would hide the function once imported
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(textgen.__path__, "textgen."):
        if not module.name.startswith(("textgen.cli.__main__", "textgen.sweep")):
            importlib.import_module(module.name)
    api = importlib.import_module("textgen.api")
    for name in textgen.__all__:
        if name != "__version__":
            value = getattr(textgen, name)
            assert not inspect.ismodule(value), name
            if hasattr(api, name):
                assert value is getattr(api, name), name


@pytest.mark.parametrize("blas", [None, "4", "1"])
def test_a_run_split_over_threads_says_when_blas_may_run_threads_of_its_own(tmp_path, monkeypatch, caplog, blas):
    # The command line asks BLAS for one thread before NumPy loads; a Python caller may not have, and then
    # BLAS's threads compete with the workspace's. The run says so (and trains all the same).
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    if blas is not None:
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", blas)
    settings = dict(QUICK, updates=20, eval_every=10, sample_every=10, checkpoint_every=10, batch_size=4, threads=2,
                    seed=1)
    with caplog.at_level("WARNING", logger="textgen"):
        result = textgen.train(str(SAMPLE_BOOK), out=tmp_path / "run", **settings)
    warned = [r.getMessage() for r in caplog.records if "OPENBLAS_NUM_THREADS=1" in r.getMessage()]
    assert result.final_update == 20
    assert len(warned) == (0 if blas == "1" else 1)
    if warned:
        assert warned[0].startswith("threads 2: BLAS may run threads of its own")
    caplog.clear()
    with caplog.at_level("WARNING", logger="textgen"):  # one thread: nothing to say
        textgen.train(str(SAMPLE_BOOK), out=tmp_path / "one", **dict(settings, threads=1))
    assert not [r for r in caplog.records if "OPENBLAS" in r.getMessage()]


def test_notes_name_settings_as_python_does_and_the_command_line_as_flags(tmp_path, caplog, capsys):
    # the library logs each note once, its settings spelled as keywords; the command line spells them as flags
    with caplog.at_level("INFO", logger="textgen"):
        textgen.train(out=tmp_path / "default", updates=2, hidden=8, eval_every=1, sample_every=1,
                      checkpoint_every=1, passage_length=0, progress=False, seed=1)
    notes = [r.getMessage() for r in caplog.records if "built-in default" in r.getMessage()]
    assert notes and notes[0].startswith("no corpus given, training on the built-in default")
    code, _, err = run(capsys, "train", "--out", tmp_path / "cli", "--updates", 2, "--hidden", 8, "--eval-every", 1,
                       "--sample-every", 1, "--checkpoint-every", 1, "--passage-length", 0, "--seed", 1)
    assert code == 0, err
    assert "textgen: no --corpus given, training on the built-in default" in err
    assert "\x1e" not in err and "\x1f" not in err


def test_settings_that_would_have_no_effect_are_named_and_ignored(tmp_path, caplog, capsys):
    # --heads acts on a gpt only, --decay-rate on the exponential schedule, --weight-decay on adamw: given where
    # they do nothing, the run says so in one line per rule (as the reader spells them) and trains all the same
    settings = dict(QUICK, updates=20, eval_every=10, sample_every=10, checkpoint_every=10, seed=1)
    with caplog.at_level("WARNING", logger="textgen"):
        result = textgen.train(str(SAMPLE_BOOK), out=tmp_path / "api", cell="lstm", heads=8, context=32,
                               schedule="cosine", decay_rate=0.9, **settings)
    said = [r.getMessage() for r in caplog.records if "no effect" in r.getMessage()]
    assert said == ["heads and context have no effect with cell lstm (only with cell gpt): ignored",
                    "decay_rate has no effect with schedule cosine (only with schedule exponential): ignored"]
    assert result.final_update == 20
    caplog.clear()
    with caplog.at_level("WARNING", logger="textgen"):  # each where it acts: nothing to say
        textgen.train(str(SAMPLE_BOOK), out=tmp_path / "quiet", schedule="exponential", decay_rate=0.9,
                      optimizer="adamw", weight_decay=0.05, **settings)
    assert not [r for r in caplog.records if "no effect" in r.getMessage()]
    code, _, err = run(capsys, "train", "--corpus", SAMPLE_BOOK, "--out", tmp_path / "cli", "--updates", 20,
                       "--hidden", 12, "--eval-every", 10, "--sample-every", 10, "--checkpoint-every", 10,
                       "--passage-length", 0, "--optimizer", "adam", "--weight-decay", 0.2, "--no-progress")
    assert code == 0, err
    assert "textgen: warning: --weight-decay has no effect with --optimizer adam (only with --optimizer adamw): " \
           "ignored\n" in err
