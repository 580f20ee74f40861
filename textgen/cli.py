"""The `textgen` command: train, generate, gradcheck, corpora. The only module that prints or exits."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from pathlib import Path

from textgen import __version__
from textgen.errors import ConfigError, TextgenError

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
    group.add_argument("--sigma", type=float, default=0.01, help="std of the initial U, W, V (default 0.01)")
    group.add_argument("--dtype", default="float64", choices=("float64", "float32"), help="float64 (default) or float32")
    parser.add_argument("--seq-length", type=int, default=25, metavar="N", help="characters per window (default 25)")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="textgen",
        description="Train character-level vanilla RNNs (KTH DD2424 Assignment 4) on any corpus and sample from them.",
    )
    parser.add_argument("--version", action="version", version=f"textgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    train = commands.add_parser("train", help="train a model; writes a run folder")
    add_corpus_flags(train)
    add_model_flags(train)
    group = train.add_argument_group("training (defaults are the assignment's)")
    group.add_argument("--eta", type=float, default=0.1, help="AdaGrad learning rate (default 0.1)")
    group.add_argument("--clip", type=float, default=5.0, help="clip gradients to [-clip, clip] (default 5)")
    length = group.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, metavar="E", help="passes over the corpus (default 2)")
    length.add_argument("--updates", type=int, metavar="N", help="parameter updates in all")
    group.add_argument("--sample-every", type=int, default=10_000, metavar="N", help="updates between samples (10000)")
    group.add_argument("--sample-length", type=int, default=200, metavar="N", help="characters per sample (200)")
    group.add_argument("--log-every", type=int, default=100, metavar="N", help="updates between metrics rows (100)")
    group.add_argument("--checkpoint-every", type=int, default=1_000, metavar="N", help="updates between checkpoints")
    group.add_argument("--passage-length", type=int, default=1000, metavar="N", help="final passage length (1000)")
    group.add_argument("--seed", type=int, help="random seed (default: a fresh one, recorded in config.json)")
    group.add_argument("--out", type=Path, metavar="RUN_DIR", help="run folder (default runs/<corpus>-<time>)")
    group.add_argument("--force", action="store_true", help="replace the run already in --out")
    group.add_argument("--init-from", type=Path, metavar="RUN_DIR",
                       help="start from another run's last parameters and vocabulary (train a model further on "
                       "new text whose characters it knows)")
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
    gradcheck.add_argument("--max-entries", type=int, default=200, metavar="N",
                           help="entries checked per parameter, drawn at random (default 200; 0 for all)")
    gradcheck.add_argument("--seed", type=int, default=0, help="seed for the initial parameters (0)")
    gradcheck.add_argument("--json", action="store_true", help='print {"b": err, "c": err, ...} as JSON')
    gradcheck.set_defaults(handler=command_gradcheck)

    corpora = commands.add_parser("corpora", help="list corpus loaders and named corpora")
    corpora.set_defaults(handler=command_corpora)
    return parser


def say(text: str = "", file=None) -> None:
    """Print a line, above the progress bar if one is showing."""
    from tqdm.auto import tqdm

    tqdm.write(text, file=file or sys.stdout)


def command_train(args: argparse.Namespace) -> int:
    from textgen.corpus import load_corpus
    from textgen.rnn import RNNConfig
    from textgen.rundir import run_training
    from textgen.train import TrainConfig

    seed = args.seed if args.seed is not None else secrets.randbits(32)
    initial = None
    if args.init_from is not None:
        from textgen.rundir import load_run_checkpoint

        initial = load_run_checkpoint(args.init_from, "last")
        if args.hidden is not None and args.hidden != initial.model.hidden:
            raise ConfigError(f"--hidden {args.hidden} differs from --init-from's {initial.model.hidden} hidden units")
        model = initial.model
    else:
        model = RNNConfig(hidden=args.hidden if args.hidden is not None else args.hidden_default, sigma=args.sigma, dtype=args.dtype)
    config = TrainConfig(
        seq_length=args.seq_length, eta=args.eta, clip=args.clip, epochs=args.epochs, updates=args.updates,
        sample_every=args.sample_every, sample_length=args.sample_length, log_every=args.log_every,
        checkpoint_every=args.checkpoint_every, seed=seed,
    )
    if args.passage_length < 0:
        raise ConfigError(f"--passage-length must be a non-negative integer, got {args.passage_length}")
    if not args.corpus:
        say("textgen: no --corpus given, training on the built-in default: the Python language reference "
            "(pydoc_data.topics, ~465k characters)", file=sys.stderr)
    corpus = load_corpus(args.corpus, args.kind, loader_options(args), weights=args.weights)

    def show_sample(record: dict) -> None:
        loss = "n/a" if record["smooth_loss"] is None else f"{record['smooth_loss']:.3f}"
        say(f"--- update {record['update']:,}, epoch {record['epoch']:.2f}, smooth loss {loss} ---")
        say(record["text"])

    result = run_training(
        corpus, args.out, model, config, force=args.force, progress=False if args.no_progress else None,
        on_sample=show_sample, passage_length=args.passage_length, initial=initial,
        extra_config={"init_from": str(args.init_from)} if args.init_from else None,
    )
    state = result.state
    say(f"--- {args.passage_length} characters from the best model (update {state.best_update:,}, "
        f"smooth loss {state.best_loss:.3f}) ---")
    say(result.passage)
    say(f"textgen: done: {state.update:,} updates, final smooth loss {state.smooth_loss:.3f}, "
        f"best {state.best_loss:.3f}; run folder {result.folder}", file=sys.stderr)
    say(f"textgen: generate more with: textgen generate --run {result.folder}", file=sys.stderr)
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
    texts = generate_texts(checkpoint.params, checkpoint.vocab, config, rng)
    for index, sample in enumerate(texts, start=1):
        if index > 1:
            sys.stdout.write("\n")  # a blank line between samples
        sys.stdout.write(sample.text + ("" if sample.text.endswith("\n") else "\n"))
        if config.documents and not sample.ended:
            sys.stderr.write(f"textgen: document {index} reached --length {config.length} without an "
                             "end-of-document marker and was cut there\n")
    return 0


def command_gradcheck(args: argparse.Namespace) -> int:
    import numpy as np
    import orjson

    from textgen.corpus import load_corpus
    from textgen.gradcheck import check_window
    from textgen.rnn import RNNConfig, init_params
    from textgen.vocab import CharVocab

    model = RNNConfig(hidden=args.hidden if args.hidden is not None else args.hidden_default, sigma=args.sigma, dtype=args.dtype)
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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    logging.basicConfig(format="textgen: warning: %(message)s", level=logging.WARNING, stream=sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 0
        return args.handler(args)
    except TextgenError as error:
        sys.stderr.write(f"textgen: error: {error}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("textgen: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
