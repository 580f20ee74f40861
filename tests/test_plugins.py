"""Third-party loaders that misbehave, installed for a real `textgen` child process: whatever a plugin raises
or yields, the command says in one line which plugin, from which distribution, and what went wrong."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

import pytest
from commands import assert_one_error_line, plugin_environment, textgen

import textgen as textgen_package

PROJECT = Path(__file__).resolve().parent.parent

MISBEHAVING = {
    "raises": "plugin_fixtures:RaisesWhileReading",
    "badinit": "plugin_fixtures:RaisesInConstructor",
    "returnsnone": "plugin_fixtures:ReturnsNone",
    "bytes": "plugin_fixtures:YieldsBytes",
    "surrogates": "plugin_fixtures:YieldsSurrogates",
    "exits": "plugin_fixtures:ExitsWhileReading",
    "gone": "no_such_module_for_textgen_tests:Loader",  # fails to import: a warning, and the rest works
}
ORIGIN = r"\(misbehaving-plugins 0\.1\)"

CASES = {  # suffix: what the one line says after the loader and its distribution
    ".raises": rf"corpus loader 'raises' {ORIGIN} failed while reading '.*x\.raises': KeyError: 'row_17'; this is "
               r"a problem in the plugin",
    ".badinit": rf"corpus loader 'badinit' {ORIGIN} failed while setting up to read .*: RuntimeError: cannot find "
                r"my configuration file",
    ".none": rf"corpus loader 'returnsnone' {ORIGIN} failed while reading .*: TypeError: 'NoneType' object is not "
             r"iterable",
    ".bytes": rf"loader 'bytes' {ORIGIN} yielded a bytes as document 1 of .*; loaders must yield str",
    ".surrogates": r"loader 'surrogates' gave document 2 with a lone surrogate U\+DC80 at character 7, which is "
                   r"not valid Unicode text",
    ".exits": rf"corpus loader 'exits' {ORIGIN} failed while reading .*: SystemExit: 3",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return plugin_environment(tmp_path_factory.mktemp("site"), MISBEHAVING)


@pytest.mark.parametrize("suffix", list(CASES))
def test_a_misbehaving_plugin_is_one_line_naming_it(env, tmp_path, suffix):
    corpus = tmp_path / f"x{suffix}"
    corpus.write_text("some text\n")
    result = textgen("train", "--corpus", corpus, "--out", tmp_path / "run", "--no-progress", env=env)
    assert "warning: corpus plugin 'gone'" in result.stderr  # the broken one is reported, once
    assert result.stderr.count("warning:") == 1
    result.stderr = result.stderr.split("\n", 1)[1]
    assert_one_error_line(result, CASES[suffix])
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_plugins_traceback(env, tmp_path):
    corpus = tmp_path / "x.raises"
    corpus.write_text("some text\n")
    for argv, extra in ((["--debug", "train"], {}), (["train"], {"TEXTGEN_DEBUG": "1"})):
        result = textgen(*argv, "--corpus", corpus, "--out", tmp_path / "run", "--no-progress",
                         env=dict(env, **extra))
        assert result.returncode == 1
        assert "Traceback" in result.stderr and "plugin_fixtures.py" in result.stderr and "KeyError" in result.stderr
        assert result.stderr.rstrip().splitlines()[-1].startswith("textgen: error: corpus loader 'raises'")


def test_a_broken_plugin_does_not_stop_the_others_and_is_reported_once(env):
    result = textgen("corpora", env=env)
    assert result.returncode == 0
    assert result.stderr.count("corpus plugin 'gone'") == 1
    assert "raises" in result.stdout and "BROKEN: ModuleNotFoundError" in result.stdout


def test_a_plugin_that_never_stops_is_read_until_the_corpus_would_not_fit(tmp_path):
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))

    env = plugin_environment(tmp_path / "site", {"endless": "plugin_fixtures:Endless"})
    (tmp_path / "x.endless").write_text("")
    result = textgen("train", "--corpus", tmp_path / "x.endless", "--out", tmp_path / "run", env=env,
                     preexec_fn=limited, timeout=120)
    assert_one_error_line(result, r"x\.endless: stopped reading after [\d,]+ characters")
    assert not (tmp_path / "run").exists()


def readme_plugin_section() -> str:
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    return text[text.index("## Write a corpus plugin"):]


def test_plugins_depend_on_textgens_own_distribution_name_not_the_unrelated_textgen():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    srt = tomllib.loads((PROJECT / "plugins" / "textgen-srt" / "pyproject.toml").read_text())["project"]
    template = tomllib.loads(re.search(r"```toml\n(.*?)```", readme_plugin_section(), re.DOTALL).group(1))
    assert project["name"] != "textgen"  # the package index's `textgen` is another project
    assert srt["dependencies"] == [project["name"]]
    assert template["project"]["dependencies"] == [project["name"]]
    assert template["build-system"]["build-backend"] == "setuptools.build_meta"
    assert metadata.version(project["name"]) == textgen_package.__version__  # installed under that name


def test_option_sets_a_plugins_keyword_from_the_command_line_and_a_resume_reads_with_it_again(tmp_path):
    env = plugin_environment(tmp_path / "site", {"lyrics": "plugin_fixtures:LyricsLoader"}, "songs-plugin", "1.0")
    songs = tmp_path / "hits.lyrics.csv"
    songs.write_text("title,lyrics\n" + "".join(f"song number {i},la la {i}\n" for i in range(60)), encoding="utf-8")
    run = tmp_path / "run"
    settings = ["--hidden", "8", "--seq-length", "10", "--sample-every", "1000", "--no-progress", "--seed", "1"]
    result = textgen("train", "--corpus", songs, "--option", "column=title", "--option", "upper=true",
                     "--updates", "20", *settings, "--out", run, env=env)
    assert result.returncode == 0, result.stderr
    source = json.loads((run / "config.json").read_text())["corpus"]["sources"][0]
    assert (source["kind"], source["options"]) == ("lyrics", {"column": "title", "upper": True})
    vocab = set(json.loads((run / "vocab.json").read_text())["chars"])
    assert vocab == set("".join(f"SONG NUMBER {i}" for i in range(60))) | {"\u2403"}  # the titles, shouted
    result = textgen("train", "--resume", run, "--updates", "30", "--no-progress", env=env)
    assert result.returncode == 0, result.stderr
    result = textgen("train", "--corpus", songs, "--option", "colour=red", *settings, "--out", tmp_path / "x", env=env)
    assert_one_error_line(result, r"--option colour=red: no loader used here takes 'colour'; the lyrics loader "
                                  r"\(songs-plugin 1\.0\) takes column, upper, min_words, share$")
    result = textgen("train", "--corpus", songs, "--encoding", "latin-1", *settings, "--out", tmp_path / "x", env=env)
    assert_one_error_line(result, r"--encoding is for the text loader, which no --corpus here uses \(they use lyrics\)")


def test_a_hugging_face_warning_is_printed_once_and_textgens_own_once_too(tmp_path):
    env = plugin_environment(tmp_path / "site", {"hubwarns": "plugin_fixtures:HubWarns",
                                                 "gone": "no_such_module_for_textgen_tests:Loader"})
    corpus = tmp_path / "x.hubwarns"
    corpus.write_text("a line of text to train on\n" * 20)
    result = textgen("train", "--corpus", corpus, "--out", tmp_path / "run", "--updates", "5", "--hidden", "4",
                     "--no-progress", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [line for line in lines if "Retrying in 1s" in line] == ["Retrying in 1s [Retry 1/5]."]
    assert sum(line.startswith("textgen: warning: corpus plugin 'gone'") for line in lines) == 1


def test_the_readmes_plugin_example_is_found_through_its_entry_point_and_takes_option(tmp_path, monkeypatch):
    from test_registry import fake_distribution

    from textgen.corpus import LoaderOption, load_corpus
    from textgen.registry import discover

    tomllib = pytest.importorskip("tomllib")
    section = readme_plugin_section()
    (tmp_path / "my_loader.py").write_text(re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1))
    project = tomllib.loads(re.search(r"```toml\n(.*?)```", section, re.DOTALL).group(1))["project"]
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = discover(fake_distribution(tmp_path / "site", project["name"], project["version"],
                                          project["entry-points"]["textgen.corpora"]))
    dinner = tmp_path / "dinner.recipes"
    dinner.write_text("soup\nboil water\n----\ntoast\n----\nsalad\nwash\ncut\n", encoding="utf-8")
    corpus = load_corpus([str(dinner)], options=[LoaderOption.parse("min_lines=2")], registry=registry)
    assert corpus.text == "soup\nboil water\nsalad\nwash\ncut\n\n"
    assert corpus.sources[0]["loader_origin"] == "textgen-recipes 0.1.0"
