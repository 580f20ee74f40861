"""Faults and bad input through the real `textgen` command: one error line, exit status 1, no traceback,
and nothing changed in a run folder that the command was pointed at.

Also a read-only run folder and a full disk (a tiny tmpfs; we mount it where the system lets us).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pytest
from commands import assert_one_error_line, fill, mount, snapshot, textgen, tmpfs, unmount

from textgen.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from textgen.config import RNNConfig
from textgen.errors import CheckpointError
from textgen.models import init_params
from textgen.vocab import CharVocab

# One line per verse, no 'Z' and no '§' in it (the prime case relies on that).
TEXT = "".join(
    f"verse {number}: the {animal} walks to the {place}, and back; it is {mood} today.\n"
    for number, (animal, place, mood) in enumerate(
        [("cat", "river", "quiet"), ("fox", "hill", "bold"), ("owl", "barn", "wise"), ("dog", "gate", "glad")] * 12
    )
)
QUICK = ["--seq-length", "25", "--checkpoint-every", "100", "--log-every", "50", "--sample-every", "150",
         "--sample-length", "40", "--passage-length", "50", "--no-progress", "--seed", "1"]


@dataclass
class FinishedRun:
    corpus: Path  # the text it was trained on
    folder: Path  # the run folder


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> FinishedRun:
    """One real run, built once: a few hundred updates of an 8-unit model on a small text."""
    base = tmp_path_factory.mktemp("finished")
    corpus = base / "verses.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    folder = base / "run"
    result = textgen("train", "--corpus", corpus, "--out", folder, "--hidden", "8", "--updates", "300", *QUICK)
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(folder / "last.npz").meta["update"] == 300
    return FinishedRun(corpus, folder)


def copy_run(run: FinishedRun, destination: Path) -> Path:
    shutil.copytree(run.folder, destination)
    return destination


def npy_file(path: Path) -> None:
    np.save(path.with_suffix(".npy"), np.zeros(3))
    path.with_suffix(".npy").rename(path)


# --- bad input, table-driven ------------------------------------------------------------------------

# case: (arguments, with {name} for the paths of `bad_inputs`; what the one line must match;
#        the run folder that must be left untouched, if the command points at one)
BAD_INPUTS = {
    "missing file": (["train", "--corpus", "{tmp}/absent.txt", "--out", "{tmp}/out"],
                     r"absent\.txt: no such file", None),
    "empty corpus": (["train", "--corpus", "{tmp}/empty.txt", "--out", "{tmp}/out"], r"the corpus is empty", None),
    "non-UTF-8 bytes": (["train", "--corpus", "{tmp}/latin1.txt", "--out", "{tmp}/out"],
                        r"latin1\.txt: byte 0xe9 at offset 3 is not valid utf-8.*--encoding", None),
    "not a text encoding": (["train", "--corpus", "{corpus}", "--encoding", "base64", "--out", "{tmp}/out"],
                            r"--encoding 'base64': unknown text encoding", None),
    "broken tweet JSON": (["train", "--corpus", "{tmp}/tweets.json", "--out", "{tmp}/out"],
                          r"tweets\.json: line 1, column \d+: not valid JSON", None),
    "tweet without text": (["train", "--corpus", "{tmp}/textless.json", "--out", "{tmp}/out"],
                           r"textless\.json: record 2 has no 'text' or 'full_text' field \(keys: id_str\)", None),
    "unknown loader": (["train", "--corpus", "{corpus}", "--kind", "nope", "--out", "{tmp}/out"],
                       r"unknown corpus loader 'nope'; available: .*text", None),
    "unknown suffix": (["train", "--corpus", "{tmp}/notes.xyz", "--out", "{tmp}/out"],
                       r"no loader claims the suffix '\.xyz'", None),
    "prime outside the vocabulary": (["generate", "--run", "{run}", "--prime", "Zebra§"],
                                     r"--prime has characters .*'Z§'", "{run}"),
    "negative learning rate": (["train", "--corpus", "{corpus}", "--eta", "-1", "--out", "{tmp}/out"],
                               r"--eta must be a positive", None),
    "zero hidden units": (["train", "--corpus", "{corpus}", "--hidden", "0", "--out", "{tmp}/out"],
                          r"--hidden must be a positive integer, got 0", None),
    "existing run folder without --force": (["train", "--corpus", "{corpus}", "--out", "{run}", "--hidden", "8"],
                                            r"already holds a run .*--force", "{run}"),
    "garbage best.npz": (["generate", "--run", "{garbage}"], r"garbage/best\.npz: not a textgen checkpoint",
                         "{garbage}"),
    "a .npy array as best.npz": (["generate", "--run", "{npy}"], r"npy/best\.npz: not a textgen checkpoint", "{npy}"),
    "truncated last.npz on --resume": (["train", "--resume", "{truncated}", "--updates", "400", "--no-progress"],
                                       r"truncated/last\.npz: not a readable textgen checkpoint", "{truncated}"),
    "--resume of a folder that is not a run": (["train", "--resume", "{notrun}", "--updates", "400"],
                                               r"notrun/config\.json: missing; is this a textgen run folder\?",
                                               "{notrun}"),
    "--resume of a missing folder": (["train", "--resume", "{tmp}/nowhere"], r"--resume .*nowhere: no such folder",
                                     None),
    "--resume after the corpus moved": (["train", "--resume", "{moved}", "--updates", "400", "--no-progress"],
                                        r"gone\.txt: no such file", "{moved}"),
    "--init-from a folder that is not a run": (["train", "--corpus", "{corpus}", "--init-from", "{notrun}",
                                                "--out", "{tmp}/out"], r"--init-from .*notrun: not a run folder",
                                               "{notrun}"),
    "--resume with a config.json that is not textgen's": (
        ["train", "--resume", "{foreign}", "--updates", "400", "--no-progress"], r"foreign/config\.json", "{foreign}"),
    "--resume with a metrics.jsonl row whose update is not a number": (
        ["train", "--resume", "{badmetrics}", "--updates", "400", "--no-progress"], r"badmetrics/metrics\.jsonl",
        "{badmetrics}"),
    # config.json is checked, not trusted: every value as its flag is, and against the checkpoint
    "--resume with a hand-edited bad value in config.json": (
        ["train", "--resume", "{edited}", "--updates", "400", "--no-progress"],
        r"edited/config\.json: train: --eta must be a positive number, got -1", "{edited}"),
    "--resume with config.json disagreeing with last.npz": (
        ["train", "--resume", "{mixed}", "--updates", "400", "--no-progress"],
        r"mixed: config\.json and last\.npz disagree on model\.hidden: 9 in config\.json, 8 in last\.npz", "{mixed}"),
    "--out a folder of other files": (["train", "--corpus", "{corpus}", "--out", "{notrun}", "--hidden", "8"],
                                      r"notrun: is not empty \(notes\.txt\); a run needs a folder of its own",
                                      "{notrun}"),
    "--force over a folder of other files": (
        ["train", "--corpus", "{corpus}", "--out", "{notrun}", "--force", "--hidden", "8"],
        r"notrun: holds files that are not a run's \(notes\.txt\)", "{notrun}"),
    # every size that becomes memory is checked before it is allocated
    "--hidden too large for memory": (["train", "--corpus", "{corpus}", "--hidden", "200000", "--out", "{tmp}/out"],
                                      r"training 200,000 hidden units .* would need about [\d.]+ [GT]iB of memory",
                                      None),
    "--threads each keeping gradients too many for memory": (
        ["train", "--corpus", "{corpus}", "--cell", "lstm", "--layers", "8", "--hidden", "8192", "--batch-size", "256",
         "--dtype", "float32", "--threads", "256", "--out", "{tmp}/out"],
        r"would need about [\d.]+ [GT]iB of memory .*--batch-size, --threads or --seq-length", None),
    "--force with a model too large keeps the old run": (
        ["train", "--corpus", "{corpus}", "--out", "{forced}", "--force", "--hidden", "200000"],
        r"training 200,000 hidden units", "{forced}"),
    "--sample-length too large for memory": (
        ["train", "--corpus", "{corpus}", "--sample-length", "100000000000", "--out", "{tmp}/out"],
        r"a sample of 100,000,000,000 characters would need about", None),
    "--passage-length too large for memory": (
        ["train", "--corpus", "{corpus}", "--passage-length", "100000000000", "--out", "{tmp}/out"],
        r"a sample of 100,000,000,000 characters would need about", None),
    "--passage-length too large on --resume": (
        ["train", "--resume", "{forced}", "--updates", "400", "--passage-length", "100000000000", "--no-progress"],
        r"a sample of 100,000,000,000 characters", "{forced}"),
    "generate --length beyond any count": (["generate", "--run", "{run}", "--length", "10000000000000000"],
                                           r"--length must be at most", "{run}"),
    "gradcheck --hidden too large for memory": (["gradcheck", "--corpus", "{corpus}", "--hidden", "1000000"],
                                                r"a gradient check of 1,000,000 hidden units over 25 characters would need", None),
    # values at their extremes
    "--seed beyond 64 bits": (["train", "--corpus", "{corpus}", "--seed", str(2**70), "--out", "{tmp}/out"],
                              r"--seed must be at most", None),
    "--threads beyond the streams": (["train", "--corpus", "{corpus}", "--threads", "4", "--batch-size", "2",
                                      "--out", "{tmp}/out"], r"--threads 4 is more than the 2", None),
    "--epochs too many to count": (["train", "--corpus", "{corpus}", "--epochs", "900000000000000",
                                    "--out", "{tmp}/out"], r"--epochs 900000000000000 would be .* updates", None),
    "--eta that is not finite": (["train", "--corpus", "{corpus}", "--eta", "inf", "--out", "{tmp}/out"],
                                 r"--eta must be a positive number, got inf", None),
    "--weights whose sum overflows": (["train", "--corpus", "{corpus}", "--corpus", "{corpus}", "--weights",
                                       "1e308,1e308", "--out", "{tmp}/out"], r"--weights .* cannot be shared out", None),
    "--weights too far apart": (["train", "--corpus", "{corpus}", "--corpus", "{corpus}", "--weights", "1e-300,1",
                                 "--out", "{tmp}/out"], r"would repeat the corpora to about [\d.e+]+ times", None),
    "generate --seed -1": (["generate", "--run", "{run}", "--seed", "-1"], r"--seed must be an integer of at least 0",
                           "{run}"),
    "gradcheck --seed -1": (["gradcheck", "--corpus", "{corpus}", "--seed", "-1"], r"--seed must be", None),
    "gradcheck --sigma that overflows": (["gradcheck", "--corpus", "{corpus}", "--hidden", "4", "--sigma", "1e308"],
                                         r"the gradient check of .* is not a number.*use a smaller --sigma", None),
    "evaluate on one character": (["evaluate", "--run", "{run}", "--corpus", "{tmp}/one.txt"],
                                  r"the corpus '.*one\.txt' has 1 character\(s\); a loss per character needs at least 2",
                                  "{run}"),
    "--init-from with --dtype": (["train", "--corpus", "{corpus}", "--init-from", "{run}", "--dtype", "float32",
                                  "--out", "{tmp}/out"], r"--dtype float32 differs from the --init-from run's float64",
                                 "{run}"),
    "a corpus path that is not UTF-8": (["train", "--corpus", "{tmp}/bad\udcffname.txt", "--out", "{tmp}/out"],
                                        r"--corpus b'.*bad\\xffname\.txt': not valid UTF-8", None),
    "a run folder name too long": (["train", "--corpus", "{corpus}", "--out", "{tmp}/" + "y" * 300],
                                   r"a name in it is longer than 240 bytes", None),
    # a run folder edited by hand, row by row
    "--resume with a samples row without its update": (
        ["train", "--resume", "{rowless}", "--updates", "400", "--no-progress"],
        r"rowless/samples\.jsonl: line 4 has no 'update'", "{rowless}"),
    "report of a metrics row with a loss that is text": (["report", "{badloss}"],
                                                          r"badloss/metrics\.jsonl: line 7 has smooth_loss 'x'",
                                                          "{badloss}"),
    "plot of a metrics row with a huge loss": (["plot", "{hugeloss}", "--out", "{tmp}/cmp.png"],
                                               r"hugeloss/metrics\.jsonl: line 7 has smooth_loss '1e\+308', which is out",
                                               "{hugeloss}"),
    "--resume with a single source's weight that is text": (
        ["train", "--resume", "{badweight}", "--updates", "400", "--no-progress"],
        r"corpus\.sources\[0\]\.weight is 'x', expected a positive number", "{badweight}"),
    "a checkpoint that is a link to /dev/zero": (["generate", "--run", "{zero}"],
                                                  r"zero/best\.npz: cannot read checkpoint \(not a regular file\)",
                                                  "{zero}"),
    "a checkpoint that is a FIFO": (["evaluate", "--run", "{fifo}", "--corpus", "{corpus}"],
                                    r"fifo/best\.npz: cannot read checkpoint \(not a regular file\)", "{fifo}"),
    "plot --out a device": (["plot", "{run}", "--out", "/dev/null"], r"--out /dev/null: the figure is a PNG", "{run}"),
    "plot --out a folder named .png": (["plot", "{run}", "--out", "{tmp}"], r"the figure is a PNG", "{run}"),
}


@pytest.fixture
def bad_inputs(tmp_path, finished_run) -> dict[str, Path]:
    """The files and folders the cases name, made fresh for each case."""
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1") * 10)
    (tmp_path / "tweets.json").write_bytes(b'[{"text": "one"}, {"text": ')
    (tmp_path / "textless.json").write_bytes(orjson.dumps([{"text": "one"}, {"id_str": "2"}]))
    (tmp_path / "notes.xyz").write_text(TEXT)
    garbage = copy_run(finished_run, tmp_path / "garbage")
    (garbage / "best.npz").write_bytes(b"this is not a checkpoint\n" * 10)
    npy = copy_run(finished_run, tmp_path / "npy")
    npy_file(npy / "best.npz")
    truncated = copy_run(finished_run, tmp_path / "truncated")
    (truncated / "last.npz").write_bytes((truncated / "last.npz").read_bytes()[:1000])
    notrun = tmp_path / "notrun"
    notrun.mkdir()
    (notrun / "notes.txt").write_text("my notes\n")
    moved = copy_run(finished_run, tmp_path / "moved")
    config = orjson.loads((moved / "config.json").read_bytes())
    config["corpus"]["sources"][0]["location"] = str(tmp_path / "gone.txt")
    (moved / "config.json").write_bytes(orjson.dumps(config))
    foreign = copy_run(finished_run, tmp_path / "foreign")
    (foreign / "config.json").write_bytes(b'{"name": "some other tool", "version": 3}')
    badmetrics = copy_run(finished_run, tmp_path / "badmetrics")
    with (badmetrics / "metrics.jsonl").open("ab") as stream:
        stream.write(b'{"update": "late"}\n')
    edited = copy_run(finished_run, tmp_path / "edited")
    config = orjson.loads((edited / "config.json").read_bytes())
    config["train"]["eta"] = -1
    (edited / "config.json").write_bytes(orjson.dumps(config))
    mixed = copy_run(finished_run, tmp_path / "mixed")
    config = orjson.loads((mixed / "config.json").read_bytes())
    config["model"]["hidden"] = 9
    (mixed / "config.json").write_bytes(orjson.dumps(config))
    forced = copy_run(finished_run, tmp_path / "forced")
    (tmp_path / "one.txt").write_text("v")
    rowless = copy_run(finished_run, tmp_path / "rowless")
    with (rowless / "samples.jsonl").open("ab") as stream:
        stream.write(b'{"text": "x"}\n')
    badloss = copy_run(finished_run, tmp_path / "badloss")
    with (badloss / "metrics.jsonl").open("ab") as stream:
        stream.write(b'{"update": 350, "epoch": 1.0, "loss": 1.0, "smooth_loss": "x"}\n')
    hugeloss = copy_run(finished_run, tmp_path / "hugeloss")
    with (hugeloss / "metrics.jsonl").open("ab") as stream:
        stream.write(b'{"update": 350, "epoch": 1.0, "loss": 1.0, "smooth_loss": 1e308}\n')
    badweight = copy_run(finished_run, tmp_path / "badweight")
    config = orjson.loads((badweight / "config.json").read_bytes())
    config["corpus"]["sources"][0]["weight"] = "x"
    (badweight / "config.json").write_bytes(orjson.dumps(config))
    zero = copy_run(finished_run, tmp_path / "zero")
    (zero / "best.npz").unlink()
    (zero / "best.npz").symlink_to("/dev/zero")
    fifo = copy_run(finished_run, tmp_path / "fifo")
    (fifo / "best.npz").unlink()
    os.mkfifo(fifo / "best.npz")
    return {"tmp": tmp_path, "corpus": finished_run.corpus, "run": finished_run.folder, "garbage": garbage,
            "npy": npy, "truncated": truncated, "notrun": notrun, "moved": moved, "foreign": foreign,
            "badmetrics": badmetrics, "edited": edited, "mixed": mixed, "forced": forced, "rowless": rowless,
            "badloss": badloss, "hugeloss": hugeloss, "badweight": badweight, "zero": zero, "fifo": fifo}


@pytest.mark.parametrize(("argv", "pattern", "untouched"), list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_gives_one_line_exit_1_and_changes_nothing(bad_inputs, argv, pattern, untouched):
    argv = [arg.format(**bad_inputs) for arg in argv]
    folder = Path(untouched.format(**bad_inputs)) if untouched else None
    before = snapshot(folder, links=False) if folder else None
    result = textgen(*argv)
    assert_one_error_line(result, pattern)
    assert result.stdout == ""
    if folder:
        assert snapshot(folder, links=False) == before
    assert not (bad_inputs["tmp"] / "out").exists()  # a refused command creates no run folder


# --- a read-only run folder ---------------------------------------------------------------------------


@pytest.fixture
def read_only_run(tmp_path, finished_run):
    """A copy of the finished run that cannot be written: a read-only bind mount where mounting works
    (root ignores permission bits), else permission bits, skipped if those do not stop us writing."""
    source = tmp_path / "source"
    copy_run(finished_run, source / "run")
    target = tmp_path / "read-only"
    target.mkdir()
    if mount("--bind", str(source), str(target)):
        try:
            if mount("-o", "remount,bind,ro", str(target)):
                yield target / "run"
                return
        finally:
            unmount(target)
    os.chmod(source / "run", 0o555)
    try:
        if os.access(source / "run", os.W_OK):
            pytest.skip("cannot make a folder read-only here: mount failed and permission bits do not stop us")
        yield source / "run"
    finally:
        os.chmod(source / "run", 0o755)


def test_resume_into_a_read_only_run_fails_cleanly_and_keeps_the_checkpoint(read_only_run):
    before = snapshot(read_only_run)
    result = textgen("train", "--resume", read_only_run, "--updates", "400", "--no-progress")
    cause = r"cannot write \((Read-only file system|Permission denied)\)"
    assert_one_error_line(result, re.escape(str(read_only_run)) + ".*" + cause)
    assert snapshot(read_only_run) == before
    assert load_checkpoint(read_only_run / "last.npz").meta["update"] == 300


@pytest.mark.parametrize("where", ["the run folder, --force", "a new folder inside it"])
def test_training_into_a_read_only_folder_fails_cleanly(read_only_run, finished_run, where):
    before = snapshot(read_only_run)
    out = read_only_run if where.startswith("the run") else read_only_run / "new"
    result = textgen("train", "--corpus", finished_run.corpus, "--out", out, "--force", "--hidden", "8",
                     "--updates", "100", *QUICK)
    assert_one_error_line(result, re.escape(f"--out {out}: cannot create the run folder (")
                          + "(Read-only file system|Permission denied)")
    assert snapshot(read_only_run) == before
    assert load_checkpoint(read_only_run / "last.npz").meta["update"] == 300


# --- a full disk ----------------------------------------------------------------------------------------


def small_checkpoint(hidden: int) -> Checkpoint:
    vocab = CharVocab.from_texts(["hello world"])
    model = RNNConfig(hidden=hidden)
    params = init_params(model, vocab.size, np.random.default_rng(hidden))
    return Checkpoint(params, vocab, model, {"update": hidden}, {"adagrad_memory": np.zeros_like(params.flat)})


def test_save_checkpoint_on_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    with tmpfs(tmp_path / "disk", "300k") as disk:
        path = disk / "last.npz"
        save_checkpoint(path, small_checkpoint(hidden=4))
        old = path.read_bytes()
        fill(disk)
        with pytest.raises(CheckpointError) as caught:
            save_checkpoint(path, small_checkpoint(hidden=30))
        message = str(caught.value)
        assert message.startswith(f"{path}: cannot write checkpoint") and "No space left on device" in message
        assert path.read_bytes() == old and load_checkpoint(path).meta["update"] == 4
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "last.npz"]


def test_training_onto_a_full_disk_fails_with_the_path_and_keeps_the_last_checkpoint(tmp_path, finished_run):
    # 48 hidden units: last.npz (parameters, AdaGrad memory, best parameters) is about 150 kB and best.npz
    # 50 kB, so the checkpoint at update 0 fits in 300 kB but writing the next last.npz beside them does not.
    with tmpfs(tmp_path / "disk", "300k") as disk:
        run = disk / "run"
        result = textgen("train", "--corpus", finished_run.corpus, "--out", run, "--hidden", "48",
                         "--updates", "1000", *QUICK, "-q")  # -q: no start line
        line = assert_one_error_line(result, r"No space left on device")
        assert str(run) in line
        assert (run / "last.npz").exists(), "the disk filled before the first checkpoint; adjust the sizes"
        assert load_checkpoint(run / "last.npz").meta["update"] == 0
        assert load_checkpoint(run / "best.npz").model.hidden == 48
        assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


# --- replace, don't delete -----------------------------------------------------------------------------------


def test_force_with_a_large_corpus_that_turns_out_bad_keeps_the_old_run(tmp_path, finished_run):
    """A corpus over the streaming threshold is encoded into the new run's staging folder; a bad byte near its
    end fails that, and the old run, which --force would replace, is still there whole."""
    big = tmp_path / "big.txt"
    with big.open("wb") as stream:
        block = TEXT.encode() * 200  # ~1.2 MB
        for _ in range(120):
            stream.write(block)
        stream.write(b"the end, and then \xff\n")
    assert big.stat().st_size > 64 << 20
    run = copy_run(finished_run, tmp_path / "old")
    before = snapshot(run)
    result = textgen("train", "--corpus", big, "--out", run, "--force", "--hidden", "8", *QUICK)
    assert_one_error_line(result, r"big\.txt: byte 0xff at offset \d+ is not valid utf-8")
    assert snapshot(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt", "old"]  # no staging folder left


def test_force_onto_a_full_disk_keeps_the_old_run(tmp_path, finished_run):
    with tmpfs(tmp_path / "disk", "600k") as disk:
        run = copy_run(finished_run, disk / "run")
        before = snapshot(run)
        fill(disk)
        result = textgen("train", "--corpus", finished_run.corpus, "--out", run, "--force", "--hidden", "8", *QUICK)
        assert_one_error_line(result, r"No space left on device")
        assert snapshot(run) == before
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "run"]


def test_a_resume_that_fails_on_a_full_disk_leaves_the_folder_as_it_was(tmp_path, finished_run):
    with tmpfs(tmp_path / "disk", "600k") as disk:
        run = copy_run(finished_run, disk / "run")
        before = snapshot(run)
        fill(disk)
        result = textgen("train", "--resume", run, "--updates", "600", "-q")  # -q: no start line
        assert_one_error_line(result, re.escape(str(run)) + r".*No space left on device")
        assert snapshot(run) == before  # no resume recorded, no rows rewritten, no temporaries


# --- reading stops once a corpus would not fit ---------------------------------------------------------------

ADDRESS_SPACE = 1_500_000_000  # bytes of address space the child gets: room for Python and NumPy, not for 1.5 GB


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_an_endless_device_is_read_until_it_would_not_fit_then_refused(tmp_path):
    result = textgen("train", "--corpus", "/dev/zero", "--kind", "text", "--out", tmp_path / "out",
                     preexec_fn=limited, timeout=120)
    assert_one_error_line(result, r"/dev/zero: stopped reading after [\d,]+ characters: holding more of this corpus "
                                  r"in memory would need more than the [\d.]+ [MG]iB")
    assert not (tmp_path / "out").exists()


def test_a_zip_member_that_expands_without_bound_is_refused(tmp_path):
    bomb = tmp_path / "tweets.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open("tweets.json", "w") as member:
        member.write(b"[" + b" " * (1 << 20))
        for _ in range(250):  # 250 MiB of spaces inside a JSON list, about 250 kB compressed
            member.write(b" " * (1 << 20))
    assert bomb.stat().st_size < 2 << 20
    result = textgen("train", "--corpus", bomb, "--out", tmp_path / "out", preexec_fn=limited, timeout=120)
    assert_one_error_line(result, r"tweets\.zip \(tweets\.json\): the JSON document is larger than [\d.]+ MiB, "
                                  r"more than this machine can parse in memory")


def test_a_resume_whose_first_checkpoint_does_not_fit_leaves_the_folder_as_it_was(tmp_path, finished_run):
    """With a little room left, the rows fit and the checkpoint does not: what was written is put back. With
    more room the first checkpoint fits and the resume is under way: then it is recorded, whatever fails next."""
    outcomes = set()
    for room in (4_000, 12_000, 24_000, 40_000, 80_000):
        with tmpfs(tmp_path / f"disk-{room}", "600k") as disk:
            run = copy_run(finished_run, disk / "run")
            before = snapshot(run)
            fill(disk, leave=room)
            result = textgen("train", "--resume", run, "--updates", "1000", "--checkpoint-every", "1000",
                             "-q")  # -q: no start line
            if result.returncode == 0:
                outcomes.add("finished")
            elif snapshot(run).get("config.json") == before["config.json"]:
                assert_one_error_line(result, r"No space left on device")
                assert snapshot(run) == before  # failed before it was under way: exactly as it was
                outcomes.add("left as it was")
            else:
                assert orjson.loads((run / "config.json").read_bytes())["resumes"][-1]["at_update"] == 300
                assert load_checkpoint(run / "last.npz").meta["update"] == 1000  # under way, then stopped
                outcomes.add("under way")
    assert "left as it was" in outcomes, outcomes
