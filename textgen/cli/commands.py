"""The commands besides `train`: each parses nothing more, calls one function of `textgen.api` and renders what it
returns."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from array import array

from textgen.cli.output import Output, say, stdout_is_closed, takes_a_write
from textgen.cli.parser import CORPUS, given_settings
from textgen.cli.train import EXIT_STATUS, loss_per_char
from textgen.config import LOADER_SETTINGS, ModelConfig
from textgen.errors import OutputError, as_keyword


def corpus_given(args: argparse.Namespace) -> dict:
    """The corpus settings the command line gave, by name."""
    return given_settings(args, (*CORPUS, *LOADER_SETTINGS))


def command_generate(args: argparse.Namespace) -> int:
    import orjson

    from textgen import api
    from textgen.config import SampleConfig

    model = api.load(args.run, args.checkpoint)
    stream = model.stream(**given_settings(args, (*SampleConfig.table(), "seed")))
    out = Output()
    # What the text can hold (a prime outside it is refused when it is read): every character of the model, but
    # the end-of-document marker where --documents stops at it (in --length mode it is written as ␃).
    shown = set(model.chars) - ({api.END_OF_DOCUMENT} if stream.config.documents else set())
    out.check_encodable(sorted(shown), "the model's characters")
    documents, length = stream.config.documents, stream.config.length
    cut = array("q")  # the documents cut at --length, numbered from 1: in --json mode said after the list's line
    seed_note = f"textgen: seed {stream.seed} (give --seed {stream.seed} to draw the same text again)\n"

    def cut_note(number: int) -> str:
        return (f"textgen: document {number} reached --length {length} without an end-of-document marker and was "
                "cut there\n")

    seed_said = not stream.fresh  # or none needs saying

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
            if piece.done and documents and not piece.ended:
                cut.append(piece.index + 1)
            return
        if documents and not piece.ended:
            sys.stderr.write(cut_note(piece.index + 1))
        if piece.index == 0:
            say_seed()

    last_char = ""  # of the sample being written
    in_string = False  # --json: the sample's JSON string is open
    written = False  # whether any text has gone out (or is on its way)
    try:
        if args.json:  # one JSON list, written string by string as the samples are drawn
            out.write("[")
        for piece in stream:
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
                    if piece.index + 1 < stream.samples:
                        out.write("\n")  # a blank line between samples
                    last_char = ""
            notes(piece)
            out.flush()  # as it goes, so that `| head` stops the command
        if args.json:
            out.write("]\n", flush=True)
            for number in cut:
                sys.stderr.write(cut_note(number))
            say_seed()
    except (api.Interrupted, BrokenPipeError) as stop:
        if isinstance(stop, api.Interrupted) and takes_a_write(sys.stdout):  # (not a reader that does not read)
            with contextlib.suppress(OSError, OutputError):  # a reader that went away too needs no line end
                out.end_line()  # so that `textgen: stopped` does not follow the text on the same line
        for number in cut:  # what the text written so far needs said: the documents cut, the seed to draw it again
            sys.stderr.write(cut_note(number))
        if written and not stdout_is_closed():  # (a closed standard output took none of it)
            say_seed()
        raise
    return 0


def command_gradcheck(args: argparse.Namespace) -> int:
    import orjson

    from textgen import api

    check = api.gradcheck(**{**given_settings(args, ("seq_length", "max_entries", "seed")),
                             **given_settings(args, ModelConfig.table()), **corpus_given(args)})
    if check.unresolvable:
        names = ", ".join(f"{name} (median {value:.0e})" for name, value in check.unresolvable.items())
        say(f"textgen: the gradients of {names} are mostly too small for centred differences to resolve, so "
            f"their errors say little at --sigma {check.sigma}; check with a larger --sigma (e.g. "
            f"{max(0.3, 3 * check.sigma):g})", file=sys.stderr)
    out = Output()
    if args.json:
        out.write(orjson.dumps(check.errors).decode() + "\n")
        return 0
    out.write(f"gradient check: {check.model}, K = {check.vocab_size}, seq_length = {check.seq_length}, "
              f"{check.dtype}, {'all' if not check.max_entries else f'up to {check.max_entries}'} entries per "
              "parameter\nparameter  max relative error\n")
    for name, error in check.errors.items():
        out.write(f"{name:<9}  {error:.2e}\n")
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    import orjson

    from textgen import api

    result = api.evaluate(args.run, checkpoint=args.checkpoint, **corpus_given(args))
    out = Output()
    if args.json:
        out.write(orjson.dumps(result.to_json()).decode() + "\n")
        return 0
    scored = result.corpus_label
    if result.text == "held-out":
        scored = f"the run's held-out text of its {scored}"
    elif result.text == "training":
        scored = f"the run's training text of its {scored} (it holds none out)"
    out.write(f"{result.checkpoint} on {scored}, {result.characters:,} characters: "
              f"{loss_per_char(result.nats_per_char, 4)}\n", escape=True)
    return 0


def command_report(args: argparse.Namespace) -> int:
    from textgen import api

    html_path, md_path = api.report(args.run)
    Output(required=False).write(f"textgen: wrote {html_path} (self-contained; open it in a browser) and {md_path}\n",
                                 escape=True)
    return 0


def command_plot(args: argparse.Namespace) -> int:
    from textgen import api

    Output(required=False).write(f"textgen: wrote {api.plot(args.runs, args.out)}\n", escape=True)
    return 0


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def table_lines(rows: list[dict], searched: tuple[str, ...]) -> list[str]:
    """A sweep's ranked table as text lines, one per trial."""
    def shown(value, spec=""):
        if value is None:
            return "-"
        return format(value, spec or (".4g" if isinstance(value, float) else ""))

    header = ["rank", "trial", *searched, "status", "updates", "val bpc", "val nats", "chars/s", "wall s"]
    table = [header]
    for row in rows:
        table.append([str(row["rank"]), row["trial"], *(shown(row["settings"].get(name)) for name in searched),
                      row["status"], f"{row['updates']:,}", shown(row["best_val_bpc"], ".4f"),
                      shown(row["best_val_loss"], ".4f"), shown(row["chars_per_sec"], ","),
                      shown(row["wall_seconds"], ".0f")])
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]


