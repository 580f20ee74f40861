"""Word and byte-pair token levels: vocabularies, round trips, bits per character, runs, resumes and vocab.json."""

import json
import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import textbook_loss_and_grads

from textgen.checkpoint import load_checkpoint
from textgen.cli import main
from textgen.config import RNNConfig
from textgen.corpus import Corpus, encode_corpus
from textgen.errors import CheckpointError
from textgen.scoring import score_text
from textgen.loaders.base import END_OF_DOCUMENT
from textgen.models import init_params
from textgen.vocab import BPEVocab, CharVocab, WordVocab, build_vocab, vocab_from_json

TRAINING = ("the cat sat on the mat. the dog sat on the log!\r\n"
            "ünïcödé wörds, 😀 emoji 😀 and 你好世界 你好 too.\n") * 20


def bpe(text=TRAINING, size=300):
    return build_vocab("bpe", set(text), lambda: [text], size)


def word(text=TRAINING, size=40, extra=""):
    return build_vocab("word", set(text) | set(extra), lambda: [text], size)


HOSTILE = ["", "a", "\r\n\r\n", "😀😀😀", "e\u0301", "你好世界", " \t \n", END_OF_DOCUMENT * 3,
           f"the{END_OF_DOCUMENT}{END_OF_DOCUMENT}cat", "mat.mat.mat", "\u00a0\u2028\ufeff"]


@pytest.mark.parametrize("text", HOSTILE)
def test_bpe_decodes_what_it_encodes_even_characters_it_never_saw(text):
    vocab = bpe(TRAINING + END_OF_DOCUMENT)
    ids = vocab.encode(text)
    assert ids.dtype == vocab.dtype and (ids < vocab.size).all()
    assert vocab.decode(ids) == text
    assert vocab.characters(ids) == len(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_bpe_round_trips_any_text(text):
    vocab = _BPE
    assert vocab.decode(vocab.encode(text)) == text


_BPE = bpe()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=sorted(set(TRAINING)), max_size=80))
def test_word_round_trips_any_text_of_its_characters(text):
    vocab = _WORD
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert vocab.characters(ids) == len(text)


_WORD = word()


@pytest.mark.parametrize("text", [t for t in HOSTILE if END_OF_DOCUMENT not in t and "\u00a0" not in t
                                  and "\t" not in t and "\u0301" not in t])
def test_word_decodes_what_it_encodes(text):
    vocab = word(extra=text)
    assert vocab.decode(vocab.encode(text)) == text


def test_a_rare_word_becomes_its_characters_and_a_frequent_one_a_token():
    vocab = word(size=len(set(TRAINING)) + 3)
    chars = set(TRAINING)
    assert vocab.words == tuple(sorted(["the", "sat", "on"]))  # the three most frequent words of two letters or more
    assert vocab.size == len(chars) + 3
    ids = vocab.encode("the log")
    assert [vocab.tokens[i] for i in ids] == ["the", " ", "l", "o", "g"]
    assert "<unk>" not in vocab.tokens


def test_a_word_vocabulary_keeps_every_character_however_small_it_is_asked_to_be():
    vocab = word(size=1)
    assert vocab.size == len(set(TRAINING)) and vocab.words == ()
    assert vocab.decode(vocab.encode(TRAINING)) == TRAINING


def test_a_word_vocabulary_refuses_characters_it_lacks_naming_them():
    from textgen.errors import CorpusError

    with pytest.raises(CorpusError, match="'Ж'"):
        _WORD.encode("the Ж")


def test_the_end_of_document_marker_is_one_token_at_every_level():
    text = f"first one{END_OF_DOCUMENT}second one{END_OF_DOCUMENT}" * 10
    for vocab in (CharVocab.from_texts([text]), word(text, 20), bpe(text, 280)):
        marker = vocab.id_of(END_OF_DOCUMENT)
        assert marker is not None
        ids = vocab.encode(f"one{END_OF_DOCUMENT}first")
        assert list(ids).count(marker) == 1
        assert vocab.decode([marker]) == END_OF_DOCUMENT


def test_bpe_learns_from_the_training_text_only():
    held_out = "zyzzyva " * 200
    corpus = Corpus(TRAINING, [{"spec": "t"}], held_out, 0.1)
    encoded = encode_corpus(corpus, tokens="bpe", vocab_size=400)
    assert not any("zyzz" in token for token in encoded.vocab.tokens)
    assert encoded.vocab.decode(encoded.val_ids) == held_out
    assert any("the" in token for token in encoded.vocab.tokens)


