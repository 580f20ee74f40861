"""Tests for the `tweets` loader: formats, filters, cleaning and its error messages."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textgen.errors import ConfigError, CorpusError
from textgen.loaders.base import END_OF_DOCUMENT, CorpusLoader, document_separator
from textgen.loaders.tweets import TweetLoader, parse_created_at

SAMPLE_TWEETS = Path(__file__).resolve().parent.parent / "corpora" / "sample_tweets.json"
FUZZ_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def condensed(text, created_at="Tue Mar 20 15:36:23 +0000 2018", is_retweet=False, **extra):
    """One record in the tweet archive's condensed format."""
    record = {
        "source": "Twitter for iPhone",
        "id_str": "1",
        "text": text,
        "created_at": created_at,
        "retweet_count": 0,
        "in_reply_to_user_id_str": None,
        "favorite_count": 0,
        "is_retweet": is_retweet,
    }
    record.update(extra)
    return record


def write_json(path: Path, value) -> Path:
    path.write_bytes(orjson.dumps(value))
    return path


def write_lines(path: Path, records) -> Path:
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def load(path: Path, **options) -> list[str]:
    return list(TweetLoader(**options).iter_texts(str(path)))


def corpus_error(path: Path, **options) -> str:
    with pytest.raises(CorpusError) as caught:
        load(path, **options)
    return str(caught.value)


# --- the protocol -----------------------------------------------------------------------


def test_loader_follows_the_protocol_and_uses_the_default_document_separator():
    loader = TweetLoader()
    assert isinstance(loader, CorpusLoader)
    assert loader.name == "tweets"
    assert loader.suffixes == (".json", ".jsonl", ".ndjson", ".zip")
    assert not hasattr(loader, "document_separator")
    assert document_separator(loader) == END_OF_DOCUMENT


# --- formats ------------------------------------------------------------------------------


def test_condensed_list_yields_each_tweet_text_in_file_order(tmp_path):
    path = write_json(tmp_path / "tweets.json", [condensed("first tweet"), condensed("second tweet")])
    assert load(path) == ["first tweet", "second tweet"]


def test_text_keeps_internal_newlines_and_loses_outer_whitespace(tmp_path):
    path = write_json(tmp_path / "tweets.json", [condensed("  line one\n\nline two \n")])
    assert load(path) == ["line one\n\nline two"]


def test_api_objects_prefer_full_text_over_text(tmp_path):
    records = [
        {"id_str": "1", "created_at": "Mon Jan 01 10:00:00 +0000 2018", "text": "cut…", "full_text": "whole text"},
        {"id_str": "2", "created_at": "Mon Jan 01 11:00:00 +0000 2018", "text": "only text"},
    ]
    assert load(write_json(tmp_path / "api.json", records)) == ["whole text", "only text"]


def test_api_retweet_is_marked_by_retweeted_status(tmp_path):
    records = [
        {"full_text": "RT @other: shared words", "retweeted_status": {"full_text": "shared words"}},
        {"full_text": "own words"},
    ]
    path = write_json(tmp_path / "api.json", records)
    assert load(path) == ["own words"]
    assert load(path, keep_retweets=True) == ["RT @other: shared words", "own words"]


def test_text_starting_with_rt_is_a_retweet_only_without_a_retweet_field(tmp_path):
    records = [
        {"text": "RT @other: no flag at all"},
        condensed("RT @other: flagged as not a retweet", is_retweet=False),
        {"text": "plain"},
    ]
    assert load(write_json(tmp_path / "tweets.json", records)) == ["RT @other: flagged as not a retweet", "plain"]


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_json_lines_files_give_one_tweet_per_line(tmp_path, suffix):
    path = write_lines(tmp_path / f"tweets{suffix}", [condensed("one"), {"full_text": "two"}, condensed("three")])
    assert load(path) == ["one", "two", "three"]


def test_json_lines_skip_blank_lines_and_accept_crlf_and_a_byte_order_mark(tmp_path):
    path = tmp_path / "tweets.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "one"}\r\n\r\n   \n{"text": "two"}\r\n')
    assert load(path) == ["one", "two"]


def test_json_lines_saved_as_json_are_read_line_by_line(tmp_path):
    path = write_lines(tmp_path / "tweets.json", [condensed("one"), condensed("two")])
    assert load(path) == ["one", "two"]


def test_a_pretty_printed_single_tweet_object_is_one_tweet(tmp_path):
    path = tmp_path / "tweet.json"
    path.write_text(json.dumps({"text": "alone", "created_at": "Mon Jan 01 10:00:00 +0000 2018"}, indent=2))
    assert load(path) == ["alone"]