def say_failures(outcome) -> None:
    """One line on stderr for each trial of a sweep that did not end well, with its reason."""
    for row in outcome.failed:
        what = "'s run folder is damaged" if row["status"] == "damaged" else " failed"
        say(f"textgen: {row['trial']}{what}: {row['reason'] or 'no reason recorded'}", file=sys.stderr)


def command_sweep(args: argparse.Namespace) -> int:
    from textgen import api

    # the command's own flags as flags, the spec's settings as its keys
    command = args.spelling[-1]
    args.spelling.append(lambda name: command(name) if name in ("address", "resume", "status", "out", "spec") else
                         as_keyword(name))
    api.check_sweep_call(args.spec, args.resume, args.status, args.out)
    out = Output(required=args.status is not None)  # a sweep's table only reports; its files hold the results
    if args.status is not None:
        outcome = api.sweep_table(args.status)
        for line in table_lines(outcome.rows, outcome.searched):
            out.write(line + "\n", escape=True)
        say_failures(outcome)
        return 0

    def announce(folder, searched: str, to_run: int, trials: int) -> None:  # once Ray is up: a refused address alone
        if args.resume is None:
            say(f"textgen: sweep of {plural(trials, 'trial')} ({searched}) in {folder}", file=sys.stderr)
        else:
            say(f"textgen: sweep in {folder} ({searched}): {to_run:,} of its {plural(trials, 'trial')} to run",
                file=sys.stderr)

    try:
        if args.resume is not None:
            outcome = api.resume_sweep(args.resume, address=args.address, verbose=args.verbose, on_start=announce)
        else:
            outcome = api.sweep(args.spec, out=args.out, address=args.address, verbose=args.verbose, on_start=announce)
    except api.Interrupted as stopped:  # a second signal, or a stop before Tune ran (checking the trials, Ray starting)
        folder = getattr(stopped, "folder", None)
        if folder is None or not getattr(stopped, "kept", True):
            say("textgen: stopped", file=sys.stderr)
        elif getattr(stopped, "all_ended", False):  # the stop came as Ray stopped, after the last trial
            say(f"textgen: stopped after every trial had ended; the results were not written: textgen sweep --resume "
                f"{folder} writes them", file=sys.stderr)
        else:
            say(f"textgen: stopped; continue with: textgen sweep --resume {folder}", file=sys.stderr)
        return EXIT_STATUS.get(stopped.signum, 130)
    folder = outcome.folder
    for line in table_lines(outcome.rows, outcome.searched):
        out.write(line + "\n", escape=True)
    signum = getattr(signal, outcome.signal or "", None)
    if outcome.status == "stopped":
        say(f"textgen: the sweep stopped before every trial finished; continue with: textgen sweep --resume "
            f"{folder}", file=sys.stderr)
        return EXIT_STATUS[signal.SIGTERM] if signum == signal.SIGTERM else 130
    if signum is not None:  # the stop came as the last trials ended: nothing was left to stop, but it was asked for
        say_failures(outcome)
        say(f"textgen: stopped after every trial had ended; results in {outcome.results_csv}", file=sys.stderr)
        return EXIT_STATUS.get(signum, 130)
    say_failures(outcome)
    if outcome.failed:
        again = outcome.again
        say(f"textgen: {len(outcome.failed):,} of {plural(len(outcome.rows), 'trial')} did not finish; the results of "
            f"the others are in {outcome.results_csv}"
            + (f"; textgen sweep --resume {folder} runs {', '.join(again)} again" if again else ""), file=sys.stderr)
        return 1
    say(f"textgen: results in {outcome.results_csv} and {outcome.report_html}", file=sys.stderr)
    return 0


def command_corpora(args: argparse.Namespace) -> int:
    from textgen import api

    loaders, named = api.corpora()
    lines = ["loaders (--kind NAME or NAME:SOURCE):"]
    for row in loaders:
        shown = f"BROKEN: {row.broken}" if row.broken else " ".join(row.suffixes) or "-"
        lines.append(f"  {row.name:<12} {row.origin:<24} {shown}")
    lines.append("named corpora (--corpus NAME):")
    for row in named:
        lines.append(f"  {row.name:<12} {row.description} [{row.found}]")
    out = Output()
    for line in lines:
        out.write(line + "\n", escape=True)
    return 0
