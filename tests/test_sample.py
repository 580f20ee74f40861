import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textgen.config import RNNConfig
from textgen.errors import ConfigError, CorpusError
from textgen.loaders.base import END_OF_DOCUMENT
from textgen.models import init_params
from textgen.models.rnn import step_probabilities
from textgen.sample import SampleConfig, draw, filter_probabilities, generate, generate_texts, start_id
from textgen.trainer import TrainConfig, train
from textgen.vocab import CharVocab

DOCS = ["ab ab ab", "cd cd", "ab cd ab", "dc ba"] * 30
TEXT = "".join(doc + END_OF_DOCUMENT for doc in DOCS)


@pytest.fixture(scope="module")
def trained():
    vocab = CharVocab.from_texts([TEXT])
    state = train(vocab.encode(TEXT), vocab, TrainConfig(updates=400, seed=0), np.random.default_rng(0),
                  RNNConfig(hidden=24), progress=False)
    return state.params, vocab


def per_char_loss(params, vocab, text):
    """Mean -log p of each character of ``text`` under the model (T = 1), read from the start state."""
    h = np.zeros((1, params.hidden))
    x = np.array([start_id(vocab)])
    total = 0.0
    for char_id in vocab.encode(text).tolist():
        h, p = step_probabilities(params, h, x)
        total -= np.log(p[0, char_id])
        x = np.array([char_id])
    return total / len(text)


def test_same_seed_same_text_and_other_seed_other_text(trained):
    params, vocab = trained
    config = SampleConfig(length=300)
    first = generate(params, vocab, config, np.random.default_rng(4))
    assert first == generate(params, vocab, config, np.random.default_rng(4))
    assert first != generate(params, vocab, config, np.random.default_rng(5))


def test_lower_temperature_gives_text_the_model_finds_more_likely(trained):
    params, vocab = trained
    losses = {}
    for temperature in (0.5, 1.0):
        texts = generate_texts(params, vocab, SampleConfig(length=150, temperature=temperature, count=20),
                               np.random.default_rng(1))
        losses[temperature] = np.mean([per_char_loss(params, vocab, t.text) for t in texts])
    assert losses[0.5] < losses[1.0]


def test_top_k_1_equals_greedy(trained):
    params, vocab = trained
    greedy = generate(params, vocab, SampleConfig(length=200, greedy=True), np.random.default_rng(0))
    top1 = generate(params, vocab, SampleConfig(length=200, top_k=1), np.random.default_rng(9))
    assert greedy == top1


def test_filters_by_hand():
    p = np.array([[0.1, 0.5, 0.15, 0.25]])
    np.testing.assert_allclose(filter_probabilities(p, SampleConfig(top_k=2)), [[0, 0.5, 0, 0.25]])
    # sorted: 0.5, 0.25, 0.15, 0.1 -> cumulative 0.5, 0.75, 0.9: top_p 0.7 keeps 0.5 and 0.25
    np.testing.assert_allclose(filter_probabilities(p, SampleConfig(top_p=0.7)), [[0, 0.5, 0, 0.25]])
    np.testing.assert_allclose(filter_probabilities(p, SampleConfig(top_p=0.2)), [[0, 0.5, 0, 0]])
    hot = filter_probabilities(p, SampleConfig(temperature=0.5))  # p^2 up to a constant
    np.testing.assert_allclose(hot / hot.sum(), p**2 / (p**2).sum())


def test_draw_follows_the_weights():
    rng = np.random.default_rng(0)
    weights = np.tile([[0.0, 3.0, 1.0]], (20000, 1))
    counts = np.bincount(draw(weights, rng), minlength=3) / 20000
    np.testing.assert_allclose(counts, [0, 0.75, 0.25], atol=0.01)


@settings(max_examples=25, deadline=None)
@given(length=st.integers(0, 60), count=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_samples_have_the_requested_length_and_only_vocabulary_characters(length, count, seed):
    vocab = CharVocab.from_texts(["hello, world\n"])
    params = init_params(RNNConfig(hidden=6, sigma=0.5), vocab.size, np.random.default_rng(seed))
    texts = generate_texts(params, vocab, SampleConfig(length=length, count=count, prime="he"),
                           np.random.default_rng(seed))
    assert len(texts) == count
    for sample in texts:
        assert len(sample.text) == 2 + length and sample.text.startswith("he")
        assert set(sample.text) <= set(vocab.chars)


def test_documents_stop_at_the_end_marker(trained):
    params, vocab = trained
    documents = generate_texts(params, vocab, SampleConfig(length=100, documents=6), np.random.default_rng(2))
    assert len(documents) == 6
    assert all(d.ended and END_OF_DOCUMENT not in d.text and len(d.text) < 100 for d in documents)
    cut = generate_texts(params, vocab, SampleConfig(length=2, documents=3), np.random.default_rng(2))
    assert all(not d.ended and len(d.text) == 2 for d in cut)


def test_documents_need_a_corpus_of_documents():
    vocab = CharVocab.from_texts(["plain continuous text"])
    params = init_params(RNNConfig(hidden=4), vocab.size, np.random.default_rng(0))
    with pytest.raises(CorpusError, match="end-of-document"):
        generate_texts(params, vocab, SampleConfig(documents=2), np.random.default_rng(0))


def test_prime_outside_vocabulary_and_bad_settings(trained):
    params, vocab = trained
    with pytest.raises(CorpusError, match="'xy'"):
        generate(params, vocab, SampleConfig(prime="axy"), np.random.default_rng(0))
    for bad in ({"temperature": 0}, {"top_p": 1.5}, {"top_k": -1}, {"count": 0}, {"documents": 2, "count": 2}):
        with pytest.raises(ConfigError):
            SampleConfig(**bad)


def test_warm_up_leaves_each_stream_just_after_an_end_marker(trained):
    from textgen.sample import RowGenerators, warm_up

    params, vocab = trained
    stop = vocab.char_to_id[END_OF_DOCUMENT]
    h0 = np.zeros((4, params.hidden))

    def generators():
        return RowGenerators([np.random.default_rng(i) for i in range(4)])

    h, x = warm_up(params, h0, np.full(4, stop), stop, 200, generators(), SampleConfig())
    assert (x == stop).all() and not np.allclose(h, 0)
    # a stream that cannot finish within the limit keeps going from where it stood
    h, x = warm_up(params, h0, np.full(4, stop), stop, 1, generators(), SampleConfig())
    assert h.shape == (4, params.hidden) and x.shape == (4,)
