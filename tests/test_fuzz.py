"""Fuzzing of what users hand textgen: damaged checkpoints and random corpus files.

Every input must give a result or the one error type meant for it (CheckpointError for checkpoints,
a TextgenError for corpora): never another exception, and never a hang. Each test counts the
examples it ran and checks that hypothesis really ran them.
"""

from __future__ import annotations

import io
import json
import shutil
import string
import tempfile
import threading
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from textgen.checkpoint import META_KEY, Checkpoint, load_checkpoint, save_checkpoint
from textgen.config import RNNConfig
from textgen.corpus import Corpus, load_corpus
from textgen.errors import CheckpointError, TextgenError
from textgen.models import init_params
from textgen.vocab import CharVocab

EXAMPLES_RUN: dict[str, int] = {}  # test name -> examples it ran, for whoever wants the numbers
SECONDS_PER_EXAMPLE = 30  # far above what one example needs; only a hang gets near it
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # `datasets` examples


def outcome(call) -> BaseException | None:
    """Run ``call()`` in a thread; return the exception it raised (None if it returned); fail if it hangs."""
    caught: list[BaseException | None] = []

    def target():
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - handed back to the test, which judges it
            caught.append(error)
        else:
            caught.append(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(SECONDS_PER_EXAMPLE)
    if thread.is_alive():
        pytest.fail(f"{call} was still running after {SECONDS_PER_EXAMPLE} s")
    return caught[0]


# --- checkpoints ------------------------------------------------------------------------------


def make_checkpoint() -> Checkpoint:
    """A small checkpoint that can resume training, as `RunRecorder` writes `last.npz`."""
    vocab = CharVocab.from_texts(["hello world"])
    model = RNNConfig(hidden=5)
    params = init_params(model, vocab.size, np.random.default_rng(0))
    arrays = {
        "adagrad_memory": np.arange(params.flat.size, dtype="float64"),
        "h": np.ones((1, 5)),
        "best_flat": params.flat.copy(),
    }
    return Checkpoint(params, vocab, model, {"update": 7, "train": {"seq_length": 25}}, arrays)


@cache
def valid_checkpoint_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "last.npz"
        save_checkpoint(path, make_checkpoint())
        load_checkpoint(path)  # the starting point is itself valid
        return path.read_bytes()


@cache
def valid_members() -> dict[str, bytes]:
    """The .npy members of the valid checkpoint by archive name (``U.npy``, ``meta_json.npy``, ...)."""
    with zipfile.ZipFile(io.BytesIO(valid_checkpoint_bytes())) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@cache
def valid_meta() -> dict:
    with np.load(io.BytesIO(valid_checkpoint_bytes())) as archive:
        return json.loads(archive[META_KEY].tobytes())


VALID_SIZE = len(valid_checkpoint_bytes())


def check_checkpoint(tmp_path: Path, data: bytes) -> None:
    """Write ``data`` as a checkpoint; loading it must succeed or raise CheckpointError naming the file."""
    path = tmp_path / "last.npz"
    path.write_bytes(data)
    error = outcome(lambda: load_checkpoint(path))
    if error is None:
        return
    if not isinstance(error, CheckpointError):
        raise error
    assert str(path) in str(error) and "\n" not in str(error)


def zip_bytes(members: dict[str, bytes], compression: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header_only(descr: str, shape: tuple[int, ...], payload: bytes) -> bytes:
    """A .npy file whose header declares any shape, followed by whatever bytes (usually too few)."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin-1")
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
member_names = st.sampled_from([*"bcUWVh", "adagrad_memory", "best_flat", META_KEY, "extra"]).flatmap(
    lambda stem: st.sampled_from([stem + ".npy", stem])
) | st.text(string.ascii_letters + "._/-", min_size=1, max_size=12)
npy_dtypes = st.sampled_from(["float64", "float32", "uint8", "int64", "bool", "complex128", "<U2"])
member_data = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=200).map(lambda rest: b"\x93NUMPY\x01\x00" + rest),
    hnp.arrays(npy_dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)).map(npy_bytes),
    st.builds(
        npy_header_only,
        st.sampled_from(["<f8", "<f4", "|u1", "|O", "<i8", "[('a', '<f8')]"]),
        st.lists(st.integers(0, 2**62), max_size=3).map(tuple),
        st.binary(max_size=64),
    ),
    json_values.map(lambda value: npy_bytes(np.frombuffer(json.dumps(value).encode(), np.uint8))),
)
compressions = st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])


def test_truncated_checkpoints_load_or_raise_checkpoint_error(tmp_path):
    ran = 0

    @FAST
    @given(length=st.integers(0, VALID_SIZE - 1))
    def check(length):
        nonlocal ran
        ran += 1
        check_checkpoint(tmp_path, valid_checkpoint_bytes()[:length])

    check()
    EXAMPLES_RUN["test_truncated_checkpoints_load_or_raise_checkpoint_error"] = ran
    assert ran >= 100


def test_bit_flipped_checkpoints_load_or_raise_checkpoint_error(tmp_path):
    ran = 0
    # half of the flips land in the last quarter, where the zip's central directory is
    positions = st.integers(0, VALID_SIZE * 8 - 1) | st.integers(VALID_SIZE * 6, VALID_SIZE * 8 - 1)

    @FAST
    @given(flips=st.lists(positions, min_size=1, max_size=8))
    def check(flips):
        nonlocal ran
        ran += 1
        data = bytearray(valid_checkpoint_bytes())
        for bit in flips:
            data[bit // 8] ^= 1 << (bit % 8)
        check_checkpoint(tmp_path, bytes(data))

    check()
    EXAMPLES_RUN["test_bit_flipped_checkpoints_load_or_raise_checkpoint_error"] = ran
    assert ran >= 100


def test_random_bytes_raise_checkpoint_error(tmp_path):
    ran = 0
    magic = st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00"])

    @FAST
    @given(prefix=magic, rest=st.binary(max_size=4096))
    def check(prefix, rest):
        nonlocal ran
        ran += 1
        check_checkpoint(tmp_path, prefix + rest)

    check()
    EXAMPLES_RUN["test_random_bytes_raise_checkpoint_error"] = ran
    assert ran >= 100


def test_zips_with_random_members_load_or_raise_checkpoint_error(tmp_path):
    ran = 0

    @FAST
    @given(
        keep=st.sets(st.sampled_from(sorted(valid_members()))),
        extra=st.dictionaries(member_names, member_data, max_size=4),
        compression=compressions,
    )
    def check(keep, extra, compression):
        nonlocal ran
        ran += 1
        members = {name: data for name, data in valid_members().items() if name in keep}
        members.update(extra)
        check_checkpoint(tmp_path, zip_bytes(members, compression))

    check()
    EXAMPLES_RUN["test_zips_with_random_members_load_or_raise_checkpoint_error"] = ran
    assert ran >= 100


def locate(meta: dict, key: str) -> tuple[dict | None, str]:
    """The dict holding ``key`` ("model" or "model.hidden") and the field name, or None if it is gone."""
    outer, _, inner = key.partition(".")
    if not inner:
        return meta, outer
    return (meta[outer], inner) if isinstance(meta.get(outer), dict) else (None, inner)


def test_random_metadata_json_loads_or_raises_checkpoint_error(tmp_path):
    ran = 0
    keys = st.sampled_from(["format_version", "vocab", "model", "arrays", "model.hidden", "model.sigma",
                            "model.dtype", "vocab.chars", "vocab.format_version"])
    plausible = json_values | st.integers(-3, 40) | st.sampled_from(
        [["h"], ["h", "best_flat"], ["adagrad_memory", "h", "best_flat", "h"], "float32", "float64", 2**40]
    )

    @FAST
    @given(
        whole=st.none() | json_values,
        changes=st.dictionaries(keys, plausible, max_size=3),
        deleted=st.sets(keys, max_size=2),
    )
    def check(whole, changes, deleted):
        nonlocal ran
        ran += 1
        if whole is not None:
            meta = whole  # a random JSON value in place of the metadata
        else:  # the real metadata with a few fields replaced or removed
            meta = json.loads(json.dumps(valid_meta()))
            for key in deleted:
                owner, field = locate(meta, key)
                if owner is not None:
                    owner.pop(field, None)
            for key, value in changes.items():
                owner, field = locate(meta, key)
                if owner is not None:
                    owner[field] = value
        members = dict(valid_members())
        # the stdlib writes big integers and NaN too, which the loader's JSON parser refuses
        members[META_KEY + ".npy"] = npy_bytes(np.frombuffer(json.dumps(meta).encode(), np.uint8))
        check_checkpoint(tmp_path, zip_bytes(members, zipfile.ZIP_STORED))

    check()
    EXAMPLES_RUN["test_random_metadata_json_loads_or_raises_checkpoint_error"] = ran
    assert ran >= 100


# --- corpora ----------------------------------------------------------------------------------------


def check_corpus(spec: str, options: dict | None = None) -> None:
    """``load_corpus([spec])`` must return a non-empty Corpus or raise a TextgenError."""
    result: list[Corpus] = []
    error = outcome(lambda: result.append(load_corpus([spec], options=options)))
    if error is None:
        assert isinstance(result[0], Corpus) and isinstance(result[0].text, str) and result[0].text
    elif not isinstance(error, TextgenError):
        raise error
    else:
        assert str(error) and "\n" not in str(error).strip()


def some_bytes(prefixes: list[bytes], max_size: int = 2000) -> st.SearchStrategy[bytes]:
    """Random bytes, random text (encoded), or random bytes after a prefix that gets a parser going."""
    return st.one_of(
        st.binary(max_size=max_size),
        st.text(max_size=max_size // 4).map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.tuples(st.sampled_from(prefixes), st.binary(max_size=max_size)).map(b"".join),
    )


def test_random_bytes_as_a_text_file_give_a_corpus_or_a_textgen_error(tmp_path):
    ran = 0
    prefixes = [b"\xef\xbb\xbf", b"\xff\xfe", b"*** START OF THE PROJECT GUTENBERG EBOOK X ***\n"]

    @FAST
    @given(
        data=some_bytes(prefixes),
        suffix=st.sampled_from([".txt", ".md"]),
        options=st.fixed_dictionaries(
            {},
            optional={
                "encoding": st.sampled_from(["utf-8", "latin-1", "utf-16", "utf-32", "ascii", "cp1252", "utf-7", "idna",
                                              "punycode", "base64", "rot13", "zlib", "hex", "uu", "bz2", "undefined",
                                              "no-such-codec"]),
                "strip_gutenberg": st.booleans(),
            },
        ),
    )
    def check(data, suffix, options):
        nonlocal ran
        ran += 1
        path = tmp_path / f"book{suffix}"
        path.write_bytes(data)
        check_corpus(str(path), options)

    check()
    EXAMPLES_RUN["test_random_bytes_as_a_text_file_give_a_corpus_or_a_textgen_error"] = ran
    assert ran >= 100


def test_random_bytes_as_a_tweet_file_give_a_corpus_or_a_textgen_error(tmp_path):
    ran = 0
    prefixes = [b"[", b'[{"text": "', b'{"text": "', b"{", b'{"tweets": [', b"\xef\xbb\xbf["]

    @FAST
    @given(data=some_bytes(prefixes), suffix=st.sampled_from([".json", ".jsonl"]))
    def check(data, suffix):
        nonlocal ran
        ran += 1
        path = tmp_path / f"tweets{suffix}"
        path.write_bytes(data)
        check_corpus(str(path))

    check()
    EXAMPLES_RUN["test_random_bytes_as_a_tweet_file_give_a_corpus_or_a_textgen_error"] = ran
    assert ran >= 100


def test_random_bytes_as_a_tweet_zip_give_a_corpus_or_a_textgen_error(tmp_path):
    ran = 0
    member_content = some_bytes([b'{"text": "', b'[{"text": "'], max_size=400)

    @FAST
    @given(
        data=st.one_of(
            some_bytes([b"PK\x03\x04", b"PK\x05\x06"]),
            st.builds(
                zip_bytes,
                st.dictionaries(st.sampled_from(["t.json", "t.jsonl", "a/t.ndjson", "x.txt"]), member_content,
                                max_size=2),
                compressions,
            ),
        ),
    )
    def check(data):
        nonlocal ran
        ran += 1
        path = tmp_path / "tweets.zip"
        path.write_bytes(data)
        check_corpus(str(path))

    check()
    EXAMPLES_RUN["test_random_bytes_as_a_tweet_zip_give_a_corpus_or_a_textgen_error"] = ran
    assert ran >= 100


@pytest.fixture
def offline_hub(monkeypatch):
    """The hf loader must never reach for the network (conftest sets this too, before `datasets` loads)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_random_bytes_as_hf_data_files_give_a_corpus_or_a_textgen_error(tmp_path, offline_hub):
    ran = 0
    prefixes = [b"text,stars\n", b'{"text": "', b"a\n", b"\xff\xfe"]

    @settings(SLOW, max_examples=30)
    @given(data=some_bytes(prefixes, max_size=600), suffix=st.sampled_from([".csv", ".jsonl", ".txt"]))
    def check(data, suffix):
        nonlocal ran
        ran += 1
        folder = tmp_path / f"example{ran}"
        folder.mkdir()
        path = folder / f"rows{suffix}"
        path.write_bytes(data)
        check_corpus(f"hf:{path}")

    check()
    EXAMPLES_RUN["test_random_bytes_as_hf_data_files_give_a_corpus_or_a_textgen_error"] = ran
    assert ran >= 20


@pytest.fixture(scope="module")
def saved_dataset(tmp_path_factory) -> Path:
    import datasets

    folder = tmp_path_factory.mktemp("saved") / "dataset"
    datasets.Dataset.from_dict({"text": ["first row", "second row"], "stars": [1, 2]}).save_to_disk(str(folder))
    return folder


def test_damaged_save_to_disk_metadata_gives_a_corpus_or_a_textgen_error(tmp_path, saved_dataset, offline_hub):
    ran = 0
    originals = {name: json.loads((saved_dataset / name).read_text()) for name in ("dataset_info.json", "state.json")}

    def damaged(name: str) -> st.SearchStrategy[bytes]:
        fields = sorted(originals[name])
        replaced = st.dictionaries(st.sampled_from(fields), json_values, min_size=1, max_size=2).map(
            lambda changes: json.dumps({**originals[name], **changes}).encode()
        )
        dropped = st.sets(st.sampled_from(fields), min_size=1, max_size=2).map(
            lambda keys: json.dumps({k: v for k, v in originals[name].items() if k not in keys}).encode()
        )
        return st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()), replaced, dropped)

    @SLOW
    @given(name=st.sampled_from(sorted(originals)), data=st.data())
    def check(name, data):
        nonlocal ran
        ran += 1
        folder = tmp_path / f"example{ran}"
        shutil.copytree(saved_dataset, folder)
        (folder / name).write_bytes(data.draw(damaged(name)))
        check_corpus(f"hf:{folder}")

    check()
    EXAMPLES_RUN["test_damaged_save_to_disk_metadata_gives_a_corpus_or_a_textgen_error"] = ran
    assert ran >= 15
