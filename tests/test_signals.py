"""SIGINT and SIGTERM end `textgen train` at every stage, through the real command: while a loader is blocked
(a FIFO nobody writes to, a plugin that never returns), while training (after a checkpoint), and after it."""

from __future__ import annotations

import os
import signal
import time

import pytest
from commands import plugin_environment, start, wait_until

from textgen.checkpoint import load_checkpoint
from textgen.errors import CheckpointError
from textgen.runfolder import RunFolder

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog, again and again.\n" for i in range(400))
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def stopped(process, sig, timeout: float = 30) -> tuple[int, str, float]:
    """Send ``sig``; return (exit status, stderr, seconds until the process ended)."""
    began = time.monotonic()
    process.send_signal(sig)
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err, time.monotonic() - began


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_while_a_fifo_blocks_the_reader_ends_at_once_and_leaves_nothing(tmp_path, sig):
    fifo = tmp_path / "corpus.txt"
    os.mkfifo(fifo)  # no writer ever comes: open() blocks
    process = start("train", "--corpus", fifo, "--out", tmp_path / "run", "--no-progress")
    wait_until(lambda: (tmp_path / ".run.textgen-new").exists(), 60, "the run to start")
    time.sleep(0.3)
    code, err, seconds = stopped(process, sig)
    assert code == CODES[sig] and seconds < 10, (code, err)
    assert err == "textgen: stopped before the run started; nothing was kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt"]


def test_a_stop_while_a_plugin_never_returns_ends_at_once(tmp_path):
    env = plugin_environment(tmp_path / "site", {"blocks": "plugin_fixtures:BlocksForever"})
    (tmp_path / "x.blocks").write_text("")
    process = start("train", "--corpus", tmp_path / "x.blocks", "--out", tmp_path / "run", "--no-progress", env=env)
    wait_until(lambda: (tmp_path / ".run.textgen-new").exists(), 60, "the run to start")
    time.sleep(0.5)
    code, err, seconds = stopped(process, signal.SIGTERM)
    assert code == 143 and seconds < 10 and "nothing was kept" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def training(tmp_path, *extra: str, **popen):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    run = tmp_path / "run"
    process = start("train", "--corpus", corpus, "--out", run, "--hidden", "32", "--checkpoint-every", "25",
                    "--log-every", "25", "--sample-every", "500", "--no-progress", "--seed", "1", *extra, **popen)
    return run, process


def checkpoint_update(run) -> int:
    try:
        return load_checkpoint(run / "last.npz").meta["update"]
    except CheckpointError:
        return -1


def test_a_second_ctrl_c_stops_at_once_and_the_run_stays_resumable(tmp_path):
    run, process = training(tmp_path, "--updates", "1000000")
    wait_until(lambda: checkpoint_update(run) > 0, 60, "training")
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)  # no waiting for the checkpoint the first one asked for
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "Traceback" not in err, err
    _, last = RunFolder(run).load_for_resume()
    assert last.meta["update"] > 0 and last.meta["update"] % 25 == 0


def test_a_stop_after_training_says_so_and_resume_finishes_the_run(tmp_path):
    # a long passage after a short training: the stop comes while it is drawn, where it acts at once
    run, process = training(tmp_path, "--updates", "50", "--passage-length", "2000000")
    wait_until(lambda: checkpoint_update(run) == 50, 60, "the last update")
    time.sleep(0.3)
    code, err, seconds = stopped(process, signal.SIGTERM)
    assert code == 143 and seconds < 10, err
    assert "stopped after training finished (update 50" in err and f"textgen train --resume {run} writes" in err
    assert not (run / "best_passage.txt").exists()
    result = start("train", "--resume", run, "--no-progress", "--passage-length", "300")
    assert result.wait(timeout=120) == 0, result.stderr.read()
    assert len((run / "best_passage.txt").read_text(encoding="utf-8")) == 300
    assert (run / "report.html").exists()


def test_an_extended_run_stopped_during_its_new_passage_is_finished_with_a_new_one(tmp_path):
    run, process = training(tmp_path, "--updates", "50", "--passage-length", "100")
    assert process.wait(timeout=120) == 0
    first_passage = (run / "best_passage.txt").read_text(encoding="utf-8")
    process = start("train", "--resume", run, "--updates", "100", "--passage-length", "2000000", "--no-progress")
    wait_until(lambda: checkpoint_update(run) == 100, 60, "the last update")
    time.sleep(0.3)
    stopped(process, signal.SIGKILL)
    assert not (run / "best_passage.txt").exists()  # the passage of the shorter run is gone with its first checkpoint
    finish = start("train", "--resume", run, "--passage-length", "100", "--no-progress")
    assert finish.wait(timeout=120) == 0, finish.stderr.read()
    assert (run / "best_passage.txt").read_text(encoding="utf-8") != first_passage


