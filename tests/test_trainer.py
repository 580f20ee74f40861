import numpy as np
import pytest
from reference import textbook_training

from textgen.config import RNNConfig
from textgen.errors import ConfigError, CorpusError, TrainingError
from textgen.trainer import TrainCallbacks, TrainConfig, TrainState, resolved_epochs, train, updates_per_epoch
from textgen.vocab import CharVocab

TEXT = "the cat sat on the mat; the dog sat on the log. " * 40


class Recorder(TrainCallbacks):
    def __init__(self):
        self.logs, self.samples, self.checkpoints = [], [], []

    def on_log(self, record):
        self.logs.append(record)

    def on_sample(self, record):
        self.samples.append(record)

    def on_checkpoint(self, state, final):
        self.checkpoints.append((state.update, final))


def encoded(text=TEXT):
    vocab = CharVocab.from_texts([text])
    return vocab, vocab.encode(text)


def test_updates_per_epoch_is_the_assignments_count():
    assert updates_per_epoch(1_107_542, 25) == 44_301  # goblet_book.txt
    assert updates_per_epoch(26, 25) == 1
    assert updates_per_epoch(25, 25) == 0


def test_first_updates_match_the_textbook_loop_across_an_epoch_boundary():
    text = "abcdefghij klmnop qrstuv wxyz, the end.\n" * 2  # 80 chars: 7 windows of 11 per epoch
    vocab, ids = encoded(text)
    config = TrainConfig(seq_length=11, updates=10, seed=3)
    state = TrainState.fresh(RNNConfig(hidden=9), vocab.size, 1, np.random.default_rng(3))
    start = {name: state.params[name].copy() for name in ("U", "W", "V", "b", "c")}
    recorder = Recorder()
    train(ids, vocab, config, np.random.default_rng(0), RNNConfig(hidden=9), state=state, callbacks=recorder,
          progress=False)
    expected, smooth = textbook_training(**start, ids=ids.astype(int), n_updates=10, seq_length=11)
    for name, value in expected.items():
        np.testing.assert_allclose(state.params[name], value, rtol=1e-10, atol=1e-12)
    assert state.smooth_loss == pytest.approx(smooth[-1], rel=1e-12)


def test_same_seed_gives_bit_identical_runs_and_samples():
    vocab, ids = encoded()
    config = TrainConfig(updates=120, sample_every=50, sample_length=30, log_every=20, seed=7)
    runs = []
    for _ in range(2):
        recorder = Recorder()
        state = train(ids, vocab, config, np.random.default_rng(7), RNNConfig(hidden=16), callbacks=recorder,
                      progress=False)
        runs.append((state, recorder))
    (a, ra), (b, rb) = runs
    np.testing.assert_array_equal(a.params.flat, b.params.flat)
    assert [r["text"] for r in ra.samples] == [r["text"] for r in rb.samples]
    assert [r["smooth_loss"] for r in ra.logs] == [r["smooth_loss"] for r in rb.logs]


def test_loss_falls_on_a_repetitive_corpus():
    vocab, ids = encoded()
    recorder = Recorder()
    state = train(ids, vocab, TrainConfig(updates=600, log_every=1, seed=1), np.random.default_rng(1),
                  RNNConfig(hidden=32), callbacks=recorder, progress=False)
    first_loss = 25 * np.log(vocab.size)  # what uniform predictions cost; the start is close to it
    assert recorder.logs[0]["loss"] == pytest.approx(first_loss, rel=0.05)
    assert state.smooth_loss < first_loss - 5
    assert np.mean([r["loss"] for r in recorder.logs[-50:]]) < 0.5 * first_loss


def test_callbacks_get_samples_logs_and_checkpoints_on_schedule():
    vocab, ids = encoded()
    recorder = Recorder()
    config = TrainConfig(updates=100, sample_every=40, sample_length=15, log_every=25, checkpoint_every=30, seed=0)
    train(ids, vocab, config, np.random.default_rng(0), RNNConfig(hidden=8), callbacks=recorder, progress=False)
    assert [s["update"] for s in recorder.samples] == [0, 40, 80]
    assert recorder.samples[0]["smooth_loss"] is None
    assert all(len(s["text"]) == 15 and set(s["text"]) <= set(vocab.chars) for s in recorder.samples)
    assert [r["update"] for r in recorder.logs] == [25, 50, 75, 100]
    assert set(recorder.logs[0]) >= {"update", "epoch", "loss", "smooth_loss", "chars_per_sec"}
    assert recorder.checkpoints == [(30, False), (60, False), (90, False), (100, True)]


