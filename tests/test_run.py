"""start_run and resume_run in-process: the checkpoint at update 0, exact continuation from it, a resume that
records itself only once under way, and a run finished off after a stop past its last update."""

import numpy as np
import orjson
import pytest

from textgen.checkpoint import load_checkpoint
from textgen.config import RNNConfig, RunConfig, TrainConfig
from textgen.errors import ConfigError
from textgen.run import resume_run, start_run

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog, again and again.\n" for i in range(200))
CONFIG = TrainConfig(updates=120, sample_every=50, sample_length=30, log_every=10, checkpoint_every=40,
                     eval_every=40, seed=4)


class Crash(Exception):
    """What a test callback raises to stop a run as a crash would."""


class crash_at:
    """A listener whose on_sample raises at ``update`` (a crash in the caller's own callback)."""

    def __init__(self, update):
        self.update = update

    def on_sample(self, record):
        if record["update"] == self.update:
            raise Crash(self.update)


def rows(path):
    return [{k: v for k, v in orjson.loads(line).items() if k != "chars_per_sec"}
            for line in path.read_bytes().splitlines()]


def run_config(folder, **extra):
    return RunConfig(out=folder, passage_length=40, **extra)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return str(path)


def test_a_run_crashed_before_its_first_update_resumes_to_the_same_numbers(corpus, tmp_path):
    whole = start_run([corpus], RNNConfig(hidden=10), CONFIG, run_config(tmp_path / "whole"), progress=False)
    with pytest.raises(Crash):
        start_run([corpus], RNNConfig(hidden=10), CONFIG, run_config(tmp_path / "split"), progress=False,
                  callbacks=crash_at(0))
    split = tmp_path / "split"
    assert load_checkpoint(split / "last.npz").meta["update"] == 0  # the folder exists only with its checkpoint
    resumed = resume_run(split, progress=False)
    np.testing.assert_array_equal(resumed.state.params.flat, whole.state.params.flat)
    assert resumed.passage == whole.passage
    for name in ("metrics.jsonl", "samples.jsonl"):
        assert rows(split / name) == rows(tmp_path / "whole" / name)


def test_a_resume_records_itself_only_once_its_first_checkpoint_is_saved(corpus, tmp_path):
    run = tmp_path / "run"
    start_run([corpus], RNNConfig(hidden=10), CONFIG, run_config(run), progress=False)
    config = (run / "config.json").read_bytes()
    # the resumed run fails at update 150, before its first checkpoint (160): nothing is recorded
    with pytest.raises(Crash):
        resume_run(run, {"updates": 200}, progress=False, callbacks=crash_at(150))
    assert (run / "config.json").read_bytes() == config
    assert load_checkpoint(run / "last.npz").meta["update"] == 120
    resume_run(run, {"updates": 200}, progress=False)
    record = orjson.loads((run / "config.json").read_bytes())
    assert [r["changes"] for r in record["resumes"]] == [{"updates": 200}]
    assert [row["update"] for row in rows(run / "metrics.jsonl")] == list(range(10, 201, 10))


def test_a_run_stopped_after_training_is_finished_off_by_resume(corpus, tmp_path):
    run = tmp_path / "run"
    whole = start_run([corpus], RNNConfig(hidden=10), CONFIG, run_config(run), progress=False)
    for name in ("best_passage.txt", "report.html", "report.md"):
        (run / name).unlink()  # as a stop during the passage leaves it
    finished = resume_run(run, progress=False)
    assert finished.passage == whole.passage and (run / "report.html").exists()
    (run / "report.html").unlink()  # as a stop during the report leaves it
    before = (run / "config.json").read_bytes()
    resume_run(run, progress=False)
    assert (run / "report.html").exists() and (run / "config.json").read_bytes() == before
    with pytest.raises(ConfigError, match="already has 120 updates"):
        resume_run(run, progress=False)


def test_a_resume_may_change_only_what_keeps_it_exact(corpus, tmp_path):
    run = tmp_path / "run"
    start_run([corpus], RNNConfig(hidden=10), CONFIG, run_config(run), progress=False)
    # threads 1 is what the run has (one stream), so it is no change; the other two are
    with pytest.raises(ConfigError, match=r"--resume cannot change --seq-length \(10 given, the run has 25\), "
                                          r"--hidden \(20 given, the run has 10\): "):
        resume_run(run, {"seq_length": 10, "threads": 1, "hidden": 20}, progress=False)


