"""The `textgen` command: train, generate, evaluate, gradcheck, report, plot, corpora. The only module that prints."""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import logging
import math
import os
import select
import signal
import sys
import time
import traceback
from array import array
from pathlib import Path

from textgen._version import __version__
from textgen.config import TrainConfig, check_count
from textgen.errors import ConfigError, OutputError, TextgenError, TrainingError, one_line, path_failure
from textgen.settings import HELD_OUT_FLAGS, LOADER_FLAGS, loader_options_of, setting_of_flag
from textgen.stopping import Interrupted, StopRequest

DEBUG_ENV = "TEXTGEN_DEBUG"  # set to 1: errors show the traceback of their cause (for plugin authors)

def flag_dest(flag: str) -> str:
    """The attribute argparse fills for a loader flag."""
    return "loader_" + flag[2:].replace("-", "_")


# Training flags: (flag, type, metavar, help). Each maps onto the TrainConfig field of the same name;
# only the flags given are passed, so `--resume` can tell what the user asked to change.
TRAIN_FLAGS = (
    ("--seq-length", int, "N", "characters per window, the length of backprop through time"),
    ("--optimizer", str, "NAME", "adagrad (the assignment's), rmsprop or adam"),
    ("--eta", float, "ETA", "learning rate (default 0.1 for adagrad, 0.002 for rmsprop and adam)"),
    ("--eps", float, "EPS", "adagrad: inside the square root; rmsprop, adam: added to it"),
    ("--rmsprop-decay", float, "RHO", "rmsprop: decay of the running mean of squared gradients"),
    ("--beta1", float, "B1", "adam: decay of the running mean of gradients"),
    ("--beta2", float, "B2", "adam: decay of the running mean of squared gradients"),
    ("--dropout", float, "P", "drop each output of each layer with probability P while training"),
    ("--clip", float, "C", "clip gradients to [-C, C]"),
    ("--epochs", float, "E", ("passes over the corpus; neither this nor --updates: 2 epochs, but at least 2.5 million "
     "characters (100,000 updates at batch 1), so that a small corpus gets a useful model")),
    ("--updates", int, "N", "parameter updates in all (instead of --epochs)"),
    ("--sample-every", int, "N", "updates between training-time samples"),
    ("--sample-length", int, "N", "characters per training-time sample"),
    ("--log-every", int, "N", "updates between rows of metrics.jsonl"),
    ("--checkpoint-every", int, "N", "updates between saves of last.npz and best.npz"),
    ("--eval-every", int, "N", ("updates between validation losses (default: a tenth of the run, kept between 2,500 "
     "and 5,000 and never beyond the run, rounded down to a multiple of --log-every)")),
    ("--batch-size", int, "B", "parallel streams (1 is the assignment's exact algorithm)"),
    ("--threads", int, "T", "threads sharing a batch's streams (default: one per CPU, at most one per 32 streams)"),
)
TRAIN_DEFAULTS = {name: field.default for name, field in TrainConfig.__dataclass_fields__.items()}


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (an unknown flag, a missing or mistyped value) are one ``textgen: error:`` line and
    exit status 2, as argparse's own are; the usage it would print first is left to ``--help``."""

    def error(self, message: str):
        self.exit(2, f"textgen: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but a flag that the command does not take points at that command's --help."""
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            getattr(parsed, "command_parser", self).error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed

    def _print_message(self, message: str, file=None) -> None:
        """As argparse's, but a failure to write (--help > /dev/full) is not swallowed."""
        if message:
            (file or sys.stderr).write(message)


def add_corpus_flags(parser: argparse.ArgumentParser, held_out: bool = False,
                     default: str = "pydoc, the Python reference") -> None:
    """The corpus flags; with ``held_out``, also those that choose the held-out text (HELD_OUT_FLAGS)."""
    group = parser.add_argument_group("corpus")
    group.add_argument(
        "--corpus",
        action="append",
        metavar="SOURCE",
        help="PATH (loader chosen by suffix), LOADER:SOURCE (e.g. hf:NAME) or a named corpus (see `textgen corpora`); "
        f"repeat for several corpora, which share one vocabulary (default: {default})",
    )
    group.add_argument("--kind", metavar="LOADER", help="use this loader for every --corpus")
    group.add_argument("--weights", metavar="W1,W2,...", help="mix several corpora in these proportions "
                       "(default: by size, each used once)")
    group.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="a keyword of the chosen loader's constructor, such as a plugin's (--option column=title; "
                       "true/false and numbers are converted); it goes to every chosen loader that takes KEY, "
                       "LOADER.KEY=VALUE to that loader only; repeat for several")
    for flag, (_, _, settings) in {**LOADER_FLAGS, **(HELD_OUT_FLAGS if held_out else {})}.items():
        group.add_argument(flag, dest=flag_dest(flag), **settings)


def corpus_settings(args: argparse.Namespace) -> dict:
    """The corpus settings given on the command line, by setting name (a loader switch given is True)."""
    given = {name: getattr(args, name) for name in ("corpus", "kind", "weights", "option")
             if getattr(args, name, None) is not None}
    for flag, (_, _, settings) in {**LOADER_FLAGS, **HELD_OUT_FLAGS}.items():
        value = getattr(args, flag_dest(flag), None)
        if value is not None:
            given[setting_of_flag(flag)] = True if settings.get("action") in ("store_true", "store_false") else value
    return given


def loader_options(args: argparse.Namespace) -> list:
    """The loader options given: each loader flag for its own loader, then each --option."""
    return loader_options_of(corpus_settings(args))


def add_model_flags(parser: argparse.ArgumentParser, hidden_default: int = 100) -> None:
    parser.set_defaults(hidden_default=hidden_default)
    group = parser.add_argument_group("model")
    group.add_argument("--cell", metavar="CELL", help="rnn (the assignment's, default), lstm or gru")
    group.add_argument("--layers", type=int, metavar="L", help="layers stacked (default 1)")
    group.add_argument("--hidden", type=int, metavar="M", help=f"hidden units per layer (default {hidden_default})")
    group.add_argument("--sigma", type=float, help="std of the initial weights (default 0.01)")
    group.add_argument("--dtype", choices=("float64", "float32"), help="float64 (default) or float32 (faster)")


def add_run_argument(parser: ArgumentParser) -> None:
    """The run folder, as RUN_DIR (as `report` and `plot` take it) or as --run (kept for older scripts)."""
    parser.add_argument("run", type=Path, nargs="?", metavar="RUN_DIR", help="a run folder")
    parser.add_argument("--run", type=Path, dest="run_flag", metavar="RUN_DIR", help="the same, as a flag")


