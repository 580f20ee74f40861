"""RunFolder: creating, locking, replacing and checking run folders (in-process; the real command's races and
kills are in test_crash.py)."""

import os
import shutil
import subprocess
import sys
import textwrap

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textgen.cli import main
from textgen.errors import CheckpointError, RunFolderError
from textgen.runfolder import OLD_SUFFIX, STAGING_SUFFIX, FolderLock, RunFolder, RunRecord

TEXT = "".join(f"line {i}: a small corpus for run folder tests, with some words.\n" for i in range(120))
QUICK = ["--hidden", "6", "--updates", "40", "--log-every", "10", "--checkpoint-every", "20", "--sample-every",
         "1000", "--passage-length", "10", "--no-progress", "--seed", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("trained")
    corpus = base / "corpus.txt"
    corpus.write_text(TEXT)
    assert main(["train", "--corpus", str(corpus), "--out", str(base / "run"), *QUICK]) == 0
    return base / "run"


@pytest.fixture
def finished(trained, tmp_path):
    """A copy of one small finished run (its corpus stays where the run expects it)."""
    return shutil.copytree(trained, tmp_path / "run")


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_folder_lock_is_exclusive_and_dies_with_its_holder(tmp_path):
    lock = FolderLock.acquire(tmp_path, "busy: held by")
    with pytest.raises(RunFolderError, match=rf"^busy: held by process {os.getpid()}\b"):
        FolderLock.acquire(tmp_path, "busy: held by")  # another open file description: refused even here
    lock.release()
    lock.release()  # twice is harmless
    FolderLock.acquire(tmp_path, "busy: held by").release()
    # a process that takes the lock and is then killed leaves nothing behind that blocks anyone
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from textgen.runfolder import FolderLock
        FolderLock.acquire(Path({str(tmp_path)!r}), "x")
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunFolderError, match=rf"busy: held by process {holder.pid} "):
        FolderLock.acquire(tmp_path, "busy: held by")
    holder.kill()
    holder.wait()
    FolderLock.acquire(tmp_path, "busy: held by").release()
    assert listing(tmp_path) == []  # the lock is on the folder itself: no file to remove or forge


def test_a_writer_notices_when_its_folder_is_moved_or_replaced(finished):
    folder = RunFolder.open_for_writing(finished)
    folder.append_metrics({"update": 50})
    finished.rename(finished.parent / "moved")
    finished.mkdir()
    with pytest.raises(RunFolderError, match="was moved, removed or replaced while this run wrote it"):
        folder.append_metrics({"update": 60})
    folder.release()
    assert listing(finished) == []


def test_a_new_run_is_staged_beside_its_place_and_appears_only_when_published(tmp_path):
    out = tmp_path / "runs" / "new"
    folder = RunFolder.create(out)
    staging = tmp_path / "runs" / f".new{STAGING_SUFFIX}"
    assert folder.path == staging and staging.is_dir() and not out.exists()
    with pytest.raises(RunFolderError, match="a run is being prepared there by process"):
        RunFolder.create(out)
    (staging / "config.json").write_text("{}")
    folder.publish()
    assert folder.path == out and listing(out) == ["config.json"] and not staging.exists()
    with pytest.raises(RunFolderError, match="already holds a run .*which process \\d+ .* is writing"):
        RunFolder.create(out)
    folder.release()
    with pytest.raises(RunFolderError, match="already holds a run \\(config.json\\); choose another"):
        RunFolder.create(out)


def test_a_discarded_run_leaves_nothing_not_even_the_folders_made_for_it(tmp_path):
    folder = RunFolder.create(tmp_path / "a" / "b" / "run")
    (folder.path / "ids.bin").write_bytes(b"\0" * 100)
    folder.discard()
    assert listing(tmp_path) == []


def test_a_stale_staging_folder_of_a_killed_process_is_cleared_of_run_files_only(tmp_path):
    staging = tmp_path / f".run{STAGING_SUFFIX}"
    staging.mkdir()
    (staging / "ids.bin").write_bytes(b"\0" * 100)
    (staging / ".last.npz.0f0f0f0f.tmp").write_bytes(b"half")
    (staging / "sub").mkdir()
    with pytest.raises(RunFolderError, match=r"holds files that are not a run's \(sub/\)"):
        RunFolder.create(tmp_path / "run")
    assert listing(staging) == ["sub"]  # the run files went; what is not a run's was kept
    (staging / "sub").rmdir()
    folder = RunFolder.create(tmp_path / "run")
    assert listing(staging) == []
    folder.discard()