def set_times(run, order):
    """Give the files of ``run`` modification times in ``order`` (oldest first), as a copy that resets them may."""
    import os

    for age, name in enumerate(reversed(order)):
        when = 1_600_000_000_000_000_000 - age * 10**9
        os.utime(run / name, ns=(when, when))


def contents(run):
    return {path.name: path.read_bytes() for path in sorted(run.iterdir())}


FINISHED_ORDERS = {  # the files' times after a copy that does not keep them (cp without -p, a sync tool)
    "passage older than the checkpoint": ["best_passage.txt", "report.html", "report.md", "last.npz", "config.json"],
    "reports older than the passage": ["report.html", "report.md", "last.npz", "best_passage.txt", "config.json"],
    "as written": ["last.npz", "best_passage.txt", "config.json", "report.html", "report.md"],
}


@pytest.mark.parametrize("order", FINISHED_ORDERS.values(), ids=FINISHED_ORDERS.keys())
def test_a_finished_run_copied_without_its_times_is_still_finished(corpus, tmp_path, order):
    from textgen.runfolder import RunFolder

    run = tmp_path / "run"
    start_run([corpus], RNNConfig(hidden=10), CONFIG, run_config(run), progress=False)
    set_times(run, order)
    before = contents(run)
    assert RunFolder(run).is_finished() and RunFolder(run).report_is_current()
    with pytest.raises(ConfigError, match="already has 120 updates"):
        resume_run(run, progress=False)  # not finished off again: no new passage, no resume recorded
    assert contents(run) == before


@pytest.mark.parametrize("newer", [True, False], ids=["old passage newer", "old passage older"])
def test_an_extended_run_with_its_old_passage_left_is_not_finished_whatever_the_times(corpus, tmp_path, newer):
    """An extended run killed after its last checkpoint, before its old passage was removed, whatever the times a
    copy then gave the files: its passage is drawn again."""
    from textgen.runfolder import RunFolder

    run = tmp_path / "run"
    start_run([corpus], RNNConfig(hidden=10), CONFIG, run_config(run), progress=False)
    extended = resume_run(run, {"updates": 160}, progress=False)
    # what that kill leaves: config.json of the extended run, not yet finished, and the shorter run's passage
    record = orjson.loads((run / "config.json").read_bytes())
    record["finished_at_update"] = None
    (run / "config.json").write_bytes(orjson.dumps(record))
    (run / "best_passage.txt").write_text("the passage of the run before it was extended")
    files = ["last.npz", "best_passage.txt"] if newer else ["best_passage.txt", "last.npz"]
    set_times(run, ["report.html", "report.md", *files, "config.json"])
    assert not RunFolder(run).is_finished() and RunFolder(run).passage() is None  # not this run's passage
    finished = resume_run(run, progress=False)
    assert finished.passage == extended.passage == (run / "best_passage.txt").read_text(encoding="utf-8")
    assert RunFolder(run).is_finished() and RunFolder(run).report_is_current()


@pytest.mark.parametrize("order", FINISHED_ORDERS.values(), ids=FINISHED_ORDERS.keys())
def test_a_run_finished_before_the_finish_was_recorded_is_still_finished(corpus, tmp_path, order):
    """config.json without finished_at_update and reports without their last line, as textgen wrote them before."""
    from textgen.runfolder import RunFolder

    run = tmp_path / "run"
    start_run([corpus], RNNConfig(hidden=10), CONFIG, run_config(run), progress=False)
    record = orjson.loads((run / "config.json").read_bytes())
    del record["finished_at_update"]
    (run / "config.json").write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    for name in ("report.html", "report.md"):
        (run / name).write_bytes((run / name).read_bytes().rstrip(b"\n").rpartition(b"\n")[0] + b"\n")
    set_times(run, order)
    kept = {name: data for name, data in contents(run).items() if not name.startswith("report")}
    assert RunFolder(run).is_finished()
    try:
        resume_run(run, progress=False)  # at most the report is made again
    except ConfigError as error:
        assert "already has 120 updates" in str(error)
    assert {name: data for name, data in contents(run).items() if not name.startswith("report")} == kept
    with pytest.raises(ConfigError, match="already has 120 updates"):
        resume_run(run, progress=False)


