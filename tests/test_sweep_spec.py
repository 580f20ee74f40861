"""A sweep's spec, checked without Ray: grids, choices, ranges and controls; every bad spec one line, exit 1,
before any trial starts (and before Ray does)."""

import importlib.util
import json
import os
import re
import socket
from pathlib import Path

import pytest
from commands import run

from textgen.errors import ConfigError
from textgen.sweep.spec import read_spec

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE_BOOK = PROJECT / "corpora" / "sample_book.txt"

SPEC = """
[train]
corpus = ["book.txt"]
updates = 500
val_fraction = 0.05

[search]
hidden = [64, 128]
eta = { loguniform = [0.01, 0.3] }
cell = { choice = ["rnn", "lstm"] }
samples = 2
metric = "val_bpc"
trials_at_once = 2
cpus_per_trial = 1

[early_stopping]
grace_updates = 100
reduction_factor = 3
"""


def write_spec(tmp_path: Path, text: str = SPEC) -> Path:
    (tmp_path / "book.txt").write_bytes(SAMPLE_BOOK.read_bytes())
    path = tmp_path / "sweep.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_issues_spec_reads_as_written_with_paths_from_its_folder(tmp_path):
    spec = read_spec(write_spec(tmp_path))
    assert spec.base == {"corpus": [str(tmp_path / "book.txt")], "updates": 500, "val_fraction": 0.05}
    assert [(d.name, d.kind, d.values) for d in spec.space] == [
        ("hidden", "grid", (64, 128)), ("eta", "loguniform", (0.01, 0.3)), ("cell", "choice", ("rnn", "lstm"))]
    assert spec.trial_count == 4 and spec.samples == 2 and spec.trials_at_once == 2 and spec.cpus_per_trial == 1
    assert spec.grace_updates == 100 and spec.reduction_factor == 3 and spec.metric == "val_bpc"


@pytest.mark.parametrize(("change", "message"), [
    (("hidden = [64, 128]", "hiden = [64, 128]"), r"'hiden' is not a setting \(did you mean 'hidden'\?\)"),
    (("updates = 500", "updatez = 500"), r"\[train\]: 'updatez' is not a setting"),
    (("[0.01, 0.3]", "[0.3, 0.01]"), r"eta.loguniform = \[0.3, 0.01\]: low is above high; swap them"),
    (("[0.01, 0.3]", "[0, 0.3]"), r"a log scale needs low above 0"),
    (("{ loguniform = [0.01, 0.3] }", "{ normal = [0, 1] }"), r"'normal' is not a kind of range"),
    (("hidden = [64, 128]", "hidden = []"), r"hidden = \[\]: a grid needs at least one value"),
    (("hidden = [64, 128]", "hidden = [64, -1]"), r"the trial with .*hidden = -1.* would be refused: hidden must be"),
    (("hidden = [64, 128]", "hidden = ['64']"), r"hidden must be an integer, got '64'"),
    (("[\"rnn\", \"lstm\"]", "[\"rnn\", \"transformer\"]"), r"cell must be one of rnn, lstm, gru, gpt, got 'transformer'"),
    (("samples = 2", "samples = 0"), r"samples must be a whole number of at least 1, got 0"),
    (("metric = \"val_bpc\"", "metric = \"accuracy\""), r"metric must be one of val_bpc, val_loss"),
    (("reduction_factor = 3", "reduction_factor = 1"), r"reduction_factor must be a number above 1"),
    (("grace_updates = 100", "grace = 100"), r"'grace' is not a setting; it takes grace_updates"),
    (("val_fraction = 0.05", "val_fraction = 0"), r"val_fraction = 0 leaves no held-out text"),
    (("[early_stopping]", "[stopping]"), r"\[stopping\] is not a table a sweep spec has"),
    (("corpus = [\"book.txt\"]", "corpus = [\"book.txt\"]\nout = \"x\""), r"out is chosen by the sweep"),
    (("hidden = [64, 128]", "hidden = { uniform = [64, 128] }"),
     r"hidden takes whole numbers, which uniform does not draw; use \{randint = \[64, 128\]\}"),
    (("hidden = [64, 128]", "hidden = { loguniform = [64, 128] }"), r"hidden takes whole numbers"),
    (("metric = \"val_bpc\"", "metric = [\"val_bpc\"]"), r"metric must be one of val_bpc, val_loss, got \['val_bpc'\]"),
    (("hidden = [64, 128]", "val_fraction = [0.1, 0]"), r"val_fraction cannot be searched: every trial reads the same "
     r"corpus and holds out the same text"),
    (("reduction_factor = 3", "reduction_factor = inf"), r"reduction_factor must be a number above 1, got inf"),
    (("grace_updates = 100", "grace_updates = 100000000000000000"), r"grace_updates must be at most"),
    (("samples = 2", "samples = 1000000000"), r"the spec makes 2,000,000,000 trials, more than the 10,000"),
    (("cpus_per_trial = 1", "cpus_per_trial = 5000"), r"cpus_per_trial must be a number from 0.0001 to 1024"),
    (("cpus_per_trial = 1", "cpus_per_trial = 1e-300"), r"cpus_per_trial must be a number from 0.0001 to 1024"),
    (("cpus_per_trial = 1", "cpus_per_trial = 0.00015"), r"Ray counts CPUs in steps of 0.0001; give 0.0001"),
    (("hidden = [64, 128]", "encoding = ['utf-8', 'latin-1']"), r"encoding cannot be searched: every trial reads the "
                                                                r"same corpus"),
    (("hidden = [64, 128]", "val_max_characters = [1000, 2000]"), r"val_max_characters cannot be searched"),
])
def test_a_bad_spec_is_one_line_naming_what_is_wrong(tmp_path, change, message):
    path = write_spec(tmp_path, SPEC.replace(*change))
    with pytest.raises(ConfigError, match=message):
        read_spec(path)


