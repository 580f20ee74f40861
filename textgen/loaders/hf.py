"""The `hf` loader: Hugging Face datasets from the Hub, a `save_to_disk` folder or local data files.

`datasets` (and pyarrow) are imported only when a dataset is read, so `textgen --help` stays fast.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textgen.errors import ConfigError, CorpusError, setting_name
from textgen.loaders.base import END_OF_DOCUMENT, check_option

_BATCH_ROWS = 1000  # rows per Arrow batch: few Python calls per row, little memory per batch

# Local data files are read by the `datasets` packaged builder for their kind.
DATA_FILE_BUILDERS = {
    ".txt": "text",
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
}

# What `save_to_disk` writes: a Dataset folder holds the first two, a DatasetDict folder the last.
_SAVED_DATASET_MARKERS = ("dataset_info.json", "state.json")
_SAVED_DATASET_DICT_MARKER = "dataset_dict.json"

# A Hub dataset id, NAME or OWNER/NAME (letters, digits, "_", "-", ".").
_HUB_NAME = re.compile(r"\w[\w.-]*(/\w[\w.-]*)?")

_STRING_TYPES = ("string", "large_string", "string_view")  # Arrow types whose values are str

_LOCAL_COPY_HINT = (
    "pass a local copy instead: a Dataset.save_to_disk folder or data files "
    f"({', '.join(DATA_FILE_BUILDERS)}), e.g. {setting_name('corpus')} hf:/path/to/folder"
)


@dataclass(frozen=True)
class DatasetLocation:
    """Where a dataset lives, decided from the source string alone (without importing `datasets`)."""

    kind: str  # "saved" (a save_to_disk folder), "files" (local data files) or "hub" (a Hub dataset name)
    location: str  # the folder, or the Hub name
    builder: str = ""  # the packaged builder that reads the data files ("text", "csv", ...)
    data_files: tuple[str, ...] = ()  # the data files, sorted, for kind "files"


def names_a_path(source: str) -> bool:
    """Whether ``source`` can only be a local path: it exists, ends as a data file does, or is no Hub name."""
    path = Path(source).expanduser()
    return path.exists() or path.suffix.lower() in DATA_FILE_BUILDERS or not _HUB_NAME.fullmatch(source)


def locate_dataset(source: str) -> DatasetLocation:
    """Decide whether ``source`` is a save_to_disk folder, local data files or a Hub name; CorpusError if none."""
    if not source.strip():
        raise CorpusError("hf: no dataset given; write hf:NAME for a Hub dataset or hf:/path/to/folder for a local one")
    path = Path(source).expanduser()
    if path.is_dir():
        return _locate_folder(path, source)
    if path.exists():
        builder = DATA_FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise CorpusError(
                f"{source}: the hf loader reads data files ending in {', '.join(DATA_FILE_BUILDERS)}, "
                f"not {path.suffix or 'files without a suffix'!r}; convert it or pick another loader with "
                f"{setting_name('kind')}"
            )
        return DatasetLocation("files", str(path), builder, (str(path),))
    if not names_a_path(source):
        return DatasetLocation("hub", source)
    raise CorpusError(
        f"{source}: no such file or folder (and not a Hub dataset name like NAME or OWNER/NAME); check the path"
    )


def _locate_folder(path: Path, source: str) -> DatasetLocation:
    if (path / _SAVED_DATASET_DICT_MARKER).is_file() or all((path / name).is_file() for name in _SAVED_DATASET_MARKERS):
        return DatasetLocation("saved", str(path))
    # Only the folder's own files: nested folders may hold other datasets (or save_to_disk JSON).
    files = sorted(
        file
        for file in path.iterdir()
        if file.is_file() and file.suffix.lower() in DATA_FILE_BUILDERS and not file.name.startswith(".")
    )
    builders = sorted({DATA_FILE_BUILDERS[file.suffix.lower()] for file in files})
    if not files:
        raise CorpusError(
            f"{source}: folder holds neither a save_to_disk dataset ({_SAVED_DATASET_DICT_MARKER}, or "
            f"{' and '.join(_SAVED_DATASET_MARKERS)}) nor data files ending in {', '.join(DATA_FILE_BUILDERS)}"
        )
    if len(builders) > 1:
        raise CorpusError(
            f"{source}: folder mixes data files of kinds {', '.join(builders)}; "
            "put one kind in a folder, or pass a single file"
        )
    return DatasetLocation("files", str(path), builders[0], tuple(str(file) for file in files))


@dataclass(frozen=True)
class _Split:
    """A split to read and the flag that chose it, for messages."""

    name: str
    flag: str  # "--hf-split" or "--hf-val-split"


class HFLoader:
    """Rows of a Hugging Face dataset's text column, one document per non-empty row."""

    name = "hf"
    suffixes = ()  # chosen by the `hf:` prefix or --kind hf, never by a file ending
    names_a_path = staticmethod(names_a_path)  # for a run's recorded source, which may be a path or a Hub name
    # Set by every iter_texts call, before it returns: "" for text files (their rows are lines
    # that keep their line breaks, so they join back into the file), END_OF_DOCUMENT otherwise.
    document_separator = END_OF_DOCUMENT

    def __init__(
        self,
        config: str | None = None,
        split: str = "train",
        text_column: str | None = None,
        streaming: bool | None = None,
        val_split: str | None = None,
    ):
        check_option(f"{setting_name('hf_config')}", config, str, allow_none=True)
        check_option(f"{setting_name('hf_split')}", split, str)
        check_option(f"{setting_name('text_column')}", text_column, str, allow_none=True)
        check_option("streaming", streaming, bool, allow_none=True)
        check_option(f"{setting_name('hf_val_split')}", val_split, str, allow_none=True)
        if val_split == split:
            raise ConfigError(f"{setting_name('hf_val_split')} {val_split!r} is the split trained on "
                              f"({setting_name('hf_split')} {split!r}); hold out "
                              f"another split, or drop {setting_name('hf_val_split')} to hold out the tail of this one")
        self.config = config  # the Hub dataset's configuration (subset) name; Hub datasets only
        self.split = split  # which split to read; a single saved Dataset is read whole
        self.text_column = text_column  # column holding the text; None: the only string column
        # Stream Hub datasets and data files (True) or prepare Arrow files in the HF cache first (False);
        # None streams. A save_to_disk folder is always memory-mapped and read in batches.
        self.streaming = streaming
        # A split held out whole for validation (up to textgen's cap on held-out text) instead of a tail of `split`.
        self.val_split = val_split

    def iter_texts(self, source: str) -> Iterator[str]:
        """Yield the non-empty texts of ``source``'s text column, row by row.

        ``source`` is a save_to_disk folder, a data file (or a folder of them) or a Hub name.
        The source is checked and ``document_separator`` set when this is called; the dataset
        itself is opened and read lazily, by the iterator returned.
        """
        return self._iter_split(source, _Split(self.split, f"{setting_name('hf_split')}"))

    def iter_validation_texts(self, source: str) -> Iterator[str] | None:
        """The texts of the ``val_split`` split, as `iter_texts` yields the training split's; None without one."""
        return None if self.val_split is None else self._iter_split(source, _Split(self.val_split, f"{setting_name('hf_val_split')}"))

    def _iter_split(self, source: str, split: _Split) -> Iterator[str]:
        location = locate_dataset(source)
        if self.config is not None and location.kind != "hub":
            raise ConfigError(
                f"{setting_name('hf_config')} {self.config!r}: a dataset configuration only applies to Hub datasets, "
                f"not to the local {source}; drop {setting_name('hf_config')}"
            )
        self.document_separator = "" if location.builder == "text" else END_OF_DOCUMENT
        return self._iter_documents(location, source, split)

    def _iter_documents(self, location: DatasetLocation, source: str, split: _Split) -> Iterator[str]:
        with _quiet_datasets():
            if location.kind == "saved":
                dataset, label = self._open_saved(location, source, split)
            elif location.kind == "files":
                dataset, label = self._open_files(location, source, split), source
            else:
                dataset, label = self._open_hub(location.location, split), f"Hugging Face dataset {source!r}"
            yield from self._iter_column(dataset, label, location, split)

    def _open_saved(self, location: DatasetLocation, source: str, split: _Split) -> tuple[Any, str]:
        import datasets

        try:
            dataset = datasets.load_from_disk(location.location)
        # datasets indexes its JSON metadata without checking its shape, so a damaged dataset_info.json
        # or state.json surfaces as KeyError, IndexError, TypeError or AttributeError
        except (OSError, ValueError, LookupError, TypeError, AttributeError,
                datasets.exceptions.DatasetsError) as error:
            raise CorpusError(f"{source}: cannot load the saved dataset ({_one_line(error)})") from None
        if isinstance(dataset, datasets.DatasetDict):
            if split.name not in dataset:
                raise CorpusError(
                    f"{source}: no split {split.name!r}; available splits: {', '.join(dataset)}; pick one with "
                    f"{split.flag}"
                )
            return dataset[split.name], f"{source} (split {split.name!r})"
        if split.flag == f"{setting_name('hf_val_split')}":  # a single Dataset is read whole as the training text
            raise CorpusError(f"{source}: a saved Dataset, not a DatasetDict, so it has no split {split.name!r} to "
                              f"hold out; drop {setting_name('hf_val_split')} to hold out its tail")
        return dataset, source

    def _open_files(self, location: DatasetLocation, source: str, split: _Split) -> Any:
        import datasets

        if split.name != "train":
            raise CorpusError(
                f"{source}: no split {split.name!r}; local data files form one split, 'train'; drop {split.flag}"
            )
        if location.builder == "parquet":
            return _ParquetFiles(location, source)
        options = {"keep_linebreaks": True} if location.builder == "text" else {}
        try:
            return datasets.load_dataset(
                location.builder,
                data_files=list(location.data_files),
                split="train",
                streaming=True if self.streaming is None else self.streaming,
                **options,
            )
        except StopIteration:  # the json builder's way of saying the files hold no rows
            raise CorpusError(f"{source}: the dataset has no rows") from None
        except (OSError, ValueError, datasets.exceptions.DatasetsError) as error:
            raise _reading_error(error, source, location) from None

    def _open_hub(self, name: str, split: _Split) -> Any:
        import datasets

        streaming = True if self.streaming is None else self.streaming
        try:
            return datasets.load_dataset(name, self.config, split=split.name, streaming=streaming)
        except ConnectionError as error:
            raise CorpusError(
                f"Hugging Face dataset {name!r}: the Hugging Face Hub could not be reached ({_one_line(error)}) "
                f"and there is no local file or folder of that name; {_LOCAL_COPY_HINT}"
            ) from None
        except FileNotFoundError as error:
            raise CorpusError(
                f"Hugging Face dataset {name!r}: dataset not found on the Hugging Face Hub, or not readable "
                f"({_one_line(error)}); check the name, or {_LOCAL_COPY_HINT}"
            ) from None
        except ValueError as error:  # an unknown split or config, which datasets names
            raise CorpusError(
                f"Hugging Face dataset {name!r}: {_one_line(error)}; pick another {split.flag} or "
                f"{setting_name('hf_config')}"
            ) from None
        except (OSError, datasets.exceptions.DatasetsError) as error:
            raise CorpusError(
                f"Hugging Face dataset {name!r}: cannot load it from the Hugging Face Hub "
                f"({_one_line(error)}); {_LOCAL_COPY_HINT}"
            ) from None

    def _iter_column(self, dataset: Any, label: str, location: DatasetLocation, split: _Split) -> Iterator[str]:
        """Yield the text column's non-empty values, reading the dataset in Arrow batches."""
        column_types = _column_types(dataset.features) if dataset.features is not None else None
        if column_types is not None:
            column = self._choose_column(column_types, label)
            dataset = dataset.select_columns([column])
        batches = _guard_reading(dataset.with_format("arrow").iter(batch_size=_BATCH_ROWS), label, location)
        if column_types is None:  # a stream that learns its columns from its first batch
            first = next(batches, None)
            if first is None:
                raise CorpusError(f"{label}: the dataset has no rows")
            column_types = {field.name: str(field.type) for field in first.schema}
            column = self._choose_column(column_types, label)
            batches = itertools.chain([first], batches)
        row_count = 0
        yielded = 0
        for table in batches:
            for value in table.column(column).to_pylist():
                row_count += 1
                if value is None or value == "":
                    continue
                if not isinstance(value, str):
                    raise CorpusError(
                        f"{label}: row index {row_count - 1} of column {column!r} holds {type(value).__name__}, "
                        f"not str; choose a text column with {setting_name('text_column')} (columns: "
                        f"{_describe(column_types)})"
                    )
                yielded += 1
                yield value
        if not yielded:
            found = f"all {row_count} rows are empty or missing" if row_count else "the dataset has no rows"
            raise CorpusError(f"{label}: no text in column {column!r}: {found}; pick another "
                              f"{setting_name('text_column')} or {split.flag}")

    def _choose_column(self, column_types: dict[str, str], label: str) -> str:
        """The ``text_column`` option if present, else the only string-typed column."""
        if self.text_column is not None:
            if self.text_column not in column_types:
                raise CorpusError(
                    f"{label}: no column {self.text_column!r}; columns: {_describe(column_types)}; "
                    f"pass one of them with {setting_name('text_column')}"
                )
            return self.text_column
        strings = [name for name, arrow_type in column_types.items() if arrow_type in _STRING_TYPES]
        if len(strings) == 1:
            return strings[0]
        found = "several string columns" if strings else "no string column"
        raise CorpusError(
            f"{label}: {found}, so the text column is unclear; columns: {_describe(column_types)}; "
            f"name the text column with {setting_name('text_column')}"
        )


