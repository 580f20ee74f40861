"""textgen: train character-level text generators (the vanilla RNN of KTH DD2424 Assignment 4, LSTM, GRU) on any
corpus and sample from them.

    import textgen
    run = textgen.train("book.txt", updates=20_000, hidden=128)
    print(run.best.generate(300, temperature=0.8))

The names below load their modules when first used, so ``import textgen`` (and ``textgen --help``) stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textgen._version import __version__

__all__ = [
    "CheckpointError",
    "ConfigError",
    "CorpusError",
    "Evaluation",
    "GradCheck",
    "Model",
    "ModelConfig",
    "PathError",
    "RNNConfig",
    "Run",
    "RunConfig",
    "SampleConfig",
    "TextgenError",
    "TrainConfig",
    "__version__",
    "corpora",
    "evaluate",
    "gradcheck",
    "load",
    "plot",
    "report",
    "resume",
    "train",
]

_HOMES = {  # public name -> the module that defines it
    **{name: "textgen.api" for name in ("train", "resume", "load", "evaluate", "gradcheck", "corpora", "report",
                                        "plot", "Run", "Model", "Evaluation", "GradCheck")},
    **{name: "textgen.config" for name in ("ModelConfig", "RNNConfig", "TrainConfig", "RunConfig", "SampleConfig")},
    "TextgenError": "textgen.errors",
    "ConfigError": "textgen.errors",
    "CorpusError": "textgen.errors",
    "CheckpointError": "textgen.errors",
    "PathError": "textgen.errors",
}

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports on first use
    from textgen.api import (
        Evaluation,
        GradCheck,
        Model,
        Run,
        corpora,
        evaluate,
        gradcheck,
        load,
        plot,
        report,
        resume,
        train,
    )
    from textgen.config import ModelConfig, RNNConfig, RunConfig, SampleConfig, TrainConfig
    from textgen.errors import CheckpointError, ConfigError, CorpusError, PathError, TextgenError


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'textgen' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