def test_out_must_be_new_empty_or_a_run(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    (tmp_path / "file").write_text("x")
    for force in (False, True):
        with pytest.raises(RunFolderError, match="todo.txt"):
            RunFolder.create(tmp_path / "notes", force=force)
        with pytest.raises(RunFolderError, match="exists and is not a folder"):
            RunFolder.create(tmp_path / "file", force=force)
    assert listing(tmp_path / "notes") == ["todo.txt"]
    (tmp_path / "empty").mkdir()
    folder = RunFolder.create(tmp_path / "empty")
    (folder.path / "config.json").write_text("{}")
    folder.publish()
    folder.release()
    assert listing(tmp_path / "empty") == ["config.json"]


def test_force_swaps_the_old_run_out_only_when_the_new_one_is_published(finished):
    old = {name: (finished / name).read_bytes() for name in listing(finished)}
    folder = RunFolder.create(finished, force=True)
    with pytest.raises(RunFolderError, match="--resume .*: the run is being written by process"):
        RunFolder.open_for_writing(finished)
    with pytest.raises(RunFolderError, match="--out .*: the run there is being written by process"):
        RunFolder.create(finished, force=True)
    assert {name: (finished / name).read_bytes() for name in old} == old  # untouched until publish
    (folder.path / "config.json").write_text('{"new": true}')
    folder.publish()
    folder.release()
    assert listing(finished) == ["config.json"]
    assert (finished / "config.json").read_text() == '{"new": true}'
    assert not any(p.name.startswith(".run.") for p in finished.parent.iterdir())


def test_a_forced_replacement_that_fails_leaves_the_old_run_whole(finished):
    before = {name: (finished / name).read_bytes() for name in listing(finished)}
    folder = RunFolder.create(finished, force=True)
    (folder.path / "config.json").write_text("{}")
    folder.discard()  # the new run failed before its first checkpoint
    assert {name: (finished / name).read_bytes() for name in listing(finished)} == before


def test_an_old_run_left_half_replaced_is_put_back(finished, caplog):
    """Where folders cannot be swapped in one step, a kill between the two renames leaves the old run aside."""
    aside = finished.parent / f".{finished.name}{OLD_SUFFIX}"
    finished.rename(aside)
    with pytest.raises(RunFolderError, match="already holds a run"):
        RunFolder.create(finished)
    assert (finished / "last.npz").exists() and not aside.exists()
    assert "cut short" in caplog.text


def test_config_json_round_trips_and_every_field_is_checked(finished):
    folder = RunFolder(finished)
    record = folder.read_record()
    data = orjson.loads((finished / "config.json").read_bytes())
    assert record.to_json() == data and RunRecord.from_json(record.to_json(), "x") == record
    edits = {
        "model.hidden": (lambda d: d["model"].update(hidden=-3), "--hidden must be a positive integer, got -3"),
        "model.dtype": (lambda d: d["model"].update(dtype="float16"), "--dtype must be one of"),
        "train.eta": (lambda d: d["train"].update(eta="fast"), "--eta must be a positive number"),
        "train.seed": (lambda d: d["train"].update(seed=2**70), "--seed must be at most"),
        "train, unknown": (lambda d: d["train"].update(learning_rate=1), "unknown settings: learning_rate"),
        "sources": (lambda d: d["corpus"].update(sources=[]), "corpus.sources"),
        "sha256": (lambda d: d["corpus"]["sources"][0].update(sha256="abc"), "sha256 is 'abc', expected 64"),
        "characters": (lambda d: d["corpus"].update(characters=-1), "corpus.characters is '-1'"),
        "val_fraction": (lambda d: d["corpus"].update(val_fraction=1.5), "corpus.val_fraction"),
        "passage_length": (lambda d: d.update(passage_length=10**30), "--passage-length must be at most"),
        "format_version": (lambda d: d.update(format_version=2), "format_version is '2'"),
        "resumes": (lambda d: d.update(resumes={"a": 1}), "resumes"),
    }
    for edit, message in edits.values():
        broken = orjson.loads(orjson.dumps(data))
        edit(broken)
        with pytest.raises(CheckpointError, match=message):
            RunRecord.from_json(broken, str(finished / "config.json"))


def test_config_json_is_checked_against_the_checkpoint_and_the_vocabulary(finished):
    data = orjson.loads((finished / "config.json").read_bytes())
    cases = {
        "model.hidden": lambda d: d["model"].update(hidden=7),
        "model.dtype": lambda d: d["model"].update(dtype="float32"),
        "train.seq_length": lambda d: d["train"].update(seq_length=24),
        "train.batch_size": lambda d: d["train"].update(batch_size=2),
        "corpus.vocab_size": lambda d: d["corpus"].update(vocab_size=d["corpus"]["vocab_size"] + 1),
        "the corpus SHA-256": lambda d: d["corpus"]["sources"][0].update(sha256="0" * 64),
    }
    for field, edit in cases.items():
        broken = orjson.loads(orjson.dumps(data))
        edit(broken)
        (finished / "config.json").write_bytes(orjson.dumps(broken))
        with pytest.raises(CheckpointError, match=f"disagree on {field}: .* in config.json, .* in last.npz"):
            RunFolder(finished).load_for_resume()
    (finished / "config.json").write_bytes(orjson.dumps(data))
    vocab = orjson.loads((finished / "vocab.json").read_bytes())
    vocab["chars"] = vocab["chars"][1:]
    (finished / "vocab.json").write_bytes(orjson.dumps(vocab))
    with pytest.raises(CheckpointError, match="disagree on the vocabulary"):
        RunFolder(finished).load_for_resume()


def test_changes_a_resume_may_make_do_not_count_as_disagreement(finished):
    data = orjson.loads((finished / "config.json").read_bytes())
    data["train"].update(updates=400, eta=0.05, log_every=5)  # what a resume records before its checkpoint
    (finished / "config.json").write_bytes(orjson.dumps(data))
    record, last = RunFolder(finished).load_for_resume()
    assert record.train.updates == 400 and last.meta["train"]["updates"] == 40


def test_a_resume_cleans_up_the_old_run_a_killed_force_left_beside_it(finished):
    """A --force killed between its swap and removing the old run leaves that run in the staging folder."""
    left = shutil.copytree(finished, finished.parent / f".{finished.name}{STAGING_SUFFIX}")
    RunFolder.open_for_writing(finished).release()
    assert not left.exists()


def test_a_new_run_being_prepared_is_named_to_a_resume(tmp_path):
    folder = RunFolder.create(tmp_path / "run")
    with pytest.raises(RunFolderError, match=r"--resume .*run: a new run is being prepared there by process \d+"):
        RunFolder.open_for_writing(tmp_path / "run")
    folder.discard()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def paths_of(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths_of(item, (*prefix, index))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_edit_of_config_json_is_accepted_or_one_checkpoint_error(trained, data):
    original = orjson.loads((trained / "config.json").read_bytes())
    edited = orjson.loads(orjson.dumps(original))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(list(paths_of(edited))))
        replacement = data.draw(JSON_VALUES)
        if not path:
            edited = replacement
            continue
        target = edited
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = replacement
    try:
        record = RunRecord.from_json(edited, "config.json")
    except CheckpointError as error:
        assert "\n" not in str(error)
    else:
        assert RunRecord.from_json(record.to_json(), "config.json") == record


def test_an_old_run_left_aside_is_put_back_by_a_resume_or_a_reader(finished, caplog):
    aside = finished.parent / f".{finished.name}{OLD_SUFFIX}"
    for use in (lambda: RunFolder.open_for_writing(finished).release(), lambda: RunFolder(finished).load("last")):
        finished.rename(aside)
        use()
        assert (finished / "last.npz").exists() and not aside.exists()
    assert caplog.text.count("cut short") == 2


def test_a_reader_reads_one_run_even_if_the_folder_is_replaced_under_it(finished, tmp_path):
    other = shutil.copytree(finished, tmp_path / "other")
    record = orjson.loads((other / "config.json").read_bytes())
    record["train"]["seed"] = 99
    (other / "config.json").write_bytes(orjson.dumps(record))
    reader = RunFolder(finished)
    assert reader.read_record().train.seed == 2
    finished.rename(tmp_path / "gone")
    other.rename(finished)  # as --force swaps a new run in
    assert reader.read_record().train.seed == 2  # still the run it started reading
    assert RunFolder(finished).read_record().train.seed == 99


def test_a_link_planted_where_textgen_stages_a_run_is_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("precious")
    (tmp_path / f".run{STAGING_SUFFIX}").symlink_to(victim)
    with pytest.raises(RunFolderError, match="is a link or not a folder"):
        RunFolder.create(tmp_path / "run")
    assert listing(victim) == ["thesis.txt"] and not (tmp_path / "run").exists()


def test_a_reader_knows_when_its_folder_was_replaced(finished, tmp_path):
    reader = RunFolder(finished)
    reader.read_record()
    assert not reader.replaced()
    finished.rename(tmp_path / "old")
    shutil.copytree(tmp_path / "old", finished)
    assert reader.replaced()


# ---------------------------------------------------------------- --force replaces a run and nothing else


def sweep_files(folder):
    """What textgen sweep leaves in a sweep folder: its spec, sweep.json, trials.json and a trial's run folder."""
    folder.mkdir(exist_ok=True)
    (folder / "spec.toml").write_text('[train]\ncorpus = ["book.txt"]\n[search]\nhidden = [8, 16]\n')
    (folder / "sweep.json").write_text('{"spec": "spec.toml", "seed": 1, "trials": 2}')
    (folder / "trials.json").write_text('{"t0000": {"status": "ended", "settings": {"hidden": 8}}}')
    (folder / "trials" / "t0000").mkdir(parents=True)
    (folder / "trials" / "t0000" / "config.json").write_text('{"the trial": "run"}')


def add_notes(run):
    (run / "notes.txt").write_text("what I learnt from this run")


def add_folder(run):
    (run / "mine").mkdir()
    (run / "mine" / "table.csv").write_text("hidden,bpc\n8,2.1\n")


def add_sweep(run):
    sweep_files(run / "sweep")


def add_corpus(run):
    shutil.copyfile(run.parent.parent / "trained0" / "corpus.txt", run / "book.txt")


@pytest.mark.parametrize("add, foreign, corpus", [
    (add_notes, "notes.txt", None),
    (add_folder, "mine", None),
    (add_sweep, "sweep", None),
    (add_corpus, "book.txt", "book.txt"),  # textgen train --corpus runA/book.txt --out runA --force
], ids=["a user's notes", "a user's folder", "a sweep folder inside", "the corpus being read"])
def test_force_refuses_a_run_folder_that_holds_anything_else_and_keeps_it_all(finished, capsys, add, foreign, corpus):
    from commands import snapshot

    add(finished)
    before = snapshot(finished)
    source = finished / corpus if corpus else finished.parent.parent / "trained0" / "corpus.txt"
    code, _, err = run_cli(capsys, "--corpus", source, "--out", finished, "--force")
    assert code == 1 and err.count("\n") == 1 and err.startswith("textgen: error: --"), err
    assert foreign in err and "nothing" in err, err
    assert snapshot(finished) == before  # every byte and every time, the run's and the user's
    assert listing(finished.parent) == ["run"]  # no staging folder left beside it


def run_cli(capsys, *argv):
    from commands import run

    return run(capsys, "train", *QUICK, *argv)


def test_force_refuses_what_is_not_a_run(tmp_path, trained, capsys, monkeypatch):
    from commands import snapshot

    corpus = trained.parent / "corpus.txt"
    sweep_files(tmp_path / "sweep")  # a sweep folder as --out
    (tmp_path / "project").mkdir()  # a folder holding only a config.json that is not textgen's
    (tmp_path / "project" / "config.json").write_text('{"editor": "vim"}')
    shutil.copytree(trained, tmp_path / "runs" / "a")  # a folder of runs, and the current folder's parent
    (tmp_path / "runs" / "report.html").write_text("<p>my notes on these runs</p>")
    (tmp_path / "linked").symlink_to(shutil.copytree(trained, tmp_path / "target"))  # a link to a run
    cases = {"sweep": "spec.toml", "project": "config.json is not a textgen run's", "runs": "a",
             "linked": "not a link"}
    for name, message in cases.items():
        before = snapshot(tmp_path, links=False)
        code, _, err = run_cli(capsys, "--corpus", corpus, "--out", tmp_path / name, "--force")
        assert code == 1 and err.count("\n") == 1 and message in err, err
        assert snapshot(tmp_path, links=False) == before, name
    # the folder the command runs in (a run itself), and one that holds it
    monkeypatch.chdir(tmp_path / "runs" / "a")
    for out in (tmp_path / "runs" / "a", tmp_path / "runs"):
        before = snapshot(tmp_path, links=False)
        code, _, err = run_cli(capsys, "--corpus", corpus, "--out", out, "--force")
        assert code == 1 and err.count("\n") == 1, err
        assert snapshot(tmp_path, links=False) == before, out


def test_force_refuses_a_corpus_that_is_a_file_of_the_run_it_would_replace(finished, capsys):
    """Training on the old run's own passage: replacing the run would leave the new one without its corpus."""
    from commands import snapshot

    before = snapshot(finished)
    code, _, err = run_cli(capsys, "--corpus", finished / "best_passage.txt", "--out", finished, "--force",
                           "--val-fraction", "0", "--seq-length", "5")
    assert code == 1 and "best_passage.txt" in err and "inside" in err, err
    assert snapshot(finished) == before


def test_force_refuses_the_current_folder_or_a_corpus_reached_through_a_bind_mount_of_the_run(finished, tmp_path,
                                                                                              capsys, monkeypatch):
    """A bind mount gives the run folder a second path, which no comparison of paths can see through."""
    from commands import mount, snapshot, unmount

    view = tmp_path / "view"
    view.mkdir()
    if not mount("--bind", str(finished), str(view)):
        pytest.skip("cannot bind-mount here (needs root or CAP_SYS_ADMIN)")
    try:
        before = snapshot(finished)
        code, _, err = run_cli(capsys, "--corpus", view / "best_passage.txt", "--out", finished, "--force",
                               "--val-fraction", "0", "--seq-length", "5")
        assert code == 1 and err.count("\n") == 1 and "best_passage.txt" in err and "inside" in err, err
        monkeypatch.chdir(view / ".")
        code, _, err = run_cli(capsys, "--corpus", finished.parent.parent / "trained0" / "corpus.txt", "--out",
                               finished, "--force")
        assert code == 1 and err.count("\n") == 1 and "the folder textgen runs in" in err, err
        assert snapshot(finished) == before
    finally:
        monkeypatch.chdir(tmp_path)
        unmount(view)


def test_files_of_the_user_named_like_a_temporary_are_not_taken_for_one(finished, capsys):
    """Only textgen's own temporaries (.NAME.XXXXXXXX.tmp) count as the run's: --force refuses a run holding a file
    of the user's that merely starts and ends the same way, and a resume leaves it alone."""
    from commands import run, snapshot

    mine = finished / ".config.json.before-my-edit.tmp"
    mine.write_text("my copy of config.json")
    before = snapshot(finished)
    code, _, err = run_cli(capsys, "--corpus", finished.parent.parent / "trained0" / "corpus.txt", "--out", finished,
                           "--force")
    assert code == 1 and mine.name in err, err
    assert snapshot(finished) == before
    code, _, err = run(capsys, "train", "--resume", finished, "--updates", "60", "--no-progress")
    assert code == 0, err
    assert mine.read_text() == "my copy of config.json"
    # a folder holding only such files is not empty: said before any work, not as files that appeared meanwhile
    for name in ("notes.tmp", ".corpus.txt.1a2b3c4d.tmp"):
        (finished.parent / name.upper()).mkdir()
        (finished.parent / name.upper() / name).write_text("mine")
        code, _, err = run_cli(capsys, "--corpus", finished.parent.parent / "trained0" / "corpus.txt", "--out",
                               finished.parent / name.upper())
        assert code == 1 and f"is not empty ({name})" in err, err


def test_force_replaces_a_run_with_what_textgen_itself_left_in_it(finished, capsys):
    """Temporaries of killed writes, a sweep's note on a trial and an older textgen's .lock are the run's."""
    (finished / ".last.npz.1a2b3c4d.tmp").write_bytes(b"half a checkpoint")
    (finished / "sweep_trial.json").write_text('{"status": "stopped early"}')
    (finished / ".lock").write_text("")
    code, _, err = run_cli(capsys, "--corpus", finished.parent.parent / "trained0" / "corpus.txt", "--out", finished,
                           "--force", "--seed", "5")
    assert code == 0, err
    assert orjson.loads((finished / "config.json").read_bytes())["train"]["seed"] == 5
    assert not {".last.npz.1a2b3c4d.tmp", "sweep_trial.json", ".lock"} & set(listing(finished))
    assert listing(finished.parent) == ["run"]


def test_only_the_run_folder_names_the_files_in_a_run_folder():
    """Every other module asks RunFolder for a file by its role (`encoded_ids_path`, `write_plot`, ...); names in
    messages and docstrings are prose, not code that opens or writes a file."""
    import ast
    from pathlib import Path

    from textgen.runfolder import OWN_FILES

    package = Path(__file__).resolve().parent.parent / "textgen"
    naming = {}
    for path in package.rglob("*.py"):
        if path.parent.name == "runfolder":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr)}
        names = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and id(node) not in docstrings
                 and node.value in OWN_FILES}
        if names:
            naming[str(path.relative_to(package))] = sorted(names)
    assert naming == {}
