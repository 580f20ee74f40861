"""The `textgen` command: train, generate, evaluate, gradcheck, report, plot, corpora. The only module that prints."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from pathlib import Path

from textgen import __version__
from textgen.config import TrainConfig
from textgen.errors import ConfigError, TextgenError, one_line

# Loader options: flag -> (keyword of the loader constructor, argparse settings). Only flags the
# user actually gives are passed on, to the loaders whose constructors take them.
LOADER_FLAGS = {
    "--encoding": ("encoding", {"metavar": "NAME", "help": "text encoding of book files (default utf-8)"}),
    "--strip-gutenberg": ("strip_gutenberg", {"action": "store_true", "default": None,
                          "help": "drop Project Gutenberg's licence header and footer"}),
    "--keep-retweets": ("keep_retweets", {"action": "store_true", "default": None,
                        "help": "tweets: keep retweets (dropped by default)"}),
    "--keep-html-entities": ("unescape_html", {"action": "store_false", "default": None,
                             "help": "tweets: leave &amp; and friends as they are"}),
    "--keep-links": ("keep_links", {"action": "store_true", "default": None,
                     "help": "tweets: keep https://t.co/... links (dropped by default)"}),
    "--since": ("since", {"metavar": "YYYY-MM-DD", "help": "tweets: only those from this date on"}),
    "--until": ("until", {"metavar": "YYYY-MM-DD", "help": "tweets: only those up to this date"}),
    "--min-length": ("min_length", {"type": int, "metavar": "N", "help": "tweets: drop shorter ones"}),
    "--hf-config": ("config", {"metavar": "NAME", "help": "hf: dataset configuration"}),
    "--hf-split": ("split", {"metavar": "SPLIT", "help": "hf: split to read (default train)"}),
    "--text-column": ("text_column", {"metavar": "COLUMN", "help": "hf: column holding the text"}),
}


# Training flags: (flag, type, metavar, help). Each maps onto the TrainConfig field of the same name;
# only the flags given are passed, so `--resume` can tell what the user asked to change.
TRAIN_FLAGS = (
    ("--seq-length", int, "N", "characters per window, the length of backprop through time"),
    ("--eta", float, "ETA", "AdaGrad learning rate"),
    ("--clip", float, "C", "clip gradients to [-C, C]"),
    ("--epochs", int, "E", "passes over the corpus (2 if neither this nor --updates is given)"),
    ("--updates", int, "N", "parameter updates in all (instead of --epochs)"),
    ("--sample-every", int, "N", "updates between training-time samples"),
    ("--sample-length", int, "N", "characters per training-time sample"),
    ("--log-every", int, "N", "updates between rows of metrics.jsonl"),
    ("--checkpoint-every", int, "N", "updates between saves of last.npz and best.npz"),
    ("--eval-every", int, "N", "updates between validation losses (default: a tenth of the run, at most 5000)"),
    ("--batch-size", int, "B", "parallel streams (1 is the assignment's exact algorithm)"),
    ("--threads", int, "T", "threads sharing a batch's streams (default: one per CPU, at most one per 32 streams)"),
)
TRAIN_DEFAULTS = {name: field.default for name, field in TrainConfig.__dataclass_fields__.items()}


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one ConfigError line (exit 1) instead of usage + exit 2."""

    def error(self, message: str):
        raise ConfigError(f"{self.prog}: {message} (see --help)")


def add_corpus_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("corpus")
    group.add_argument(
        "--corpus",
        action="append",
        metavar="SOURCE",
        help="PATH (loader chosen by suffix), LOADER:SOURCE (e.g. hf:NAME) or a named corpus (see `textgen corpora`); "
        "repeat for several corpora, which share one vocabulary (default: pydoc, the Python reference)",
    )
    group.add_argument("--kind", metavar="LOADER", help="use this loader for every --corpus")
    group.add_argument("--weights", metavar="W1,W2,...", help="mix several corpora in these proportions "
                       "(default: by size, each used once)")
    for flag, (dest, settings) in LOADER_FLAGS.items():
        group.add_argument(flag, dest="loader_" + dest, **settings)


def loader_options(args: argparse.Namespace) -> dict:
    """Loader keyword arguments for the loader flags the user gave."""
    options = {}
    for dest, _ in LOADER_FLAGS.values():
        value = getattr(args, "loader_" + dest)
        if value is not None:
            options[dest] = value
    return options


