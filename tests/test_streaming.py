import logging
from pathlib import Path

import numpy as np
import orjson

from textgen.checkpoint import load_checkpoint
from textgen.cli import main
from textgen.config import RNNConfig, RunConfig
from textgen.corpus import encode_corpus, load_corpus, stream_encode
from textgen.run import start_run
from textgen.trainer import TrainConfig

PROJECT = Path(__file__).resolve().parent.parent


def test_streamed_ids_equal_the_in_memory_ones(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("".join(f"Line {i} of a longer book, with some words.\n" for i in range(3000)))
    (tmp_path / "no_newline.txt").write_text("x" * 5000 + "\nend")
    (tmp_path / "final_newline.txt").write_text("y" * 5000 + "\n")
    sources = [str(book), str(tmp_path / "no_newline.txt"), str(tmp_path / "final_newline.txt"),
               str(PROJECT / "corpora" / "sample_tweets.json")]
    for spec in sources:
        for fraction in (0.0, 0.1):
            folder = tmp_path / f"out-{Path(spec).stem}-{fraction}"
            folder.mkdir()
            streamed = stream_encode(spec, folder / "ids.bin", folder / "val_ids.bin", val_fraction=fraction)
            in_memory = encode_corpus(load_corpus([spec], val_fraction=fraction))
            assert isinstance(streamed.ids, np.memmap)
            assert streamed.vocab == in_memory.vocab
            np.testing.assert_array_equal(streamed.ids, in_memory.ids)
            if fraction:
                np.testing.assert_array_equal(streamed.val_ids, in_memory.val_ids)
            else:
                assert streamed.val_ids is None and in_memory.val_ids is None
            assert streamed.sources[0]["sha256"] == in_memory.sources[0]["sha256"]


def test_a_streamed_crlf_file_equals_the_in_memory_one_and_is_noted_once(tmp_path, caplog):
    book = tmp_path / "book.txt"
    book.write_bytes(b"\xef\xbb\xbf" + "".join(f"Line {i} of a Windows book.\r\n" for i in range(3000)).encode())
    (tmp_path / "out").mkdir()
    with caplog.at_level(logging.INFO, logger="textgen"):
        streamed = stream_encode(str(book), tmp_path / "out" / "ids.bin", tmp_path / "out" / "val_ids.bin",
                                 val_fraction=0.1)
    notes = [record.getMessage() for record in caplog.records if "CRLF" in record.getMessage()]
    assert len(notes) == 1  # two passes over the file, one note
    assert notes[0].startswith(f"{book}: translated 3,000 CRLF line ends to \\n and removed the byte-order mark")
    in_memory = encode_corpus(load_corpus([str(book)], val_fraction=0.1))
    assert "\r" not in streamed.vocab.chars and streamed.vocab == in_memory.vocab
    np.testing.assert_array_equal(streamed.ids, in_memory.ids)
    np.testing.assert_array_equal(streamed.val_ids, in_memory.val_ids)
    assert streamed.sources[0]["options"] == in_memory.sources[0]["options"]


def test_a_streamed_run_trains_and_resumes_from_its_mapped_ids(tmp_path, capsys):
    book = tmp_path / "book.txt"
    book.write_text("".join(f"Line {i} of a longer book, with some words.\n" for i in range(500)))
    run = tmp_path / "run"
    config = TrainConfig(updates=60, log_every=10, checkpoint_every=20, sample_every=1000, seed=2)
    result = start_run([str(book)], RNNConfig(hidden=10), config,
                       RunConfig(out=run, val_fraction=0.05, passage_length=20, stream_over=0), progress=False)
    corpus = orjson.loads((run / "config.json").read_bytes())["corpus"]
    assert (run / "ids.bin").stat().st_size == corpus["characters"]  # one byte per uint8 id
    assert corpus["characters"] + corpus["val_characters"] == len(book.read_text())
    assert result.state.update == 60
    source = corpus["sources"][0]
    assert source["streamed_to"] == "ids.bin"
    assert main(["train", "--resume", str(run), "--updates", "90", "--no-progress"]) == 0
    assert load_checkpoint(run / "last.npz").meta["update"] == 90
    book.write_text("changed")
    assert main(["train", "--resume", str(run), "--updates", "120", "--no-progress"]) == 1
    assert "has changed since the run started" in capsys.readouterr().err


def test_streamed_cut_matches_across_many_small_pieces(tmp_path):
    from test_registry import fake_distribution

    from textgen.registry import discover

    registry = discover(fake_distribution(tmp_path / "dist", "chunks", "1.0", {"chunks": "plugin_fixtures:SmallChunkLoader"}))
    texts = {
        "lines": "".join(f"line {i}\n" for i in range(40)),
        "long_lines": "".join(("word " * i) + "\n" for i in range(30)),
        "no_break": "z" * 333,
        "break_last": "q" * 100 + "\n",
    }
    for name, text in texts.items():
        path = tmp_path / f"{name}.chunks"
        path.write_text(text)
        for fraction in (0.05, 0.3, 0.5):
            folder = tmp_path / f"{name}-{fraction}"
            folder.mkdir()
            streamed = stream_encode(str(path), folder / "ids.bin", folder / "val_ids.bin", val_fraction=fraction,
                                     registry=registry)
            expected = encode_corpus(load_corpus([str(path)], val_fraction=fraction, registry=registry))
            np.testing.assert_array_equal(streamed.ids, expected.ids, err_msg=f"{name} {fraction}")
            if expected.val_ids is None:
                assert streamed.val_ids is None
            else:
                np.testing.assert_array_equal(streamed.val_ids, expected.val_ids, err_msg=f"{name} {fraction}")


def test_force_over_a_streamed_run_removes_its_encoded_ids(tmp_path, capsys):
    book = tmp_path / "book.txt"
    book.write_text("".join(f"Line {i} of a book.\n" for i in range(300)))
    run = tmp_path / "run"
    start_run([str(book)], RNNConfig(hidden=6), TrainConfig(updates=20, sample_every=1000, seed=1),
              RunConfig(out=run, passage_length=5, stream_over=0), progress=False)
    assert (run / "ids.bin").exists()
    assert main(["train", "--corpus", str(book), "--updates", "20", "--hidden", "6", "--no-progress",
                 "--out", str(run)]) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--corpus", str(book), "--updates", "20", "--hidden", "6", "--no-progress",
                 "--out", str(run), "--force"]) == 0
    assert not (run / "ids.bin").exists() and not (run / "val_ids.bin").exists()


