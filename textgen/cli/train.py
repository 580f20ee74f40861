"""`textgen train`: the settings given, handed to the library, and what training shows while it runs and when it
ends (the start line, samples, status lines, the final passage and numbers)."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from textgen.cli.output import (
    WRITE_CHARACTERS,
    escaped,
    reader_takes,
    say,
    silence_stdout,
    stdout_is_closed,
    stream_is_terminal,
)
from textgen.cli.parser import given_settings
from textgen.config import DISPLAY_SETTINGS, SETTINGS
from textgen.errors import by_origin, spelled

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
    from textgen.api import bits_per_char

    return f"{bits_per_char(nats):.{digits}f} bits/char ({nats:.{digits}f} nats/char)"


def status_line(status: dict, verbose: bool = False) -> str:
    """One plain line of where training is, for logs that are not a terminal."""
    import math

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
    if info.get("tokens", "char") != "char":  # what the text became: tokens, and how long one is on average
        from textgen.errors import setting_name

        asked = info["vocab_size_asked"]
        note = (f", more than {setting_name('vocab_size')} {asked:,}: every character is kept" if info["distinct"] > asked
                else "")
        tokens = (f" as {info['token_count']:,} {info['tokens']} tokens of {info['characters_per_token']:.2f} "
                  f"characters on average (a vocabulary of {info['distinct']:,} tokens{note})")
        if info["start_update"]:
            return (f"textgen: resuming {info['folder']} at update {info['start_update']:,} of {length}; "
                    f"{info['characters']:,} characters{tokens}")
        return (f"textgen: loaded {documents}{info['characters']:,} characters to train on{held}{tokens}; training "
                f"{length} into {info['folder']}")
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
        self.spelling = getattr(args, "spelling", None)  # how settings are spelled (as they were given)
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
            say(spelled(start_line(info), self.spelling[-1] if self.spelling else None), file=sys.stderr)

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


def stopped_line(stopped) -> str:
    """What a run stopped by a signal kept, and how to go on."""
    folder = stopped.folder
    if folder is None:
        return "stopped before the run started; nothing was kept"
    if stopped.finished:
        return (f"stopped after training finished (update {stopped.update:,}, saved in {folder}/last.npz); the final "
                f"passage and report were not written: textgen train --resume {folder} writes them")
    at = "" if stopped.update is None else f" at update {stopped.update:,}"
    return f"stopped{at}; checkpoint saved in {folder}/last.npz. Continue with: textgen train --resume {folder}"


def command_train(args: argparse.Namespace) -> int:
    from textgen import api

    if args.status_every is None:
        args.status_every = DISPLAY_SETTINGS["status_every"].default
    DISPLAY_SETTINGS["status_every"].check(args.status_every)
    # Ctrl-C and SIGTERM (main's handlers call `stop`): while training, the trainer checkpoints at the next
    # window; at any other stage (reading a corpus, even one that blocks) the command stops at once. A second
    # Ctrl-C always stops at once.
    stop = args.stop
    view = TrainView(args, stop)
    api.load_for_training()
    progress = False if args.no_progress or args.quiet else None
    flags = given_settings(args, SETTINGS)
    try:
        given = api.given_settings("command line", flags, args.config, resume=args.resume is not None)
        args.spelling.append(by_origin(given.origins, "command line"))
        if args.resume is not None:
            finished = api.carry_on(args.resume, given, progress=progress, callbacks=view, stop=stop)
        else:
            finished = api.start(given, progress=progress, callbacks=view, stop=stop)
    except api.Interrupted as stopped:
        code = EXIT_STATUS.get(stopped.signum, 130)
        if code == 141 and view.output_failed is None:
            return code  # the reader went away: end quietly, as Unix tools do (the checkpoint is saved)
        if view.output_failed is not None:
            sys.stderr.write(f"textgen: error: {view.output_failed}; {stopped_line(stopped)}\n")
            return 1
        sys.stderr.write(f"textgen: {stopped_line(stopped)}\n")
        return code
    if finished.best_by == "val_loss":
        best = f"validation loss {loss_per_char(finished.best_loss)}"
    else:
        best = f"smooth loss {finished.best_loss:.3f} nats per window"
    say(f"--- {len(finished.passage)} characters from the best model (update {finished.best_update:,}, {best}) ---")
    say(view.shown(finished.passage))
    say(f"textgen: done: {finished.update:,} updates, final smooth loss {finished.smooth_loss:.3f} nats per window; "
        f"best model by {best} at update {finished.best_update:,}; run folder {finished.folder}", file=sys.stderr)
    report = f"report: {finished.report}; " if finished.report else ""
    say(f"textgen: {report}generate more with: textgen generate {finished.folder}", file=sys.stderr)
    return 0