def test_epochs_searched_replaces_the_bases_updates(tmp_path):
    spec = read_spec(write_spec(tmp_path, SPEC.replace("hidden = [64, 128]", "epochs = [0.5, 1]")))
    assert spec.base["updates"] == 500 and next(d.values for d in spec.space) == (0.5, 1)


def test_an_empty_search_space_is_refused(tmp_path):
    text = SPEC.split("[search]")[0] + "[search]\nsamples = 2\n"
    with pytest.raises(ConfigError, match=r"the search space is empty; give \[search\] at least one setting"):
        read_spec(write_spec(tmp_path, text))
    with pytest.raises(ConfigError, match=r"the search space is empty"):
        read_spec(write_spec(tmp_path, SPEC.split("[search]")[0]))


def test_a_setting_every_trial_shares_cannot_be_searched(tmp_path):
    with pytest.raises(ConfigError, match=r"corpus cannot be searched: every trial reads the same corpus"):
        read_spec(write_spec(tmp_path, SPEC.replace("hidden = [64, 128]", "corpus = ['a.txt', 'b.txt']")))


@pytest.mark.parametrize(("change", "message"), [
    (("hiden = [64, 128]",), r"'hiden' is not a setting"),
    (("[0.3, 0.01]",), r"low is above high"),
    ((None,), r"the search space is empty"),
])
def test_sweep_refuses_a_bad_spec_in_one_line_before_anything_starts(tmp_path, capsys, change, message):
    text = SPEC.split("[search]")[0] + "[search]\nsamples = 1\n" if change[0] is None else SPEC.replace(
        "hidden = [64, 128]" if "hiden" in change[0] else "[0.01, 0.3]", change[0])
    path = write_spec(tmp_path, text)
    code, out, err = run(capsys, "sweep", path, "--out", tmp_path / "sweep")
    assert code == 1 and out == "" and err.count("\n") == 1 and err.startswith("textgen: error: "), err
    assert re.search(message, err), err
    assert not (tmp_path / "sweep").exists()


def test_an_address_nobody_answers_on_is_one_line_before_anything_starts(tmp_path, capsys):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = run(capsys, "sweep", write_spec(tmp_path), "--out", tmp_path / "sweep", "--address",
                       f"127.0.0.1:{port}")
    assert code == 1 and err.count("\n") == 1, err
    assert re.search(rf"--address 127.0.0.1:{port}: cannot reach a Ray cluster there", err), err
    assert not (tmp_path / "sweep").exists()
    code, _, err = run(capsys, "sweep", write_spec(tmp_path), "--address", "nonsense")
    assert code == 1 and "expected auto, HOST:PORT or ray://HOST:PORT" in err