def test_an_evaluation_interval_beyond_the_run_is_refused(corpus, tmp_path):
    config = TrainConfig(updates=50, eval_every=100, seed=1)
    with pytest.raises(ConfigError, match="--eval-every 100 is beyond the run's 50 updates"):
        start_run([corpus], RNNConfig(hidden=10), config, run_config(tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_resume_reads_each_corpus_with_its_own_recorded_options(tmp_path):
    from test_registry import fake_distribution

    from textgen.corpus import LoaderOption
    from textgen.registry import discover

    registry = discover(fake_distribution(tmp_path / "site", "splits", "1.0", {"splits": "plugin_fixtures:SplitLoader"}))
    (tmp_path / "a.splits").write_text(TEXT.replace("fox", "café fox"), encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(TEXT.replace("dog", "café dog").encode("latin-1"))
    # one keyword, two values: read again with one merged value, the plugin's file would not be the same text
    options = [LoaderOption.parse("splits.encoding=utf-8"), LoaderOption("encoding", "latin-1", "text", "--encoding")]
    specs = [str(tmp_path / "a.splits"), str(tmp_path / "b.txt")]
    start_run(specs, RNNConfig(hidden=8), CONFIG, run_config(tmp_path / "run"), options=options, registry=registry,
              progress=False)
    sources = orjson.loads((tmp_path / "run" / "config.json").read_bytes())["corpus"]["sources"]
    assert [source["options"] for source in sources] == [
        {"encoding": "utf-8"}, {"encoding": "latin-1", "keep_carriage_returns": False, "keep_byte_order_mark": False}]
    resumed = resume_run(tmp_path / "run", {"updates": 160}, registry=registry, progress=False)
    assert resumed.state.update == 160


# ---------------------------------------------------------------- nothing non-finite reaches disk

WORDS = " ".join(["the quick brown fox jumps over a lazy dog and then runs far away"] * 80)
# A model sure that a and b alternate gives the held-out tail ("aaa...") a probability that underflows to 0.
ALTERNATING = "ab" * 2000 + "a" * 200
SMALL = ["--hidden", "8", "--updates", "100", "--log-every", "10", "--checkpoint-every", "50", "--eval-every", "10",
         "--sample-every", "50", "--sample-length", "20", "--passage-length", "30", "--no-progress", "-q"]


def numbers_in(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from numbers_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers_in(item)
    elif isinstance(value, float):
        yield value


def assert_all_finite(run):
    """Every number in the run's JSON files and checkpoints is finite, and no loss is null (how orjson writes NaN)."""
    import json
    import math

    for name in ("config.json", "vocab.json", "metrics.jsonl", "samples.jsonl"):
        if (run / name).exists():
            for line in (run / name).read_text().splitlines() if name.endswith("l") else [(run / name).read_text()]:
                data = json.loads(line)  # Python's reader takes NaN and Infinity, which orjson would refuse
                assert all(math.isfinite(x) for x in numbers_in(data)), (name, line)
                if name == "metrics.jsonl":
                    assert None not in [data.get(key, 0) for key in ("loss", "smooth_loss", "val_loss", "val_bpc")]
    for name in ("last.npz", "best.npz"):
        with np.load(run / name, allow_pickle=False) as archive:
            for member in archive.files:
                array = archive[member]
                assert array.dtype == np.uint8 or np.isfinite(array).all(), (name, member)
            meta = json.loads(archive["meta_json"].tobytes())
            assert all(math.isfinite(x) for x in numbers_in(meta)), name


def train_cli(capsys, corpus, out, *argv):
    from commands import run

    return run(capsys, "train", "--corpus", corpus, "--out", out, *SMALL, *argv)


@pytest.mark.parametrize("dtype, sigma", [("float64", "1e308"), ("float32", "1e39"), ("float64", "1e200")],
                         ids=["float64 weights inf", "float32 weights inf", "float64 weights finite, loss not"])
def test_initial_weights_that_overflow_are_refused_before_anything_is_made(tmp_path, capsys, dtype, sigma):
    from commands import snapshot

    corpus = tmp_path / "words.txt"
    corpus.write_text(WORDS)
    good = tmp_path / "good"
    assert train_cli(capsys, corpus, good)[0] == 0
    before = snapshot(tmp_path)
    for out, force in ((good, ["--force"]), (tmp_path / "new" / "run", [])):
        code, _, err = train_cli(capsys, corpus, out, "--sigma", sigma, "--dtype", dtype, *force)
        assert code == 1 and err.count("\n") == 1 and f"--sigma {float(sigma):g}" in err, err
        assert snapshot(tmp_path) == before  # the good run kept whole, no folder made, nothing left beside it


@pytest.mark.parametrize("every", ["50", "1"], ids=["checkpoint every 50", "checkpoint every update"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_training_loss_that_overflows_stops_at_a_finite_checkpoint_that_resumes(tmp_path, capsys, dtype, every):
    """Every update checkpointed: the one before the overflow holds finite weights whose next loss is not, from
    which no rate could go on; the run stops at the checkpoint before it."""
    from commands import run as run_command

    corpus = tmp_path / "words.txt"
    corpus.write_text(WORDS)
    run = tmp_path / "run"
    code, _, err = train_cli(capsys, corpus, run, "--dtype", dtype, "--eta", "1000", "--seed", "1",
                             "--checkpoint-every", every)
    assert code == 1 and err.count("\n") == 1 and "the loss became" in err and "--eta" in err, err
    assert_all_finite(run)
    code, _, err = run_command(capsys, "train", "--resume", run, "--eta", "0.001", "--no-progress", "-q")
    assert code == 0, err
    assert_all_finite(run)
    assert load_checkpoint(run / "last.npz").meta["update"] == 100


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_held_out_loss_that_overflows_stops_at_a_finite_checkpoint_that_resumes(tmp_path, capsys, dtype):
    from commands import run as run_command

    corpus = tmp_path / "ab.txt"
    corpus.write_text(ALTERNATING)
    run = tmp_path / "run"
    code, _, err = train_cli(capsys, corpus, run, "--dtype", dtype, "--eta", "1000", "--seed", "1")
    assert code == 1 and err.count("\n") == 1 and "validation loss became" in err and "--eta" in err, err
    assert_all_finite(run)
    assert run_command(capsys, "report", run)[0] == 0
    code, _, err = run_command(capsys, "train", "--resume", run, "--eta", "0.001", "--no-progress", "-q")
    assert code == 0, err
    assert_all_finite(run)
    assert load_checkpoint(run / "last.npz").meta["update"] == 100


def test_a_run_whose_metrics_hold_null_losses_stays_readable_and_resumable(tmp_path, capsys):
    """What textgen wrote before for a held-out loss that overflowed: val_loss and val_bpc null."""
    from commands import run as run_command

    corpus = tmp_path / "words.txt"
    corpus.write_text(WORDS)
    run = tmp_path / "run"
    assert train_cli(capsys, corpus, run)[0] == 0
    rows = [orjson.loads(line) for line in (run / "metrics.jsonl").read_bytes().splitlines()]
    for row in rows[:3]:
        row.update(val_loss=None, val_bpc=None)
    (run / "metrics.jsonl").write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    assert run_command(capsys, "report", run)[0] == 0
    code, _, err = run_command(capsys, "train", "--resume", run, "--updates", "120", "--no-progress", "-q")
    assert code == 0, err
    assert_all_finite(run)


@pytest.mark.parametrize("model", [[], ["--cell", "lstm", "--dropout", "0.2", "--batch-size", "4", "--threads", "2"]],
                         ids=["rnn", "lstm, dropout, threads"])
def test_checking_the_next_loss_at_each_checkpoint_changes_nothing_that_is_trained(tmp_path, capsys, model):
    corpus = tmp_path / "words.txt"
    corpus.write_text(WORDS)
    for every in ("1", "1000"):
        code, _, err = train_cli(capsys, corpus, tmp_path / every, "--checkpoint-every", every, "--seed", "3", *model)
        assert code == 0, err
    with np.load(tmp_path / "1" / "last.npz") as often, np.load(tmp_path / "1000" / "last.npz") as once:
        for name in often.files:
            if name != "meta_json":
                np.testing.assert_array_equal(often[name], once[name], err_msg=name)


def test_a_checkpoint_whose_next_loss_overflows_is_refused_by_resume_with_nothing_changed(tmp_path, capsys):
    """As textgen saved one before it looked a window ahead: finite weights that no learning rate can go on from."""
    from commands import run as run_command
    from commands import snapshot

    from textgen.checkpoint import save_checkpoint

    corpus = tmp_path / "words.txt"
    corpus.write_text(WORDS)
    run = tmp_path / "run"
    assert train_cli(capsys, corpus, run, "--updates", "50")[0] == 0
    last = load_checkpoint(run / "last.npz")
    last.params["V"][...] *= 1e300  # finite, but its logits overflow on every window
    save_checkpoint(run / "last.npz", last)
    before = snapshot(run)
    code, _, err = run_command(capsys, "train", "--resume", run, "--updates", "100", "--eta", "0.001", "-q")
    assert code == 1 and err.count("\n") == 1 and "no learning rate can continue from them" in err, err
    assert snapshot(run) == before