def choose_run_folder(args: argparse.Namespace) -> None:
    """Set ``args.run`` from RUN_DIR or --run; a usage error (exit 2) if neither is given or they differ."""
    if not hasattr(args, "run_flag"):
        return
    given = [path for path in (args.run, args.run_flag) if path is not None]
    if not given:
        args.command_parser.error("the run folder is missing: give it as RUN_DIR")
    if len(given) == 2 and given[0] != given[1]:
        args.command_parser.error(f"RUN_DIR {given[0]} and --run {given[1]} name different run folders; give one")
    args.run = given[0]


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="textgen",
        description="Train character-level vanilla RNNs (KTH DD2424 Assignment 4) on any corpus and sample from them.",
    )
    parser.add_argument("--version", action="version", version=f"textgen {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback behind an error, e.g. a plugin's (or set {DEBUG_ENV}=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    train = commands.add_parser("train", help="train a model; writes a run folder")
    add_corpus_flags(train, held_out=True)
    train.add_argument("--val-fraction", type=float, default=None, metavar="F",
                       help="hold out the tail of each corpus (whole documents for tweets and rows) for a "
                       "validation loss, unless it has held-out text of its own (--hf-val-split) (default 0.05; 0 "
                       "trains on everything)")
    train.add_argument("--val-max-characters", type=int, default=None, metavar="N",
                       help="hold out at most about N characters of each corpus (whole documents for tweets and "
                       "rows): every evaluation reads all of the held-out text (default 250000)")
    add_model_flags(train)
    group = train.add_argument_group("training (defaults are the assignment's)")
    for flag, field_type, metavar, text in TRAIN_FLAGS:
        default = TRAIN_DEFAULTS[flag[2:].replace("-", "_")]
        shown = "" if default is None else f" (default {default})"
        group.add_argument(flag, type=field_type, metavar=metavar, help=text + shown)
    group.add_argument("--passage-length", type=int, metavar="N", help="final passage length (default 1000)")
    group.add_argument("--seed", type=int, help="random seed (default: a fresh one, recorded in config.json)")
    group.add_argument("--out", type=Path, metavar="RUN_DIR", help="run folder (default runs/<corpus>-<time>)")
    group.add_argument("--force", action="store_true", help="replace the run already in --out")
    group.add_argument("--init-from", type=Path, metavar="RUN_DIR",
                       help="start from another run's last parameters and vocabulary (train a model further on "
                       "new text whose characters it knows)")
    group.add_argument("--config", type=Path, metavar="FILE",
                       help="read the settings from the [train] table of this TOML file (names as the flags, with _ "
                       "for -: hidden = 128, corpus = [\"book.txt\"]); flags given here override it")
    group.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue a stopped run exactly where it was; --updates/--epochs give the new total")
    group = train.add_argument_group("what training shows")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    group.add_argument("--status-every", type=float, default=10.0, metavar="SECONDS",
                       help="when standard error is not a terminal (CI, nohup, Slurm), print one plain status "
                       "line this often instead of a progress bar (default 10; 0 for none)")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress bar, status lines or notices")
    group.add_argument("-v", "--verbose", action="store_true",
                       help="more detail: each validation loss as it is measured, and elapsed time in status lines")
    train.set_defaults(handler=command_train)

    generate = commands.add_parser("generate", help="print text sampled from a trained model")
    add_run_argument(generate)
    generate.add_argument("--checkpoint", default="best", choices=("best", "last"), help="which model (best)")
    generate.add_argument("--length", type=int, default=1000, metavar="N", help="characters after the prime (1000)")
    generate.add_argument("--prime", default="", metavar="TEXT", help="text the model reads first; output starts with it")
    generate.add_argument(
        "--temperature", type=float, default=1.0, metavar="T",
        help="divides the logits: below 1 is safer and more repetitive, above 1 wilder (default 1)",
    )
    generate.add_argument("--top-k", type=int, default=0, metavar="K", help="draw among the K likeliest characters")
    generate.add_argument("--top-p", type=float, default=1.0, metavar="P",
                          help="draw among the likeliest characters that together have probability P (nucleus)")
    generate.add_argument("--greedy", action="store_true", help="always take the likeliest character")
    generate.add_argument("--count", type=int, default=1, metavar="N",
                          help="N independent samples; sample i depends only on the seed and i")
    generate.add_argument("--documents", type=int, default=0, metavar="N",
                          help="N whole documents (e.g. tweets), each stopped at the end-of-document marker; "
                          "--length is then the limit per document")
    generate.add_argument("--seed", type=int, help="random seed; the same seed gives the same text (default: a "
                          "fresh one, said on stderr after the first text)")
    generate.add_argument("--json", action="store_true",
                          help="print the texts as one JSON list of strings, one per sample or document, written as "
                          "they are drawn")
    generate.set_defaults(handler=command_generate)

    gradcheck = commands.add_parser("gradcheck", help="compare analytic and numerical gradients")
    add_corpus_flags(gradcheck)
    add_model_flags(gradcheck)
    gradcheck.add_argument("--seq-length", type=int, default=25, metavar="N", help="characters in the window (25)")
    gradcheck.add_argument("--max-entries", type=int, default=200, metavar="N",
                           help="entries checked per parameter, drawn at random (default 200; 0 for all)")
    gradcheck.add_argument("--seed", type=int, default=0, help="seed for the initial parameters (0)")
    gradcheck.add_argument("--json", action="store_true", help='print {"b": err, "c": err, ...} as JSON')
    gradcheck.set_defaults(handler=command_gradcheck)

    evaluate = commands.add_parser("evaluate", help="loss per character of a trained model on its run's held-out "
                                   "text or any corpus")
    add_run_argument(evaluate)
    evaluate.add_argument("--checkpoint", default="best", choices=("best", "last"), help="which model (best)")
    add_corpus_flags(evaluate, default="the run's own held-out text, or its training text when it holds none out")
    evaluate.add_argument("--json", action="store_true", help="print the numbers as JSON")
    evaluate.set_defaults(handler=command_evaluate)

    report = commands.add_parser("report", help="write report.html (self-contained) and report.md into a run folder")
    report.add_argument("run", type=Path, metavar="RUN_DIR", help="a run folder")
    report.set_defaults(handler=command_report)

    plot = commands.add_parser("plot", help="overlay several runs' loss curves in one PNG")
    plot.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="run folders to compare")
    plot.add_argument("--out", type=Path, default=Path("loss_comparison.png"), metavar="PNG",
                      help="where to write the figure (default loss_comparison.png)")
    plot.set_defaults(handler=command_plot)

    sweep = commands.add_parser("sweep", help="train many models of one spec on Ray Tune and rank them "
                                "(needs the sweep extra)")
    sweep.add_argument("spec", type=Path, nargs="?", metavar="SPEC.toml",
                       help="the sweep: [train] base settings, [search] space, optional [early_stopping]")
    sweep.add_argument("--out", type=Path, metavar="SWEEP_DIR", help="where the sweep lives (default "
                       "sweeps/<spec>-<time>; every trial is a run folder in SWEEP_DIR/trials)")
    sweep.add_argument("--address", metavar="ADDRESS", help="join this Ray cluster (auto, HOST:PORT or "
                       "ray://HOST:PORT) instead of starting Ray on this machine")
    sweep.add_argument("--resume", type=Path, metavar="SWEEP_DIR", help="continue a stopped sweep: finished trials "
                       "are kept, unfinished ones continue from their last checkpoint")
    sweep.add_argument("--status", type=Path, metavar="SWEEP_DIR", help="print the ranked table of a sweep "
                       "(no Ray needed)")
    sweep.add_argument("-v", "--verbose", action="store_true", help="Ray Tune's own progress tables too")
    sweep.set_defaults(handler=command_sweep)

    corpora = commands.add_parser("corpora", help="list corpus loaders and named corpora")
    corpora.set_defaults(handler=command_corpora)
    for command in commands.choices.values():  # where a usage error sends the user for help
        command.set_defaults(command_parser=command)
    return parser


