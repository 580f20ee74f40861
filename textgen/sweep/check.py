"""Every trial of a sweep checked as its run would check it, before Ray starts: its settings (`plan_run`), the
corpus (read once, as each trial reads it), each trial's sizes against memory, its length and evaluations, and
early stopping against the trials' lengths. What a run would refuse is refused here, in one line, instead of
failing inside Ray once per trial."""

from __future__ import annotations

import math
from pathlib import Path

from textgen.errors import CheckpointError, ConfigError, CorpusError, TextgenError, message_of
from textgen.sweep.spec import SweepSpec

MAX_RUNGS = 1_000  # ASHA's rungs at most: it keeps them all in memory and walks them at every evaluation


def check_trials(spec: SweepSpec, trials: dict[str, dict], folder: Path, at_once: int | None = None,
                 new: bool = True) -> int:
    """ConfigError, CorpusError or LimitError (one line naming the trial) if a run of one of ``trials`` (name ->
    its trials.json entry) would be refused; returns the updates of the longest. ``at_once``: trials that run
    together on this machine (their models must fit in memory together), None on a cluster. ``new``: the
    sweep is starting (early stopping that could never stop a trial is refused then)."""
    from textgen.corpus import encode_corpus, load_corpus, plan_sources, source_digest, streamable_source
    from textgen.limits import check_memory
    from textgen.models import network_of
    from textgen.registry import default_registry
    from textgen.run import check_read, check_sizes
    from textgen.runfolder import RunFolder
    from textgen.settings import plan_run
    from textgen.sweep.trial import trial_settings

    if not trials:
        return 0
    plans = {}
    for name, entry in trials.items():
        settings = trial_settings(spec.base, entry, folder / name, spec.cpus_per_trial)
        plans[name] = _named(name, entry, lambda: plan_run(settings, str(spec.path)))
    first = next(iter(plans.values()))  # the corpus and what the run starts from are the same for every trial
    registry = default_registry()
    where = f"{spec.path} [train]"
    initial = None
    if first.run.init_from is not None:
        initial = _named(where, None, lambda: RunFolder(first.run.init_from).load("last"))
    models = {name: initial.model if initial is not None else plan.model for name, plan in plans.items()}
    for name, plan in plans.items():  # an absurd size is refused before the corpus is read
        _named(name, trials[name], lambda: check_sizes(models[name], plan.train, plan.run.passage_length))
    corpus, run = first.corpus, first.run
    if first.weights is None and streamable_source(corpus, first.kind, registry, run.stream_over):
        # each trial streams this large file from disk: read it through once (a missing or undecodable file is
        # refused here); its length only bounds what early stopping needs
        source = _named(where, None, lambda: plan_sources(corpus, first.kind, first.options, registry))[0]
        digests = [_named(where, None, lambda: source_digest(*source))]
        characters, held_out, vocab_size = Path(source[0].location).stat().st_size, True, None
    else:
        loaded = _named(where, None, lambda: load_corpus(corpus, first.kind, first.options, registry, first.weights,
                                                         run.val_fraction, run.val_max_characters))
        digests = [source["sha256"] for source in loaded.sources]
        encoded = _named(where, None, lambda: encode_corpus(loaded, None if initial is None else initial.vocab))
        characters, held_out, vocab_size = encoded.ids.size, encoded.val_ids is not None, encoded.vocab.size
    check_same_corpus(folder, digests, where)
    longest, needs = 0, []
    for name, plan in plans.items():
        if vocab_size is None:
            from textgen.trainer import total_updates

            updates = _named(name, trials[name], lambda: total_updates(plan.train, characters))
        else:
            # the most tokens a trial's vocabulary can have: every character (char, word) or --vocab-size (word,
            # bpe; at least the 256 bytes and the marker for bpe); its updates are planned on the characters
            size = max(vocab_size, plan.train.resolved_vocab_size or 0, 257 if plan.train.tokens == "bpe" else 0)
            config = _named(name, trials[name], lambda: check_read(models[name], plan.train, plan.run, characters,
                                                                 held_out, size, level="char"))
            updates = config.updates
            needs.append(network_of(models[name], size).training_bytes(
                config.seq_length, config.batch_size, dropout=config.dropout, threads=config.threads or 1))
        longest = max(longest, updates)
    if at_once is not None and len(needs) > 1 and at_once > 1:
        together = sorted(needs, reverse=True)[:at_once]
        check_memory(sum(together), f"{len(together)} trials at once ({spec.path})",
                     "lower trials_at_once, or raise cpus_per_trial, in [search]")
    check_early_stopping(spec, longest, new)
    return longest


def check_same_corpus(folder: Path, digests: list[str], where: str) -> None:
    """CorpusError if a trial that has a run folder in ``folder`` (SWEEP_DIR/trials) read another corpus than the
    one whose sources have ``digests`` (the SHA-256 of each): the trials still to run would be measured on other
    text than it, and its own run could not go on."""
    from textgen.runfolder import RunFolder, holds_run

    for trial in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            sources = RunFolder(trial).read_record().sources if holds_run(trial) else None
        except CheckpointError:
            continue  # a damaged trial says so itself
        if sources is None:
            continue
        if [source["sha256"] for source in sources] != digests:
            raise CorpusError(f"{where}: the corpus has changed since {trial.name} read it (SHA-256 differs), so the "
                              "trials still to run would be measured on other text than the others, and a trial "
                              "under way could not go on; put the corpus back as it was, or start a new sweep")
        return


def check_early_stopping(spec: SweepSpec, longest: int, new: bool) -> None:
    """ConfigError if ASHA could not act on trials of at most ``longest`` updates: a grace period the trials
    never pass (when the sweep is ``new``), or a reduction factor so near 1 that ASHA's rungs between the grace
    period and the longest trial would be more than MAX_RUNGS (Ray builds them all at once, and would hang)."""
    grace = spec.grace_updates
    if grace is None:
        return
    where = f"{spec.path} [early_stopping]"
    if new and grace >= longest:
        raise ConfigError(f"{where}: grace_updates = {grace:,} is not below the longest trial's {longest:,} updates, "
                          "so early stopping could never stop a trial; lower it")
    span = math.log((max(longest, grace) + 1) / grace)
    rungs = int(span / math.log(spec.reduction_factor) + 1)
    if rungs > MAX_RUNGS:
        least = math.exp(span / (MAX_RUNGS - 1))
        raise ConfigError(f"{where}: reduction_factor = {spec.reduction_factor!r} would make ASHA keep {rungs:,} rungs "
                          f"between grace_updates = {grace:,} and the longest trial's {longest:,} updates (at most "
                          f"{MAX_RUNGS:,}); give at least {math.ceil(least * 10**4) / 10**4}")


def _named(name: str, entry: dict | None, check):
    """``check()``, with a TextgenError it raises saying which trial (and its settings) or what it concerns."""
    try:
        return check()
    except TextgenError as error:
        shown = "" if entry is None else " (" + ", ".join(f"{key} = {value!r}" for key, value in
                                                          entry.get("settings", {}).items()) + ")"
        what = f"{name}{shown} would be refused" if entry is not None else name
        raise type(error)(f"{what}: {message_of(error)}") from None