def test_a_loaders_own_held_out_text_is_streamed_as_it_is_read_in_memory(tmp_path):
    from test_registry import fake_distribution

    from textgen.registry import discover

    registry = discover(fake_distribution(tmp_path / "dist", "heldout", "1.0", {"heldout": "plugin_fixtures:HeldOutLoader"}))
    path = tmp_path / "book.heldout"
    path.write_text("".join(f"line {i} of the training text\n" for i in range(60)))
    held = "".join(f"held line {i}\n" for i in range(5))
    (tmp_path / "book.heldout.val").write_text(held)
    folder = tmp_path / "out"
    folder.mkdir()
    streamed = stream_encode(str(path), folder / "ids.bin", folder / "val_ids.bin", val_fraction=0.3,
                             registry=registry)
    in_memory = encode_corpus(load_corpus([str(path)], val_fraction=0.3, registry=registry))
    assert in_memory.vocab.decode(in_memory.val_ids) == held
    assert in_memory.vocab.decode(in_memory.ids) == path.read_text()  # nothing cut from the training text
    assert streamed.vocab == in_memory.vocab
    np.testing.assert_array_equal(streamed.ids, in_memory.ids)
    np.testing.assert_array_equal(streamed.val_ids, in_memory.val_ids)
    assert streamed.sources[0]["val_sha256"] == in_memory.sources[0]["val_sha256"]
