"""The command line's parser, made from the settings table: every setting's flag, type, metavar, default and help
come from `textgen.config`, so a setting added there is a flag here with nothing else to write."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from textgen.config import (
    ALL_SETTINGS,
    CHECKPOINTS,
    HELD_OUT_LOADER_SETTINGS,
    LOADER_SETTINGS,
    ModelConfig,
    RunConfig,
    SampleConfig,
    Setting,
    TrainConfig,
)

DEBUG_ENV = "TEXTGEN_DEBUG"  # set to 1: errors show the traceback of their cause (for plugin authors)


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


def add_setting(group, entry: Setting, command: str) -> None:
    """The flag of one setting: its type, metavar and help (with its default) from the table; nothing given is
    None, so the library can tell what was asked for (and a resume, what it was asked to change)."""
    shown = entry.shown_default
    text = entry.help + (f" (default: {shown})" if shown else "")
    if entry.is_switch:
        group.add_argument(entry.flag, dest=entry.name, action="store_true", default=None, help=text)
    elif entry.type is list:
        group.add_argument(entry.flag, dest=entry.name, action="append", metavar=entry.metavar, help=text)
    else:
        kind = entry.type if entry.type in (int, float, Path) and not entry.choices else None
        group.add_argument(entry.flag, dest=entry.name, type=kind, metavar=entry.metavar or None, help=text)


def add_settings(parser: argparse.ArgumentParser, title: str, names, command: str) -> None:
    group = parser.add_argument_group(title)
    for name in names:
        add_setting(group, ALL_SETTINGS[name], command)


CORPUS = ("corpus", "kind", "weights", "option")


def add_corpus_settings(parser: argparse.ArgumentParser, command: str, held_out: bool = False,
                        default: str = "") -> None:
    """The corpus settings and the built-in loaders' own; with ``held_out``, also those that choose the held-out
    text. ``default`` says what is read without --corpus, where that is not the built-in default."""
    group = parser.add_argument_group("corpus")
    for name in CORPUS:
        entry = ALL_SETTINGS[name]
        if name == "corpus" and default:
            entry = Setting(**{**entry.__dict__, "default_text": default})
        add_setting(group, entry, command)
    for name in LOADER_SETTINGS:
        if held_out or name not in HELD_OUT_LOADER_SETTINGS:
            add_setting(group, LOADER_SETTINGS[name], command)


def add_run_folder(parser: ArgumentParser) -> None:
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


def given_settings(args: argparse.Namespace, names) -> dict:
    """The settings among ``names`` that the command line gave, by name."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def make_parser(version: str, handlers: dict) -> ArgumentParser:
    """The `textgen` parser; ``handlers`` maps each command to the function that runs it."""
    parser = ArgumentParser(
        prog="textgen",
        description="Train text generators (from the vanilla RNN of KTH DD2424 Assignment 4 to gated stacks) on any "
        "corpus and sample from them.",
    )
    parser.add_argument("--version", action="version", version=f"textgen {version}")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback behind an error, e.g. a plugin's (or set {DEBUG_ENV}=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    train = commands.add_parser("train", help="train a model; writes a run folder")
    add_corpus_settings(train, "train", held_out=True)
    add_settings(train, "run", [name for name in RunConfig.table() if name not in ("out", "force", "init_from")],
                 "train")
    add_settings(train, "model", ModelConfig.table(), "train")
    add_settings(train, "training (defaults are the assignment's)", TrainConfig.table(), "train")
    group = train.add_argument_group("the run folder")
    for name in ("out", "force", "init_from"):
        add_setting(group, ALL_SETTINGS[name], "train")
    group.add_argument("--config", type=Path, metavar="FILE",
                       help="read the settings from the [train] table of this TOML file (names as the flags, with _ "
                       "for -: hidden = 128, corpus = [\"book.txt\"]); flags given here override it")
    group.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue a stopped run exactly where it was; --updates/--epochs give the new total")
    group = train.add_argument_group("what training shows")
    for name in ("no_progress", "status_every"):
        add_setting(group, ALL_SETTINGS[name], "train")
    group.add_argument("-q", "--quiet", action="store_true", help=ALL_SETTINGS["quiet"].help)
    group.add_argument("-v", "--verbose", action="store_true", help=ALL_SETTINGS["verbose"].help)

    generate = commands.add_parser("generate", help="print text sampled from a trained model")
    add_run_folder(generate)
    generate.add_argument("--checkpoint", default="best", choices=CHECKPOINTS, help="which model (default: best)")
    add_settings(generate, "sampling", SampleConfig.table(), "generate")
    generate.add_argument("--seed", type=int, help="random seed; the same seed gives the same text, and sample i "
                          "depends only on the seed and i (default: a fresh one, said on stderr after the first text)")
    generate.add_argument("--json", action="store_true",
                          help="print the texts as one JSON list of strings, one per sample or document, written as "
                          "they are drawn")

    gradcheck = commands.add_parser("gradcheck", help="compare analytic and numerical gradients")
    add_corpus_settings(gradcheck, "gradcheck")
    add_settings(gradcheck, "model", ModelConfig.table(), "gradcheck")
    add_settings(gradcheck, "the check", ("seq_length", "max_entries"), "gradcheck")
    gradcheck.add_argument("--seed", type=int, help="seed of the initial parameters (default: 0)")
    gradcheck.add_argument("--json", action="store_true", help='print {"b": err, "c": err, ...} as JSON')

    evaluate = commands.add_parser("evaluate", help="loss per character of a trained model on its run's held-out "
                                   "text or any corpus")
    add_run_folder(evaluate)
    evaluate.add_argument("--checkpoint", default="best", choices=CHECKPOINTS, help="which model (default: best)")
    add_corpus_settings(evaluate, "evaluate",
                        default="the run's own held-out text, or its training text when it holds none out")
    evaluate.add_argument("--json", action="store_true", help="print the numbers as JSON")

    report = commands.add_parser("report", help="write report.html (self-contained) and report.md into a run folder")
    report.add_argument("run", type=Path, metavar="RUN_DIR", help="a run folder")

    plot = commands.add_parser("plot", help="overlay several runs' loss curves in one PNG")
    plot.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="run folders to compare")
    plot.add_argument("--out", type=Path, default=Path("loss_comparison.png"), metavar="PNG",
                      help="where to write the figure (default: loss_comparison.png)")

    sweep = commands.add_parser("sweep", help="train many models of one spec on Ray Tune and rank them "
                                "(needs the sweep extra)")
    sweep.add_argument("spec", type=Path, nargs="?", metavar="SPEC.toml",
                       help="the sweep: [train] base settings, [search] space, optional [early_stopping]")
    sweep.add_argument("--out", type=Path, metavar="SWEEP_DIR", help="where the sweep lives (default: "
                       "sweeps/<spec>-<time>; every trial is a run folder in SWEEP_DIR/trials)")
    sweep.add_argument("--address", metavar="ADDRESS", help="join this Ray cluster (auto, HOST:PORT or "
                       "ray://HOST:PORT) instead of starting Ray on this machine")
    sweep.add_argument("--resume", type=Path, metavar="SWEEP_DIR", help="continue a stopped sweep: finished trials "
                       "are kept, unfinished ones continue from their last checkpoint")
    sweep.add_argument("--status", type=Path, metavar="SWEEP_DIR", help="print the ranked table of a sweep "
                       "(no Ray needed)")
    sweep.add_argument("-v", "--verbose", action="store_true", help="Ray Tune's own progress tables too")

    commands.add_parser("corpora", help="list corpus loaders and named corpora")
    for name, command in commands.choices.items():  # where a usage error sends the user for help
        command.set_defaults(command_parser=command, handler=handlers[name])
    return parser