class _ParquetFiles:
    """Local parquet files read by pyarrow from their paths, offering what `_iter_column` uses of a dataset.

    Not through the `datasets` parquet builder: it hands pyarrow an open Python file, and when a damaged
    page stops the read, pyarrow's worker threads can still be decoding the row group's other columns with
    buffers of that file. Releasing them takes the GIL, and a thread that asks for it once interpreter
    shutdown has begun is ended inside C++: "terminate called without an active exception", SIGABRT
    (exit 134) after the error line. Files opened by path leave pyarrow no Python objects to release.
    """

    def __init__(self, location: DatasetLocation, source: str):
        import datasets
        import pyarrow
        import pyarrow.parquet

        self.paths = location.data_files
        self.columns: list[str] | None = None
        try:
            self.features = datasets.Features.from_arrow_schema(pyarrow.parquet.read_schema(self.paths[0]))
        except (OSError, ValueError, pyarrow.ArrowException) as error:
            raise _reading_error(error, source, location) from None

    def select_columns(self, columns: list[str]) -> _ParquetFiles:
        self.columns = list(columns)
        return self

    def with_format(self, _format: str) -> _ParquetFiles:
        return self  # batches are Arrow already

    def iter(self, batch_size: int) -> Iterator[Any]:
        import pyarrow.parquet

        for path in self.paths:
            parquet_file = pyarrow.parquet.ParquetFile(path)
            missing = [name for name in self.columns or () if name not in parquet_file.schema_arrow.names]
            if missing:
                raise ValueError(f"{path} has no column {missing[0]!r}, unlike {self.paths[0]}")
            yield from parquet_file.iter_batches(batch_size=batch_size, columns=self.columns)