def test_bpe_pieces_cover_several_characters_and_invalid_bytes_decode_to_replacement_characters():
    vocab = _BPE
    ids = vocab.encode(TRAINING)
    assert len(TRAINING) / ids.size > 2
    half = vocab.encode("😀")[:1]  # the emoji's first byte(s) only, as a sample could draw them
    if vocab.token_bytes[half[0]] != "😀".encode():
        assert "\ufffd" in vocab.decode(half)
    stream = vocab.decoder()
    pieces = [stream.feed(vocab.encode("😀")[i : i + 1]) for i in range(vocab.encode("😀").size)]
    assert "".join(pieces) + stream.finish() == "😀" and all(p in ("", "😀") for p in pieces)


def test_a_mixed_chinese_and_emoji_corpus_works_at_every_level():
    rng = np.random.default_rng(0)
    alphabet = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)] + [chr(c) for c in range(0x1F600, 0x1F650)] + [" ", "\n"]
    text = "".join(rng.choice(alphabet, 20_000))
    for level in ("char", "word", "bpe"):
        vocab = build_vocab(level, set(text), lambda: [text], 500)
        ids = vocab.encode(text)
        assert vocab.decode(ids) == text and vocab.characters(ids) == len(text)


def _hand_bits_per_char(params, vocab, text):
    """The model's -log2 p summed over each token after the first, by a textbook loop, over the characters."""
    ids = vocab.encode(text)
    arrays = params.arrays
    loss, _, _ = textbook_loss_and_grads(**arrays, inputs=ids[:-1], targets=ids[1:],
                                         h_prev=np.zeros(arrays["W"].shape[0]))
    first_token = vocab.decode(ids[:1])
    return loss / math.log(2) / (len(text) - len(first_token))


@pytest.mark.parametrize("level", ["char", "word", "bpe"])
def test_bits_per_character_is_the_loss_over_tokens_divided_by_the_characters(level):
    held_out = "the dog sat on the mat, 你好 😀!\n"
    vocab = build_vocab(level, set(TRAINING) | set(held_out), lambda: [TRAINING], 300 if level == "bpe" else 40)
    params = init_params(RNNConfig(hidden=8, sigma=0.3), vocab.size, np.random.default_rng(3))
    nats, characters = score_text(params, vocab, held_out, "the text")
    assert characters == len(held_out)
    assert nats / math.log(2) == pytest.approx(_hand_bits_per_char(params, vocab, held_out), rel=1e-12)
    if level != "char":
        assert vocab.encode(held_out).size < len(held_out)  # the tokens are fewer than the characters


def _write_corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog, again 😀.\n" for i in range(300)),
                    encoding="utf-8")
    return path


SMALL = ["--hidden", "10", "--sample-every", "40", "--sample-length", "30", "--log-every", "10",
         "--checkpoint-every", "30", "--eval-every", "40", "--passage-length", "40", "--no-progress", "--seed", "5"]


