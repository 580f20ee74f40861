import hashlib
from pathlib import Path

import numpy as np
import pytest

from textgen.config import RNNConfig, RunConfig
from textgen.corpus import interleave, load_corpus, parse_weights, recorded_options, split_blocks
from textgen.errors import ConfigError, CorpusError
from textgen.loaders.base import END_OF_DOCUMENT
from textgen.loaders.tweets import TweetLoader
from textgen.run import start_run
from textgen.runfolder import RunFolder
from textgen.trainer import TrainConfig

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE_TWEETS = PROJECT / "corpora" / "sample_tweets.json"


def test_one_text_file_is_the_text_itself_with_a_summary(tmp_path):
    (tmp_path / "a.txt").write_text("hello\nworld\n")
    corpus = load_corpus([str(tmp_path / "a.txt")])
    assert corpus.text == "hello\nworld\n"
    source = corpus.sources[0]
    assert (source["kind"], source["characters"], source["documents"]) == ("text", 12, 1)
    assert source["sha256"] == hashlib.sha256(b"hello\nworld\n").hexdigest()


def test_a_text_source_records_how_its_line_ends_and_byte_order_mark_were_read(tmp_path):
    raw = "\ufeffone\r\ntwo\rthree\r\n"
    (tmp_path / "crlf.txt").write_bytes(raw.encode("utf-8"))
    corpus = load_corpus([str(tmp_path / "crlf.txt")])
    assert corpus.text == "one\ntwo\nthree\n"
    source = corpus.sources[0]
    assert source["options"] == {"keep_carriage_returns": False, "keep_byte_order_mark": False}
    assert source["sha256"] == hashlib.sha256(b"one\ntwo\nthree\n").hexdigest()
    kept = load_corpus([str(tmp_path / "crlf.txt")], options={"keep_carriage_returns": True})
    assert kept.text == raw[1:]
    assert kept.sources[0]["options"] == {"keep_carriage_returns": True, "keep_byte_order_mark": False}
    assert load_corpus([str(SAMPLE_TWEETS)]).sources[0]["options"] == {}  # options of the text loader only


def test_a_source_recorded_before_line_ends_were_translated_is_read_as_it_was(tmp_path):
    raw = "\ufeffone\r\ntwo\rthree\r\n"
    (tmp_path / "crlf.txt").write_bytes(raw.encode("utf-8"))
    old = {"kind": "text", "location": str(tmp_path / "crlf.txt"), "options": {"encoding": "utf-8"}}
    options = recorded_options(old)
    assert options == {"encoding": "utf-8", "keep_carriage_returns": True, "keep_byte_order_mark": True}
    assert load_corpus([str(tmp_path / "crlf.txt")], options=options).text == raw  # what textgen read then
    new = load_corpus([str(tmp_path / "crlf.txt")]).sources[0]
    assert recorded_options(new) == new["options"]
    assert recorded_options({"kind": "tweets", "location": str(SAMPLE_TWEETS), "options": {}}) == {}


def test_documents_are_followed_by_the_end_marker():
    texts = list(TweetLoader().iter_texts(str(SAMPLE_TWEETS)))
    corpus = load_corpus([str(SAMPLE_TWEETS)])
    assert corpus.text == "".join(t + END_OF_DOCUMENT for t in texts)
    assert corpus.sources[0]["documents"] == len(texts)


def test_split_blocks_cuts_after_line_breaks_and_loses_nothing():
    text = "aaaa\nbb\ncccccc\nd"
    assert split_blocks(text, size=3) == ["aaaa\n", "bb\ncccccc\n", "d"]
    assert "".join(split_blocks(text * 50, size=7)) == text * 50


def test_interleave_follows_the_weights_and_uses_every_piece():
    a = ["a" * 10] * 30  # 300 characters
    b = ["b" * 10] * 10  # 100 characters
    mixed, taken = interleave([a, b], [1.0, 1.0])
    assert taken == [300, 300]  # b is repeated three times to get half of the characters
    text = "".join(mixed)
    assert text[:40].count("a") == text[:40].count("b") == 20  # interleaved, not concatenated
    mixed, taken = interleave([a, b], [300.0, 100.0])
    assert taken == [300, 100]


def test_weights_are_checked():
    assert parse_weights("0.7,0.3", 2) == [0.7, 0.3]
    with pytest.raises(ConfigError, match="3 values for 2 corpora"):
        parse_weights("1,2,3", 2)
    with pytest.raises(ConfigError, match="comma-separated"):
        parse_weights("a,b", 2)
    with pytest.raises(ConfigError, match="positive"):
        parse_weights("1,0", 2)
    with pytest.raises(ConfigError, match="repeat the corpora"):
        interleave([["a" * 1000], ["b"]], [0.001, 1.0])


