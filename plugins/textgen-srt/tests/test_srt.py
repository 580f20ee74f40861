from importlib import metadata
from pathlib import Path

import pytest
from textgen.corpus import LoaderOption, load_corpus
from textgen.errors import ConfigError, CorpusError
from textgen.loaders.base import CorpusLoader
from textgen.registry import DISABLE_AUTOLOAD_ENV, ENTRY_POINT_GROUP, discover

from textgen_srt import SubtitleLoader

SAMPLE = Path(__file__).resolve().parent.parent / "sample.srt"

THREE_CUES = """1
00:00:01,000 --> 00:00:03,200
Is the kettle on?

2
00:00:03,900 --> 00:00:06,000
It has been on
since this morning.

3
00:00:06,500 --> 00:00:08,000
Then why is it cold?

"""


def cues(path, **options):
    return list(SubtitleLoader(**options).iter_texts(str(path)))


def write(tmp_path, text, name="film.srt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def plugin_installed():
    try:
        return metadata.distribution("textgen-srt")
    except metadata.PackageNotFoundError:
        return None


def test_each_cue_is_one_document_with_its_lines_joined_by_a_space(tmp_path):
    path = write(tmp_path, THREE_CUES)
    assert cues(path) == ["Is the kettle on?", "It has been on since this morning.", "Then why is it cold?"]


def test_crlf_line_endings_and_a_byte_order_mark_are_read(tmp_path):
    path = tmp_path / "windows.srt"
    path.write_bytes(b"\xef\xbb\xbf" + THREE_CUES.replace("\n", "\r\n").encode("utf-8"))
    assert cues(path) == ["Is the kettle on?", "It has been on since this morning.", "Then why is it cold?"]


def test_old_mac_line_endings_are_read(tmp_path):
    path = write(tmp_path, THREE_CUES.replace("\n", "\r"))
    assert cues(path)[1] == "It has been on since this morning."


def test_a_file_without_a_final_blank_line_or_newline_keeps_its_last_cue(tmp_path):
    path = write(tmp_path, "1\n00:00:01,000 --> 00:00:02,000\nFirst.\n\n2\n00:00:02,500 --> 00:00:04,000\nLast words")
    assert cues(path) == ["First.", "Last words"]


def test_tags_and_style_codes_are_stripped_by_default_and_kept_on_request(tmp_path):
    text = (
        "1\n00:00:01,000 --> 00:00:02,000\n<i>Somebody is</i>\n<i>at the door.</i>\n\n"
        '2\n00:00:02,500 --> 00:00:04,000\n{\\an8}<font color="#ffff00">Who</font> <b>is</b> it?\n\n'
        "3\n00:00:04,500 --> 00:00:05,000\n{\\an8}<i></i>\n"
    )
    path = write(tmp_path, text)
    assert cues(path) == ["Somebody is at the door.", "Who is it?"]
    assert cues(path, strip_tags=False) == [
        "<i>Somebody is</i> <i>at the door.</i>",
        '{\\an8}<font color="#ffff00">Who</font> <b>is</b> it?',
        "{\\an8}<i></i>",
    ]


def test_text_that_only_looks_a_little_like_a_tag_is_kept(tmp_path):
    path = write(tmp_path, "1\n00:00:01,000 --> 00:00:02,000\nI <3 you. 2 < 3, {not a code}.\n")
    assert cues(path) == ["I <3 you. 2 < 3, {not a code}."]


def test_empty_cues_are_skipped(tmp_path):
    text = "1\n00:00:01,000 --> 00:00:02,000\n\n2\n00:00:02,000 --> 00:00:03,000\nStill here.\n"
    assert cues(write(tmp_path, text)) == ["Still here."]


def test_unnumbered_cues_dot_milliseconds_and_positions_are_read(tmp_path):
    text = (
        "00:00:01.000 --> 00:00:02.000\nNo number here.\n\n"
        "7\n00:00:03,000 --> 00:00:04,000  X1:100 X2:600 Y1:40 Y2:80\nPositioned.\n"
    )
    assert cues(write(tmp_path, text)) == ["No number here.", "Positioned."]


def test_a_blank_line_inside_a_cue_keeps_the_text_with_its_cue(tmp_path):
    text = "1\n00:00:01,000 --> 00:00:02,000\nWait.\n\nListen.\n\n2\n00:00:03,000 --> 00:00:04,000\nNothing.\n"
    assert cues(write(tmp_path, text)) == ["Wait. Listen.", "Nothing."]


def test_a_missing_blank_line_between_cues_still_separates_them(tmp_path):
    text = "1\n00:00:01,000 --> 00:00:02,000\nOne.\n2\n00:00:03,000 --> 00:00:04,000\nTwo.\n"
    assert cues(write(tmp_path, text)) == ["One.", "Two."]


def test_runs_of_spaces_are_collapsed_and_non_ascii_text_is_kept(tmp_path):
    text = "1\n00:00:01,000 --> 00:00:02,000\n  Où   est\t le café ?  \n"
    assert cues(write(tmp_path, text)) == ["Où est le café ?"]


def test_the_encoding_option_reads_cp1252_files(tmp_path):
    path = tmp_path / "old.srt"
    path.write_bytes("1\n00:00:01,000 --> 00:00:02,000\nNaïve café – “quoted”\n".encode("cp1252"))
    assert cues(path, encoding="cp1252") == ["Naïve café – “quoted”"]


def test_undecodable_bytes_name_the_line_and_offset_and_suggest_encoding(tmp_path):
    path = tmp_path / "old.srt"
    path.write_bytes(b"1\r\n00:00:01,000 --> 00:00:02,000\r\nCaf\xe9\r\n")
    message = r"old.srt: line 3: byte 0xe9 at offset 37 is not valid utf-8; .*--option encoding=NAME \(for example cp1252"
    with pytest.raises(CorpusError, match=message):
        cues(path)


def test_a_utf16_file_read_as_utf8_suggests_utf16(tmp_path):
    path = tmp_path / "wide.srt"
    path.write_bytes(THREE_CUES.encode("utf-16"))
    with pytest.raises(CorpusError, match=r"line 1: byte 0xff at offset 0 .*--option encoding=NAME \(for example utf-16\)"):
        cues(path)
    assert cues(path, encoding="utf-16")[0] == "Is the kettle on?"


def test_an_unknown_encoding_is_a_config_error():
    with pytest.raises(ConfigError, match="--option encoding=no-such-codec: unknown text encoding"):
        SubtitleLoader(encoding="no-such-codec")


def test_missing_file_and_folder_are_clear_errors(tmp_path):
    with pytest.raises(CorpusError, match="absent.srt: no such file"):
        cues(tmp_path / "absent.srt")
    with pytest.raises(CorpusError, match="is a folder"):
        cues(tmp_path)


def test_a_file_without_cues_says_so(tmp_path):
    with pytest.raises(CorpusError, match=r"empty.srt: holds no subtitle cues"):
        cues(write(tmp_path, "\r\n  \n", name="empty.srt"))


def test_a_file_whose_cues_are_all_empty_says_so(tmp_path):
    text = "1\n00:00:01,000 --> 00:00:02,000\n<i></i>\n\n2\n00:00:03,000 --> 00:00:04,000\n{\\an8}\n"
    with pytest.raises(CorpusError, match="film.srt: all 2 cues are empty after removing formatting tags"):
        cues(write(tmp_path, text))


def test_text_that_is_not_subrip_names_its_first_line(tmp_path):
    path = write(tmp_path, "\nWEBVTT\n\n00:01.000 --> 00:04.000\nHello\n", name="notes.srt")
    with pytest.raises(CorpusError, match=r"notes.srt: line 2: expected a cue number or a timing line .* 'WEBVTT'"):
        cues(path)


def test_a_cue_number_without_a_timing_line_names_the_line(tmp_path):
    text = "1\n00:00:01,000 --> 00:00:02,000\nFine.\n\n2\nWhere is my timing?\n"
    with pytest.raises(CorpusError, match=r"film.srt: line 6: cue 2 has no timing line; .* 'Where is my timing\?'"):
        cues(write(tmp_path, text))


def test_a_malformed_timing_line_names_the_line(tmp_path):
    text = "1\n00:00:01,000 --> 00:00:02,000\nFine.\n\n2\n00:00:03 --> 00:00:04\nBroken.\n"
    with pytest.raises(CorpusError, match=r"film.srt: line 6: '00:00:03 --> 00:00:04' is not a timing line"):
        cues(write(tmp_path, text))


def test_the_loader_follows_the_protocol_without_a_textgen_base_class():
    loader = SubtitleLoader()
    assert isinstance(loader, CorpusLoader)
    assert SubtitleLoader.__mro__ == (SubtitleLoader, object)
    assert (loader.name, loader.suffixes, loader.document_separator) == ("srt", (".srt",), "\n")


def test_textgen_joins_the_cues_one_per_line_through_an_entry_point(tmp_path):
    entry_point = metadata.EntryPoint(name="srt", value="textgen_srt:SubtitleLoader", group=ENTRY_POINT_GROUP)
    registry = discover([entry_point])
    path = write(tmp_path, THREE_CUES)
    corpus = load_corpus([str(path)], registry=registry)
    assert corpus.text == "Is the kettle on?\nIt has been on since this morning.\nThen why is it cold?\n"
    assert (corpus.sources[0]["kind"], corpus.sources[0]["documents"]) == ("srt", 3)
    path.write_bytes("1\n00:00:01,000 --> 00:00:02,000\nÀ bientôt\n".encode("latin-1"))
    assert load_corpus([str(path)], options={"encoding": "latin-1"}, registry=registry).text == "À bientôt\n"


def test_option_text_as_the_command_line_gives_it_reaches_the_loader(tmp_path):
    entry_point = metadata.EntryPoint(name="srt", value="textgen_srt:SubtitleLoader", group=ENTRY_POINT_GROUP)
    registry = discover([entry_point])
    path = write(tmp_path, "1\n00:00:01,000 --> 00:00:02,000\n<i>Is the kettle on?</i>\n")
    options = [LoaderOption.parse("strip_tags=false"), LoaderOption.parse("encoding=ascii")]
    corpus = load_corpus([str(path)], options=options, registry=registry)
    assert corpus.text == "<i>Is the kettle on?</i>\n"
    assert corpus.sources[0]["options"] == {"strip_tags": False, "encoding": "ascii"}
    with pytest.raises(ConfigError, match=r"--option tags=false: no loader used here takes 'tags'; the srt loader \(.*\) "
                                          r"takes encoding, strip_tags$"):
        load_corpus([str(path)], options=[LoaderOption.parse("tags=false")], registry=registry)


def test_the_sample_file_is_long_enough_for_a_short_training_run():
    documents = cues(SAMPLE)
    assert len(documents) == 42
    assert documents[0] == "The lamp went dark at ten past nine. Not a flicker, not a spark."
    assert documents[13] == "NORTH LIGHT - KEEPERS ONLY"
    assert documents[-1] == "Harbour station, signing off. Goodnight, North Light."
    assert sum(len(document) + 1 for document in documents) >= 2000


def test_the_installed_entry_point_is_discovered_with_its_distribution(monkeypatch):
    if plugin_installed() is None:
        pytest.skip("textgen-srt is not installed; pip install this folder to test its entry point")
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    registry = discover()
    assert "srt" in registry.loaders, f"broken plugins: {registry.broken}"
    info = registry.loaders["srt"]
    assert (info.origin, info.distribution, info.suffixes) == ("textgen-srt 0.1.0", "textgen-srt", (".srt",))
    assert info.factory.__name__ == "SubtitleLoader"


def test_textgen_corpora_lists_the_installed_plugin(monkeypatch, capsys):
    if plugin_installed() is None:
        pytest.skip("textgen-srt is not installed; pip install this folder to test its entry point")
    from textgen.cli import main

    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    assert main(["corpora"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["srt", "textgen-srt", "0.1.0", ".srt"] in rows
