import io
import zipfile

import numpy as np
import pytest

from textgen.checkpoint import (
    Checkpoint,
    CheckpointMeta,
    load_checkpoint,
    rng_from_json,
    rng_state_to_json,
    save_checkpoint,
)
from textgen.config import RNNConfig
from textgen.errors import CheckpointError
from textgen.models import init_params
from textgen.vocab import CharVocab


def make_checkpoint(hidden=5, dtype="float64"):
    vocab = CharVocab.from_texts(["hello world"])
    model = RNNConfig(hidden=hidden, dtype=dtype)
    params = init_params(model, vocab.size, np.random.default_rng(0))
    arrays = {"adagrad_memory": np.arange(params.flat.size, dtype=dtype), "h": np.ones((1, hidden), dtype=dtype)}
    return Checkpoint(params, vocab, model, {"update": 7}, arrays)


def test_round_trip_keeps_parameters_vocabulary_config_and_state(tmp_path):
    original = make_checkpoint(dtype="float32")
    save_checkpoint(tmp_path / "c.npz", original)
    loaded = load_checkpoint(tmp_path / "c.npz")
    np.testing.assert_array_equal(loaded.params.flat, original.params.flat)
    assert loaded.params.flat.dtype == np.float32
    assert loaded.vocab == original.vocab and loaded.model == original.model
    assert loaded.meta["update"] == 7
    np.testing.assert_array_equal(loaded.arrays["h"], original.arrays["h"])


def test_saving_replaces_the_file_and_leaves_no_temporary(tmp_path):
    save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    save_checkpoint(tmp_path / "c.npz", make_checkpoint(hidden=3))
    assert load_checkpoint(tmp_path / "c.npz").model.hidden == 3
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


def test_the_file_holds_no_pickled_objects(tmp_path):
    save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    with np.load(tmp_path / "c.npz", allow_pickle=False) as archive:
        assert all(archive[name].dtype != object for name in archive.files)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: b"not a zip at all",
        lambda data: b"",
    ],
    ids=["truncated", "random bytes", "empty"],
)
def test_damaged_files_raise_checkpoint_error(tmp_path, damage):
    save_checkpoint(tmp_path / "c.npz", make_checkpoint())
    path = tmp_path / "c.npz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match="c.npz"):
        load_checkpoint(path)


def rewrite_npz(path, change):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def test_a_wrong_shape_is_named(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, make_checkpoint())
    rewrite_npz(path, lambda arrays: arrays.update(W=np.zeros((4, 4))))
    with pytest.raises(CheckpointError, match="'W' is float64\\[4, 4\\], expected float64\\[5, 5\\]"):
        load_checkpoint(path)


def test_a_missing_array_and_a_wrong_version_are_named(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, make_checkpoint())
    rewrite_npz(path, lambda arrays: arrays.pop("V"))
    with pytest.raises(CheckpointError, match="'V' is missing"):
        load_checkpoint(path)
    save_checkpoint(path, make_checkpoint())
    rewrite_npz(path, lambda arrays: arrays.update(meta_json=np.frombuffer(b'{"format_version": 9}', np.uint8)))
    with pytest.raises(CheckpointError, match="format_version 9"):
        load_checkpoint(path)


