"""Output that fails, through the real command: a reader that goes away ends the command quietly (as Unix
tools end), an encoding that cannot hold the text and a full device are one error line."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from commands import assert_one_error_line, environment, start, textgen, textgen_command

PROJECT = Path(__file__).resolve().parent.parent
TEXT = "".join(f"Line {i}: café, naïve, résumé and the usual words of a small book.\n" for i in range(300))


@pytest.fixture(scope="module")
def accented_run(tmp_path_factory):
    """A small model whose vocabulary has characters ASCII lacks."""
    root = tmp_path_factory.mktemp("output")
    (root / "book.txt").write_text(TEXT, encoding="utf-8")
    result = textgen("train", "--corpus", root / "book.txt", "--out", root / "run", "--hidden", "8", "--updates",
                     "60", "--sample-every", "1000", "--passage-length", "20", "--no-progress", "--seed", "1")
    assert result.returncode == 0, result.stderr
    return root / "run"


def test_a_reader_that_stops_reading_ends_the_command_quietly():
    process = subprocess.Popen([*textgen_command(), "corpora"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=environment())
    assert process.stdout.readline().startswith(b"loaders")
    process.stdout.close()  # as `textgen corpora | head -n1` does
    _, err = process.communicate(timeout=60)
    assert process.returncode in (0, 141) and err == b""


def test_generate_writes_as_it_goes_so_head_stops_it(accented_run):
    began = time.monotonic()
    process = start("generate", "--run", accented_run, "--length", "50000000", stdout=subprocess.PIPE)
    assert len(process.stdout.read(100)) == 100  # the first characters come long before 50 million are drawn
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert process.returncode in (0, 141) and err == ""
    assert time.monotonic() - began < 30  # 50 million characters would take half an hour


def test_an_encoding_that_cannot_hold_the_text_is_one_line(accented_run):
    result = textgen("generate", "--run", accented_run, "--length", "50",
                     env=environment(PYTHONIOENCODING="ascii"))
    assert_one_error_line(result, r"standard output is ascii, which cannot hold \d+ of the model's characters .*"
                                  "PYTHONIOENCODING=utf-8")
    assert result.stdout == ""


def test_training_shows_what_a_narrow_terminal_cannot_as_escapes(tmp_path, accented_run):
    result = textgen("train", "--corpus", accented_run.parent / "book.txt", "--out", tmp_path / "run", "--hidden",
                     "8", "--updates", "20", "--sample-every", "10", "--passage-length", "200", "--no-progress",
                     "--seed", "1", env=environment(PYTHONIOENCODING="ascii"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.isascii() and "\\x" in result.stdout
    assert result.stderr.count("shown as \\x.. escapes") == 1
    assert not (tmp_path / "run" / "best_passage.txt").read_text(encoding="utf-8").isascii()  # the file keeps them


@pytest.mark.parametrize("argv", [["corpora"], ["generate", "--run", "{run}", "--length", "100000"]],
                         ids=["corpora", "generate"])
def test_a_full_device_is_one_line(accented_run, argv):
    argv = [str(arg).replace("{run}", str(accented_run)) for arg in argv]
    with open("/dev/full", "w") as full:
        result = subprocess.run([*textgen_command(), *argv], stdout=full, stderr=subprocess.PIPE, text=True,
                                env=environment(), timeout=60, check=False)
    assert_one_error_line(result, r"cannot write to standard output \(No space left on device\)")


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["--version"]])
def test_help_onto_a_full_device_is_one_line(argv):
    with open("/dev/full", "w") as full:
        result = subprocess.run([*textgen_command(), *argv], stdout=full, stderr=subprocess.PIPE, text=True,
                                env=environment(), timeout=60, check=False)
    assert_one_error_line(result, r"cannot write to standard output \(No space left on device\)")


@pytest.mark.parametrize("argv, message", [
    (["--eta", "1e308"], r"the loss became (nan|inf) at update \d+; the last checkpoint \(update 0\) is kept"),
    (["--sigma", "1e18"], r"--sigma 1e\+18: the initial weights give a loss of (nan|inf) on the first window"),
], ids=["training", "initial weights"])
def test_a_loss_that_overflows_is_one_line_without_numpys_warnings(tmp_path, accented_run, argv, message):
    result = textgen("train", "--corpus", accented_run.parent / "book.txt", "--out", tmp_path / "run", *argv,
                     "-q")  # -q: no start line
    assert_one_error_line(result, message)


def on_a_terminal(*argv: object, interrupt_after: int = 0) -> tuple[int, str]:
    """Run the real command with stdout and stderr on one pseudo-terminal, as in a shell window; with
    ``interrupt_after``, send SIGINT once that many bytes have come. Returns (exit status, what the window shows)."""
    import os
    import pty
    import signal

    leader, follower = pty.openpty()
    process = subprocess.Popen([*textgen_command(), *map(str, argv)], stdin=subprocess.DEVNULL, stdout=follower,
                               stderr=follower, env=environment())
    os.close(follower)
    shown, interrupted = b"", False
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # EIO: the command has ended and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
        if interrupt_after and len(shown) >= interrupt_after and not interrupted:
            process.send_signal(signal.SIGINT)
            interrupted = True
    os.close(leader)
    return process.wait(timeout=60), shown.decode().replace("\r\n", "\n")  # the terminal shows \n as CR LF


@pytest.fixture(scope="module")
def tweets_run(tmp_path_factory):
    """A small model of documents, which --documents can stop at their ends."""
    root = tmp_path_factory.mktemp("tweets")
    result = textgen("train", "--corpus", PROJECT / "corpora" / "sample_tweets.json", "--out", root / "run",
                     "--hidden", "8", "--updates", "60", "--sample-every", "1000", "--passage-length", "20",
                     "--no-progress", "--seed", "1")
    assert result.returncode == 0, result.stderr
    return root / "run"


def test_generate_notes_start_a_line_of_their_own_on_a_shared_terminal(tweets_run):
    code, shown = on_a_terminal("generate", tweets_run, "--documents", "6", "--length", "30", "--seed", "3")
    notes = re.findall(r"(.?)textgen: document \d reached --length 30", shown, flags=re.DOTALL)
    assert code == 0 and notes and all(before in ("", "\n") for before in notes), shown
    code, shown = on_a_terminal("generate", tweets_run, "--length", "100000000", interrupt_after=300)
    assert code == 130 and shown.endswith("\ntextgen: stopped\n"), shown[-200:]
    assert "\u2403" not in shown  # the end-of-document marker is a line break in --length mode