@pytest.mark.parametrize(("answer", "message"), [
    (b"HTTP/1.0 400 Bad Request\r\n\r\n", "something answers there, but not a Ray cluster"),
    (None, r"cannot reach a Ray cluster there \(timed out\)"),
])
def test_an_address_where_something_else_than_ray_answers_is_one_line_at_once(tmp_path, answer, message):
    import threading

    from commands import textgen

    server = socket.create_server(("127.0.0.1", 0))  # a web server, or one that accepts and never says a word
    held = []

    def serve() -> None:
        while True:
            connection, _ = server.accept()
            held.append(connection)
            if answer is not None:
                connection.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    done = textgen("sweep", write_spec(tmp_path), "--out", tmp_path / "sweep", "--address", address, timeout=120)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr  # ray.init waited for many minutes
    assert re.search(rf"--address {address}: {message}", done.stderr), done.stderr
    assert not (tmp_path / "sweep").exists()


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed here")
def test_without_ray_sweep_says_how_to_install_it(tmp_path, capsys):
    code, _, err = run(capsys, "sweep", write_spec(tmp_path), "--out", tmp_path / "sweep")
    assert code == 1 and err == ("textgen: error: textgen sweep needs Ray Tune: pip install -e '.[sweep]' in "
                                 "textgen's folder (or pip install 'ray[tune]')\n")
    assert not (tmp_path / "sweep").exists()


def test_status_and_resume_of_a_folder_that_is_no_sweep_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "sweep", "--status", tmp_path)
    assert code == 1 and "not a sweep folder" in err
    code, _, err = run(capsys, "sweep")
    assert code == 1 and "give one of SPEC.toml, --resume SWEEP_DIR or --status SWEEP_DIR" in err


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="checked once Ray is found (without it: the hint)")
def test_an_out_that_cannot_be_made_or_more_cpus_than_the_machine_are_one_line(tmp_path, capsys):
    spec = write_spec(tmp_path)
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    code, _, err = run(capsys, "sweep", spec, "--out", tmp_path / "a-file" / "sweep")
    assert code == 1 and err.count("\n") == 1 and "cannot make the sweep folder there" in err, err
    greedy = write_spec(tmp_path, SPEC.replace("cpus_per_trial = 1", f"cpus_per_trial = {(os.cpu_count() or 1) + 1}"))
    code, _, err = run(capsys, "sweep", greedy, "--out", tmp_path / "sweep")
    assert code == 1 and err.count("\n") == 1 and "CPU(s) this machine has; no trial could start" in err, err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(("address", "message"), [
    ("[::1]:{port}", r"--address \[::1\]:\d+: cannot reach a Ray cluster there \(Connection refused\)"),
    ("ray://[::1]:{port}", r"cannot reach a Ray cluster there \(Connection refused\)"),
    ("::1", r"an IPv6 address goes in brackets, as in \[::1\]:6379"),
    ("[::1]", r"expected auto, HOST:PORT or ray://HOST:PORT"),
])
def test_an_ipv6_address_is_read_in_brackets(tmp_path, capsys, address, message):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    with socket.socket(socket.AF_INET6) as probe:  # a port that was free a moment ago: nothing listens there
        try:
            probe.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback here")
        port = probe.getsockname()[1]
    code, _, err = run(capsys, "sweep", write_spec(tmp_path), "--out", tmp_path / "sweep", "--address",
                       address.format(port=port))
    assert code == 1 and err.count("\n") == 1 and re.search(message, err), err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(("trials", "message"), [
    ("[]", r"not a sweep's trials.json \(an object of trials\)"),
    ("null", r"not a sweep's trials.json"),
    ('{"trial-000": 5}', r"'trial-000' is not an object"),
    ('{"trial-000": {"status": 3, "settings": {}}}', r"'trial-000' has status 3, not one of pending"),
    ('{"trial-000": {"status": "ended", "settings": []}}', r"'trial-000' has settings that are not an object"),
    ('{"trial-000": {"status": "ended", "settings": {}, "last_result": []}}', r"last_result that is not an object"),
    ('{"trial-000": {"status": "pending", "settings": {}, "seed": "7"}}', r"has seed '7', not a whole number"),
    ('{"../../elsewhere": {"status": "pending", "settings": {}}}', r"'../../elsewhere' is not a trial's name"),
    ('{"trial-000": {"status": "ended", "settings": {}, "last_result": {"time_total_s": "1 h"}}}',
     r"'trial-000' has a last_result whose time_total_s is '1 h', not a number"),
    ('{"trial-000": {"status": "ended", "settings": {}, "last_result": {"val_bpc": [2.5]}}}',
     r"'trial-000' has a last_result whose val_bpc is \[2.5\], not a number"),
])
def test_status_of_a_hand_edited_trials_json_is_one_line(tmp_path, capsys, trials, message):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "spec.toml").write_text(write_spec(tmp_path).read_text(encoding="utf-8"), encoding="utf-8")
    (sweep / "sweep.json").write_text('{"spec": "gone.toml", "trials": 1, "status": "stopped", "runs": []}',
                                      encoding="utf-8")
    (sweep / "trials.json").write_text(trials, encoding="utf-8")
    for command in ("--status", "--resume"):
        code, _, err = run(capsys, "sweep", command, sweep)
        assert code == 1 and err.count("\n") == 1 and err.startswith("textgen: error: "), err
        assert re.search(message, err), err
    (sweep / "trials.json").write_text('{"trial-000": {"status": "pending", "settings": {"hidden": 64}}}',
                                       encoding="utf-8")
    (sweep / "sweep.json").write_text('["not", "an", "object"]', encoding="utf-8")
    code, _, err = run(capsys, "sweep", "--status", sweep)
    assert code == 1 and "not a sweep's sweep.json" in err, err