@pytest.mark.parametrize("key", ["tweets", "data", "statuses"])
def test_a_top_level_object_may_hold_the_list(tmp_path, key):
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"meta": {"count": 2}, key: [{"text": "one"}, {"text": "two"}]}, indent=2))
    assert load(path) == ["one", "two"]


def test_a_line_longer_than_the_read_chunk_is_kept_whole(tmp_path):
    long_text = "é" * 700_000 + "x" * 500_000  # about 1.9 MB of UTF-8, more than one 1 MiB read
    path = write_lines(tmp_path / "long.jsonl", [{"text": "before"}, {"text": long_text}, {"text": "after"}])
    assert load(path) == ["before", long_text, "after"]


def test_json_lines_are_yielded_before_a_later_broken_line_is_read(tmp_path):
    path = tmp_path / "tweets.jsonl"
    path.write_bytes(b'{"text": "one"}\n{"text": "two"}\n{"text": \n')
    texts = TweetLoader().iter_texts(str(path))
    assert next(texts) == "one"
    assert next(texts) == "two"
    with pytest.raises(CorpusError, match="line 3"):
        next(texts)


# --- zip archives ---------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["tweets.json", "export/tweets.jsonl", "TWEETS.NDJSON"])
def test_zip_with_one_tweet_file_is_read_ignoring_folders_and_macos_entries(tmp_path, member):
    data = b'{"text": "zipped one"}\n{"text": "zipped two"}\n'
    if member == "tweets.json":
        data = orjson.dumps([{"text": "zipped one"}, {"text": "zipped two"}])
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("export/"), b"")
        archive.writestr("__MACOSX/export/._tweets.json", b"\x00\x05\x16\x07 resource fork")
        archive.writestr("README.txt", b"not tweets")
        archive.writestr(member, data)
    assert load(path) == ["zipped one", "zipped two"]


def test_zip_without_a_tweet_file_names_what_it_holds(tmp_path):
    path = write_zip(tmp_path / "archive.zip", {"notes.txt": b"hello", "table.csv": b"a,b"})
    message = corpus_error(path)
    assert "archive.zip" in message
    assert "no .json, .jsonl or .ndjson file" in message
    assert "notes.txt" in message and "table.csv" in message


def test_zip_with_two_tweet_files_names_both(tmp_path):
    path = write_zip(tmp_path / "archive.zip", {"a.json": b"[]", "b.jsonl": b""})
    message = corpus_error(path)
    assert "holds 2 tweet files (a.json, b.jsonl)" in message
    assert "exactly one" in message


