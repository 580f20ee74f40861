"""Tests for the `hf` loader on datasets built in tmp_path; the Hub is never contacted."""

import csv
import hashlib
import json
import os
import subprocess
import sys

import datasets
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textgen.corpus import VAL_MAX_CHARACTERS, LoaderOption, load_corpus
from textgen.errors import ConfigError, CorpusError
from textgen.loaders.base import END_OF_DOCUMENT, CorpusLoader, document_separator
from textgen.loaders.hf import HFLoader


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch):
    """Keep the Hugging Face libraries offline, here and in any subprocess a test starts."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def save_dataset(folder, columns, features=None):
    datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(folder))
    return str(folder)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return str(path)


def test_loader_follows_the_corpus_loader_protocol():
    loader = HFLoader()
    assert isinstance(loader, CorpusLoader)
    assert loader.name == "hf"
    assert loader.suffixes == ()


def test_importing_the_loader_does_not_import_datasets():
    code = "import sys, textgen.loaders.hf; print(sorted({'datasets', 'pyarrow'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_saved_dataset_yields_the_only_string_column_skipping_empty_rows(tmp_path):
    folder = save_dataset(
        tmp_path / "saved", {"text": ["first", None, "second", "", "third"], "stars": [1, 2, 3, 4, 5]}
    )
    assert list(HFLoader().iter_texts(folder)) == ["first", "second", "third"]


def test_rows_are_separated_by_the_end_of_document_marker(tmp_path):
    folder = save_dataset(tmp_path / "saved", {"text": ["one", "two"]})
    loader = HFLoader()
    texts = loader.iter_texts(folder)
    assert document_separator(loader) == END_OF_DOCUMENT
    assert list(texts) == ["one", "two"]


def test_text_column_option_picks_one_of_several_string_columns(tmp_path):
    folder = save_dataset(tmp_path / "saved", {"title": ["T1", "T2"], "body": ["B1", "B2"]})
    assert list(HFLoader(text_column="body").iter_texts(folder)) == ["B1", "B2"]
    assert list(HFLoader(text_column="title").iter_texts(folder)) == ["T1", "T2"]


def test_several_string_columns_error_lists_columns_and_types(tmp_path):
    folder = save_dataset(tmp_path / "saved", {"title": ["T"], "body": ["B"], "stars": [3]})
    with pytest.raises(CorpusError) as caught:
        list(HFLoader().iter_texts(folder))
    message = str(caught.value)
    assert "title (string), body (string), stars (int64)" in message
    assert "--text-column" in message
    assert "\n" not in message


def test_no_string_column_error_lists_columns(tmp_path):
    folder = save_dataset(tmp_path / "saved", {"stars": [1, 2]})
    with pytest.raises(CorpusError, match=r"no string column.*stars \(int64\).*--text-column"):
        list(HFLoader().iter_texts(folder))


def test_missing_text_column_error_lists_columns(tmp_path):
    folder = save_dataset(tmp_path / "saved", {"text": ["a"], "stars": [1]})
    with pytest.raises(CorpusError, match=r"no column 'body'; columns: text \(string\), stars \(int64\)"):
        list(HFLoader(text_column="body").iter_texts(folder))


def test_non_string_value_error_names_the_row_and_type(tmp_path):
    folder = save_dataset(tmp_path / "saved", {"text": ["a", "b"], "stars": [None, 7]})
    with pytest.raises(CorpusError, match=r"row index 1 of column 'stars' holds int, not str"):
        list(HFLoader(text_column="stars").iter_texts(folder))


def test_all_rows_empty_is_an_error(tmp_path):
    folder = save_dataset(tmp_path / "saved", {"text": [None, "", None]})
    with pytest.raises(CorpusError, match=r"no text in column 'text': all 3 rows are empty or missing"):
        list(HFLoader().iter_texts(folder))


def test_saved_dataset_dict_reads_the_requested_split(tmp_path):
    folder = tmp_path / "saved_dict"
    splits = {
        "train": datasets.Dataset.from_dict({"text": ["train one", "train two"]}),
        "validation": datasets.Dataset.from_dict({"text": ["validation one"]}),
    }
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    assert list(HFLoader().iter_texts(str(folder))) == ["train one", "train two"]
    assert list(HFLoader(split="validation").iter_texts(str(folder))) == ["validation one"]


def test_missing_split_error_lists_the_available_splits(tmp_path):
    folder = tmp_path / "saved_dict"
    splits = {
        "train": datasets.Dataset.from_dict({"text": ["a"]}),
        "validation": datasets.Dataset.from_dict({"text": ["b"]}),
    }
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    with pytest.raises(CorpusError, match=r"no split 'test'; available splits: train, validation"):
        list(HFLoader(split="test").iter_texts(str(folder)))


def save_splits(folder, **splits):
    datasets.DatasetDict({name: datasets.Dataset.from_dict({"text": rows}) for name, rows in splits.items()}
                         ).save_to_disk(str(folder))
    return f"hf:{folder}"


VAL_SPLIT = LoaderOption("val_split", "validation", "hf", "--hf-val-split")


def test_a_val_split_is_the_held_out_text_and_nothing_is_cut_from_training(tmp_path):
    train, validation = [f"train row {i}" for i in range(40)], ["held one", "held two"]
    spec = save_splits(tmp_path / "ds", train=train, validation=validation)
    corpus = load_corpus([spec], options=[VAL_SPLIT], val_fraction=0.05)
    assert corpus.text == "".join(row + END_OF_DOCUMENT for row in train)
    assert corpus.validation == "held one" + END_OF_DOCUMENT + "held two" + END_OF_DOCUMENT
    source = corpus.sources[0]
    assert source["options"] == {"val_split": "validation"} and source["val_characters"] == len(corpus.validation)
    assert source["val_sha256"] == hashlib.sha256(corpus.validation.encode("utf-8")).hexdigest()
    assert load_corpus([spec], options=[VAL_SPLIT], val_fraction=0).validation == corpus.validation
    tail = load_corpus([spec], val_fraction=0.05)  # without it, the last 5% of the training rows
    assert tail.validation == "".join(row + END_OF_DOCUMENT for row in train[-2:])


def test_a_val_split_is_capped_as_any_held_out_text_in_whole_rows_from_its_start(tmp_path):
    rows = [f"{i:04d}" + "x" * 996 for i in range(400)]  # 400k characters with their markers
    corpus = load_corpus([save_splits(tmp_path / "ds", train=["a", "b"], validation=rows)], options=[VAL_SPLIT])
    kept = VAL_MAX_CHARACTERS // 1001
    assert corpus.validation == "".join(row + END_OF_DOCUMENT for row in rows[:kept])


@pytest.mark.parametrize("layout,message", [
    ("dict", r"no split 'validation'; available splits: train, test; pick one with --hf-val-split$"),
    ("dataset", r"a saved Dataset, not a DatasetDict, so it has no split 'validation' to hold out; drop --hf-val"),
    ("files", r"no split 'validation'; local data files form one split, 'train'; drop --hf-val-split$"),
])
def test_a_missing_val_split_is_one_line_naming_hf_val_split(tmp_path, layout, message):
    if layout == "dict":
        spec = save_splits(tmp_path / "ds", train=["a"], test=["b"])
    elif layout == "dataset":
        spec = "hf:" + save_dataset(tmp_path / "ds", {"text": ["a", "b"]})
    else:
        spec = "hf:" + write_jsonl(tmp_path / "rows.jsonl", [{"text": "a"}])
    with pytest.raises(CorpusError, match=message):
        load_corpus([spec], options=[VAL_SPLIT])


def test_holding_out_the_split_trained_on_is_refused():
    with pytest.raises(ConfigError, match=r"--hf-val-split 'train' is the split trained on \(--hf-split 'train'\)"):
        HFLoader(val_split="train")


def test_hf_flags_are_named_as_given_in_errors(tmp_path, capsys):
    from commands import run

    (tmp_path / "a.txt").write_text("some text to train on\n" * 5)
    code, _, err = run(capsys, "train", "--corpus", tmp_path / "a.txt", "--hf-split", "test", "--out", tmp_path / "r")
    assert code == 1 and err == ("textgen: error: --hf-split is for the hf loader, which no --corpus here uses (they "
                                 "use text)\n")
    spec = save_splits(tmp_path / "ds", train=["a"], test=["b"])
    code, _, err = run(capsys, "train", "--corpus", spec, "--hf-split", "dev", "--out", tmp_path / "r")
    assert code == 1 and err.endswith("no split 'dev'; available splits: train, test; pick one with --hf-split\n")


def test_a_run_holding_out_a_val_split_resumes_and_sees_it_change(tmp_path, capsys):
    from commands import run

    train = [f"row {i}: the quick brown fox jumps over the lazy dog" for i in range(80)]
    spec = save_splits(tmp_path / "ds", train=train, validation=["the lazy dog sleeps", "the fox runs"])
    settings = ["--hidden", "8", "--seq-length", "10", "--sample-every", "1000", "--eval-every", "20", "--no-progress",
                "--passage-length", "10"]
    code, _, err = run(capsys, "train", "--corpus", spec, "--hf-val-split", "validation", "--updates", "40",
                       "--seed", "3", *settings, "--out", tmp_path / "run")
    assert code == 0, err
    record = json.loads((tmp_path / "run" / "config.json").read_text())["corpus"]
    expected = "".join(row + END_OF_DOCUMENT for row in ["the lazy dog sleeps", "the fox runs"])
    assert record["val_characters"] == len(expected) and record["characters"] == len(
        "".join(row + END_OF_DOCUMENT for row in train))
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--updates", "60", "--no-progress")
    assert code == 0, err
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--hf-val-split", "test", "--no-progress")
    assert code == 1 and "--resume cannot change --hf-val-split" in err
    save_splits(tmp_path / "ds", train=train, validation=["the lazy dog sleeps", "the fox walks"])
    code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--updates", "80", "--no-progress")
    assert code == 1 and "has changed since the run started" in err, err


@pytest.mark.parametrize("command", [["evaluate", "../run"], ["train", "--resume", "../run", "--updates", "60"]])
def test_a_run_of_local_data_files_by_a_relative_path_says_where_the_path_is_read_from(command, tmp_path,
                                                                                       monkeypatch, capsys):
    from commands import run

    write_jsonl(tmp_path / "rows.jsonl", [{"text": f"row {i}: the quick brown fox jumps"} for i in range(60)])
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "train", "--corpus", "hf:rows.jsonl", "--updates", "40", "--hidden", "8",
                       "--no-progress", "--out", "run")
    assert code == 0, err
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, _, err = run(capsys, *command)
    assert code == 1 and err.count("\n") == 1 and "rows.jsonl" in err, err
    assert "relative to the folder it was started in" in err and "check the path" not in err, err


def test_text_file_lines_join_back_into_the_exact_file_text(tmp_path):
    text = "First line.\n\n  Indented, with a tab\there.\nUnicode: café ☃\nlast line without newline"
    path = tmp_path / "book.txt"
    path.write_bytes(text.encode("utf-8"))
    loader = HFLoader()
    documents = loader.iter_texts(str(path))
    assert loader.document_separator == ""  # set before the first document is read
    assert document_separator(loader).join(documents) == text


def test_text_file_crlf_line_endings_become_newlines(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes(b"one\r\ntwo\r\n")
    assert list(HFLoader().iter_texts(str(path))) == ["one\n", "two\n"]


def test_empty_text_file_is_an_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(CorpusError, match="no rows"):
        list(HFLoader().iter_texts(str(path)))


def test_folder_of_text_files_is_read_in_name_order(tmp_path):
    (tmp_path / "b.txt").write_text("from b\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("from a\nsecond a line\n", encoding="utf-8")
    loader = HFLoader()
    assert "".join(loader.iter_texts(str(tmp_path))) == "from a\nsecond a line\nfrom b\n"
    assert loader.document_separator == ""


def test_csv_file_yields_the_text_column_with_embedded_newlines(tmp_path):
    path = tmp_path / "reviews.csv"
    rows = [("Great, really.", 5), ("Two\nlines", 3), ("", 1), ('Quote "inside"', 4)]
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["review", "stars"])
        writer.writerows(rows)
    loader = HFLoader()
    assert list(loader.iter_texts(str(path))) == ["Great, really.", "Two\nlines", 'Quote "inside"']
    assert loader.document_separator == END_OF_DOCUMENT


def test_jsonl_file_yields_the_chosen_column(tmp_path):
    path = write_jsonl(
        tmp_path / "posts.jsonl",
        [{"id": "p1", "body": "hello"}, {"id": "p2", "body": None}, {"id": "p3", "body": "world ☃"}],
    )
    assert list(HFLoader(text_column="body").iter_texts(path)) == ["hello", "world ☃"]


def test_jsonl_file_with_two_string_columns_needs_text_column(tmp_path):
    path = write_jsonl(tmp_path / "posts.jsonl", [{"id": "p1", "body": "hello"}])
    with pytest.raises(CorpusError, match=r"several string columns.*id \(string\), body \(string\)"):
        list(HFLoader().iter_texts(path))


def test_folder_of_jsonl_files_is_read_in_name_order(tmp_path):
    write_jsonl(tmp_path / "part-2.jsonl", [{"text": "c"}])
    write_jsonl(tmp_path / "part-1.jsonl", [{"text": "a"}, {"text": "b"}])
    assert list(HFLoader().iter_texts(str(tmp_path))) == ["a", "b", "c"]


def test_parquet_file_yields_its_text_column(tmp_path):
    path = tmp_path / "rows.parquet"
    datasets.Dataset.from_dict({"text": ["alpha", "beta"], "label": [0, 1]}).to_parquet(str(path))
    assert list(HFLoader().iter_texts(str(path))) == ["alpha", "beta"]


def test_streaming_false_reads_a_saved_dataset_the_same(tmp_path):
    folder = save_dataset(tmp_path / "saved", {"text": ["x", "y"]})
    assert list(HFLoader(streaming=False).iter_texts(folder)) == ["x", "y"]
    assert list(HFLoader(streaming=True).iter_texts(folder)) == ["x", "y"]


def test_split_other_than_train_for_data_files_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "posts.jsonl", [{"text": "a"}])
    with pytest.raises(CorpusError, match=r"no split 'validation'.*'train'"):
        list(HFLoader(split="validation").iter_texts(path))


def test_config_with_a_local_source_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "posts.jsonl", [{"text": "a"}])
    with pytest.raises(ConfigError, match=r"^--hf-config 'tiny': .*only applies to Hub datasets"):
        HFLoader(config="tiny").iter_texts(path)


def test_missing_path_is_a_corpus_error_raised_when_called(tmp_path):
    with pytest.raises(CorpusError, match="no such file or folder"):
        HFLoader().iter_texts(str(tmp_path / "missing.csv"))
    with pytest.raises(CorpusError, match="no such file or folder"):
        HFLoader().iter_texts(str(tmp_path / "missing_folder"))


def test_unsupported_file_suffix_is_an_error(tmp_path):
    path = tmp_path / "notes.xml"
    path.write_text("<a/>", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"\.txt, \.csv, \.json, \.jsonl, \.parquet.*'\.xml'"):
        HFLoader().iter_texts(str(path))


def test_folder_without_a_dataset_or_data_files_is_an_error(tmp_path):
    (tmp_path / "readme.md").write_text("nothing here", encoding="utf-8")
    with pytest.raises(CorpusError, match="neither a save_to_disk dataset"):
        HFLoader().iter_texts(str(tmp_path))


def test_folder_mixing_data_file_kinds_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_text("a\n", encoding="utf-8")
    write_jsonl(tmp_path / "b.jsonl", [{"text": "b"}])
    with pytest.raises(CorpusError, match="mixes data files of kinds json, text"):
        HFLoader().iter_texts(str(tmp_path))


def test_malformed_jsonl_is_a_corpus_error(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "fine"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(CorpusError, match="cannot read it as json data"):
        list(HFLoader().iter_texts(str(path)))


def test_non_utf8_text_file_error_suggests_the_text_loader(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(CorpusError, match="not valid UTF-8.*--encoding"):
        list(HFLoader().iter_texts(str(path)))


def test_hub_name_offline_error_mentions_the_hub_and_a_local_path():
    # A fresh interpreter, because `datasets` reads HF_HUB_OFFLINE (set by the fixture) on import.
    code = (
        "from textgen.errors import CorpusError\n"
        "from textgen.loaders.hf import HFLoader\n"
        "try:\n"
        "    next(HFLoader().iter_texts('someone/tiny_shakespeare'))\n"
        "except CorpusError as error:\n"
        "    print(error)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert "\n" not in message
    assert "'someone/tiny_shakespeare'" in message
    assert "Hugging Face Hub could not be reached" in message
    assert "save_to_disk folder" in message
    assert "--corpus hf:/path/to/folder" in message


def test_progress_bar_setting_is_restored_after_reading(tmp_path):
    folder = save_dataset(tmp_path / "saved", {"text": ["a"]})
    datasets.enable_progress_bars()
    documents = HFLoader().iter_texts(folder)
    assert next(documents) == "a"
    assert datasets.are_progress_bars_disabled()  # quiet while the loader reads
    assert list(documents) == []
    assert not datasets.are_progress_bars_disabled()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=1, max_size=15))
def test_saved_dataset_yields_exactly_its_non_empty_rows(tmp_path_factory, rows):
    expected = [row for row in rows if row]
    features = datasets.Features({"text": datasets.Value("string"), "position": datasets.Value("int64")})
    folder = save_dataset(
        tmp_path_factory.mktemp("saved"), {"text": rows, "position": list(range(len(rows)))}, features
    )
    if expected:
        assert list(HFLoader().iter_texts(folder)) == expected
    else:
        with pytest.raises(CorpusError, match="no text"):
            list(HFLoader().iter_texts(folder))


def test_a_damaged_parquet_file_is_one_line_and_a_clean_exit(tmp_path):
    """Read by path with pyarrow, not through datasets' parquet builder, whose worker threads could still hold
    the file when the error ended the process (SIGABRT after the error line, now and then)."""
    import random

    from commands import assert_one_error_line, textgen

    path = tmp_path / "rows.parquet"
    datasets.Dataset.from_dict({"text": [f"row {i} hello" for i in range(5000)], "n": list(range(5000))}).to_parquet(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 200] = random.Random(0).randbytes(200)
    path.write_bytes(bytes(data))
    for _ in range(3):
        result = textgen("train", "--corpus", f"hf:{path}", "--out", tmp_path / "run", "--updates", "10",
                         "--no-progress")
        assert_one_error_line(result, r"rows\.parquet: cannot read it as parquet data")
    assert not (tmp_path / "run").exists()


def test_a_parquet_file_trains_on_its_text_column(tmp_path):
    path = tmp_path / "rows.parquet"
    datasets.Dataset.from_dict({"text": ["first row", "second row"], "n": [1, 2]}).to_parquet(path)
    assert list(HFLoader().iter_texts(str(path))) == ["first row", "second row"]
    assert list(HFLoader(text_column="text").iter_texts(str(tmp_path))) == ["first row", "second row"]