@pytest.mark.parametrize("force", [False, True], ids=["new run", "--force"])
def test_two_quick_signals_while_the_corpus_is_read_are_one_clean_stop(tmp_path, force):
    """The second signal comes while the first one's stop is under way (removing the staging folder, printing)."""
    import random

    from commands import plugin_environment, snapshot

    env = plugin_environment(tmp_path / "site", {"slowlines": "plugin_fixtures:SlowLineLoader"},
                             TEXTGEN_TEST_MARKERS=str(tmp_path))
    corpus = tmp_path / "book.slow"
    corpus.write_text(TEXT * 8)
    run = tmp_path / "run"
    if force:
        made = start("train", "--corpus", tmp_path / "book.slow", "--out", run, "--updates", "20", "--hidden", "8",
                     "--no-progress", env=env)
        assert made.wait(timeout=120) == 0
    before = snapshot(run) if force else None
    chooser = random.Random(7)
    for _ in range(6):
        (tmp_path / "reading").unlink(missing_ok=True)
        process = start("train", "--corpus", corpus, "--out", run, *(["--force"] if force else []), "--updates",
                        "20", "--hidden", "8", "--no-progress", env=env)
        wait_until(lambda: (tmp_path / "reading").exists(), 60, "reading")
        time.sleep(chooser.uniform(0, 0.2))
        process.send_signal(signal.SIGINT)
        time.sleep(chooser.uniform(0, 0.04))
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130 and err == "textgen: stopped before the run started; nothing was kept\n", err
        assert snapshot(run) == before if force else not run.exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_during_generate_is_one_line(tmp_path, sig):
    import subprocess

    run, process = training(tmp_path, "--updates", "30", "--passage-length", "10")
    assert process.wait(timeout=120) == 0
    generating = start("generate", "--run", run, "--length", "100000000", "--seed", "4", stdout=subprocess.PIPE)
    assert len(generating.stdout.read(50)) == 50  # it is writing
    code, err, seconds = stopped(generating, sig)
    assert code == CODES[sig] and err == "textgen: stopped\n" and seconds < 10


@pytest.mark.parametrize("json", [[], ["--json"]], ids=["text", "json"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_during_generate_still_says_a_fresh_seed_so_the_text_can_be_drawn_again(tmp_path, sig, json):
    import re
    import subprocess

    from commands import textgen

    run, process = training(tmp_path, "--updates", "30", "--passage-length", "10")
    assert process.wait(timeout=120) == 0
    generating = start("generate", run, "--length", "100000000", *json, stdout=subprocess.PIPE)
    written = generating.stdout.read(60)  # the first text, far from its end: no seed said yet
    code, err, _ = stopped(generating, sig)
    seed = re.fullmatch(r"textgen: seed (\d+) \(give --seed \d+ to draw the same text again\)\ntextgen: stopped\n", err)
    assert code == CODES[sig] and seed, err
    again = textgen("generate", run, "--length", "200", "--seed", seed.group(1), *json)
    assert again.stdout[: len(written)] == written


def unread_pipe():
    """(read end, write end) of a pipe that nobody reads, and a function that says when it is full: it holds more
    than half its capacity and has not grown for half a second (the writer waits)."""
    import fcntl
    import termios
    from array import array

    read_end, write_end = os.pipe()
    capacity = fcntl.fcntl(read_end, 1032)  # F_GETPIPE_SZ
    seen = []

    def full() -> bool:
        waiting = array("i", [0])
        fcntl.ioctl(read_end, termios.FIONREAD, waiting)
        seen.append((waiting[0], time.monotonic()))
        since = [when for size, when in seen if size == waiting[0]]
        return waiting[0] > capacity // 2 and time.monotonic() - since[0] > 0.5
    return read_end, write_end, full


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_while_generate_waits_for_a_reader_that_does_not_read_ends_at_once(tmp_path, sig):
    run, process = training(tmp_path, "--updates", "30", "--passage-length", "10")
    assert process.wait(timeout=120) == 0
    read_end, write_end, full = unread_pipe()
    try:
        generating = start("generate", run, "--length", "100000000", "--seed", "1", stdout=write_end)
        os.close(write_end)
        wait_until(full, 120, "the pipe to fill")
        code, err, _ = stopped(generating, sig)  # fails with a timeout if the stop waits for the reader
        assert code == CODES[sig] and err == "textgen: stopped\n", err
    finally:
        os.close(read_end)  # (a command still waiting then ends at its next write)


def test_ctrl_c_while_training_waits_for_a_reader_that_does_not_read_checkpoints_and_ends(tmp_path):
    read_end, write_end, full = unread_pipe()
    try:
        run, process = training(tmp_path, "--updates", "1000000", "--sample-every", "5", stdout=write_end)
        os.close(write_end)
        wait_until(full, 120, "the pipe to fill")
        code, err, _ = stopped(process, signal.SIGINT)  # one Ctrl-C: checkpoint, then stop
        assert code == 130 and "checkpoint saved in" in err, err
        assert checkpoint_update(run) > 0
    finally:
        os.close(read_end)


def test_a_stop_while_both_outputs_wait_for_a_reader_that_does_not_read_ends_at_once(tmp_path):
    run, process = training(tmp_path, "--updates", "30", "--passage-length", "10")
    assert process.wait(timeout=120) == 0
    read_end, write_end, full = unread_pipe()
    try:  # `textgen generate RUN 2>&1 | less` left alone: the seed note and `textgen: stopped` cannot go out either
        generating = start("generate", run, "--length", "100000000", stdout=write_end, stderr=write_end)
        os.close(write_end)
        wait_until(full, 120, "the pipe to fill")
        generating.send_signal(signal.SIGINT)
        assert generating.wait(timeout=30) == 130
    finally:
        os.close(read_end)