@pytest.mark.parametrize("runs", ['[{"wall_seconds": "1 h"}]', '[{"wall_seconds": true}]', '[3]'])
def test_a_hand_edited_run_in_sweep_json_is_one_line(tmp_path, capsys, runs):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "spec.toml").write_text(write_spec(tmp_path).read_text(encoding="utf-8"), encoding="utf-8")
    (sweep / "sweep.json").write_text(f'{{"spec": "gone.toml", "status": "stopped", "runs": {runs}}}', encoding="utf-8")
    (sweep / "trials.json").write_text('{"trial-000": {"status": "failed", "settings": {"hidden": 64, "eta": 0.1, '
                                       '"cell": "rnn"}, "seed": 7}}', encoding="utf-8")
    for command in ("--status", "--resume"):
        code, _, err = run(capsys, "sweep", command, sweep)
        assert code == 1 and err.count("\n") == 1 and "sweep.json: run 1 is not an object with its wall_seconds a " \
            "number" in err, err


def test_every_grid_point_is_checked_not_only_the_first_ten_thousand_combinations(tmp_path):
    # 5,001 grid points with a range's two ends make 10,002 combinations; the bad value is the last point
    grid = ", ".join(["64"] * 5000 + ["-1"])
    text = SPEC.replace("hidden = [64, 128]", f"hidden = [{grid}]").replace("samples = 2", "samples = 1")
    with pytest.raises(ConfigError, match=r"the trial with hidden = -1 would be refused: hidden must be"):
        read_spec(write_spec(tmp_path, text))


def test_sampled_values_stay_within_the_checked_ends(tmp_path):
    from textgen.sweep.spec import draw_points

    text = SPEC.replace("eta = { loguniform = [0.01, 0.3] }", "eta = { loguniform = [0.1, 0.1] }").replace(
        "cell = { choice = [\"rnn\", \"lstm\"] }", "dropout = { uniform = [0.25, 0.25] }").replace("samples = 2",
                                                                                               "samples = 50")
    points = draw_points(read_spec(write_spec(tmp_path, text)), seed=3)
    assert {p["eta"] for p in points} == {0.1} and {p["dropout"] for p in points} == {0.25}


TRIAL_SPEC = """
[train]
corpus = ["book.txt"]
updates = 300
eval_every = 100
passage_length = 20

[search]
hidden = [8, 16]
"""

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="the sweep extra is not installed")


