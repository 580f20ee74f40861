"""Faults and bad input through the real `textgen` command: one error line, exit status 1, no traceback,
and nothing changed in a run folder that the command was pointed at.

Also a read-only run folder and a full disk (a tiny tmpfs; we mount it where the system lets us).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pytest

from textgen.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from textgen.errors import CheckpointError
from textgen.rnn import RNNConfig, init_params
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


def textgen_command() -> list[str]:
    """The installed console script (as tests/test_cli.py finds it), else the module."""
    script = shutil.which("textgen", path=os.path.dirname(sys.executable)) or shutil.which("textgen")
    return [script] if script else [sys.executable, "-m", "textgen.cli"]


def textgen(*argv: object, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real command, offline, and return what it did."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run([*textgen_command(), *map(str, argv)], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)


def assert_one_error_line(result: subprocess.CompletedProcess, pattern: str = "") -> str:
    """Exit status 1, exactly one line on stderr saying `textgen: error: ...`, no traceback; returns the line."""
    err = result.stderr
    assert result.returncode == 1, (result.returncode, err)
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("textgen: error: ") and "Traceback" not in err, err
    assert re.search(pattern, err), (pattern, err)
    return err


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` (hidden ones too) with its bytes and modification time."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


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
    "--resume of a missing folder": (["train", "--resume", "{tmp}/nowhere"], r"nowhere/config\.json: missing", None),
    "--resume after the corpus moved": (["train", "--resume", "{moved}", "--updates", "400", "--no-progress"],
                                        r"gone\.txt: no such file", "{moved}"),
    "--init-from a folder that is not a run": (["train", "--corpus", "{corpus}", "--init-from", "{notrun}",
                                                "--out", "{tmp}/out"], r"notrun/last\.npz: no such checkpoint",
                                               "{notrun}"),
    "--resume with a config.json that is not textgen's": (
        ["train", "--resume", "{foreign}", "--updates", "400", "--no-progress"], r"foreign/config\.json", "{foreign}"),
    "--resume with a metrics.jsonl row whose update is not a number": (
        ["train", "--resume", "{badmetrics}", "--updates", "400", "--no-progress"], r"badmetrics/metrics\.jsonl",
        "{badmetrics}"),
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
    return {"tmp": tmp_path, "corpus": finished_run.corpus, "run": finished_run.folder, "garbage": garbage,
            "npy": npy, "truncated": truncated, "notrun": notrun, "moved": moved, "foreign": foreign,
            "badmetrics": badmetrics}


@pytest.mark.parametrize(("argv", "pattern", "untouched"), list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_gives_one_line_exit_1_and_changes_nothing(bad_inputs, argv, pattern, untouched):
    argv = [arg.format(**bad_inputs) for arg in argv]
    folder = Path(untouched.format(**bad_inputs)) if untouched else None
    before = snapshot(folder) if folder else None
    result = textgen(*argv)
    assert_one_error_line(result, pattern)
    assert result.stdout == ""
    if folder:
        assert snapshot(folder) == before
    assert not (bad_inputs["tmp"] / "out").exists()  # a refused command creates no run folder


# --- a read-only run folder ---------------------------------------------------------------------------


def mount(*argv: str) -> bool:
    result = subprocess.run(["mount", *argv], capture_output=True, text=True, check=False)
    return result.returncode == 0


def unmount(target: Path) -> None:
    if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


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


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """A tmpfs of ``size`` mounted on ``folder`` for the block; skips the test where mounting is not allowed."""
    folder.mkdir()
    if not mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)):
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        unmount(folder)


def small_checkpoint(hidden: int) -> Checkpoint:
    vocab = CharVocab.from_texts(["hello world"])
    model = RNNConfig(hidden=hidden)
    params = init_params(model, vocab.size, np.random.default_rng(hidden))
    return Checkpoint(params, vocab, model, {"update": hidden}, {"adagrad_memory": np.zeros_like(params.flat)})


def fill(folder: Path) -> None:
    """Write a file until the filesystem is full."""
    with open(folder / "filler", "wb", buffering=0) as stream, contextlib.suppress(OSError):
        while True:
            stream.write(b"\0" * 4096)


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
                         "--updates", "1000", *QUICK)
        line = assert_one_error_line(result, r"No space left on device")
        assert str(run) in line
        assert (run / "last.npz").exists(), "the disk filled before the first checkpoint; adjust the sizes"
        assert load_checkpoint(run / "last.npz").meta["update"] == 0
        assert load_checkpoint(run / "best.npz").model.hidden == 48
        assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
