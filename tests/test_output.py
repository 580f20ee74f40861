"""Output that fails, through the real command: a reader that goes away ends the command quietly (as Unix
tools end), an encoding that cannot hold the text and a full device are one error line."""

from __future__ import annotations

import json
import os
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
    process = start("generate", "--run", accented_run, "--length", "50000000", "--seed", "1", stdout=subprocess.PIPE)
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


def test_training_onto_a_full_device_checkpoints_and_says_how_to_resume(tmp_path, accented_run):
    folder = tmp_path / "run"
    with open("/dev/full", "w") as full:  # as a log file on a disk that fills up while the run trains
        result = subprocess.run([*textgen_command(), *map(str, small_run(folder, accented_run.parent / "book.txt",
                                                                          "-q"))],
                                stdout=full, stderr=subprocess.PIPE, text=True, env=environment(), timeout=300,
                                check=False)
    assert_one_error_line(result, r"cannot write to standard output \(No space left on device\); stopped at update "
                                  rf"\d+; checkpoint saved in {re.escape(str(folder))}/last\.npz\. Continue with: "
                                  rf"textgen train --resume {re.escape(str(folder))}$")
    resumed = textgen("train", "--resume", folder, "-q")
    assert resumed.returncode == 0 and (folder / "best_passage.txt").is_file(), resumed.stderr


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
    assert "\u2403" in shown  # the end-of-document marker is shown as ␃ in --length mode, as training shows it


# ---------------------------------------------------------------- closed standard descriptors (`>&-`, `2>&-`)

def closing(*descriptors: int):
    """A preexec_fn that closes ``descriptors`` in the child, as `textgen ... >&- 2>&-` does in a shell."""
    def close() -> None:
        for descriptor in descriptors:
            os.close(descriptor)
    return close


def with_closed(descriptors: tuple[int, ...], *argv: object) -> subprocess.CompletedProcess:
    return subprocess.run([*textgen_command(), *map(str, argv)], capture_output=True, text=True, env=environment(),
                          timeout=300, check=False, preexec_fn=closing(*descriptors))


def small_run(folder: Path, book: Path, *extra: object) -> list:
    return ["train", "--corpus", book, "--out", folder, "--hidden", "8", "--updates", "60", "--sample-every", "20",
            "--passage-length", "30", "--seed", "1", "--status-every", "0.001", *extra]


# Commands whose output is their result: with standard output closed they end as at a pipe nobody reads.
RESULT_COMMANDS = {
    "corpora": ["corpora"],
    "version": ["--version"],
    "help": ["--help"],
    "no command": [],
    "train help": ["train", "--help"],
    "generate": ["generate", "{run}", "--length", "100"],
    "generate json": ["generate", "{run}", "--length", "100", "--json"],
    "generate documents": ["generate", "{tweets}", "--documents", "2", "--length", "30"],
    "evaluate": ["evaluate", "{run}", "--corpus", "{book}"],
    "evaluate json": ["evaluate", "{run}", "--corpus", "{book}", "--json"],
    "gradcheck": ["gradcheck", "--corpus", "{book}", "--hidden", "3", "--max-entries", "5", "--sigma", "0.3"],
}


def filled(argv: list, accented_run: Path, tweets_run: Path) -> list:
    values = {"{run}": str(accented_run), "{tweets}": str(tweets_run), "{book}": str(accented_run.parent / "book.txt")}
    return [values.get(arg, arg) for arg in argv]


@pytest.mark.parametrize("name", RESULT_COMMANDS)
def test_a_closed_stdout_ends_a_command_quietly_as_a_pipe_nobody_reads(name, accented_run, tweets_run):
    result = with_closed((1,), *filled(RESULT_COMMANDS[name], accented_run, tweets_run))
    assert result.returncode == 141 and "Traceback" not in result.stderr, result.stderr
    assert "error" not in result.stderr and "seed" not in result.stderr, result.stderr  # no text went out to draw again


@pytest.mark.parametrize("name", RESULT_COMMANDS)
def test_a_closed_stderr_changes_nothing_of_what_a_command_writes(name, accented_run, tweets_run):
    argv = filled(RESULT_COMMANDS[name], accented_run, tweets_run)
    if name.startswith("generate"):
        argv += ["--seed", "3"]
    expected = textgen(*argv)
    result = with_closed((2,), *argv)
    assert (result.returncode, result.stdout) == (expected.returncode, expected.stdout)
    assert result.returncode == 0 and result.stdout


