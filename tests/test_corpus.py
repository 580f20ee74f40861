import hashlib
from pathlib import Path

import numpy as np
import pytest

from textgen.config import RNNConfig, RunConfig
from textgen.corpus import LoaderOption, interleave, load_corpus, parse_weights, recorded_options, split_blocks
from textgen.errors import ConfigError, CorpusError, PluginError
from textgen.loaders.base import END_OF_DOCUMENT
from textgen.loaders.tweets import TweetLoader
from textgen.registry import discover
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
    with pytest.raises(ConfigError, match=r"option min_length=3: no loader used here takes 'min_length'; the text "
                                          r"loader \(built-in\) takes encoding, strip_gutenberg, keep_carriage_returns, "
                                          r"keep_byte_order_mark$"):
        load_corpus([str(tmp_path / "a.txt")], options={"min_length": 3})


def plugins(tmp_path, **entries):
    """A registry with the built-ins and ``entries`` (name -> plugin_fixtures class) as one installed plugin."""
    from test_registry import fake_distribution

    return discover(fake_distribution(tmp_path / "site", "songs-plugin", "1.0",
                                      {name: f"plugin_fixtures:{value}" for name, value in entries.items()}))


def write_songs(path):
    rows = [("Rain", "rain on the roof"), ("Sun", "sun"), ("Wind", "wind in the trees all night"), ("Snow", "snow")]
    path.write_text("title,lyrics\n" + "".join(f"{title},{lyrics}\n" for title, lyrics in rows), encoding="utf-8")
    return str(path), rows


def test_option_text_is_converted_to_each_parameters_type(tmp_path):
    registry = plugins(tmp_path, lyrics="LyricsLoader")
    path, rows = write_songs(tmp_path / "hits.lyrics.csv")
    given = [LoaderOption.parse(text) for text in ("column=title", "upper=True", "min-words=1", "share=0.75")]
    corpus = load_corpus([path], options=given, registry=registry)
    assert corpus.text == "".join(title.upper() + END_OF_DOCUMENT for title, _ in rows[:3])
    assert corpus.sources[0]["options"] == {"column": "title", "upper": True, "min_words": 1, "share": 0.75}
    words = load_corpus([path], options=[LoaderOption.parse("lyrics.min_words=3")], registry=registry)
    assert words.text == "".join(lyrics + END_OF_DOCUMENT for _, lyrics in rows if len(lyrics.split()) >= 3)


@pytest.mark.parametrize("text,message", [
    ("min_words=many", r"--option min_words=many: the lyrics loader's min_words takes a whole number, not 'many'$"),
    ("upper=yes", r"--option upper=yes: the lyrics loader's upper takes true or false, not 'yes'$"),
    ("share=half", r"--option share=half: the lyrics loader's share takes a number, not 'half'$"),
    ("colour=red", (r"--option colour=red: no loader used here takes 'colour'; the lyrics loader "
                    r"\(songs-plugin 1\.0\) takes column, upper, min_words, share$")),
    ("text.column=title", (r"--option text\.column=title is for the text loader, which no --corpus here uses "
                           r"\(they use lyrics\)$")),
    ("column", r"--option 'column': expected KEY=VALUE or LOADER\.KEY=VALUE"),
    ("=title", r"--option '=title': expected KEY=VALUE"),
])
def test_a_bad_option_is_one_line_saying_what_the_loader_takes(tmp_path, text, message):
    registry = plugins(tmp_path, lyrics="LyricsLoader")
    path, _ = write_songs(tmp_path / "hits.lyrics.csv")
    with pytest.raises(ConfigError, match=message):
        load_corpus([path], options=[LoaderOption.parse(text)], registry=registry)


TEXT_READ = {"keep_carriage_returns": False, "keep_byte_order_mark": False}  # how the text loader read, recorded


def test_built_in_flags_reach_only_their_own_loader_never_a_plugin_sharing_the_keyword(tmp_path):
    registry = plugins(tmp_path, splits="SplitLoader")
    (tmp_path / "a.splits").write_text("one\n")
    (tmp_path / "b.txt").write_bytes("café\n".encode("latin-1"))
    hf_split = LoaderOption("split", "test", "hf", "--hf-split")
    with pytest.raises(ConfigError, match=r"^--hf-split is for the hf loader, which no --corpus here uses \(they use "
                                          r"splits\)$"):
        load_corpus([str(tmp_path / "a.splits")], options=[hf_split], registry=registry)
    encoding = LoaderOption("encoding", "latin-1", "text", "--encoding")
    corpus = load_corpus([str(tmp_path / "a.splits"), str(tmp_path / "b.txt")], options=[encoding], registry=registry)
    assert [source["options"] for source in corpus.sources] == [{}, {"encoding": "latin-1", **TEXT_READ}]
    assert "café" in corpus.text


