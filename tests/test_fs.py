import os

import pytest

from textgen.errors import CheckpointError, OutputError
from textgen.fs import (
    append_jsonl,
    atomic_write,
    jsonl_bytes,
    read_json,
    read_jsonl,
    remove_temporaries,
    write_bytes,
    write_json,
)


def test_an_atomic_write_replaces_the_file_whole_or_not_at_all(tmp_path):
    path = tmp_path / "data.json"
    write_json(path, {"a": 1})
    with pytest.raises(ZeroDivisionError):
        atomic_write(path, lambda stream: (stream.write(b'{"a": 2'), 1 / 0))  # fails half-way through
    assert read_json(path, "data") == {"a": 1}
    assert os.listdir(tmp_path) == ["data.json"]  # no temporary left
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # the usual mode, not mkstemp's 0600


def test_jsonl_rows_survive_a_killed_writer_but_not_damage_elsewhere(tmp_path):
    path = tmp_path / "rows.jsonl"
    for update in (10, 20):
        append_jsonl(path, {"update": update})
    with path.open("ab") as stream:
        stream.write(b'{"update": 3')  # a writer killed mid-line
    assert read_jsonl(path) == [{"update": 10}, {"update": 20}]
    write_bytes(path, jsonl_bytes([{"update": 10}]))
    assert path.read_bytes() == b'{"update":10}\n'
    path.write_bytes(b'{"update": 1}\nnot json\n{"update": 2}\n')
    with pytest.raises(CheckpointError, match="rows.jsonl: line 2 is not valid JSON"):
        read_jsonl(path)
    path.write_bytes(b'{"update": -4}\n{"update": 5}\n')
    with pytest.raises(CheckpointError, match="line 1 has an 'update' that is not a count"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_reading_a_json_file_says_what_it_should_have_been(tmp_path):
    with pytest.raises(CheckpointError, match="missing; is this a textgen run folder"):
        read_json(tmp_path / "config.json", "run configuration")
    (tmp_path / "config.json").write_bytes(b"{")
    with pytest.raises(CheckpointError, match="cannot read the run configuration"):
        read_json(tmp_path / "config.json", "run configuration")
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(CheckpointError, match="is a folder, not the vocabulary"):
        read_json(tmp_path / "folder.json", "vocabulary")


def test_a_write_into_a_missing_folder_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="gone/x.json: cannot write"):
        write_json(tmp_path / "gone" / "x.json", {})
    with pytest.raises(OutputError, match="gone/rows.jsonl: cannot write"):
        append_jsonl(tmp_path / "gone" / "rows.jsonl", {"update": 1})


def test_temporaries_of_killed_writes_are_removed(tmp_path):
    (tmp_path / ".last.npz.abc12345.tmp").write_bytes(b"half")
    (tmp_path / ".config.json.k_9wq2mz.tmp").write_bytes(b"half, by an older textgen (tempfile.mkstemp)")
    (tmp_path / "last.npz").write_bytes(b"whole")
    (tmp_path / ".last.npz.my-backup.tmp").write_bytes(b"a user's file, named much like one")
    remove_temporaries(tmp_path)
    assert sorted(os.listdir(tmp_path)) == [".last.npz.my-backup.tmp", "last.npz"]


def test_only_the_named_files_temporaries_are_removed(tmp_path):
    (tmp_path / ".last.npz.1a2b3c4d.tmp").write_bytes(b"a killed writer's")
    (tmp_path / ".report.html.5e6f7a8b.tmp").write_bytes(b"a report being written right now")
    remove_temporaries(tmp_path, of=("last.npz", "config.json"))
    assert os.listdir(tmp_path) == [".report.html.5e6f7a8b.tmp"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_json_and_jsonl_writers_refuse_a_non_finite_number_and_write_nothing(tmp_path, value):
    """orjson would write it as null, which a loss check then refuses for ever; nothing of the kind reaches disk."""
    path = tmp_path / "data.json"
    write_json(path, {"a": 1})
    with pytest.raises(OutputError, match=r"data.json: .*val_loss.* not finite"):
        write_json(path, {"rows": [{"val_loss": value}]})
    assert read_json(path, "data") == {"a": 1}
    rows = tmp_path / "rows.jsonl"
    append_jsonl(rows, {"update": 1, "loss": 2.0})
    with pytest.raises(OutputError, match=r"rows.jsonl: .*loss.* not finite"):
        append_jsonl(rows, {"update": 2, "loss": value})
    with pytest.raises(OutputError, match=r"not finite"):
        write_bytes(rows, jsonl_bytes([{"update": 2, "loss": value}]))
    assert rows.read_bytes() == b'{"update":1,"loss":2.0}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json", "rows.jsonl"]