@pytest.mark.parametrize("closed", [(1,), (2,), (1, 2), (0, 1, 2)], ids=["stdout", "stderr", "both", "all three"])
def test_training_with_closed_standard_streams_finishes_the_run(closed, tmp_path, accented_run):
    folder = tmp_path / "run"
    result = with_closed(closed, *small_run(folder, accented_run.parent / "book.txt", "-v"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert {"last.npz", "best.npz", "best_passage.txt", "report.html", "samples.jsonl"} <= {
        path.name for path in folder.iterdir()}
    if 1 not in closed:  # the samples still go to standard output
        assert result.stdout.count("--- update ") == 4
    if 2 not in closed:  # and the notes to standard error, never to standard output
        assert "textgen: done:" in result.stderr and "textgen: done:" not in result.stdout
    report = with_closed(closed, "report", folder)
    plot = with_closed(closed, "plot", folder, "--out", tmp_path / "loss.png")
    assert report.returncode == plot.returncode == 0 and (tmp_path / "loss.png").stat().st_size > 0


def test_an_error_with_a_closed_stream_keeps_exit_status_1(accented_run):
    for closed in ((1,), (2,)):
        result = with_closed(closed, "generate", accented_run, "--prime", "\u00a7")
        assert result.returncode == 1 and "Traceback" not in result.stderr
    result = with_closed((1,), "generate", accented_run, "--prime", "\u00a7")
    assert result.stderr.startswith("textgen: error: --prime has characters")


# ---------------------------------------------------------------- output that streams into a pipe

def first_bytes(argv: list, size: int) -> tuple[int, bytes, str]:
    """Run the command into a pipe, read ``size`` bytes (failing if none come within a minute), close the pipe as
    `| head -c SIZE` does; (exit status, what was read, stderr)."""
    import select

    process = subprocess.Popen([*textgen_command(), *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=environment())
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "nothing was written within a minute"
        read = process.stdout.read(size)
        process.stdout.close()
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, read, err.decode()


@pytest.mark.parametrize("mode, length", [("--count", "200"), ("--documents", "200"), ("--count", "100000000000")])
def test_many_samples_stream_so_that_head_stops_at_once(mode, length, accented_run, tweets_run):
    run_dir = tweets_run if mode == "--documents" else accented_run
    count = "3" if len(length) > 3 else "1000000"  # (three texts of 10^11 characters: none waits in memory)
    code, read, err = first_bytes(["generate", run_dir, mode, count, "--length", length, "--seed", "1"], 100)
    assert code == 141 and len(read) == 100, err  # drawing a million first would take hours
    assert "Traceback" not in err and "error" not in err  # (notes of documents cut at --length may come)


def test_json_into_a_pipe_that_closes_exits_141_as_plain_text_does(accented_run):
    code, read, err = first_bytes(["generate", accented_run, "--json", "--count", "50", "--length", "20000",
                                   "--seed", "1"], 100)
    assert code == 141 and read.startswith(b'["') and err == ""
    code, read, _ = first_bytes(["generate", accented_run, "--json", "--count", "1000000", "--length", "10"], 10)
    assert code == 141 and read.startswith(b'["')


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_a_pipe_that_closes_within_the_first_text_still_hears_of_a_fresh_seed(json_flag, accented_run):
    code, read, err = first_bytes(["generate", accented_run, "--length", "100000000000", *json_flag], 100)
    seed = re.fullmatch(r"textgen: seed (\d+) \(give --seed \d+ to draw the same text again\)\n", err)
    assert code == 141 and seed, err
    again = textgen("generate", accented_run, "--length", "200", "--seed", seed.group(1), *json_flag)
    assert again.stdout.encode()[:100] == read


def test_documents_cut_before_a_stop_are_said_with_json_as_without(tweets_run):
    code, read, err = first_bytes(["generate", tweets_run, "--json", "--documents", "1000000", "--length", "3",
                                   "--seed", "1"], 30)
    assert code == 141 and read.startswith(b'["') and "Traceback" not in err
    assert re.match(r"textgen: document 1 reached --length 3 without an end-of-document marker", err), err


def test_json_streams_one_valid_list(accented_run):
    prime = "book.\nLine"  # a line break, which JSON escapes
    result = textgen("generate", accented_run, "--json", "--count", "3", "--length", "50", "--prime", prime,
                     "--seed", "2")
    texts = json.loads(result.stdout)
    assert result.returncode == 0 and len(texts) == 3 and all(t.startswith(prime) and len(t) == 60 for t in texts)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["corpora"]])
def test_a_standard_output_opened_for_reading_is_one_line(argv):
    with open(os.devnull) as read_only:  # `textgen --version 1</dev/null`: every write fails with EBADF
        result = subprocess.run([*textgen_command(), *argv], stdout=read_only, stderr=subprocess.PIPE, text=True,
                                env=environment(), timeout=60, check=False)
    assert_one_error_line(result, r"cannot write to standard output \(Bad file descriptor\)")


# ---------------------------------------------------------------- a standard error that refuses writes

def with_stderr_on(target: str, *argv: object) -> subprocess.CompletedProcess:
    """Run the real command with standard error on a device that refuses every write: ``/dev/full`` (ENOSPC), or
    ``/dev/null`` opened for reading (EBADF), as `textgen ... 2>/dev/full` or `2</dev/null` in a shell."""
    path, mode = {"full": ("/dev/full", "w"), "read-only": (os.devnull, "r")}[target]
    with open(path, mode) as stream:
        return subprocess.run([*textgen_command(), *map(str, argv)], stdout=subprocess.PIPE, stderr=stream,
                              text=True, env=environment(), timeout=300, check=False)


# Commands that write notes on standard error beside their result: the seed, documents cut, tiny gradients.
NOTING_COMMANDS = {
    "generate documents cut": ["generate", "{tweets}", "--documents", "4", "--length", "5", "--seed", "3"],
    "gradcheck tiny gradients": ["gradcheck", "--corpus", "{book}", "--cell", "lstm", "--layers", "3", "--hidden",
                                 "3", "--max-entries", "2"],
    "corpora": ["corpora"],
}


@pytest.mark.parametrize("target", ["full", "read-only"])
@pytest.mark.parametrize("name", NOTING_COMMANDS)
def test_a_standard_error_that_refuses_writes_changes_nothing_of_what_a_command_writes(name, target, accented_run,
                                                                                        tweets_run):
    argv = filled(NOTING_COMMANDS[name], accented_run, tweets_run)
    expected = textgen(*argv)
    assert expected.returncode == 0 and expected.stderr.startswith("textgen: ") or name == "corpora", expected.stderr
    result = with_stderr_on(target, *argv)
    assert (result.returncode, result.stdout) == (0, expected.stdout)


@pytest.mark.parametrize("target", ["full", "read-only"])
def test_a_fresh_seed_that_cannot_be_said_leaves_the_text_and_status_alone(target, accented_run):
    for json_flag in ([], ["--json"]):
        result = with_stderr_on(target, "generate", accented_run, "--count", "2", "--length", "40", *json_flag)
        assert result.returncode == 0 and result.stdout.endswith("\n")
    assert [len(text) for text in json.loads(result.stdout)] == [40, 40]


@pytest.mark.parametrize("target", ["full", "read-only"])
def test_training_with_a_standard_error_that_refuses_writes_finishes_the_run(target, tmp_path, accented_run):
    folder = tmp_path / "run"
    result = with_stderr_on(target, *small_run(folder, accented_run.parent / "book.txt", "-v"))
    assert result.returncode == 0 and result.stdout.count("--- update ") == 4
    assert {"best_passage.txt", "report.html"} <= {path.name for path in folder.iterdir()}


@pytest.mark.parametrize("target", ["full", "read-only"])
def test_a_usage_error_keeps_exit_status_2_and_an_error_1_when_standard_error_refuses_them(target, accented_run):
    assert with_stderr_on(target, "corpora", "--no-such-flag").returncode == 2
    assert with_stderr_on(target, "generate", accented_run, "--prime", "\u00a7").returncode == 1