def test_an_option_goes_to_every_chosen_loader_taking_it_and_is_set_once(tmp_path):
    registry = plugins(tmp_path, splits="SplitLoader")
    (tmp_path / "a.splits").write_text("one\n")
    (tmp_path / "b.txt").write_text("two\n")
    specs = [str(tmp_path / "a.splits"), str(tmp_path / "b.txt")]
    corpus = load_corpus(specs, options=[LoaderOption.parse("encoding=ascii")], registry=registry)
    assert [source["options"] for source in corpus.sources] == [{"encoding": "ascii"}, {"encoding": "ascii", **TEXT_READ}]
    corpus = load_corpus(specs, options=[LoaderOption.parse("splits.encoding=ascii")], registry=registry)
    assert [source["options"] for source in corpus.sources] == [{"encoding": "ascii"}, TEXT_READ]
    twice = [LoaderOption("encoding", "latin-1", "text", "--encoding"), LoaderOption.parse("encoding=ascii")]
    with pytest.raises(ConfigError, match=r"--option encoding=ascii and --encoding both set the text loader's "
                                          r"encoding; give it once"):
        load_corpus(specs, options=twice, registry=registry)


def test_a_loader_taking_any_keyword_gets_every_option_as_given(tmp_path):
    registry = plugins(tmp_path, anykw="AnyKeywords", refuses="RefusesKeywords")
    (tmp_path / "a.anykw").write_text("")
    given = [LoaderOption.parse("depth=3"), LoaderOption.parse("fast=true")]
    corpus = load_corpus([str(tmp_path / "a.anykw")], options=given, registry=registry)
    assert corpus.text == "depth='3'\nfast='true'\n\n"  # as text: no annotation to convert by
    (tmp_path / "a.refuses").write_text("")
    with pytest.raises(PluginError, match=r"^corpus loader 'refuses' \(songs-plugin 1\.0\) failed while setting up to "
                                          r"read .*: TypeError: __init__\(\) got an unexpected keyword argument 'depth'"):
        load_corpus([str(tmp_path / "a.refuses")], options=given, registry=registry)


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

    class SmoothLosses:
        def __init__(self):
            self.rows = []

        def on_log(self, record):
            self.rows.append((record["update"], record["smooth_loss"]))

    logged = {"json": SmoothLosses(), "hf": SmoothLosses()}
    runs = [
        start_run([spec], RNNConfig(hidden=12), config, RunConfig(out=tmp_path / name, passage_length=20,
                                                                  val_fraction=0), progress=False,
                  callbacks=logged[name])
        for name, spec in (("json", str(SAMPLE_TWEETS)), ("hf", f"hf:{tmp_path / 'ds'}"))
    ]
    assert runs[0].vocab == runs[1].vocab
    assert logged["json"].rows == logged["hf"].rows
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


def test_the_held_out_cap_is_a_setting_for_continuous_text_and_for_documents(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("".join(f"line {i:04d} of the book\n" for i in range(1000)))  # 22 characters a line
    text = book.read_text()
    corpus = load_corpus([str(book)], val_fraction=0.5, val_max=1000)
    # the last ~1000 characters, from a line start: 45 whole lines (990 characters), the rest trained on
    assert corpus.validation == text[-990:] and corpus.text == text[:-990]
    # with the default cap of 250k the fraction rules: from the line start after the middle
    assert load_corpus([str(book)], val_fraction=0.5).validation == text[len(text) // 2 + 22:]
    tweets = load_corpus([str(SAMPLE_TWEETS)], val_fraction=0.5, val_max=300)
    held = tweets.validation.split(END_OF_DOCUMENT)[:-1]
    assert 1 <= len(held) and sum(len(t) + 1 for t in held) <= max(300, len(held[0]) + 1)
    every = [t for t in load_corpus([str(SAMPLE_TWEETS)]).text.split(END_OF_DOCUMENT)[:-1]]
    assert held == every[-len(held):]  # the last whole tweets