def test_a_zip_with_a_pickled_array_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, make_checkpoint())
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["U"] = np.array([{"evil": 1}], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_random_generator_state_survives_json():
    rng = np.random.default_rng(12345)
    rng.random(3)
    restored = rng_from_json(rng_state_to_json(rng), "test")
    assert restored.random() == rng.random()


def test_run_checkpoints_keep_the_training_state_sampling_starts_from(tmp_path):
    from textgen.cli import main

    book = tmp_path / "book.txt"
    book.write_text("a small book with a few words in it, repeated.\n" * 40)
    assert main(["train", "--corpus", str(book), "--updates", "50", "--hidden", "8", "--no-progress",
                 "--seed", "1", "--out", str(tmp_path / "run"), "--passage-length", "10"]) == 0
    last, best = load_checkpoint(tmp_path / "run" / "last.npz"), load_checkpoint(tmp_path / "run" / "best.npz")
    h, next_id = last.start_state()
    np.testing.assert_array_equal(h, last.arrays["h"][0])
    # 50 windows of 25 characters were read (an epoch here is 74 windows): the next window starts at 1250
    assert last.vocab.chars[next_id] == book.read_text()[50 * 25]
    best_h, best_next = best.start_state()
    np.testing.assert_array_equal(best_h, last.arrays["best_h"][0])
    assert best.meta["next_id"] == best_next == last.meta["best_next_id"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spoil", ["a parameter", "a state array", "the metadata"])
def test_a_checkpoint_with_anything_non_finite_is_never_written(tmp_path, dtype, spoil):
    """load_checkpoint refuses such a file, so writing it would only put an unreadable file over a good one."""
    save_checkpoint(tmp_path / "c.npz", make_checkpoint(dtype=dtype))
    before = (tmp_path / "c.npz").read_bytes()
    checkpoint = make_checkpoint(dtype=dtype)
    if spoil == "a parameter":
        checkpoint.params.flat[3] = np.inf
    elif spoil == "a state array":
        checkpoint.arrays["h"][0, 1] = np.nan
    else:
        checkpoint.meta["smooth_loss"] = float("inf")
    with pytest.raises(CheckpointError, match="c.npz: .*not finite"):
        save_checkpoint(tmp_path / "c.npz", checkpoint)
    assert (tmp_path / "c.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def trained_run(tmp_path):
    from textgen.cli import main

    book = tmp_path / "book.txt"
    book.write_text("a small book with a few words in it, repeated.\n" * 40)
    assert main(["train", "--corpus", str(book), "--updates", "60", "--hidden", "8", "--no-progress", "--seed", "3",
                 "--val-fraction", "0.2", "--eval-every", "20", "--out", str(tmp_path / "run"),
                 "--passage-length", "10"]) == 0
    return tmp_path / "run"


def test_the_metadata_is_one_record_written_and_read_back_field_for_field(tmp_path):
    run = trained_run(tmp_path)
    last, best = load_checkpoint(run / "last.npz"), load_checkpoint(run / "best.npz")
    for checkpoint in (last, best):
        assert CheckpointMeta.from_json(checkpoint.training.to_json(), "x", checkpoint.vocab.size) == checkpoint.training
    assert last.training.rng is not None and best.training.rng is None  # only last.npz can be resumed
    assert best.training.update == last.training.best_update and best.training.best_loss == last.training.best_loss
    assert best.training.best_by == last.training.best_by == "val_loss"
    assert best.training.next_id == last.training.best_next_id
    assert last.training.update == 60 and last.training.optimizer_steps == 60


def test_best_npz_names_its_loss_best_loss_and_keeps_the_old_key_for_an_older_textgen(tmp_path):
    run = trained_run(tmp_path)
    best = load_checkpoint(run / "best.npz")
    assert best.meta["best_loss"] == best.meta["smooth_loss"] == best.training.best_loss is not None
    del best.meta["best_loss"]  # a best.npz as textgen 0.1.0 wrote it: the loss that chose it was "smooth_loss"
    save_checkpoint(run / "best.npz", best)
    assert load_checkpoint(run / "best.npz").training.best_loss == best.meta["smooth_loss"]
    last = load_checkpoint(run / "last.npz")  # a last.npz's smooth loss is its own, never its best loss
    assert last.training.smooth_loss != last.training.best_loss


@pytest.mark.parametrize("field, value", [("update", -1), ("best_by", "loss"), ("next_id", 10**6),
                                          ("sampled_at", 10**9), ("optimizer_steps", "many"), ("train", [1])])
def test_a_bad_metadata_field_is_named_when_read(tmp_path, field, value):
    checkpoint = make_checkpoint()
    checkpoint.meta.update({"update": 7, field: value})
    save_checkpoint(tmp_path / "c.npz", checkpoint)
    loaded = load_checkpoint(tmp_path / "c.npz")
    with pytest.raises(CheckpointError, match=f"c.npz: its '{field}' is missing or out of range"):
        _ = loaded.training


def test_an_older_checkpoint_reads_with_the_defaults_of_what_it_did_not_record():
    meta = CheckpointMeta.from_json({"update": 12}, "x", 5)
    assert (meta.best_loss, meta.best_by, meta.next_id, meta.sampled_at, meta.optimizer_steps) == (
        None, "smooth_loss", None, -1, 12)
