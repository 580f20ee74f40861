import pytest

from textgen.errors import CorpusError
from textgen.loaders import plaintext
from textgen.loaders.plaintext import PlainTextLoader


def read(path, **options):
    return "".join(PlainTextLoader(**options).iter_texts(str(path)))


def test_text_is_read_exactly(tmp_path):
    text = "Line one\r\nLine two\n\nÜnïcödé ✓ end without newline"
    (tmp_path / "book.txt").write_bytes(text.encode("utf-8"))
    assert read(tmp_path / "book.txt") == text


def test_chunks_join_back_exactly_even_across_multibyte_characters(tmp_path, monkeypatch):
    monkeypatch.setattr(plaintext, "_CHUNK_BYTES", 7)  # force chunk edges inside 2- and 3-byte characters
    text = "ab€cdé€€fghijklmnöp" * 5
    (tmp_path / "book.txt").write_text(text, encoding="utf-8")
    assert read(tmp_path / "book.txt") == text


def test_undecodable_bytes_name_the_offset_and_suggest_encoding(tmp_path):
    (tmp_path / "book.txt").write_bytes(b"hello\nw\xf6rld")
    with pytest.raises(CorpusError, match=r"book.txt: byte 0xf6 at offset 7 .*--encoding"):
        read(tmp_path / "book.txt")
    assert read(tmp_path / "book.txt", encoding="latin-1") == "hello\nwörld"


def test_missing_file_and_folder_are_clear_errors(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read(tmp_path / "absent.txt")
    with pytest.raises(CorpusError, match="is a folder"):
        read(tmp_path)


def test_unknown_encoding_is_a_clear_error(tmp_path):
    (tmp_path / "book.txt").write_text("x")
    with pytest.raises(CorpusError, match="unknown text encoding"):
        read(tmp_path / "book.txt", encoding="no-such-codec")


def test_gutenberg_licence_is_stripped_when_asked(tmp_path):
    text = (
        "The Project Gutenberg eBook of Something\nLicence words.\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\n\nChapter 1\nIt began.\n\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK SOMETHING ***\nMore licence.\n"
    )
    (tmp_path / "pg.txt").write_text(text)
    assert read(tmp_path / "pg.txt", strip_gutenberg=True) == "Chapter 1\nIt began.\n"
    assert read(tmp_path / "pg.txt") == text
    (tmp_path / "plain.txt").write_text("no markers here")
    with pytest.raises(CorpusError, match="START OF THE PROJECT GUTENBERG"):
        read(tmp_path / "plain.txt", strip_gutenberg=True)


def test_a_decoder_message_with_a_line_break_stays_one_line(tmp_path):
    (tmp_path / "book.txt").write_bytes(b"\n")
    with pytest.raises(CorpusError) as raised:
        read(tmp_path / "book.txt", encoding="punycode")  # its error message quotes the raw line break
    assert "\n" not in str(raised.value) and "\\n" in str(raised.value)