def test_truncated_zip_raises_corpus_error(tmp_path):
    whole = write_zip(tmp_path / "whole.zip", {"tweets.jsonl": b'{"text": "hello there"}\n' * 200}).read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(whole[: len(whole) // 2])
    assert "not a readable zip archive" in corpus_error(path)


def test_zip_errors_name_the_member(tmp_path):
    path = write_zip(tmp_path / "archive.zip", {"tweets.jsonl": b'{"text": "fine"}\n{"id_str": "2"}\n'})
    message = corpus_error(path)
    assert message.startswith(f"{path} (tweets.jsonl): line 2 has no 'text'")


# --- filters and cleaning ---------------------------------------------------------------------


def test_retweets_are_dropped_by_default_and_kept_with_keep_retweets(tmp_path):
    records = [condensed("mine"), condensed("RT @someone: theirs", is_retweet=True), condensed("also mine")]
    path = write_json(tmp_path / "tweets.json", records)
    assert load(path) == ["mine", "also mine"]
    assert load(path, keep_retweets=True) == ["mine", "RT @someone: theirs", "also mine"]


def test_html_entities_are_unescaped_unless_disabled(tmp_path):
    path = write_json(tmp_path / "tweets.json", [condensed("salt &amp; pepper &lt;3 &gt; &quot;hi&quot;")])
    assert load(path) == ['salt & pepper <3 > "hi"']
    assert load(path, unescape_html=False) == ["salt &amp; pepper &lt;3 &gt; &quot;hi&quot;"]


def test_tco_links_are_dropped_with_the_space_before_them_unless_kept(tmp_path):
    records = [
        condensed("look at this https://t.co/AbC123 now"),
        condensed("ends with a link  https://t.co/xyz9"),
        condensed("http://t.co/Old1 starts with one"),
        condensed("two links https://t.co/a1 https://t.co/b2"),
        condensed("other links stay https://example.org/page"),
    ]
    path = write_json(tmp_path / "tweets.json", records)
    assert load(path) == [
        "look at this now",
        "ends with a link",
        "starts with one",
        "two links",
        "other links stay https://example.org/page",
    ]
    assert load(path, keep_links=True)[0] == "look at this https://t.co/AbC123 now"


def test_link_removal_handles_long_runs_of_spaces(tmp_path):
    # a pattern that retried the run of spaces from every position would take minutes here
    text = "a" + " " * 200_000 + "b https://t.co/x1"
    path = write_json(tmp_path / "tweets.json", [condensed(text)])
    assert load(path) == ["a" + " " * 200_000 + "b"]


def test_since_and_until_are_inclusive(tmp_path):
    records = [
        condensed("jan 31", "Wed Jan 31 23:59:59 +0000 2018"),
        condensed("feb 1", "Thu Feb 01 00:00:00 +0000 2018"),
        condensed("feb 28", "Wed Feb 28 23:59:59 +0000 2018"),
        condensed("mar 1", "Thu Mar 01 00:00:00 +0000 2018"),
    ]
    path = write_json(tmp_path / "tweets.json", records)
    assert load(path, since="2018-02-01", until="2018-02-28") == ["feb 1", "feb 28"]
    assert load(path, since="2018-02-28") == ["feb 28", "mar 1"]
    assert load(path, until="2018-01-31") == ["jan 31"]


def test_iso_created_at_works_with_date_filters(tmp_path):
    records = [
        {"text": "early", "created_at": "2018-01-05T10:00:00.000Z"},
        {"text": "later", "created_at": "2018-03-05T10:00:00+00:00"},
    ]
    assert load(write_json(tmp_path / "v2.json", records), since="2018-02-01") == ["later"]


def test_unreadable_created_at_is_an_error_only_when_filtering_by_date(tmp_path):
    path = write_json(tmp_path / "tweets.json", [condensed("ok"), condensed("odd", created_at="yesterday")])
    assert load(path) == ["ok", "odd"]
    message = corpus_error(path, since="2018-01-01")
    assert "record 2 has created_at 'yesterday'" in message


def test_min_length_counts_characters_after_cleaning(tmp_path):
    records = [condensed("ok https://t.co/LongLink123"), condensed("a &amp; b"), condensed("long enough")]
    path = write_json(tmp_path / "tweets.json", records)
    # cleaned: "ok" (2 characters), "a & b" (5), "long enough" (11)
    assert load(path, min_length=5) == ["a & b", "long enough"]
    assert load(path, min_length=6) == ["long enough"]


def test_tweets_empty_after_removing_links_are_dropped(tmp_path):
    path = write_json(tmp_path / "tweets.json", [condensed("https://t.co/Photo1"), condensed("words")])
    assert load(path) == ["words"]
    assert load(path, keep_links=True) == ["https://t.co/Photo1", "words"]


# --- empty corpora ------------------------------------------------------------------------------


def test_all_retweets_filtered_out_says_which_filter_and_how_many(tmp_path):
    records = [condensed(f"RT @a: {n}", is_retweet=True) for n in range(12)]
    path = write_json(tmp_path / "x.json", records)
    message = corpus_error(path)
    assert message == f"{path}: all 12 tweets were filtered out (12 retweets dropped; use --keep-retweets to keep them)"


def test_empty_after_several_filters_counts_each_filter(tmp_path):
    records = [
        condensed("RT @a: theirs", "Mon Jan 01 10:00:00 +0000 2018", is_retweet=True),
        condensed("too early", "Mon Jan 01 10:00:00 +0000 2018"),
        condensed("https://t.co/OnlyLink", "Mon Feb 05 10:00:00 +0000 2018"),
        condensed("tiny", "Mon Feb 05 10:00:00 +0000 2018"),
        condensed("short", "Mon Feb 05 10:00:00 +0000 2018"),
    ]
    message = corpus_error(write_json(tmp_path / "x.json", records), since="2018-02-01", min_length=10)
    assert "all 5 tweets were filtered out" in message
    assert "1 retweet dropped" in message
    assert "1 outside the dates 2018-02-01 to the end" in message
    assert "1 empty after removing links" in message
    assert "2 shorter than 10 characters" in message


@pytest.mark.parametrize("content", [b"[]", b"", b"  \n\t ", b'{"data": []}', b"\n\n"])
def test_a_file_without_records_holds_no_tweets(tmp_path, content):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    assert corpus_error(path).startswith(f"{path}: holds no tweets")


# --- broken input ---------------------------------------------------------------------------


def test_broken_json_list_names_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"text": "fine"},\n  {"text": "oops" "created_at": "x"}\n]\n')
    # line 3 is `  {"text": "oops" "created_at": "x"}`: two spaces, `{` in column 3, `"text"` in 4-9,
    # `:` 10, a space 11, `"oops"` 12-17, a space 18, and the stray `"` (a comma was due) in column 19.
    message = corpus_error(path)
    assert message.startswith(f"{path}: line 3, column 19: not valid JSON")


