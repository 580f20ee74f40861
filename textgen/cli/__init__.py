"""The `textgen` command: parse, call the library (`textgen.api`), render what it returns. The only code that prints.

Every check and rule is the library's; a message names each setting as this command line spells it (``--eta``),
or, for a setting a ``--config`` file gave, as the file does (``eta in run.toml``).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable

from textgen._version import __version__
from textgen.cli.output import NotesOutput, guard_standard_streams, silence_stdout, takes_a_write
from textgen.cli.parser import DEBUG_ENV, choose_run_folder, make_parser
from textgen.cli.train import duration, status_line  # noqa: F401 - what the tests of the status lines read
from textgen.config import BLAS_THREAD_VARIABLES
from textgen.errors import TextgenError, as_flag, one_line, path_failure, spelled

__all__ = ["BLAS_THREAD_VARIABLES", "build_parser", "main", "use_one_blas_thread"]

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGPIPE: 141}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


def handlers() -> dict:
    """Each command's function (imported only when a command runs)."""
    from textgen.cli import commands, train

    return {"train": train.command_train, "generate": commands.command_generate,
            "gradcheck": commands.command_gradcheck, "evaluate": commands.command_evaluate,
            "report": commands.command_report, "plot": commands.command_plot, "sweep": commands.command_sweep,
            "corpora": commands.command_corpora}


def spelling(args) -> Callable[[str], str]:
    """How this command's messages name a setting or argument: as its flag, or as the command's positional
    argument (RUN_DIR, SPEC.toml) for one given so."""
    run = "--run" if getattr(args, "run_flag", None) is not None else "RUN_DIR"
    positional = {"run": run, "run_folder": run, "runs": "RUN_DIR", "spec": "SPEC.toml"}
    return lambda name: positional.get(name) or as_flag(name)


def build_parser():
    """The `textgen` parser."""
    return make_parser(__version__, handlers())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    SIGINT and SIGTERM go to one `StopRequest` for the whole command (``args.stop``): `train` checkpoints
    first; everything else stops at once. Run as the program (``argv`` None), the signals are ignored once
    the command has ended, so that a late one cannot cut short the last words; called with ``argv``, the
    previous handlers are put back.
    """
    from textgen.api import Interrupted, StopRequest

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
        text = spelled(getattr(record, "marked", None) or record.getMessage(), as_flag)  # settings as flags
        return ("textgen: " if record.levelno < logging.WARNING else "textgen: warning: ") + text


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


def _main(argv: list[str] | None, stop) -> int:
    from textgen.api import Interrupted

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogLines())
    handler.addFilter(PrintedOnce())
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)  # this stderr, even in-process
    logging.getLogger("textgen").setLevel(logging.INFO)  # textgen's notes too, such as what a loader changed
    use_one_blas_thread()
    parser = build_parser()
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    spell = as_flag  # how the command's messages spell settings (a --config file's keys as the file does)
    try:
        try:
            args = parser.parse_args(argv)
            choose_run_folder(args)
        except SystemExit as done:  # --help and --version print, then exit (their output may fail too); so do usage errors
            sys.stdout.flush()
            return done.code if isinstance(done.code, int) else 0
        if getattr(args, "quiet", False):
            logging.getLogger("textgen").setLevel(logging.WARNING)  # -q: warnings, not notes
        args.stop = stop
        args.spelling = [spelling(args)]  # a command that reads a --config file puts its own spelling here
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
        spell = getattr(locals().get("args"), "spelling", [spell])[-1]
        sys.stderr.write(f"textgen: error: {one_line(error.spelled(spell))}\n")  # one line, whatever a message holds
        return 1
    except BrokenPipeError:  # the reader went away (`textgen corpora | head -n1`): end quietly, as Unix tools do
        silence_stdout()
        return 141
    except OSError as error:
        if error.filename is not None:  # the system refused a path (permission denied, say) that no check caught
            if debug:
                traceback.print_exception(error, file=sys.stderr)
            sys.stderr.write(f"textgen: error: {one_line(path_failure(error).spelled(spell))}\n")
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
