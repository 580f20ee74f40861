import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from textgen.errors import CheckpointError, CorpusError
from textgen.vocab import CharVocab, id_dtype

texts = st.text(st.characters(exclude_categories=("Cs",)), min_size=1)


@given(texts)
def test_decode_of_encode_is_the_text(text):
    vocab = CharVocab.from_texts([text])
    assert vocab.decode(vocab.encode(text)) == text


@given(st.lists(texts, min_size=1, max_size=5))
def test_ids_are_exactly_zero_to_size_minus_one(documents):
    vocab = CharVocab.from_texts(documents)
    ids = np.concatenate([vocab.encode(doc) for doc in documents])
    assert sorted(set(ids.tolist())) == list(range(vocab.size))


@given(st.lists(texts, min_size=1, max_size=5), st.randoms())
def test_vocabulary_does_not_depend_on_document_order(documents, random):
    shuffled = list(documents)
    random.shuffle(shuffled)
    assert CharVocab.from_texts(documents) == CharVocab.from_texts(shuffled)


def test_vocabulary_is_sorted_by_code_point():
    vocab = CharVocab.from_texts(["banana", "Ö!"])
    assert vocab.chars == ("!", "a", "b", "n", "Ö")
    assert vocab.encode("nab!").tolist() == [3, 1, 2, 0]


def test_ids_use_the_smallest_unsigned_type():
    assert id_dtype(80) == np.uint8 and id_dtype(256) == np.uint8
    assert id_dtype(257) == np.uint16
    assert CharVocab.from_texts(["abc"]).encode("abc").dtype == np.uint8


def test_encoding_unknown_characters_lists_them():
    vocab = CharVocab.from_texts(["abc"])
    with pytest.raises(CorpusError, match="'xz'"):
        vocab.encode("axbz")


def test_json_round_trip_and_validation():
    vocab = CharVocab.from_texts(["hello\nworld"])
    assert CharVocab.from_json(vocab.to_json()) == vocab
    with pytest.raises(CheckpointError):
        CharVocab.from_json({"format_version": 1, "chars": ["b", "a"]})
    with pytest.raises(CheckpointError):
        CharVocab.from_json({"format_version": 99, "chars": ["a"]})
    with pytest.raises(CheckpointError):
        CharVocab.from_json(["a"])