def test_epochs_set_the_number_of_updates_and_the_best_loss_is_kept():
    vocab, ids = encoded()
    per_epoch = updates_per_epoch(ids.size, 25)
    recorder = Recorder()
    state = train(ids, vocab, TrainConfig(epochs=2, log_every=1, seed=0), np.random.default_rng(0),
                  RNNConfig(hidden=8), callbacks=recorder, progress=False)
    assert state.update == 2 * per_epoch
    smooth = [r["smooth_loss"] for r in recorder.logs]
    # the best parameters were in use when the smooth loss was at its lowest
    assert state.best_loss == pytest.approx(min([25 * np.log(vocab.size)] + smooth[:-1]), rel=0.02)
    assert state.best_update == int(np.argmin(smooth))


def test_a_corpus_shorter_than_one_window_is_refused():
    vocab, ids = encoded("short text")
    with pytest.raises(CorpusError, match="fewer than the 26"):
        train(ids, vocab, TrainConfig(), np.random.default_rng(0), progress=False)


def test_a_non_finite_loss_stops_with_the_update_number():
    vocab, ids = encoded()
    state = TrainState.fresh(RNNConfig(hidden=8), vocab.size, 1, np.random.default_rng(0))
    state.params["V"][0, 0] = np.nan
    with pytest.raises(TrainingError, match="at update 1"):
        train(ids, vocab, TrainConfig(updates=5), np.random.default_rng(0), RNNConfig(hidden=8), state=state,
              progress=False)


@pytest.mark.parametrize(
    "field, value", [("seq_length", 0), ("eta", -0.1), ("clip", float("nan")), ("updates", 0), ("seed", -1)]
)
def test_bad_train_config_names_the_flag_and_value(field, value):
    with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')} .*{value}"):
        TrainConfig(**{field: value})


def test_the_automatic_evaluation_interval():
    assert TrainConfig().resolved_eval_every(2 * 44_301) == 5_000
    assert TrainConfig().resolved_eval_every(20_000) == 2_500
    assert TrainConfig(log_every=7).resolved_eval_every(30_000) == 2_996
    assert TrainConfig(log_every=10).resolved_eval_every(125) == 120  # a short run: once, at its end
    assert TrainConfig(log_every=100).resolved_eval_every(50) == 50
    assert TrainConfig(eval_every=7).resolved_eval_every(10**6) == 7


def test_held_out_text_chooses_the_best_model():
    vocab, ids = encoded()
    recorder = Recorder()
    val_ids = vocab.encode("the dog sat on the mat. " * 4)
    state = train(ids, vocab, TrainConfig(updates=60, log_every=10, eval_every=6, seed=0), np.random.default_rng(0),
                  RNNConfig(hidden=8), callbacks=recorder, progress=False, val_ids=val_ids)
    val_rows = [r for r in recorder.logs if "val_loss" in r]
    assert [r["update"] for r in val_rows] == [6 * k for k in range(1, 11)]
    best = min(val_rows, key=lambda r: r["val_loss"])
    assert state.best_by == "val_loss" and state.best_loss == best["val_loss"] and state.best_update == best["update"]
    assert best["val_bpc"] == pytest.approx(best["val_loss"] / np.log(2))


def test_a_few_updates_of_a_huge_corpus_record_their_epochs_as_a_positive_number():
    # 20 updates of a 2.7-million-window corpus are 7.4e-6 epochs: four decimals would round that to 0, which
    # config.json's own check then refuses (a 69 MB corpus with --updates 20 could not start)
    config = TrainConfig(updates=20)
    assert resolved_epochs(config, 20, 2_700_000) == 7.407e-06
    assert resolved_epochs(config, 100_000, 2_977) == 33.5909  # as before: four decimals
    TrainConfig(epochs=resolved_epochs(config, 20, 2_700_000))  # a value the settings take