def escaped(text: str, stream) -> str:
    """``text`` with the characters ``stream``'s encoding lacks written as \\x.. escapes."""
    encoding = stream.encoding or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding)


class ClosedOutput(io.TextIOBase):
    """Standard output when its descriptor was closed (`textgen corpora >&-`): a pipe nobody reads. Writing
    raises BrokenPipeError, so a command whose output is its result ends quietly with status 141, as at a
    pipe whose reader went away; output that only reports (training's samples, `wrote report.html`) is
    dropped instead (`say`, `Output(required=False)`) and the command does its work."""

    encoding = "utf-8"
    errors = "strict"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            raise BrokenPipeError(errno.EPIPE, "standard output is closed")
        return 0

    def fileno(self) -> int:
        return 1  # /dev/null, which `guard_standard_streams` put there


def stdout_is_closed() -> bool:
    return isinstance(sys.stdout, ClosedOutput)


class NotesOutput(io.TextIOBase):
    """Standard error as the program writes its notes and errors: straight to descriptor 2, and a write the
    descriptor refuses (`2>/dev/full`, `2</dev/null`, a pipe whose reader went away) is dropped, as a note to a
    closed standard error is. A note that cannot be shown never stops a command or changes its exit status
    (Python's own standard error would raise, and fail the exit status once more at its last flush)."""

    errors = "backslashreplace"

    def __init__(self, encoding: str | None):
        self._encoding = encoding or "utf-8"
        self.stop: StopRequest | None = None  # the command's: once it is asked to stop, a reader that does not
        # read (`2>&1 | less` left alone) gets no more, so that the stop does not wait for it

    @property
    def encoding(self) -> str:
        return self._encoding

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return 2

    def isatty(self) -> bool:
        return os.isatty(2)

    def write(self, text: str) -> int:
        data = text.encode(self.encoding, self.errors)
        with contextlib.suppress(OSError):
            while data and (self.stop is None or reader_takes(self, self.stop)):
                data = data[os.write(2, data[: 4 * WRITE_CHARACTERS]):]
        return len(text)


def guard_standard_streams() -> None:
    """Make closed standard descriptors harmless: /dev/null is opened on each (so that no file textgen opens
    later gets descriptor 1 or 2, where a stray write would land in it, and so that child processes inherit
    something), a closed standard output becomes a `ClosedOutput` and standard error (the program's own, closed
    or not) a `NotesOutput`, so that the run goes on and its exit status stays what it would have been."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one, the lower ones are open
            if opened != descriptor:
                os.dup2(opened, descriptor)
                os.close(opened)
    if sys.stdin is None:
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - standard input for the process
    if sys.stdout is None:
        sys.stdout = ClosedOutput()
    if sys.stderr is None or sys.stderr is sys.__stderr__:  # not one a caller put there (pytest's, say)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()  # what Python's own holds goes first
        sys.stderr = NotesOutput(getattr(sys.stderr, "encoding", None))


class Output:
    """Standard output as the commands write it: what cannot be encoded or written becomes one error line.

    A closed pipe is left to `main` (BrokenPipeError), which ends quietly as Unix tools do. Output that is
    not ``required`` (it only reports what a command did) is dropped when standard output was closed.
    """

    def __init__(self, stream=None, required: bool = True):
        self.stream = stream or sys.stdout
        self.dropped = not required and isinstance(self.stream, ClosedOutput)
        self.line_open = False  # the text written so far does not end with a line break

    def write(self, text: str, escape: bool = False, flush: bool = False) -> None:
        """Write ``text``; with ``escape``, characters the stream's encoding lacks become \\x.. escapes."""
        if self.dropped:
            return
        if escape:
            text = escaped(text, self.stream)
        if text:  # before writing: a stop that comes in between then costs a blank line, never a glued note
            self.line_open = not text.endswith("\n")
        try:
            self.stream.write(text)
            if flush:
                self.stream.flush()
        except UnicodeEncodeError as error:
            raise OutputError(
                f"standard output is {self.stream.encoding}, which cannot hold {error.object[error.start]!r} "
                f"(U+{ord(error.object[error.start]):04X}); run with PYTHONIOENCODING=utf-8 or a UTF-8 locale "
                "(LANG=C.UTF-8)") from None
        except BrokenPipeError:
            raise
        except OSError as error:
            raise OutputError(f"cannot write to standard output ({error.strerror or error})") from None

    def check_encodable(self, chars, what: str) -> None:
        """OutputError listing the characters of ``chars`` that standard output cannot encode, before any is written."""
        encoding = self.stream.encoding or "utf-8"
        if (getattr(self.stream, "errors", "strict") or "strict") != "strict":
            return
        bad = []
        for char in chars:
            try:
                char.encode(encoding)
            except UnicodeEncodeError:
                bad.append(char)
        if bad:
            shown = "".join(bad[:12]) + ("..." if len(bad) > 12 else "")
            raise OutputError(
                f"standard output is {encoding}, which cannot hold {len(bad)} of {what} ({shown!r}); run with "
                "PYTHONIOENCODING=utf-8 or a UTF-8 locale (LANG=C.UTF-8)")

    def flush(self) -> None:
        """Flush, as `write` reports failures."""
        self.write("", flush=True)

    def end_line(self) -> None:
        """End the line written so far, if it is open, and flush: a note on stderr then starts a line of its own
        where both streams share a terminal."""
        self.write("\n" if self.line_open else "", flush=True)