def test_broken_json_line_names_line_and_column_in_characters(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "naïve" oops}\n', encoding="utf-8")
    # `{` 1, `"text"` 2-7, `:` 8, space 9, `"naïve"` 10-16 (ï is one character, two bytes), space 17, `o` 18
    assert corpus_error(path).startswith(f"{path}: line 2, column 18: not valid JSON")


def test_json_lines_saved_as_json_report_the_broken_line(tmp_path):
    path = tmp_path / "tweets.json"
    path.write_text('{"text": "one"}\n{"text": "two"}\n{"text" "three"}\n')
    # line 3: `{` 1, `"text"` 2-7, a space 8, and `"three"` starts in column 9 where a `:` was due
    assert corpus_error(path).startswith(f"{path}: line 3, column 9: not valid JSON")


def test_bytes_that_are_not_utf8_are_located(tmp_path):
    path = tmp_path / "latin.json"
    path.write_bytes(b'[\n{"text": "caf\xe9"}\n]')
    # line 2: `{` 1, `"text"` 2-7, `:` 8, space 9, `"` 10, `caf` 11-13, the byte 0xe9 in column 14
    message = corpus_error(path)
    assert message.startswith(f"{path}: line 2, column 14: byte 0xe9 is not valid UTF-8")


def test_record_without_text_names_record_number_and_sorted_keys(tmp_path):
    records = [condensed("fine"), {"id_str": "2", "created_at": "Mon Jan 01 10:00:00 +0000 2018"}]
    path = write_json(tmp_path / "tweets.json", records)
    assert corpus_error(path) == (
        f"{path}: record 2 has no 'text' or 'full_text' field (keys: created_at, id_str); each tweet needs its text"
    )


def test_json_lines_record_without_text_names_the_line(tmp_path):
    path = tmp_path / "tweets.jsonl"
    path.write_bytes(b'{"text": "fine"}\n\n{"user": "x"}\n')
    assert corpus_error(path).startswith(f"{path}: line 3 has no 'text' or 'full_text' field (keys: user)")


def test_record_that_is_not_an_object_is_an_error(tmp_path):
    path = write_json(tmp_path / "tweets.json", [condensed("fine"), 42])
    assert corpus_error(path).startswith(f"{path}: record 2 is a number, expected a tweet object")


def test_text_that_is_not_a_string_is_an_error(tmp_path):
    path = write_json(tmp_path / "tweets.json", [condensed("fine"), condensed(None)])
    assert corpus_error(path).startswith(f"{path}: record 2 has 'text' set to null, expected a string")


@pytest.mark.parametrize("content", [b"42", b'"just text"', b"true"])
def test_a_file_holding_a_plain_value_is_an_error(tmp_path, content):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    assert "expected a JSON list of tweet objects" in corpus_error(path)


def test_a_top_level_object_without_tweets_names_its_keys(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"version": 1, "users": []}, indent=2))
    message = corpus_error(path)
    assert "top-level object has no 'text' field" in message
    assert "(keys: users, version)" in message


def test_deeply_nested_json_is_a_corpus_error(tmp_path):
    for name in ("deep.json", "deep.jsonl"):
        path = tmp_path / name
        path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
        assert "not valid JSON" in corpus_error(path)


def test_missing_file_and_folder_are_corpus_errors(tmp_path):
    assert "no such file" in corpus_error(tmp_path / "absent.json")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    assert "is a folder" in corpus_error(folder)


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"), [("since", "2018-13-01"), ("until", "31/01/2018"), ("since", "20180131"), ("until", "")]
)
def test_bad_dates_raise_config_error_naming_option_and_value(option, value):
    with pytest.raises(ConfigError) as caught:
        TweetLoader(**{option: value})
    assert f"--{option} {value!r}" in str(caught.value)
    assert "YYYY-MM-DD" in str(caught.value)


def test_since_after_until_raises_config_error():
    with pytest.raises(ConfigError, match="--since 2018-03-01 is after --until 2018-02-01"):
        TweetLoader(since="2018-03-01", until="2018-02-01")


@pytest.mark.parametrize("value", [-1, 2.5, "3", True])
def test_min_length_must_be_a_whole_number_not_below_zero(value):
    with pytest.raises(ConfigError, match="--min-length"):
        TweetLoader(min_length=value)