@needs_ray
@pytest.mark.parametrize(("change", "message"), [
    (('corpus = ["book.txt"]', 'corpus = ["gone.txt"]'), r"\[train\]: /\S+/gone.txt: no such file"),
    (('corpus = ["book.txt"]', 'corpus = ["latin1.txt"]'), r"latin1.txt.*(UTF-8|utf-8|--encoding)"),
    (('corpus = ["book.txt"]', 'corpus = ["short.txt"]'), r"trial-000 \(hidden = 8\) would be refused: the corpus has "
                                                          r"\d+ characters to train on"),
    (("eval_every = 100", "eval_every = 1000"), r"trial-000 \(hidden = 8\) would be refused: eval_every 1,000 is "
                                                r"beyond the run's 300 updates"),
    (("hidden = [8, 16]", "hidden = [8, 3000000]"), r"trial-001 \(hidden = 3000000\) would be refused: training "
                                                    r"3,000,000 hidden units .* would need about"),
    (("updates = 300", "epochs = 1e15"), r"epochs 1000000000000000 would be [\d,]+ updates, more"),
    (("hidden = [8, 16]", "hidden = [8, 16]\n[early_stopping]\ngrace_updates = 100\nreduction_factor = 1.0000000001"),
     r"reduction_factor = 1.0000000001 would make ASHA keep [\d,]+ rungs .* give at least 1.0012"),
    (("hidden = [8, 16]", "hidden = [8, 16]\n[early_stopping]\ngrace_updates = 300"),
     r"grace_updates = 300 is not below the longest trial's 300 updates"),
])
def test_a_trial_its_run_would_refuse_is_refused_before_ray_starts_and_leaves_nothing(tmp_path, capsys, change,
                                                                                         message):
    (tmp_path / "latin1.txt").write_bytes(SAMPLE_BOOK.read_bytes()[:5000] + "café".encode("latin-1") * 50)
    (tmp_path / "short.txt").write_text("tiny", encoding="utf-8")
    spec = write_spec(tmp_path, TRIAL_SPEC.replace(*change))
    code, out, err = run(capsys, "sweep", spec, "--out", tmp_path / "sweep")
    assert code == 1 and out == "" and err.count("\n") == 1 and err.startswith("textgen: error: "), err
    assert re.search(message, err), err
    assert not (tmp_path / "sweep").exists()


def _sweep_folder(tmp_path: Path, trials: dict, spec_text: str = SPEC) -> Path:
    """A sweep folder as textgen sweep leaves it before its first run: the spec's copy, sweep.json naming the
    original, trials.json."""
    original = write_spec(tmp_path, spec_text)
    sweep = tmp_path / "sweep"
    (sweep / "trials").mkdir(parents=True)
    (sweep / "spec.toml").write_text(spec_text, encoding="utf-8")
    (sweep / "sweep.json").write_text(json.dumps({"spec": str(original), "seed": 1, "trials": len(trials),
                                                  "status": "new", "runs": []}), encoding="utf-8")
    (sweep / "trials.json").write_text(json.dumps(trials), encoding="utf-8")
    return sweep


GOOD_TRIAL = {"status": "pending", "settings": {"hidden": 64, "eta": 0.1, "cell": "rnn"}, "seed": 7}


@pytest.mark.parametrize(("edit", "message"), [
    ({"settings": {"hidden": "4", "eta": 0.1, "cell": "rnn"}}, r"trial-000: hidden must be an integer, got '4'"),
    ({"settings": {"hidden": 64, "eta": 0.1, "cell": "rnn", "init_from": "/elsewhere"}},
     r"trial-000: init_from is not a setting the spec searches \(it searches hidden, eta, cell\)"),
    ({"settings": {"hidden": 65, "eta": 0.1, "cell": "rnn"}}, r"hidden = 65 is not a value the spec's search gives "
                                                              r"\(hidden in \[64, 128\]\)"),
    ({"settings": {"hidden": 64, "eta": 5.0, "cell": "rnn"}}, r"eta = 5.0 is not a value the spec's search gives"),
    ({"settings": {"hidden": 64, "cell": "rnn"}}, r"trial-000: no value of eta, which the spec searches"),
    ({"settings": {"hidden": 64, "eta": 0.1, "cell": "gru"}}, r"cell = 'gru' is not a value the spec's search"),
    ({"seed": None}, r"trial-000 lacks a seed of its own"),
    ({"seed": 2**62}, r"trial-000 would be refused: seed must be at most"),
])
def test_a_trial_edited_in_trials_json_is_refused_by_status_and_resume(tmp_path, capsys, edit, message):
    entry = {key: value for key, value in {**GOOD_TRIAL, **edit}.items() if value is not None}
    sweep = _sweep_folder(tmp_path, {"trial-000": entry})
    for command in ("--status", "--resume"):
        code, _, err = run(capsys, "sweep", command, sweep)
        assert code == 1 and err.count("\n") == 1 and err.startswith("textgen: error: "), err
        assert re.search(message, err), err
    assert not (sweep / "trials" / "trial-000").exists()