def test_several_corpora_share_one_text_and_record_each_source(tmp_path):
    (tmp_path / "book.txt").write_text("line of the book\n" * 600)
    corpus = load_corpus([str(tmp_path / "book.txt"), str(SAMPLE_TWEETS)], weights="0.5,0.5")
    book, tweets = corpus.sources
    assert book["kind"] == "text" and tweets["kind"] == "tweets"
    assert book["characters_in_mix"] == pytest.approx(tweets["characters_in_mix"], rel=0.3)
    tweet_chars = set("".join(TweetLoader().iter_texts(str(SAMPLE_TWEETS))))
    assert set(corpus.text) == set("line of the book\n") | tweet_chars | {END_OF_DOCUMENT}


def test_an_option_no_loader_takes_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_text("text")
    with pytest.raises(ConfigError, match="--min-length does not apply"):
        load_corpus([str(tmp_path / "a.txt")], options={"min_length": 3})


def test_training_further_needs_a_subset_vocabulary(tmp_path):
    (tmp_path / "a.txt").write_text("abc abc cab bac\n" * 30)
    (tmp_path / "b.txt").write_text("cab cab\n" * 30)
    (tmp_path / "c.txt").write_text("xyz abc\n" * 30)
    config = TrainConfig(updates=30, seed=0, sample_every=1000)
    first = start_run([str(tmp_path / "a.txt")], RNNConfig(hidden=8), config,
                      RunConfig(out=tmp_path / "a", passage_length=10, val_fraction=0), progress=False)
    initial = RunFolder(tmp_path / "a").load("last")
    np.testing.assert_array_equal(initial.params.flat, first.state.params.flat)
    second = start_run([str(tmp_path / "b.txt")], RNNConfig(hidden=99), config,
                       RunConfig(out=tmp_path / "b", passage_length=10, init_from=tmp_path / "a", val_fraction=0),
                       progress=False)
    assert second.vocab == first.vocab and second.state.params.hidden == 8
    with pytest.raises(CorpusError, match="'xyz'"):
        start_run([str(tmp_path / "c.txt")], RNNConfig(), config,
                  RunConfig(out=tmp_path / "c", init_from=tmp_path / "a", val_fraction=0), progress=False)
    assert not (tmp_path / "c").exists()


def test_hf_folder_of_the_same_tweets_trains_identically(tmp_path):
    from datasets import Dataset

    texts = list(TweetLoader().iter_texts(str(SAMPLE_TWEETS)))
    Dataset.from_dict({"text": texts, "likes": list(range(len(texts)))}).save_to_disk(str(tmp_path / "ds"))
    json_corpus = load_corpus([str(SAMPLE_TWEETS)])
    hf_corpus = load_corpus([f"hf:{tmp_path / 'ds'}"])
    assert hf_corpus.text == json_corpus.text
    config = TrainConfig(updates=60, log_every=10, seed=5, sample_every=1000)
    runs = [
        start_run([spec], RNNConfig(hidden=12), config, RunConfig(out=tmp_path / name, passage_length=20,
                                                                  val_fraction=0), progress=False)
        for name, spec in (("json", str(SAMPLE_TWEETS)), ("hf", f"hf:{tmp_path / 'ds'}"))
    ]
    assert runs[0].vocab == runs[1].vocab
    assert runs[0].state.history == runs[1].state.history
    np.testing.assert_array_equal(runs[0].state.params.flat, runs[1].state.params.flat)


def test_held_out_text_is_capped_so_evaluations_stay_quick(tmp_path):
    from textgen.corpus import VAL_MAX_CHARACTERS, documents_to_hold, hold_out

    text = "".join(f"line {i:07d}\n" for i in range(400_000))  # 5.2M characters: 5% would be 260k
    train_pieces, validation = hold_out([text], continuous=True, fraction=0.05)
    assert VAL_MAX_CHARACTERS - 13 < len(validation) <= VAL_MAX_CHARACTERS and validation.startswith("line ")
    assert "".join(train_pieces) + validation == text
    assert documents_to_hold([100] * 10, 10, 0.3) == 3
    assert documents_to_hold([VAL_MAX_CHARACTERS // 2 + 1] * 10, 10, 0.5) == 1
    assert documents_to_hold([5], 1, 0.5) == 0 and documents_to_hold([5, 5], 2, 0.01) == 1