def add_model_flags(parser: argparse.ArgumentParser, hidden_default: int = 100) -> None:
    parser.set_defaults(hidden_default=hidden_default)
    group = parser.add_argument_group("model")
    group.add_argument("--hidden", type=int, metavar="M", help=f"hidden units (default {hidden_default})")
    group.add_argument("--sigma", type=float, help="std of the initial U, W, V (default 0.01)")
    group.add_argument("--dtype", choices=("float64", "float32"), help="float64 (default) or float32 (faster)")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="textgen",
        description="Train character-level vanilla RNNs (KTH DD2424 Assignment 4) on any corpus and sample from them.",
    )
    parser.add_argument("--version", action="version", version=f"textgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    train = commands.add_parser("train", help="train a model; writes a run folder")
    add_corpus_flags(train)
    train.add_argument("--val-fraction", type=float, default=None, metavar="F",
                       help="hold out the tail of each corpus (whole documents for tweets and rows) for a "
                       "validation loss (default 0.05; 0 trains on everything)")
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
    group.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue a stopped run exactly where it was; --updates/--epochs give the new total")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.set_defaults(handler=command_train)

    generate = commands.add_parser("generate", help="print text sampled from a trained model")
    generate.add_argument("--run", type=Path, required=True, metavar="RUN_DIR", help="a run folder")
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
    generate.add_argument("--count", type=int, default=1, metavar="N", help="N independent samples (drawn together)")
    generate.add_argument("--documents", type=int, default=0, metavar="N",
                          help="N whole documents (e.g. tweets), each stopped at the end-of-document marker; "
                          "--length is then the limit per document")
    generate.add_argument("--seed", type=int, help="random seed; the same seed gives the same text")
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

    evaluate = commands.add_parser("evaluate", help="loss per character of a trained model on any corpus")
    evaluate.add_argument("--run", type=Path, required=True, metavar="RUN_DIR", help="a run folder")
    evaluate.add_argument("--checkpoint", default="best", choices=("best", "last"), help="which model (best)")
    add_corpus_flags(evaluate)
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

    corpora = commands.add_parser("corpora", help="list corpus loaders and named corpora")
    corpora.set_defaults(handler=command_corpora)
    return parser


def say(text: str = "", file=None) -> None:
    """Print a line, above the progress bar if one is showing."""
    from tqdm.auto import tqdm

    tqdm.write(text, file=file or sys.stdout)


def model_config(args: argparse.Namespace):
    """RNNConfig from the model flags, defaults where not given."""
    from textgen.rnn import RNNConfig

    given = {name: getattr(args, name) for name in ("hidden", "sigma", "dtype") if getattr(args, name) is not None}
    given.setdefault("hidden", args.hidden_default)
    return RNNConfig(**given)


def command_train(args: argparse.Namespace) -> int:
    import signal
    import threading

    from textgen.corpus import load_corpus, run_name, streamable_source
    from textgen.rundir import (
        default_run_dir,
        load_run_checkpoint,
        resume_training,
        run_training,
        run_training_streamed,
    )
    from textgen.train import TrainingInterrupted

    given = {}
    for flag, *_ in TRAIN_FLAGS:
        name = flag[2:].replace("-", "_")
        if getattr(args, name) is not None:
            given[name] = getattr(args, name)
    if args.updates is not None and args.epochs is not None:
        raise ConfigError("give --updates or --epochs, not both")
    if args.passage_length is not None and args.passage_length < 0:
        raise ConfigError(f"--passage-length must be a non-negative integer, got {args.passage_length}")

    def show_sample(record: dict) -> None:
        loss = "n/a" if record["smooth_loss"] is None else f"{record['smooth_loss']:.3f}"
        say(f"--- update {record['update']:,}, epoch {record['epoch']:.2f}, smooth loss {loss} ---")
        say(record["text"])

    # Ctrl-C and SIGTERM ask the trainer to stop at the next window: it checkpoints, then we exit 130/143.
    stop = threading.Event()
    received = []

    def request_stop(signum, frame):
        received.append(signum)
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    progress = False if args.no_progress else None
    common = {"progress": progress, "on_sample": show_sample, "stop": stop}
    folder = args.resume
    try:
        if args.resume is not None:
            fixed = [flag for flag, value in (("--corpus", args.corpus), ("--kind", args.kind), ("--out", args.out),
                     ("--init-from", args.init_from), ("--weights", args.weights), ("--seed", args.seed),
                     ("--val-fraction", args.val_fraction), ("--hidden", args.hidden), ("--sigma", args.sigma),
                     ("--dtype", args.dtype)) if value is not None] + [
                     flag for flag, (dest, _) in LOADER_FLAGS.items() if getattr(args, "loader_" + dest) is not None]
            if fixed:
                raise ConfigError(f"--resume continues a run as it was set up; {', '.join(fixed)} cannot be "
                                  "changed (start a new run or use --init-from)")
            result = resume_training(args.resume, given, passage_length=args.passage_length, **common)
        else:
            seed = args.seed if args.seed is not None else secrets.randbits(32)
            initial = None
            if args.init_from is not None:
                initial = load_run_checkpoint(args.init_from, "last")
                if args.hidden is not None and args.hidden != initial.model.hidden:
                    raise ConfigError(
                        f"--hidden {args.hidden} differs from --init-from's {initial.model.hidden} hidden units")
                model = initial.model
            else:
                model = model_config(args)
            config = TrainConfig(**given, seed=seed)
            if not args.corpus:
                say("textgen: no --corpus given, training on the built-in default: the Python language reference "
                    "(pydoc_data.topics, ~465k characters)", file=sys.stderr)
            val_fraction = 0.05 if args.val_fraction is None else args.val_fraction
            settings = {
                "force": args.force, "initial": initial,
                "passage_length": 1000 if args.passage_length is None else args.passage_length,
                "extra_config": {"init_from": str(args.init_from)} if args.init_from else None, **common,
            }
            if args.weights is None and streamable_source(args.corpus, args.kind):
                # a large single file: encoded into the run folder and memory-mapped, never held whole
                folder = args.out or default_run_dir(run_name(args.corpus[0]))
                result = run_training_streamed(args.corpus[0], folder, model, config, kind=args.kind,
                                               options=loader_options(args), val_fraction=val_fraction, **settings)
            else:
                corpus = load_corpus(args.corpus, args.kind, loader_options(args), weights=args.weights,
                                     val_fraction=val_fraction)
                folder = args.out or default_run_dir(corpus.name)
                result = run_training(corpus, folder, model, config, **settings)
    except TrainingInterrupted as interrupted:
        code = 143 if received and received[0] == signal.SIGTERM else 130
        say(f"textgen: stopped at update {interrupted.state.update:,}; checkpoint saved in {folder}/last.npz. "
            f"Continue with: textgen train --resume {folder}", file=sys.stderr)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    state = result.state
    chosen = "validation loss" if state.best_by == "val_loss" else "smooth loss"
    say(f"--- {len(result.passage)} characters from the best model (update {state.best_update:,}, "
        f"{chosen} {state.best_loss:.3f}) ---")
    say(result.passage)
    say(f"textgen: done: {state.update:,} updates, final smooth loss {state.smooth_loss:.3f}; best model by "
        f"{chosen}: {state.best_loss:.3f} at update {state.best_update:,}; run folder {result.folder}",
        file=sys.stderr)
    say(f"textgen: report: {result.folder / 'report.html'}; generate more with: textgen generate --run "
        f"{result.folder}", file=sys.stderr)
    return 0


def command_generate(args: argparse.Namespace) -> int:
    import numpy as np

    from textgen.rundir import load_run_checkpoint
    from textgen.sample import SampleConfig, generate_texts

    config = SampleConfig(
        length=args.length, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy,
        prime=args.prime, count=args.count, documents=args.documents,
    )
    checkpoint = load_run_checkpoint(args.run, args.checkpoint)
    rng = np.random.default_rng(args.seed)
    texts = generate_texts(checkpoint.params, checkpoint.vocab, config, rng, start=checkpoint.start_state())
    for index, sample in enumerate(texts, start=1):
        if index > 1:
            sys.stdout.write("\n")  # a blank line between samples
        sys.stdout.write(sample.text + ("" if sample.text.endswith("\n") else "\n"))
        if config.documents and not sample.ended:
            sys.stdout.flush()  # keep the note after the document it is about
            sys.stderr.write(f"textgen: document {index} reached --length {config.length} without an "
                             "end-of-document marker and was cut there\n")
    return 0


def command_gradcheck(args: argparse.Namespace) -> int:
    import numpy as np
    import orjson

    from textgen.corpus import load_corpus
    from textgen.gradcheck import check_window
    from textgen.rnn import init_params
    from textgen.vocab import CharVocab

    model = model_config(args)
    if args.seq_length < 1:
        raise ConfigError(f"--seq-length must be a positive integer, got {args.seq_length}")
    if args.max_entries < 0:
        raise ConfigError(f"--max-entries must be 0 (all) or positive, got {args.max_entries}")
    corpus = load_corpus(args.corpus, args.kind, loader_options(args), weights=args.weights)
    vocab = CharVocab.from_texts([corpus.text])
    window = vocab.encode(corpus.text[: args.seq_length + 1])
    if window.size < args.seq_length + 1:
        raise ConfigError(f"the corpus has fewer than --seq-length + 1 = {args.seq_length + 1} characters")
    rng = np.random.default_rng(args.seed)
    params = init_params(model, vocab.size, rng)
    errors = check_window(params, window[:-1], window[1:], max_entries=args.max_entries or None, rng=rng)
    if args.json:
        sys.stdout.write(orjson.dumps(errors).decode() + "\n")
        return 0
    print(f"gradient check: m = {model.hidden}, K = {vocab.size}, seq_length = {args.seq_length}, {model.dtype}, "
          f"{'all' if not args.max_entries else f'up to {args.max_entries}'} entries per parameter")
    print("parameter  max relative error")
    for name, error in errors.items():
        print(f"{name:<9}  {error:.2e}")
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    import orjson

    from textgen.corpus import load_corpus
    from textgen.errors import CorpusError
    from textgen.evaluate import bits_per_char, mean_loss_per_char
    from textgen.rundir import load_run_checkpoint

    checkpoint = load_run_checkpoint(args.run, args.checkpoint)
    corpus = load_corpus(args.corpus, args.kind, loader_options(args), weights=args.weights)
    unknown = checkpoint.vocab.missing(corpus.text)
    if unknown:
        raise CorpusError(f"the corpus has characters the model does not know: {''.join(unknown)!r}; "
                          "the model cannot score them")
    ids = checkpoint.vocab.encode(corpus.text)
    start = checkpoint.start_state()  # the training state, as validation during training uses
    nats = mean_loss_per_char(checkpoint.params, ids, h0=None if start is None else start[0])
    result = {"loss_per_char": nats, "bits_per_char": bits_per_char(nats), "characters": int(ids.size),
              "checkpoint": str(Path(args.run) / f"{args.checkpoint}.npz")}
    if args.json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        print(f"{result['checkpoint']} on {', '.join(s['spec'] for s in corpus.sources)}: "
              f"{nats:.4f} nats per character, {result['bits_per_char']:.4f} bits per character "
              f"({ids.size:,} characters)")
    return 0


def command_report(args: argparse.Namespace) -> int:
    from textgen.report import write_report

    html_path, md_path = write_report(args.run)
    print(f"textgen: wrote {html_path} (self-contained; open it in a browser) and {md_path}")
    return 0


def command_plot(args: argparse.Namespace) -> int:
    from textgen.report import plot_runs

    print(f"textgen: wrote {plot_runs(args.runs, args.out)}")
    return 0


def command_corpora(args: argparse.Namespace) -> int:
    from textgen.registry import NAMED_CORPORA, corpus_search_dirs, discover

    registry = discover()
    print("loaders (--kind NAME or NAME:SOURCE):")
    for info in sorted(registry.loaders.values(), key=lambda i: (i.origin != "built-in", i.name)):
        suffixes = " ".join(info.suffixes) or "-"
        print(f"  {info.name:<12} {info.origin:<24} {suffixes}")
    for broken in registry.broken.values():
        print(f"  {broken.name:<12} {broken.origin:<24} BROKEN: {broken.cause}")
    print("named corpora (--corpus NAME):")
    for corpus in NAMED_CORPORA.values():
        if not corpus.filename:
            where = "built in"
        else:
            found = next((d / corpus.filename for d in corpus_search_dirs() if (d / corpus.filename).is_file()), None)
            where = str(found) if found else f"missing: {corpus.filename}"
        print(f"  {corpus.name:<12} {corpus.description} [{where}]")
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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    logging.basicConfig(format="textgen: warning: %(message)s", level=logging.WARNING, stream=sys.stderr)
    use_one_blas_thread()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 0
        return args.handler(args)
    except TextgenError as error:
        sys.stderr.write(f"textgen: error: {one_line(error)}\n")  # one line, whatever a message holds
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("textgen: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