def say(text: str = "", file=None) -> None:
    """Print a line, above the progress bar if one is showing (nothing if it is for a closed standard output)."""
    from tqdm.auto import tqdm

    stream = file or sys.stdout
    if not isinstance(stream, ClosedOutput):
        tqdm.write(text, file=stream)


def model_config(args: argparse.Namespace):
    """RNNConfig from the model flags, defaults where not given."""
    from textgen.config import RNNConfig

    given = {name: getattr(args, name) for name in ("hidden", "sigma", "dtype", "cell", "layers")
             if getattr(args, name) is not None}
    given.setdefault("hidden", args.hidden_default)
    return RNNConfig(**given)


EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGPIPE: 141}


def duration(seconds: float) -> str:
    """``seconds`` as 45s, 12m 05s or 3h 20m."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def loss_per_char(nats: float, digits: int = 3) -> str:
    """A loss per character as every command shows it: bits per character (the figure papers compare), nats
    beside it (what metrics.jsonl's val_loss holds)."""
    from textgen.evaluate import bits_per_char

    return f"{bits_per_char(nats):.{digits}f} bits/char ({nats:.{digits}f} nats/char)"


def status_line(status: dict, verbose: bool = False) -> str:
    """One plain line of where training is, for logs that are not a terminal."""
    total = status["total_updates"]
    parts = [f"update {status['update']:,}/{total:,} ({100 * status['update'] / total:.0f}%)",
             f"epoch {status['epoch']:.2f}",
             "smooth loss " + ("n/a" if status["smooth_loss"] is None else f"{status['smooth_loss']:.3f}"),
             "val " + ("n/a" if status["val_bpc"] is None else loss_per_char(status["val_bpc"] * math.log(2))),
             f"{status['chars_per_sec']:,.0f} chars/s",
             "ETA " + ("n/a" if status["eta_seconds"] is None else duration(status["eta_seconds"]))]
    if verbose:
        parts.append(f"elapsed {duration(status['elapsed_seconds'])}")
    return "textgen: " + ", ".join(parts)


def start_line(info: dict) -> str:
    """What was loaded and how long the run is, said as training starts."""
    count = info["documents"]
    documents = "" if count is None else f"{count:,} document{'s' if count != 1 else ''}, "
    held = f" ({info['val_characters']:,} more held out for validation)" if info["val_characters"] else ""
    length = (f"{info['total_updates']:,} updates ({info['epochs']:.2f} epochs of {info['updates_per_epoch']:,})")
    if info["start_update"]:
        return (f"textgen: resuming {info['folder']} at update {info['start_update']:,} of {length}; "
                f"{info['characters']:,} characters, {info['distinct']} distinct")
    return (f"textgen: loaded {documents}{info['characters']:,} characters to train on{held}, {info['distinct']} "
            f"distinct; training {length} into {info['folder']}")


class TrainView:
    """What `textgen train` shows while it trains: the start line, samples, plain status lines and (with -v)
    each validation loss; passed to the run as its callbacks."""

    def __init__(self, args: argparse.Namespace, stop):
        self.stop = stop
        self.quiet, self.verbose = args.quiet, args.verbose
        plain = not self.quiet and args.status_every > 0 and not stream_is_terminal(sys.stderr)
        self.status_every = args.status_every if plain else None
        self.last_status = None  # when the last status line was printed (None: not yet)
        self.noted = False  # whether a sample had characters the terminal's encoding lacks (said once)
        self.output_failed: str | None = None  # why standard output refused a sample (a full disk), if it did

    def shown(self, text: str) -> str:
        """``text`` as the terminal can show it (the run's files keep every character)."""
        visible = escaped(text, sys.stdout)
        if visible != text and not self.noted:
            self.noted = True
            say("textgen: characters your terminal's encoding lacks are shown as \\x.. escapes; the run's files "
                "keep them", file=sys.stderr)
        return visible

    def on_start(self, info: dict) -> None:
        if not self.quiet:
            say(start_line(info), file=sys.stderr)

    def on_sample(self, record: dict) -> None:
        loss = "n/a" if record["smooth_loss"] is None else f"{record['smooth_loss']:.3f}"
        try:
            self.write_sample(f"--- update {record['update']:,}, epoch {record['epoch']:.2f}, smooth loss {loss} ---\n"
                              f"{self.shown(record['text'])}\n")
        except BrokenPipeError:  # nobody reads the samples any more: stop as after Ctrl-C, checkpoint first
            silence_stdout()
            self.stop.request(signal.SIGPIPE)
        except OSError as error:  # (a log on a full disk): stop the same way, and say so as an error
            silence_stdout()
            self.output_failed = f"cannot write to standard output ({error.strerror or error})"
            self.stop.request(signal.SIGPIPE)

    def write_sample(self, text: str) -> None:
        """Write ``text`` to standard output above the bar, a few lines at a time as the reader takes them, so that
        a stop asked for while a reader does not read (`| less` left alone) does not wait for it: the rest of the
        sample is dropped then (samples.jsonl has it) and the trainer checkpoints and stops as asked."""
        from tqdm.auto import tqdm

        if stdout_is_closed():
            return
        with tqdm.external_write_mode(file=sys.stdout):
            for start in range(0, len(text), WRITE_CHARACTERS):
                if not reader_takes(sys.stdout, self.stop):
                    silence_stdout()
                    return
                sys.stdout.write(text[start : start + WRITE_CHARACTERS])
                sys.stdout.flush()

    def on_log(self, record: dict) -> None:
        if self.verbose and record.get("val_loss") is not None:
            say(f"textgen: update {record['update']:,}: validation loss {loss_per_char(record['val_loss'], 4)}",
                file=sys.stderr)

    def on_status(self, status: dict) -> None:
        if self.status_every is None:
            return
        if self.last_status is None:
            self.last_status = time.monotonic() - status["elapsed_seconds"]  # counted from the start of training
        now = time.monotonic()
        if now - self.last_status >= self.status_every:
            self.last_status = now
            say(status_line(status, self.verbose), file=sys.stderr)


def stream_is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


RUN_FLAG_SETTINGS = ("out", "init_from", "val_fraction", "val_max_characters", "passage_length", "seed")
MODEL_FLAG_SETTINGS = ("hidden", "sigma", "dtype", "cell", "layers")


def command_line_settings(args: argparse.Namespace, given_train: dict) -> dict:
    """Every setting given on `train`'s command line, by name (see `textgen.settings`)."""
    given = {**corpus_settings(args), **given_train}
    for name in RUN_FLAG_SETTINGS + MODEL_FLAG_SETTINGS:
        if getattr(args, name) is not None:
            given[name] = getattr(args, name)
    if args.force:
        given["force"] = True
    return given


def command_train(args: argparse.Namespace) -> int:
    from textgen.run import resume_run, start_planned

    given = {}
    for flag, *_ in TRAIN_FLAGS:
        name = flag[2:].replace("-", "_")
        if getattr(args, name) is not None:
            given[name] = getattr(args, name)
    if args.resume is not None and args.config is not None:
        raise ConfigError("--config sets up a new run; --resume continues one as it was (give its changes as flags)")
    if not math.isfinite(args.status_every) or args.status_every < 0:
        raise ConfigError(f"--status-every must be a number of seconds, 0 or more, got {args.status_every!r}")
    # Ctrl-C and SIGTERM (main's handlers call `stop`): while training, the trainer checkpoints at the next
    # window; at any other stage (reading a corpus, even one that blocks) the command stops at once. A second
    # Ctrl-C always stops at once.
    stop = args.stop
    view = TrainView(args, stop)

    # Imported now, not half-way when a signal comes: an import a signal cuts short fails for good.
    import tqdm.auto  # noqa: F401 - `say` uses it

    from textgen.plots import load_matplotlib

    load_matplotlib()

    progress = False if args.no_progress or args.quiet else None
    try:
        if args.resume is not None:
            result = resume_run(args.resume, command_line_settings(args, given), progress=progress, callbacks=view,
                                stop=stop)
        else:
            from textgen.settings import overridden, plan_run, read_settings_file

            settings = command_line_settings(args, given)
            from_file = {} if args.config is None else read_settings_file(args.config)
            if "corpus" in settings:
                from_file.pop("corpus", None)  # --corpus on the command line replaces the file's list
            from_file = {name: value for name, value in overridden(from_file, settings).items() if name not in settings}
            plan = plan_run({**from_file, **settings})
            origin = {"command_line": sorted(settings)}
            if args.config is not None:
                origin.update(config_file=str(args.config.resolve()), file=sorted(set(from_file) - set(settings)))
            if plan.corpus is None and not args.quiet:
                say("textgen: no --corpus given, training on the built-in default: the Python language reference "
                    "(pydoc_data.topics, ~465k characters)", file=sys.stderr)
            result = start_planned(plan, progress=progress, callbacks=view, stop=stop,
                                   extra={"settings_from": origin})
    except Interrupted as stopped:
        code = EXIT_STATUS.get(stopped.signum, 130)
        if code == 141 and view.output_failed is None:
            return code  # the reader went away: end quietly, as Unix tools do (the checkpoint is saved)
        folder = stopped.folder
        if folder is None:
            message = "stopped before the run started; nothing was kept"
        elif stopped.finished:
            message = (f"stopped after training finished (update {stopped.update:,}, saved in {folder}/last.npz); "
                       f"the final passage and report were not written: textgen train --resume {folder} writes them")
        else:
            at = "" if stopped.update is None else f" at update {stopped.update:,}"
            message = (f"stopped{at}; checkpoint saved in {folder}/last.npz. Continue with: "
                       f"textgen train --resume {folder}")
        if view.output_failed is not None:
            sys.stderr.write(f"textgen: error: {view.output_failed}; {message}\n")
            return 1
        sys.stderr.write(f"textgen: {message}\n")
        return code
    state = result.state
    if state.best_by == "val_loss":
        best = f"validation loss {loss_per_char(state.best_loss)}"
    else:
        best = f"smooth loss {state.best_loss:.3f} nats per window"
    say(f"--- {len(result.passage)} characters from the best model (update {state.best_update:,}, {best}) ---")
    say(view.shown(result.passage))
    say(f"textgen: done: {state.update:,} updates, final smooth loss {state.smooth_loss:.3f} nats per window; best "
        f"model by {best} at update {state.best_update:,}; run folder {result.folder}", file=sys.stderr)
    report = f"report: {result.report}; " if result.report is not None else ""
    say(f"textgen: {report}generate more with: textgen generate {result.folder}", file=sys.stderr)
    return 0


WRITE_CHARACTERS = 1024  # written at a time where a stop must not wait for the reader: a pipe's free page holds them


def takes_a_write(stream, seconds: float = 0.2) -> bool:
    """Whether ``stream``'s descriptor takes a write within ``seconds``: a pipe whose reader does not read does not."""
    try:
        return bool(select.select([], [stream.fileno()], [], seconds)[1])
    except (OSError, ValueError, io.UnsupportedOperation):
        return True  # not a descriptor (a test's capture): it takes what it is given


def reader_takes(stream, stop: StopRequest) -> bool:
    """Wait until ``stream`` takes a write; False if a stop is asked for first."""
    while not takes_a_write(stream):
        if stop.is_set():
            return False
    return True


def silence_stdout() -> None:
    """Point standard output at /dev/null, so that nothing more (not even the exit's flush) hits a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def command_generate(args: argparse.Namespace) -> int:
    import orjson

    from textgen.loaders.base import END_OF_DOCUMENT
    from textgen.runfolder import RunFolder
    from textgen.sample import SampleConfig, sample_seed, stream_texts

    config = SampleConfig(
        length=args.length, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy,
        prime=args.prime, count=args.count, documents=args.documents,
    )
    if args.seed is not None:
        check_count("seed", args.seed, minimum=0)
    checkpoint = RunFolder(args.run).load(args.checkpoint)
    out = Output()
    # What the text can hold (a prime outside it is refused when it is read): every character of the model, but
    # the end-of-document marker where --documents stops at it (in --length mode it is written as ␃).
    shown = set(checkpoint.vocab.chars) - ({END_OF_DOCUMENT} if config.documents else set())
    out.check_encodable(sorted(shown), "the model's characters")
    seed = sample_seed(args.seed)
    pieces = stream_texts(checkpoint.params, checkpoint.vocab, config, seed, start=checkpoint.start_state())
    samples = config.documents or config.count

    cut = array("q")  # the documents cut at --length, numbered from 1: in --json mode said after the list's line
    seed_note = f"textgen: seed {seed} (give --seed {seed} to draw the same text again)\n"
    fresh = args.seed is None and not config.greedy

    def cut_note(number: int) -> str:
        return (f"textgen: document {number} reached --length {config.length} without an end-of-document marker "
                "and was cut there\n")

    seed_said = not fresh  # or none needs saying

    def say_seed() -> None:
        nonlocal seed_said
        if not seed_said:
            seed_said = True
            sys.stderr.write(seed_note)

    def notes(piece) -> None:
        """The notes on stderr once a sample is written: whether it was cut, and after the first one a fresh
        seed (on stderr, so that the text alone goes to stdout; after a text, which ends its line first; with
        --json, after the list's line)."""
        if not piece.done or args.json:
            if piece.done and config.documents and not piece.ended:
                cut.append(piece.index + 1)
            return
        if config.documents and not piece.ended:
            sys.stderr.write(cut_note(piece.index + 1))
        if piece.index == 0:
            say_seed()

    last_char = ""  # of the sample being written
    in_string = False  # --json: the sample's JSON string is open
    written = False  # whether any text has gone out (or is on its way)
    try:
        if args.json:  # one JSON list, written string by string as the samples are drawn
            out.write("[")
        for piece in pieces:
            if args.json:
                if not in_string:
                    out.write(", \"" if piece.index else "\"")
                    in_string = True
                written = written or bool(piece.text)  # (set first: a stop may come as soon as the text is out)
                out.write(orjson.dumps(piece.text).decode()[1:-1])  # the text as it is inside a JSON string
                if piece.done:
                    out.write('"', flush=True)
                    in_string = False
            else:
                if piece.text:
                    last_char, written = piece.text[-1], True
                    out.write(piece.text)
                if piece.done:
                    out.write("" if last_char == "\n" else "\n", flush=True)  # every sample ends its line, before a note
                    if piece.index + 1 < samples:
                        out.write("\n")  # a blank line between samples
                    last_char = ""
            notes(piece)
            out.flush()  # as it goes, so that `| head` stops the command
        if args.json:
            out.write("]\n", flush=True)
            for number in cut:
                sys.stderr.write(cut_note(number))
            say_seed()
    except (Interrupted, BrokenPipeError) as stop:
        if isinstance(stop, Interrupted) and takes_a_write(sys.stdout):  # (not a reader that does not read)
            with contextlib.suppress(OSError, OutputError):  # a reader that went away too needs no line end
                out.end_line()  # so that `textgen: stopped` does not follow the text on the same line
        for number in cut:  # what the text written so far needs said: the documents cut, the seed to draw it again
            sys.stderr.write(cut_note(number))
        if written and not stdout_is_closed():  # (a closed standard output took none of it)
            say_seed()
        raise
    return 0


def command_gradcheck(args: argparse.Namespace) -> int:
    import numpy as np
    import orjson

    from textgen.corpus import load_corpus
    from textgen.gradcheck import check_window, unresolvable
    from textgen.limits import check_memory
    from textgen.models import network_of
    from textgen.vocab import CharVocab

    model = model_config(args)
    check_count("seq_length", args.seq_length)
    check_count("max_entries", args.max_entries, minimum=0)
    check_count("seed", args.seed, minimum=0)

    def check(vocab_size: int) -> None:
        network = network_of(model, vocab_size)
        needed = network.training_bytes(args.seq_length, 1)
        needed += 16 * network.param_count  # the extended-precision copy the check perturbs
        check_memory(needed, f"a gradient check of {model.hidden:,} hidden units over {args.seq_length:,} characters",
                     "use a smaller --hidden, --layers or --seq-length")

    check(1)
    corpus = load_corpus(args.corpus, args.kind, loader_options(args), weights=args.weights)
    vocab = CharVocab.from_texts([corpus.text])
    check(vocab.size)
    window = vocab.encode(corpus.text[: args.seq_length + 1])
    if window.size < args.seq_length + 1:
        raise ConfigError(f"the corpus has fewer than --seq-length + 1 = {args.seq_length + 1} characters")
    rng = np.random.default_rng(args.seed)
    params = network_of(model, vocab.size).init(rng)
    errors = check_window(params, window[:-1], window[1:], max_entries=args.max_entries or None, rng=rng)
    broken = [name for name, error in errors.items() if not math.isfinite(error)]
    if broken:
        raise TrainingError(f"the gradient check of {', '.join(broken)} is not a number: the loss overflows at "
                            f"--sigma {model.sigma}; use a smaller --sigma")
    tiny = unresolvable(params, window[:-1], window[1:])
    if tiny:
        names = ", ".join(f"{name} (median {value:.0e})" for name, value in tiny.items())
        say(f"textgen: the gradients of {names} are mostly too small for centred differences to resolve, so "
            f"their errors say little at --sigma {model.sigma}; check with a larger --sigma (e.g. "
            f"{max(0.3, 3 * model.sigma):g})",
            file=sys.stderr)
    out = Output()
    if args.json:
        out.write(orjson.dumps(errors).decode() + "\n")
        return 0
    out.write(f"gradient check: {params.network.describe()}, K = {vocab.size}, seq_length = {args.seq_length}, "
              f"{model.dtype}, {'all' if not args.max_entries else f'up to {args.max_entries}'} entries per "
              "parameter\nparameter  max relative error\n")
    for name, error in errors.items():
        out.write(f"{name:<9}  {error:.2e}\n")
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    import orjson

    from textgen.api import evaluation_of
    from textgen.corpus import corpus_label
    from textgen.runfolder import RunFolder

    checkpoint = RunFolder(args.run).load(args.checkpoint)
    path = Path(args.run) / f"{args.checkpoint}.npz"
    result = evaluation_of(checkpoint, path, args.corpus, kind=args.kind, options=loader_options(args),
                           weights=args.weights)
    result = {"loss_per_char": result["nats_per_char"], **result, "checkpoint": str(path)}
    out = Output()
    if args.json:
        out.write(orjson.dumps(result).decode() + "\n")
        return 0
    scored = corpus_label(result["corpus"])
    if result["text"] == "held-out":
        scored = f"the run's held-out text of its {scored}"
    elif result["text"] == "training":
        scored = f"the run's training text of its {scored} (it holds none out)"
    out.write(f"{result['checkpoint']} on {scored}, {result['characters']:,} characters: "
              f"{loss_per_char(result['nats_per_char'], 4)}\n", escape=True)
    return 0


def command_report(args: argparse.Namespace) -> int:
    from textgen.report import write_report

    html_path, md_path = write_report(args.run)
    Output(required=False).write(f"textgen: wrote {html_path} (self-contained; open it in a browser) and {md_path}\n",
                                 escape=True)
    return 0


def command_plot(args: argparse.Namespace) -> int:
    from textgen.report import plot_runs

    Output(required=False).write(f"textgen: wrote {plot_runs(args.runs, args.out)}\n", escape=True)
    return 0


def say_failures(rows: list[dict]) -> list[dict]:
    """One line on stderr for each trial of a sweep that did not end well, with its reason; returns their rows."""
    from textgen.sweep.results import NOT_DONE

    failed = [row for row in sorted(rows, key=lambda r: r["trial"]) if row["status"] in NOT_DONE]
    for row in failed:
        what = "'s run folder is damaged" if row["status"] == "damaged" else " failed"
        say(f"textgen: {row['trial']}{what}: {row['reason'] or 'no reason recorded'}", file=sys.stderr)
    return failed


def command_sweep(args: argparse.Namespace) -> int:
    from textgen.sweep import read_spec, summarize

    given = [name for name in ("spec", "resume", "status") if getattr(args, name) is not None]
    if len(given) != 1:
        raise ConfigError("give one of SPEC.toml, --resume SWEEP_DIR or --status SWEEP_DIR")
    out = Output(required=args.status is not None)  # a sweep's table only reports; its files hold the results
    if args.status is not None:
        from textgen.sweep.results import status_lines, trial_rows
        from textgen.sweep.runner import open_sweep

        spec, _ = open_sweep(args.status)
        rows = trial_rows(args.status, spec.metric)
        for line in status_lines(rows, spec.searched):
            out.write(line + "\n", escape=True)
        say_failures(rows)
        return 0
    from textgen.sweep.runner import (
        check_address,
        check_resources,
        import_tune,
        new_sweep,
        open_sweep,
        plural,
        run_sweep,
        sweep_status,
    )

    if args.address is not None:
        check_address(args.address)  # before any folder is made
    if args.resume is not None:
        if args.out is not None:
            raise ConfigError("--out is the sweep folder; with --resume it is SWEEP_DIR itself")
        spec, _ = open_sweep(args.resume)
        folder = args.resume
    else:
        spec = read_spec(args.spec)  # a bad spec is refused before anything else, with or without Ray
        import_tune()
        if args.address is None:
            check_resources(spec, os.cpu_count() or 1, "this machine")
        folder = new_sweep(spec, args.out)

    def announce(to_run: int, trials: int) -> None:  # once Ray is up, so that an address Ray refuses is the only line
        searched = "; ".join(d.describe() for d in spec.space) + (
            "" if spec.samples == 1 else f", {spec.samples} samples per grid point")
        if args.resume is None:
            say(f"textgen: sweep of {plural(trials, 'trial')} ({searched}) in {folder}", file=sys.stderr)
        else:
            say(f"textgen: sweep in {folder} ({searched}): {to_run:,} of its {plural(trials, 'trial')} to run",
                file=sys.stderr)

    def nothing_ran() -> bool:  # a new sweep refused or stopped before any trial made its folder leaves nothing
        if args.resume is not None or any((folder / "trials").iterdir()):
            return False
        import shutil

        shutil.rmtree(folder)
        return True

    try:
        info = run_sweep(spec, folder, address=args.address, verbose=1 if args.verbose else 0,
                         on_start=announce)
    except TextgenError:
        nothing_ran()
        raise
    except Interrupted as stopped:  # a second signal, or a stop before Tune ran (checking the trials, Ray starting)
        if nothing_ran():
            say("textgen: stopped", file=sys.stderr)
        elif sweep_status(folder, spec.metric) == "done":  # the stop came as Ray stopped, after the last trial
            say(f"textgen: stopped after every trial had ended; the results were not written: textgen sweep --resume "
                f"{folder} writes them", file=sys.stderr)
        else:
            say(f"textgen: stopped; continue with: textgen sweep --resume {folder}", file=sys.stderr)
        return EXIT_STATUS.get(stopped.signum, 130)
    rows = summarize(folder, spec, info)
    from textgen.sweep.results import TO_RUN, status_lines

    for line in status_lines(rows, spec.searched):
        out.write(line + "\n", escape=True)
    signum = getattr(signal, info["runs"][-1].get("signal") or "", None) if info["runs"] else None
    if info["status"] == "stopped":
        say(f"textgen: the sweep stopped before every trial finished; continue with: textgen sweep --resume "
            f"{folder}", file=sys.stderr)
        return EXIT_STATUS[signal.SIGTERM] if signum == signal.SIGTERM else 130
    if signum is not None:  # the stop came as the last trials ended: nothing was left to stop, but it was asked for
        say_failures(rows)
        say(f"textgen: stopped after every trial had ended; results in {folder / 'results.csv'}", file=sys.stderr)
        return EXIT_STATUS.get(signum, 130)
    failed = say_failures(rows)
    if failed:
        again = [row["trial"] for row in failed if row["status"] in TO_RUN]
        say(f"textgen: {len(failed):,} of {plural(len(rows), 'trial')} did not finish; the results of the others are in "
            f"{folder / 'results.csv'}" + (f"; textgen sweep --resume {folder} runs {', '.join(again)} again"
                                           if again else ""), file=sys.stderr)
        return 1
    say(f"textgen: results in {folder / 'results.csv'} and {folder / 'sweep_report.html'}", file=sys.stderr)
    return 0


def command_corpora(args: argparse.Namespace) -> int:
    from textgen.registry import NAMED_CORPORA, corpus_search_dirs, default_registry

    registry = default_registry()
    lines = ["loaders (--kind NAME or NAME:SOURCE):"]
    for info in sorted(registry.loaders.values(), key=lambda i: (i.origin != "built-in", i.name)):
        suffixes = " ".join(info.suffixes) or "-"
        lines.append(f"  {info.name:<12} {info.origin:<24} {suffixes}")
    for broken in registry.broken.values():
        lines.append(f"  {broken.name:<12} {broken.origin:<24} BROKEN: {broken.cause}")
    lines.append("named corpora (--corpus NAME):")
    for corpus in NAMED_CORPORA.values():
        if not corpus.filename:
            where = "built in"
        else:
            found = next((d / corpus.filename for d in corpus_search_dirs() if (d / corpus.filename).is_file()), None)
            where = str(found) if found else f"missing: {corpus.filename}"
        lines.append(f"  {corpus.name:<12} {corpus.description} [{where}]")
    out = Output()
    for line in lines:
        out.write(line + "\n", escape=True)
    return 0


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def use_one_blas_thread() -> None:
    """Ask BLAS for one thread, unless the user chose a count or NumPy is already loaded.

    textgen runs a batch's streams in threads of its own (--threads), and batch 1 makes products too
    small to share: BLAS threads on top only compete for the cores (benchmarks/README.md). The
    variables act only before NumPy loads, so this runs before any command imports it; setting any
    of them yourself (OPENBLAS_NUM_THREADS=2 textgen train ...) overrides it.
    """
    if "numpy" in sys.modules or any(name in os.environ for name in BLAS_THREAD_VARIABLES):
        return
    for name in BLAS_THREAD_VARIABLES:
        os.environ[name] = "1"


PATH_ARGUMENTS = (("corpus", "--corpus"), ("out", "--out"), ("resume", "--resume"), ("init_from", "--init-from"),
                  ("config", "--config"), ("run_flag", "--run"), ("run", "RUN_DIR"), ("runs", "RUN_DIR"),
                  ("spec", "SPEC.toml"), ("status", "--status"))  # --run first: given, it is also `run`


def check_paths(args: argparse.Namespace) -> None:
    """PathError for a path argument no file can have (not valid UTF-8, as textgen records paths in JSON, or a
    name too long for the filesystem), before anything uses it."""
    from textgen.fs import check_user_path

    for name, flag in PATH_ARGUMENTS:
        values = getattr(args, name, None)
        for value in values if isinstance(values, list) else [values]:
            if value is not None:
                check_user_path(value, flag)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    SIGINT and SIGTERM go to one `StopRequest` for the whole command (``args.stop``): `train` checkpoints
    first; everything else stops at once. Run as the program (``argv`` None), the signals are ignored once
    the command has ended, so that a late one cannot cut short the last words; called with ``argv``, the
    previous handlers are put back.
    """
    guard_standard_streams()
    stop = StopRequest()
    if isinstance(sys.stderr, NotesOutput):
        sys.stderr.stop = stop
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.request(signum)) for sig in STOP_SIGNALS}
    try:
        return _main(argv, stop)
    except Interrupted as stopped:  # stopped outside `train`'s own handling: at once, in one line
        sys.stderr.write("textgen: stopped\n")
        return EXIT_STATUS.get(stopped.signum, 130)
    finally:
        stop.close()
        if stop.is_set() and not takes_a_write(sys.stdout):
            silence_stdout()  # what waits for a reader that does not read is dropped, so that the stop does not wait
        if isinstance(sys.stderr, NotesOutput):
            sys.stderr.stop = None  # (for a later call in this process, which has a stop of its own)
        for sig, handler in previous.items():
            # As the program, a signal from here on (the interpreter closing down) is too late to act on: ignore
            # it (Python would put back the default action, which kills); called in-process, restore the handlers.
            signal.signal(sig, handler if argv is not None else signal.SIG_IGN)


class LogLines(logging.Formatter):
    """Log records as stderr lines: ``textgen: warning: ...`` for warnings, ``textgen: ...`` for notes (INFO)."""

    def format(self, record: logging.LogRecord) -> str:
        return ("textgen: " if record.levelno < logging.WARNING else "textgen: warning: ") + record.getMessage()


class PrintedOnce(logging.Filter):
    """Lets a record through to our handler on the root logger unless a logger it passed on the way has a handler
    of its own: huggingface_hub and datasets add one to their loggers and still let records propagate, so their
    warnings (a retry while reaching the Hub, say) would be printed twice, once in their words and once in ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger = logging.getLogger(record.name)
        while logger.parent is not None:
            if logger.handlers:
                return False
            logger = logger.parent
        return True


def _main(argv: list[str] | None, stop: StopRequest) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogLines())
    handler.addFilter(PrintedOnce())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)  # this stderr, even in-process
    logging.getLogger("textgen").setLevel(logging.INFO)  # textgen's notes too, such as what a loader changed
    use_one_blas_thread()
    parser = build_parser()
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        try:
            args = parser.parse_args(argv)
            choose_run_folder(args)
        except SystemExit as done:  # --help and --version print, then exit (their output may fail too); so do usage errors
            sys.stdout.flush()
            return done.code if isinstance(done.code, int) else 0
        check_paths(args)
        if getattr(args, "quiet", False):
            logging.getLogger("textgen").setLevel(logging.WARNING)  # -q: warnings, not notes
        args.stop = stop
        debug = debug or args.debug
        if not getattr(args, "command", None):
            parser.print_help()
            return 0
        code = args.handler(args)
        sys.stdout.flush()
        return code
    except TextgenError as error:
        if debug and error.__cause__ is not None:
            traceback.print_exception(error.__cause__, file=sys.stderr)
        sys.stderr.write(f"textgen: error: {one_line(error)}\n")  # one line, whatever a message holds
        return 1
    except BrokenPipeError:  # the reader went away (`textgen corpora | head -n1`): end quietly, as Unix tools do
        silence_stdout()
        return 141
    except OSError as error:
        if error.filename is not None:  # the system refused a path (permission denied, say) that no check caught
            if debug:
                traceback.print_exception(error, file=sys.stderr)
            sys.stderr.write(f"textgen: error: {one_line(path_failure(error))}\n")
            return 1
        if error.errno not in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EBADF):
            raise  # not our own output failing: a bug, which keeps its traceback
        silence_stdout()
        sys.stderr.write(f"textgen: error: cannot write to standard output ({error.strerror})\n")
        return 1
    except ImportError:
        if stop.is_set():  # a module a signal cut short while it loaded: the stop, not a bug
            raise Interrupted(stop.signum) from None
        raise


if __name__ == "__main__":
    sys.exit(main())