def test_parse_created_at_reads_twitter_and_iso_dates():
    assert parse_created_at("Tue Mar 20 15:36:23 +0000 2018") == date(2018, 3, 20)
    assert parse_created_at("2018-01-05T10:00:00.000Z") == date(2018, 1, 5)
    assert parse_created_at("2018-01-05") == date(2018, 1, 5)
    not_dates = ["Tue Foo 20 15:36:23 +0000 2018", "Tue Feb 30 15:36:23 +0000 2018", "2018-02-30T00:00:00Z", "", 5]
    for bad in [*not_dates, None]:
        assert parse_created_at(bad) is None


# --- the sample corpus ----------------------------------------------------------------------------


def test_sample_corpus_loads_without_retweets_entities_or_links():
    texts = load(SAMPLE_TWEETS)
    # 32 records: 4 retweets and 1 tweet that is only a link are dropped
    assert len(texts) == 27
    assert not any("&amp;" in text or "t.co/" in text or text.startswith("RT @") for text in texts)
    assert len(load(SAMPLE_TWEETS, keep_retweets=True, keep_links=True)) == 32


# --- properties: any input gives strings or a CorpusError -----------------------------------------


def assert_strings_or_corpus_error(path: Path, loader: TweetLoader | None = None) -> None:
    try:
        texts = list((loader or TweetLoader()).iter_texts(str(path)))
    except CorpusError:
        return
    assert all(isinstance(text, str) and text for text in texts)


JSON_PIECES = [b"{", b"}", b"[", b"]", b'"text"', b'"full_text"', b":", b",", b"\n", b'"RT @x"', b"1", b"null", b"\xff"]
json_like_bytes = st.lists(st.sampled_from(JSON_PIECES), max_size=40).map(b"".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
tweet_keys = st.sampled_from(["text", "full_text", "created_at", "is_retweet", "retweeted_status", "extended_tweet"])
tweet_like_records = st.dictionaries(tweet_keys | st.text(max_size=5), json_values | st.text(max_size=30), max_size=5)


@FUZZ_SETTINGS
@given(data=st.binary(max_size=300) | json_like_bytes, suffix=st.sampled_from([".json", ".jsonl", ".ndjson", ".zip"]))
def test_random_bytes_give_strings_or_corpus_error(tmp_path, data, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    assert_strings_or_corpus_error(path)


@FUZZ_SETTINGS
@given(value=json_values, as_lines=st.booleans())
def test_random_json_values_give_strings_or_corpus_error(tmp_path, value, as_lines):
    if as_lines and isinstance(value, list):
        path = tmp_path / "random.jsonl"
        path.write_text("".join(json.dumps(item) + "\n" for item in value))
    else:
        path = tmp_path / "random.json"
        path.write_text(json.dumps(value))  # the stdlib writes big integers and NaN, which orjson refuses
    assert_strings_or_corpus_error(path)


@FUZZ_SETTINGS
@given(
    records=st.lists(tweet_like_records, max_size=6),
    as_lines=st.booleans(),
    keep_retweets=st.booleans(),
    since=st.sampled_from([None, "2018-01-01"]),
    min_length=st.integers(0, 3),
)
def test_random_tweet_like_records_give_strings_or_corpus_error(
    tmp_path, records, as_lines, keep_retweets, since, min_length
):
    path = tmp_path / ("random.jsonl" if as_lines else "random.json")
    if as_lines:
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
    else:
        path.write_text(json.dumps(records))
    loader = TweetLoader(keep_retweets=keep_retweets, since=since, min_length=min_length)
    assert_strings_or_corpus_error(path, loader)


def _valid_zip_bytes() -> bytes:
    # varied words compress poorly, so most of the archive is deflate data for the damage to hit
    words = [f"word{number * 7919 % 1009}" for number in range(400)]
    lines = [orjson.dumps({"text": " ".join(words[start : start + 8])}) + b"\n" for start in range(0, 400, 8)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("tweets.jsonl", b"".join(lines))
    return buffer.getvalue()


VALID_ZIP = _valid_zip_bytes()


@FUZZ_SETTINGS
@given(
    changes=st.lists(st.tuples(st.integers(0, len(VALID_ZIP) - 1), st.integers(0, 255)), max_size=4),
    keep=st.integers(0, len(VALID_ZIP)),
)
def test_damaged_zip_gives_strings_or_corpus_error(tmp_path, changes, keep):
    data = bytearray(VALID_ZIP)
    for position, byte in changes:
        data[position] = byte
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(data[:keep]))
    assert_strings_or_corpus_error(path)