def _column_types(features: Any) -> dict[str, str]:
    """Column name -> Arrow type name ("string", "int64", ...) of a datasets ``Features``."""
    return {field.name: str(field.type) for field in features.arrow_schema}


def _describe(column_types: dict[str, str]) -> str:
    return ", ".join(f"{name} ({arrow_type})" for name, arrow_type in column_types.items()) or "none"


def _one_line(error: BaseException) -> str:
    """An exception as one short line: its type and the start of its message."""
    text = " ".join(str(error).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _reading_error(error: BaseException, label: str, location: DatasetLocation) -> CorpusError:
    """The CorpusError for a failure of `datasets` while it reads ``location``."""
    if location.kind == "hub":
        return CorpusError(
            f"{label}: reading from the Hugging Face Hub failed ({_one_line(error)}); {_LOCAL_COPY_HINT}"
        )
    if isinstance(error, UnicodeDecodeError):
        return CorpusError(
            f"{label}: not valid UTF-8 ({_one_line(error)}); for a text file in another encoding use "
            f"the text loader with {setting_name('encoding')}"
        )
    what = f"{location.builder} data" if location.kind == "files" else "a saved dataset"
    return CorpusError(f"{label}: cannot read it as {what} ({_one_line(error)})")


def _guard_reading(batches: Iterator[Any], label: str, location: DatasetLocation) -> Iterator[Any]:
    """Pass ``batches`` through, turning the errors `datasets` raises for bad data into CorpusError."""
    import datasets
    import pyarrow

    batches = iter(batches)
    while True:
        try:
            table = next(batches)
        except StopIteration:
            return
        except (OSError, ValueError, pyarrow.ArrowException, datasets.exceptions.DatasetsError) as error:
            raise _reading_error(error, label, location) from None
        yield table


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Silence `datasets` progress bars and info logging while a dataset is read, then restore them."""
    import datasets

    bars_were_disabled = datasets.are_progress_bars_disabled()
    verbosity = datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.logging.set_verbosity(verbosity)
        if not bars_were_disabled:
            datasets.enable_progress_bars()
