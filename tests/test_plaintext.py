import logging

import pytest

from textgen.errors import ConfigError, CorpusError
from textgen.loaders import plaintext
from textgen.loaders.plaintext import PlainTextLoader


def read(path, **options):
    return "".join(PlainTextLoader(**options).iter_texts(str(path)))


def universal(path) -> str:
    """The file as Python's text mode reads it: every CRLF and lone CR is a \\n."""
    with open(path, encoding="utf-8", newline=None) as stream:
        return stream.read()


def test_text_is_read_exactly(tmp_path):
    text = "Line one\nLine two\n\nÜnïcödé ✓ end without newline"
    (tmp_path / "book.txt").write_bytes(text.encode("utf-8"))
    assert read(tmp_path / "book.txt") == text


# CRLF, lone CR (old Mac), CR CR LF (a lone CR, then a CRLF), CRs at both ends, and no line break at all
LINE_ENDS = ["one\r\ntwo\r\n", "one\rtwo\r", "a\r\r\nb", "\r\nstart and end\r", "\r", "\r\n\r\n", "no break"]


@pytest.mark.parametrize("text", LINE_ENDS)
def test_crlf_and_lone_cr_become_newlines_as_in_pythons_text_mode(tmp_path, text):
    (tmp_path / "book.txt").write_bytes(text.encode("utf-8"))
    assert read(tmp_path / "book.txt") == universal(tmp_path / "book.txt")
    assert read(tmp_path / "book.txt", keep_carriage_returns=True) == text


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 5, 7])
def test_a_crlf_cut_between_two_chunks_is_one_newline(tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(plaintext, "_CHUNK_BYTES", chunk_bytes)  # chunk edges between CR and LF, inside € and é
    text = "ab\r\n€\r\r\ncd\ré\r\n\r\nend\r" * 4
    (tmp_path / "book.txt").write_bytes(text.encode("utf-8"))
    assert read(tmp_path / "book.txt") == universal(tmp_path / "book.txt")
    assert read(tmp_path / "book.txt", keep_carriage_returns=True) == text


def test_a_leading_byte_order_mark_is_removed_once(tmp_path):
    (tmp_path / "book.txt").write_bytes("\ufeff\ufeffword \ufeff".encode("utf-8"))
    assert read(tmp_path / "book.txt") == "\ufeffword \ufeff"  # only the first: the rest are the text's own
    assert read(tmp_path / "book.txt", keep_byte_order_mark=True) == "\ufeff\ufeffword \ufeff"
    (tmp_path / "sig.txt").write_bytes(b"\xef\xbb\xbfword")
    assert read(tmp_path / "sig.txt", encoding="utf-8-sig") == "word"  # the codec already took it


def test_one_note_says_what_was_changed(tmp_path, caplog):
    (tmp_path / "book.txt").write_bytes(b"\xef\xbb\xbfa\r\nb\r\nc\rd\r\ne\rf\n")
    with caplog.at_level(logging.INFO, logger="textgen"):
        assert read(tmp_path / "book.txt") == "a\nb\nc\nd\ne\nf\n"
    [note] = [record for record in caplog.records if record.name == "textgen.loaders.plaintext"]
    message = note.getMessage()
    assert note.levelno == logging.INFO and "\n" not in message
    assert message.startswith(f"{tmp_path / 'book.txt'}: translated 3 CRLF and 2 lone CR line ends to \\n")
    assert "byte-order mark" in message and "--keep-carriage-returns" in message
    caplog.clear()
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfplain\n")
    (tmp_path / "plain.txt").write_bytes(b"plain\n")
    with caplog.at_level(logging.INFO, logger="textgen"):
        read(tmp_path / "bom.txt")
        read(tmp_path / "plain.txt")
        read(tmp_path / "book.txt", keep_carriage_returns=True, keep_byte_order_mark=True)
    assert [record.getMessage() for record in caplog.records] == [
        f"{tmp_path / 'bom.txt'}: removed the byte-order mark (U+FEFF) at its start"]


def test_the_keep_options_must_be_true_or_false():
    with pytest.raises(ConfigError, match="--keep-carriage-returns must be true or false"):
        PlainTextLoader(keep_carriage_returns="yes")


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
    (tmp_path / "pg-crlf.txt").write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    assert read(tmp_path / "pg-crlf.txt", strip_gutenberg=True) == "Chapter 1\nIt began.\n"
    (tmp_path / "plain.txt").write_text("no markers here")
    with pytest.raises(CorpusError, match="START OF THE PROJECT GUTENBERG"):
        read(tmp_path / "plain.txt", strip_gutenberg=True)


def test_a_decoder_message_with_a_line_break_stays_one_line(tmp_path):
    (tmp_path / "book.txt").write_bytes(b"\n")
    with pytest.raises(CorpusError) as raised:
        read(tmp_path / "book.txt", encoding="punycode")  # its error message quotes the raw line break
    assert "\n" not in str(raised.value) and "\\n" in str(raised.value)
