import logging
from importlib import metadata

import pytest

from textgen.corpus import load_corpus
from textgen.errors import CorpusError, PluginError, UnknownCorpusKind
from textgen.registry import DISABLE_AUTOLOAD_ENV, ENTRY_POINT_GROUP, discover, resolve_source


def fake_distribution(root, name, version, entries):
    """Write a real installed-distribution record (dist-info) and return its entry points."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    return list(metadata.Distribution.at(info).entry_points)


def test_builtins_are_always_there():
    registry = discover([])
    assert {"text", "tweets", "hf", "pydoc"} <= set(registry.loaders)
    assert registry.loaders["text"].origin == "built-in"
    assert ".txt" in registry.loaders["text"].suffixes


def test_a_plugin_is_found_with_its_distribution_and_version(tmp_path):
    eps = fake_distribution(tmp_path, "lines-plugin", "1.2", {"lines": "plugin_fixtures:LineLoader"})
    registry = discover(eps)
    info = registry.loaders["lines"]
    assert info.origin == "lines-plugin 1.2" and info.suffixes == (".lines",)


def test_a_zero_argument_factory_works_as_a_plugin(tmp_path):
    eps = fake_distribution(tmp_path, "factory-plugin", "0.1", {"lines": "plugin_fixtures:make_line_loader"})
    assert "lines" in discover(eps).loaders


def test_a_broken_plugin_warns_and_everything_else_works(tmp_path, caplog):
    eps = fake_distribution(
        tmp_path,
        "broken-plugin",
        "0.3",
        {"gone": "no_such_module_for_textgen_tests:Loader", "incomplete": "plugin_fixtures:NoIterTexts"},
    )
    with caplog.at_level(logging.WARNING):
        registry = discover(eps)
    messages = [record.getMessage() for record in caplog.records]
    assert any("'gone'" in m and "broken-plugin 0.3" in m and "ModuleNotFoundError" in m for m in messages)
    assert any("'incomplete'" in m and "iter_texts" in m for m in messages)
    assert "text" in registry.loaders
    with pytest.raises(PluginError, match="'gone' .*broken-plugin 0.3.* failed to load"):
        registry.get("gone")


def test_two_plugins_with_one_name_is_an_error_naming_both(tmp_path):
    first = fake_distribution(tmp_path / "a", "alpha-lines", "1.0", {"lines": "plugin_fixtures:LineLoader"})
    second = fake_distribution(tmp_path / "b", "beta-lines", "2.0", {"lines": "plugin_fixtures:OtherLineLoader"})
    with pytest.raises(PluginError, match="alpha-lines 1.0 and beta-lines 2.0"):
        discover(first + second)


def test_a_plugin_cannot_take_a_builtin_name(tmp_path, caplog):
    eps = fake_distribution(tmp_path, "usurper", "1.0", {"text": "plugin_fixtures:ClaimsText"})
    with caplog.at_level(logging.WARNING):
        registry = discover(eps)
    assert registry.loaders["text"].origin == "built-in"
    assert "built-in loader's name" in caplog.text


def test_installed_plugins_are_discovered_unless_disabled(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "lines-plugin", "1.2", {"lines": "plugin_fixtures:LineLoader"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    assert "lines" in discover().loaders
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    assert "lines" not in discover().loaders


def test_loader_choice_kind_then_prefix_then_suffix(tmp_path):
    registry = discover(fake_distribution(tmp_path, "lines-plugin", "1.2", {"lines": "plugin_fixtures:LineLoader"}))
    assert resolve_source("notes.lines", registry).kind == "lines"
    assert resolve_source("notes.lines", registry, kind="text").kind == "text"
    source = resolve_source("text:notes.lines", registry)
    assert (source.kind, source.location) == ("text", "notes.lines")
    assert resolve_source("book.TXT", registry).kind == "text"


def test_the_longest_claimed_suffix_wins_and_equal_claims_clash(tmp_path):
    registry = discover(fake_distribution(tmp_path / "a", "songs-plugin", "1.0", {
        "lyrics": "plugin_fixtures:LyricsLoader", "csvlines": "plugin_fixtures:CsvLineLoader"}))
    assert resolve_source("hits.lyrics.csv", registry).kind == "lyrics"
    assert resolve_source("Hits.LYRICS.CSV", registry).kind == "lyrics"
    assert resolve_source("hits.csv", registry).kind == "csvlines"
    assert resolve_source("hits.other.csv", registry).kind == "csvlines"
    assert resolve_source("lyrics.csv", registry).kind == "csvlines"  # the name must be longer than the suffix
    rival = fake_distribution(tmp_path / "b", "rival-songs", "2.0", {"songs": "plugin_fixtures:OtherLyricsLoader"})
    registry = discover(fake_distribution(tmp_path / "c", "songs-plugin", "1.0", {
        "lyrics": "plugin_fixtures:LyricsLoader"}) + rival)
    with pytest.raises(PluginError, match=r"'\.lyrics\.csv' is claimed by lyrics \(songs-plugin 1.0\) and songs "
                                          r"\(rival-songs 2.0\); choose one with --kind"):
        resolve_source("hits.lyrics.csv", registry)


def test_a_plugins_two_part_suffix_wins_over_a_builtins_one_part_suffix(tmp_path):
    registry = discover(fake_distribution(tmp_path, "notes", "1.0", {"notes": "plugin_fixtures:NotesLoader"}))
    assert resolve_source("monday.notes.txt", registry).kind == "notes"
    assert resolve_source("monday.txt", registry).kind == "text"


def test_an_entry_point_key_that_is_not_the_loaders_name_is_not_loaded(tmp_path, caplog):
    eps = fake_distribution(tmp_path, "misnamed", "0.2", {"songs": "plugin_fixtures:LyricsLoader"})
    with caplog.at_level(logging.WARNING):
        registry = discover(eps)
    assert "songs" not in registry.loaders and "lyrics" not in registry.loaders
    assert "corpus plugin 'songs' from misnamed 0.2 was not loaded: its loader's name is 'lyrics'" in caplog.text
    with pytest.raises(PluginError, match="'songs' .*the two must be the same"):
        registry.get("songs")


def test_a_suffix_without_its_dot_is_refused(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        registry = discover(fake_distribution(tmp_path, "nodot", "1.0", {"nodot": "plugin_fixtures:NoDotSuffix"}))
    assert "nodot" in registry.broken and "each starting with '.'" in caplog.text


def test_unknown_sources_list_what_is_available():
    registry = discover([])
    with pytest.raises(UnknownCorpusKind, match="no loader claims the suffix '.xyz'.*text"):
        resolve_source("data.xyz", registry)
    with pytest.raises(UnknownCorpusKind, match="named corpora: .*goblet"):
        resolve_source("nonexistent-corpus", registry)
    with pytest.raises(UnknownCorpusKind, match="unknown corpus loader 'nope'"):
        resolve_source("x.txt", registry, kind="nope")


def test_a_folder_given_as_a_corpus_is_named_as_a_folder_with_the_loader_that_reads_folders(tmp_path):
    # it used to say "no loader claims the suffix '(none)'", as if the folder did not exist
    with pytest.raises(UnknownCorpusKind, match=f"--corpus '{tmp_path}': is a folder; .*hf:{tmp_path}"):
        resolve_source(str(tmp_path), discover([]))


def test_named_corpus_is_found_in_the_current_folder_or_says_where_to_get_it(tmp_path, monkeypatch):
    registry = discover([])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CorpusError, match="goblet_book.txt, not found in .*DD2424"):
        resolve_source("goblet", registry)
    (tmp_path / "goblet_book.txt").write_text("book")
    source = resolve_source("goblet", registry)
    assert (source.kind, source.location) == ("text", str(tmp_path / "goblet_book.txt"))


def test_plugin_documents_are_joined_with_its_separator_and_options_reach_it(tmp_path):
    registry = discover(fake_distribution(tmp_path, "lines-plugin", "1.2", {"lines": "plugin_fixtures:LineLoader"}))
    (tmp_path / "a.lines").write_text("one\ntwo\n")
    corpus = load_corpus([str(tmp_path / "a.lines")], options={"upper": True}, registry=registry)
    assert corpus.text == "ONE\nTWO\n"
    assert corpus.sources[0]["documents"] == 2 and corpus.sources[0]["loader_origin"] == "lines-plugin 1.2"


def test_a_plugin_yielding_non_strings_is_reported(tmp_path):
    registry = discover(fake_distribution(tmp_path, "bad", "1.0", {"bytes": "plugin_fixtures:YieldsBytes"}))
    (tmp_path / "a.bytes").write_text("x")
    with pytest.raises(PluginError, match="yielded a bytes"):
        load_corpus([str(tmp_path / "a.bytes")], registry=registry)