def test_a_resumed_bpe_lstm_run_equals_an_uninterrupted_one_bit_for_bit(tmp_path, capsys):
    common = ["--corpus", str(_write_corpus(tmp_path)), "--tokens", "bpe", "--vocab-size", "300", "--cell", "lstm",
              "--batch-size", "2", *SMALL]
    assert main(["train", *common, "--updates", "120", "--out", str(tmp_path / "whole")]) == 0
    assert main(["train", *common, "--updates", "60", "--out", str(tmp_path / "split")]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--updates", "120", "--no-progress"]) == 0
    capsys.readouterr()
    for name in ("last.npz", "best.npz"):
        a, b = load_checkpoint(tmp_path / "whole" / name), load_checkpoint(tmp_path / "split" / name)
        np.testing.assert_array_equal(a.params.flat, b.params.flat)
    a, b = load_checkpoint(tmp_path / "whole" / "last.npz"), load_checkpoint(tmp_path / "split" / "last.npz")
    for name in a.arrays:
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
    assert (tmp_path / "whole" / "vocab.json").read_bytes() == (tmp_path / "split" / "vocab.json").read_bytes()
    assert (tmp_path / "whole" / "best_passage.txt").read_text() == (tmp_path / "split" / "best_passage.txt").read_text()


def _tweets(tmp_path):
    path = tmp_path / "tweets.jsonl"
    lines = [orjson.dumps({"text": f"tweet {i}: the cat sat on the mat 😀", "created_at":
                           "Mon Mar 26 09:45:30 +0000 2018"}).decode() for i in range(150)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("level", ["word", "bpe"])
def test_train_generate_documents_and_evaluate_a_token_run(tmp_path, capsys, level):
    run = tmp_path / "run"
    size = "40" if level == "word" else "300"
    assert main(["train", "--corpus", str(_tweets(tmp_path)), "--tokens", level, "--vocab-size", size,
                 "--updates", "80", "--out", str(run), *SMALL]) == 0
    err = capsys.readouterr().err
    assert f"{level} tokens of" in err and "characters on average" in err
    record = orjson.loads((run / "config.json").read_bytes())
    assert record["train"]["tokens"] == level and record["corpus"]["text_characters"] > record["corpus"]["characters"]
    assert orjson.loads((run / "vocab.json").read_bytes())["tokens"] == level
    assert main(["generate", str(run), "--documents", "3", "--length", "60", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert END_OF_DOCUMENT not in out and out.strip()
    for extra in (["--greedy"], ["--top-k", "3", "--temperature", "0.7"], ["--top-p", "0.9", "--count", "2"]):
        assert main(["generate", str(run), "--length", "57", "--prime", "tweet", "--seed", "2", *extra]) == 0
        texts = capsys.readouterr().out
        assert texts.startswith("tweet")
    assert main(["evaluate", str(run)]) == 0
    assert "bits/char" in capsys.readouterr().out
    assert main(["report", str(run)]) == 0
    capsys.readouterr()
    assert "characters per token" in (run / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("level", ["word", "bpe"])
def test_samples_have_exactly_the_requested_characters(tmp_path, level):
    import textgen

    run = tmp_path / "run"
    textgen.train(corpus=str(_write_corpus(tmp_path)), tokens=level, vocab_size=40 if level == "word" else 300,
                  updates=30, out=run, hidden=10, progress=False, seed=1, passage_length=10)
    model = textgen.load(run)
    for length in (0, 1, 7, 333):
        texts = model.generate(length, count=3, seed=4, prime="line")
        texts = texts if isinstance(texts, list) else [texts]
        for text in texts:
            assert len(text) == len("line") + length and text.startswith("line")
    assert model.token_level == level


def test_init_from_keeps_the_other_runs_vocabulary_and_says_so(tmp_path, capsys):
    corpus = _write_corpus(tmp_path)
    assert main(["train", "--corpus", str(corpus), "--tokens", "word", "--updates", "40", "--out",
                 str(tmp_path / "a"), *SMALL]) == 0
    capsys.readouterr()
    # another level given is refused, naming the other run's
    assert main(["train", "--corpus", str(corpus), "--tokens", "bpe", "--updates", "40", "--init-from",
                 str(tmp_path / "a"), "--out", str(tmp_path / "b"), *SMALL]) == 1
    err = capsys.readouterr().err
    assert "--tokens word" in err and len(err.strip().splitlines()) == 1
    # none given: the other run's level and vocabulary; the same given again: taken too
    for out, extra in (("b", []), ("c", ["--tokens", "word"])):
        assert main(["train", "--corpus", str(corpus), *extra, "--updates", "80", "--init-from",
                     str(tmp_path / "a"), "--out", str(tmp_path / out), *SMALL]) == 0
        assert (tmp_path / "a" / "vocab.json").read_bytes() == (tmp_path / out / "vocab.json").read_bytes()
        assert json.loads((tmp_path / out / "config.json").read_text())["train"]["tokens"] == "word"
    # a vocabulary size without a level is checked against the other run's (a word run), not against char level
    capsys.readouterr()
    requested = json.loads((tmp_path / "a" / "config.json").read_text())["train"]["vocab_size"]
    assert main(["train", "--corpus", str(corpus), "--vocab-size", str(requested + 1), "--updates", "80",
                 "--init-from", str(tmp_path / "a"), "--out", str(tmp_path / "d"), *SMALL]) == 1
    err = capsys.readouterr().err
    assert f"--tokens word --vocab-size {requested}" in err and "at --tokens char" not in err, err
    assert not (tmp_path / "d").exists()
    assert main(["train", "--corpus", str(corpus), "--vocab-size", str(requested), "--updates", "80",
                 "--init-from", str(tmp_path / "a"), "--out", str(tmp_path / "d"), *SMALL]) == 0

    # a run of another size than the level's default: its level given again, without the size, takes its size too
    assert main(["train", "--corpus", str(corpus), "--tokens", "word", "--vocab-size", "30", "--updates", "40",
                 "--out", str(tmp_path / "e"), *SMALL]) == 0
    assert main(["train", "--corpus", str(corpus), "--tokens", "word", "--updates", "40", "--init-from",
                 str(tmp_path / "e"), "--out", str(tmp_path / "f"), *SMALL]) == 0, capsys.readouterr().err
    assert (tmp_path / "e" / "vocab.json").read_bytes() == (tmp_path / "f" / "vocab.json").read_bytes()
    assert json.loads((tmp_path / "f" / "config.json").read_text())["train"]["vocab_size"] == 30


def test_vocab_size_is_refused_at_char_level_and_bounded(capsys, tmp_path):
    corpus = str(_write_corpus(tmp_path))
    for extra in (["--vocab-size", "100"], ["--tokens", "bpe", "--vocab-size", "-1"],
                  ["--tokens", "bpe", "--vocab-size", "10000000"], ["--tokens", "sentencepiece"]):
        assert main(["train", "--corpus", corpus, "--out", str(tmp_path / "x"), *extra]) in (1, 2)
        err = capsys.readouterr().err
        assert "--vocab-size" in err or "--tokens" in err
    assert not (tmp_path / "x").exists()


def _corruptions():
    def bad_json(data):
        return b"{not json"

    def edit(change):
        return lambda data: orjson.dumps(change(orjson.loads(data)))

    def wrong_level(d):
        return {**d, "tokens": "sentencepiece"}

    def size_as_text(d):
        return {**d, "vocab_size": "300"}

    def tokenizer_as_text(d):
        return {**d, "tokenizer": "not a tokenizer"}

    def tokenizer_does_not_parse(d):
        return {**d, "tokenizer": {**d["tokenizer"], "model": {**d["tokenizer"]["model"], "vocab": [1, 2]}}}

    def duplicate_ids(d):
        vocab = dict(d["tokenizer"]["model"]["vocab"])
        first, second = list(vocab)[:2]
        vocab[second] = vocab[first]
        return {**d, "tokenizer": {**d["tokenizer"], "model": {**d["tokenizer"]["model"], "vocab": vocab}}}

    def with_normalizer(d):
        return {**d, "tokenizer": {**d["tokenizer"], "normalizer": {"type": "Lowercase"}}}

    def more_tokens_than_asked(d):
        return {**d, "vocab_size": 1}

    def another_size_asked(d):  # readable alone, but not the size the checkpoint and config.json were made with
        return {**d, "vocab_size": d["vocab_size"] + 50}

    return [bad_json, edit(wrong_level), edit(size_as_text), edit(tokenizer_as_text), edit(tokenizer_does_not_parse),
            edit(duplicate_ids), edit(with_normalizer), edit(more_tokens_than_asked), edit(another_size_asked)]


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    import textgen

    folder = tmp_path_factory.mktemp("bpe")
    corpus = folder / "c.txt"
    corpus.write_text("the cat sat on the mat. " * 300, encoding="utf-8")
    textgen.train(corpus=str(corpus), tokens="bpe", vocab_size=300, updates=20, out=folder / "run", hidden=8,
                  progress=False, seed=1, passage_length=10)
    return folder / "run"


@pytest.mark.parametrize("corrupt", _corruptions())
def test_a_damaged_vocab_json_is_one_line_naming_the_file(bpe_run, tmp_path, corrupt, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(bpe_run, run)
    path = run / "vocab.json"
    path.write_bytes(corrupt(path.read_bytes()))
    assert main(["train", "--resume", str(run), "--updates", "30", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "vocab.json" in err


def test_vocab_json_readers_refuse_bad_word_vocabularies():
    good = _WORD.to_json()
    for bad in ({**good, "words": ["the", "the"]}, {**good, "words": ["b", "a"]}, {**good, "words": [3]},
                {**good, "chars": ["a", "a"]}, {**good, "vocab_size": True}, {**good, "words": ["a b"]}):
        with pytest.raises(CheckpointError, match="where"):
            vocab_from_json(bad, "where")
    assert vocab_from_json(good) == _WORD
    old = {"format_version": 1, "chars": ["a", "b"]}  # a run folder from before token levels
    assert vocab_from_json(old) == CharVocab(("a", "b"))
    assert isinstance(vocab_from_json(_BPE.to_json()), BPEVocab) and isinstance(_WORD, WordVocab)


def test_char_vocab_json_is_unchanged():
    vocab = build_vocab("char", set("hello"), lambda: ["hello"])
    assert vocab.to_json() == {"format_version": 1, "chars": ["e", "h", "l", "o"]}


def test_a_sweep_may_search_the_token_level_and_the_vocabulary_size(tmp_path):
    from textgen.sweep.spec import read_spec

    (tmp_path / "book.txt").write_text("the cat sat on the mat.\n" * 50, encoding="utf-8")
    path = tmp_path / "sweep.toml"
    path.write_text('[train]\ncorpus = ["book.txt"]\nupdates = 50\ntokens = "bpe"\n\n'
                    '[search]\nvocab_size = [300, 500]\nhidden = [8, 16]\n', encoding="utf-8")
    spec = read_spec(path)
    assert [(d.name, d.values) for d in spec.space] == [("vocab_size", (300, 500)), ("hidden", (8, 16))]
    path.write_text('[train]\ncorpus = ["book.txt"]\nupdates = 50\n\n[search]\ntokens = ["char", "word"]\n',
                    encoding="utf-8")
    assert [(d.name, d.values) for d in read_spec(path).space] == [("tokens", ("char", "word"))]
    path.write_text('[train]\ncorpus = ["book.txt"]\n\n[search]\ntokens = ["char", "syllable"]\n', encoding="utf-8")
    with pytest.raises(Exception, match="tokens"):
        read_spec(path)


@pytest.mark.parametrize("level", ["word", "bpe"])
def test_a_streamed_corpus_gives_the_ids_and_vocabulary_of_one_read_in_memory(tmp_path, level):
    from textgen.corpus import load_corpus, stream_encode

    book = tmp_path / "book.txt"
    book.write_text("".join(f"Line {i} of a longer book, with some wörds 😀 and more words.\n" for i in range(3000)),
                    encoding="utf-8")
    streamed = stream_encode(str(book), tmp_path / "ids.bin", tmp_path / "val.bin", val_fraction=0.1, tokens=level,
                             vocab_size=300)
    in_memory = encode_corpus(load_corpus([str(book)], val_fraction=0.1), tokens=level, vocab_size=300)
    assert streamed.vocab == in_memory.vocab
    np.testing.assert_array_equal(streamed.ids, in_memory.ids)
    np.testing.assert_array_equal(streamed.val_ids, in_memory.val_ids)
    assert streamed.vocab.decode(streamed.ids) + streamed.vocab.decode(streamed.val_ids) == book.read_text("utf-8")
    assert streamed.sources[0]["val_characters"] == in_memory.sources[0]["val_characters"]


def test_a_streamed_bpe_run_trains_resumes_and_evaluates(tmp_path, capsys):
    from textgen.config import RunConfig, TrainConfig
    from textgen.run import start_run

    book = tmp_path / "book.txt"
    book.write_text("".join(f"Line {i} of a longer book, with some words.\n" for i in range(500)))
    run = tmp_path / "run"
    config = TrainConfig(updates=60, log_every=10, checkpoint_every=20, sample_every=1000, seed=2, tokens="bpe",
                         vocab_size=300)
    start_run([str(book)], RNNConfig(hidden=10), config,
              RunConfig(out=run, val_fraction=0.05, passage_length=20, stream_over=0), progress=False)
    corpus = orjson.loads((run / "config.json").read_bytes())["corpus"]
    assert corpus["text_characters"] + corpus["val_text_characters"] == len(book.read_text())
    assert main(["train", "--resume", str(run), "--updates", "90", "--no-progress"]) == 0
    assert main(["evaluate", str(run)]) == 0
    assert f"{corpus['val_text_characters']:,} characters" in capsys.readouterr().out


@pytest.mark.parametrize("flags,window", [
    (["--tokens", "word", "--seq-length", "600"], "--seq-length"),
    (["--tokens", "bpe", "--cell", "gpt", "--heads", "2", "--context", "600"], "--context"),
])
def test_a_corpus_too_short_in_tokens_is_refused_counting_tokens_not_characters(tmp_path, capsys, flags, window):
    import re

    corpus = tmp_path / "c.txt"
    text = "the cat sat on the mat. " * 40  # 960 characters: enough for a window of 600 characters, not of tokens
    corpus.write_text(text, encoding="utf-8")
    folder = tmp_path / "run"
    code = main(["train", "--corpus", str(corpus), "--val-fraction", "0", "--updates", "1", "--out", str(folder),
                 *flags, *SMALL])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    found = re.search(r"the corpus has (\d+) (\w+) tokens to train on", err)
    assert found and found.group(2) == flags[1] and int(found.group(1)) < 601 < len(text), err
    assert f"{window} × --batch-size + 1" in err and "characters to train on" not in err, err
    assert not folder.exists()