def test_status_and_resume_read_the_sweeps_copy_of_the_spec_not_the_edited_original(tmp_path, capsys):
    sweep = _sweep_folder(tmp_path, {"trial-000": GOOD_TRIAL})
    write_spec(tmp_path, "this is [not TOML any more")  # the original, edited after the sweep started
    code, out, err = run(capsys, "sweep", "--status", sweep)
    assert code == 0, err
    assert out.splitlines()[0].split()[:5] == ["rank", "trial", "hidden", "eta", "cell"]
    assert out.splitlines()[1].split()[1:6] == ["trial-000", "64", "0.1", "rnn", "pending"]


def test_a_trial_left_running_by_a_killed_driver_is_pending_to_status(tmp_path, capsys):
    sweep = _sweep_folder(tmp_path, {"trial-000": {**GOOD_TRIAL, "status": "running"},
                                     "trial-001": {**GOOD_TRIAL, "status": "failed", "reason": "the loss became nan"}})
    code, out, err = run(capsys, "sweep", "--status", sweep)
    assert code == 0, err
    assert sorted(line.split()[1:6:4] for line in out.splitlines()[1:]) == [["trial-000", "pending"],
                                                                            ["trial-001", "failed"]]
    assert err == "textgen: trial-001 failed: the loss became nan\n"


@needs_ray
@pytest.mark.parametrize(("signum", "status"), [(2, 130), (15, 143)])
def test_a_stop_while_the_trials_are_checked_leaves_no_sweep_folder(tmp_path, signum, status):
    from commands import start, wait_until

    os.mkfifo(tmp_path / "book.txt")  # a corpus nobody writes to: the check waits for its writer
    spec = tmp_path / "sweep.toml"
    spec.write_text(TRIAL_SPEC, encoding="utf-8")
    child = start("sweep", spec, "--out", tmp_path / "sweep")
    wait_until(lambda: Path(f"/proc/{child.pid}/wchan").read_text() == "wait_for_partner", timeout=120,
               what="the check waiting on the corpus", interval=0.05)
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode == status and err.splitlines()[-1] == "textgen: stopped", err
    assert not (tmp_path / "sweep").exists()


@needs_ray
def test_the_sweep_report_gives_the_wall_time_of_every_run_of_its_driver(tmp_path, capsys):
    sweep = _sweep_folder(tmp_path, {"trial-000": {**GOOD_TRIAL, "status": "failed", "reason": "the loss became nan"}})
    info = json.loads((sweep / "sweep.json").read_text(encoding="utf-8"))
    info["runs"] = [{"wall_seconds": 100.4}, {"wall_seconds": 20.2}]  # two runs of the driver, as each recorded it
    (sweep / "sweep.json").write_text(json.dumps(info), encoding="utf-8")
    code, _, err = run(capsys, "sweep", "--resume", sweep)  # nothing to run: the results and the report are written
    assert code == 1 and "trial-000 failed: the loss became nan" in err, err
    assert "driver wall time\n121 s." in (sweep / "sweep_report.html").read_text(encoding="utf-8")


@needs_ray
def test_a_corpus_changed_since_a_trial_read_it_is_refused_by_resume_before_ray_starts(tmp_path, capsys):
    import textgen
    from commands import snapshot

    sweep = _sweep_folder(tmp_path, {"trial-000": {"status": "ended", "settings": {"hidden": 8}, "seed": 1},
                                     "trial-001": {"status": "pending", "settings": {"hidden": 16}, "seed": 2}},
                          TRIAL_SPEC)
    textgen.train(str(tmp_path / "book.txt"), out=sweep / "trials" / "trial-000", hidden=8, updates=20, seed=1,
                  passage_length=10, progress=False)
    with open(tmp_path / "book.txt", "a", encoding="utf-8") as book:
        book.write("A line added after the first trial read the book.\n")
    before = snapshot(sweep)
    code, _, err = run(capsys, "sweep", "--resume", sweep)  # trial-001 would be measured on other text
    assert code == 1 and err.count("\n") == 1 and "the corpus has changed since trial-000 read it" in err, err
    assert snapshot(sweep) == before
