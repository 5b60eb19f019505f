"""Turn a hub dataset or a local parquet/jsonl/csv file into the question/answer parquet Axolotl trains on.

Axolotl's `alpaca_chat.load_qa` dataset type reads exactly two fields, `question` and `answer`;
the output adds `id`, the row's 0-based position in the source, so any training row can be
traced back to where it came from.

The source is read in record batches and written as it goes, so memory does not grow with
the input's size. What does grow is small: 8 bytes a row for the duplicate check (a 64-bit
digest of the normalised question) and, with --shuffle-seed or --holdout-fraction, a rank
array; the rows themselves then wait in staging files beside the output (an external shuffle).
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import typer

from steps.common import (
    StepInputError,
    atomic_path,
    check_output_dir,
    load_failure,
    step_errors,
    step_main,
    write_json_atomic,
)
from steps.contract import DATASET_STATS, HOLDOUT_PARQUET, TRAIN_PARQUET

BATCH_ROWS = 16_384
READ_BUFFER_BYTES = 1 << 20
DEFAULT_BLOCK_BYTES = 1 << 20           # pyarrow's JSON and CSV readers' own default
MAX_BLOCK_BYTES = (1 << 31) - 1         # their block size is an int32
SCAN_CHUNK_BYTES = 8 << 20
# pyarrow's JSON parser recurses per level of [ and { and crashes the process (a segfault, no message)
# some ten thousand levels deep; no dataset row nests more than a few.
MAX_JSON_NESTING = 1_000
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)  # a JSON string, escapes included
BUCKET_ROWS = 32_768     # rows held at once when writing in shuffled order ...
MAX_OPEN_BUCKETS = 512   # ... unless that would keep more files than this open (past 16M rows)
OUTPUT_SCHEMA = pa.schema([("id", pa.int64()), ("question", pa.string()), ("answer", pa.string())])

ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"  # ignored when comparing questions

# Reader by file suffix; JSON means JSON Lines (one object per line).
LOCAL_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "json", ".ndjson": "json",
                 ".json": "json", ".csv": "csv"}


@dataclass(frozen=True)
class FieldMapping:
    """Which source column becomes `question` and which becomes `answer`."""

    question: str = "problem"
    answer: str = "answer"

    def options(self) -> dict[str, str]:
        return {"--question-field": self.question, "--answer-field": self.answer}


# --- reading the source -----------------------------------------------------------------

@dataclass
class Source:
    """A readable source: its name and its (question, answer) columns as record batches."""

    name: str
    batches: Iterable[pa.RecordBatch]


def open_source(source: str, fields: FieldMapping, *, revision: str | None, split: str) -> Source:
    path = Path(source)
    if path.exists():
        return _open_local(path, fields)
    if path.suffix.lower() in LOCAL_FORMATS:
        raise StepInputError(f"--source {source}: no such file")
    return _open_hub(source, fields, revision=revision, split=split)


def _local_files(path: Path) -> tuple[str, list[Path]]:
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_"))) \
        if path.is_dir() else [path]
    formats = {LOCAL_FORMATS.get(file.suffix.lower()) for file in files}
    known = {fmt for fmt in formats if fmt is not None}
    if len(formats) != 1 or not known:
        found = ", ".join(sorted({file.suffix or file.name for file in files})) or "no files"
        raise StepInputError(f"--source {path}: cannot tell the file format from {found}; "
                             f"use one of {', '.join(sorted(LOCAL_FORMATS))} (a directory must hold one kind)")
    return known.pop(), files


def _open_local(path: Path, fields: FieldMapping) -> Source:
    format_name, files = _local_files(path)
    readers = (_read_file(format_name, file, fields) for file in files)
    first = next(readers)  # opened now, so a missing field or an unreadable file fails before any output
    return Source(str(path), itertools.chain.from_iterable(itertools.chain([first], readers)))


def _read_file(format_name: str, file: Path, fields: FieldMapping) -> Iterator[pa.RecordBatch]:
    """Open `file` now (its errors surface here); read its (question, answer) batches lazily."""
    context = f"--source {file}: cannot read it as {format_name}"
    try:
        schema, batches = _open_reader(format_name, file, fields)
    except (pa.ArrowException, OSError) as error:
        raise StepInputError(f"{context}: {error}") from None
    _check_fields(schema, fields, str(file))
    columns = [fields.question, fields.answer]
    return _reading_errors((batch.select(columns) for batch in batches), context)


def _open_reader(format_name: str, file: Path, fields: FieldMapping) -> tuple[pa.Schema, Iterable[pa.RecordBatch]]:
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    if format_name == "parquet":
        # pre_buffer would keep every row group read so far in memory until the file is closed.
        parquet = pq.ParquetFile(file, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)
        columns = [fields.question, fields.answer]
        return parquet.schema_arrow, parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns)
    block_size = text_block_size(file)
    if format_name == "csv":
        # CSV has no types: keep the text exactly as written ("007" must not become 7).
        text_columns = {column: pa.string() for column in (fields.question, fields.answer)}
        reader = pa_csv.open_csv(file, read_options=pa_csv.ReadOptions(block_size=block_size),
                                 convert_options=pa_csv.ConvertOptions(column_types=text_columns))
    else:
        check_json_nesting(file)
        reader = pa_json.open_json(file, read_options=pa_json.ReadOptions(block_size=block_size))
    return reader.schema, reader


def check_json_nesting(file: Path) -> None:
    """Refuse a JSON-lines file with a line nested deeper than MAX_JSON_NESTING, before pyarrow parses it.

    Only a line holding that many opening brackets can nest that deep: those few are measured
    exactly, with the brackets inside strings (LaTeX's braces, say) left out.
    """
    with file.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if line.count(b"[") + line.count(b"{") <= MAX_JSON_NESTING:
                continue
            bare = np.frombuffer(_JSON_STRING.sub(b"", line), dtype=np.uint8)
            steps = np.isin(bare, (ord("["), ord("{"))).astype(np.int64) - np.isin(bare, (ord("]"), ord("}")))
            if int(np.cumsum(steps).max(initial=0)) > MAX_JSON_NESTING:
                raise StepInputError(f"--source {file}: line {number} nests more than {MAX_JSON_NESTING:,} levels of "
                                     "[ and {; no dataset row does (is it the right file?)")


def longest_line_bytes(file: Path) -> int:
    """The length of the longest line of `file` in bytes (its newline included), in one streaming pass."""
    longest = current = 0
    with file.open("rb") as data:
        while chunk := data.read(SCAN_CHUNK_BYTES):
            ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n"))
            if not len(ends):
                current += len(chunk)
                continue
            longest = max(longest, current + int(ends[0]) + 1, int(np.diff(ends).max(initial=0)))
            current = len(chunk) - int(ends[-1]) - 1
    return max(longest, current)


def text_block_size(file: Path) -> int:
    """A block size for pyarrow's JSON-lines and CSV readers that holds the longest row.

    They parse a file in blocks (1 MiB by default) and fail on a row longer than a block
    ("straddling object straddles two block boundaries"); one pass over the file finds the
    longest line first, so a row of any size that fits in memory is read.
    """
    longest = longest_line_bytes(file)
    if longest > MAX_BLOCK_BYTES:
        raise StepInputError(f"--source {file}: a row of {longest:,} bytes; pyarrow reads rows of at most "
                             f"{MAX_BLOCK_BYTES:,} bytes (convert the file to parquet)")
    return max(DEFAULT_BLOCK_BYTES, longest)


def _open_hub(dataset_id: str, fields: FieldMapping, *, revision: str | None, split: str) -> Source:
    import datasets
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(dataset_id)
    except HFValidationError:
        raise StepInputError(f"--source {dataset_id!r}: no such local file or folder, and not a hub dataset "
                             f"id (org/name)") from None
    try:
        # Not streaming: the download is cached in HF_HOME, so a rerun or a retry reads it locally.
        dataset = datasets.load_dataset(dataset_id, revision=revision, split=split)
    except datasets.exceptions.DatasetNotFoundError as error:
        raise StepInputError(f"--source {dataset_id}: not found on the Hugging Face hub at revision "
                             f"{revision or 'main'} (a gated dataset needs HF_TOKEN): {error}") from None
    except ValueError as error:
        if "split" in str(error).lower():
            raise StepInputError(f"--split {split}: {error}") from None
        raise load_failure(f"hub dataset {dataset_id}", error) from None
    except (OSError, ConnectionError) as error:  # offline and not cached, the hub down, ...
        raise load_failure(f"hub dataset {dataset_id}", error) from None
    schema = dataset.features.arrow_schema
    _check_fields(schema, fields, dataset_id)
    columns = dataset.select_columns([fields.question, fields.answer])
    tables = columns.with_format("arrow").iter(batch_size=BATCH_ROWS)
    return Source(dataset_id, (batch for table in tables for batch in table.to_batches()))


def _reading_errors(batches: Iterable[pa.RecordBatch], context: str) -> Iterator[pa.RecordBatch]:
    """Re-raise a corrupt or mistyped file, found only while scanning, as bad input."""
    try:
        yield from batches
    except (pa.ArrowException, OSError) as error:
        raise StepInputError(f"{context}: {error}") from None


def _check_fields(schema: pa.Schema, fields: FieldMapping, source: str) -> None:
    for option, column in fields.options().items():
        if column not in schema.names:
            raise StepInputError(f"{option} {column}: no such column in {source}; "
                                 f"its columns are: {', '.join(schema.names)}")
        column_type = schema.field(column).type
        if not (_is_text(column_type) or pa.types.is_integer(column_type)):
            raise StepInputError(f"{option} {column}: the column holds {column_type}, "
                                 "expected text (string; whole numbers are accepted too)")


def _is_text(column_type: pa.DataType) -> bool:
    return pa.types.is_string(column_type) or pa.types.is_large_string(column_type) \
        or pa.types.is_string_view(column_type)


# --- cleaning ----------------------------------------------------------------------------

class SeenKeys:
    """A set of 64-bit keys held as a few sorted numpy runs: 8 bytes a key, vectorised lookups.

    Runs merge like a binary counter (a run is folded into the previous one while that one is
    no larger), so there are O(log n) runs and each key is copied O(log n) times in all.
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def first_occurrences(self, keys: np.ndarray) -> np.ndarray:
        """Mask of the keys seen neither before nor earlier in `keys`; remembers them."""
        _, first_index = np.unique(keys, return_index=True)
        is_new = np.zeros(len(keys), dtype=bool)
        is_new[first_index] = True
        is_new &= ~self._contains(keys)
        self._add(np.sort(keys[is_new]))
        return is_new

    def _contains(self, keys: np.ndarray) -> np.ndarray:
        found = np.zeros(len(keys), dtype=bool)
        for run in self._runs:
            position = np.minimum(np.searchsorted(run, keys), len(run) - 1)
            found |= run[position] == keys
        return found

    def _add(self, run: np.ndarray) -> None:
        if not len(run):
            return
        while self._runs and len(self._runs[-1]) <= len(run):
            # Runs are disjoint and sorted: a stable sort of the two merges them in linear time.
            run = np.sort(np.concatenate([self._runs.pop(), run]), kind="stable")
        self._runs.append(run)


def question_keys(questions: pa.Array) -> np.ndarray:
    """64-bit digests of the questions after NFKC, lower-casing and dropping all whitespace.

    Dropping whitespace (bytes.translate) rather than collapsing runs of it avoids a Python
    split/join per row, which cost more than the rest of the step together; NFKC has already
    turned the Unicode spaces into ASCII ones. blake2b rather than Python's hash(): a
    (vanishingly rare) collision then repeats identically on every run.
    """
    normalised = pc.utf8_lower(pc.utf8_normalize(questions, "NFKC")).cast(pa.binary())
    digests = b"".join(hashlib.blake2b(text.translate(None, ASCII_WHITESPACE), digest_size=8).digest()
                       for text in normalised.to_pylist())
    return np.frombuffer(digests, dtype=np.uint64)


def to_arrow(values: np.ndarray) -> pa.Array:
    """A 1-D bool or numeric numpy array as Arrow, zero-copy where it can be.

    Not pa.array(): converting any Python or numpy object imports pandas on first use
    (about 0.4 s, a third of converting 50k rows).
    """
    if values.dtype == np.bool_:
        data = pa.py_buffer(np.packbits(values, bitorder="little"))
    else:
        data = pa.py_buffer(np.ascontiguousarray(values))
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, data])


def _has_text(column: pa.Array) -> pa.Array:
    """True where the text is not blank, null where it is null (a filter drops both)."""
    return pc.cast(pc.utf8_length(pc.utf8_trim_whitespace(column)), pa.bool_())


@dataclass
class CleaningCounts:
    rows_in: int = 0
    dropped_empty: int = 0
    dropped_duplicate: int = 0

    @property
    def rows_kept(self) -> int:
        return self.rows_in - self.dropped_empty - self.dropped_duplicate


def clean_batches(batches: Iterable[pa.RecordBatch], counts: CleaningCounts) -> Iterator[pa.RecordBatch]:
    """(question, answer) batches in, output-schema batches out: blanks and repeated questions dropped."""
    seen = SeenKeys()
    for batch in batches:
        first_id = counts.rows_in
        counts.rows_in += batch.num_rows
        question, answer = (column.cast(pa.string()) for column in batch.columns)
        rows = pa.record_batch([to_arrow(np.arange(first_id, counts.rows_in, dtype=np.int64)), question, answer],
                               schema=OUTPUT_SCHEMA)
        rows = rows.filter(pc.and_(_has_text(question), _has_text(answer)))
        counts.dropped_empty += batch.num_rows - rows.num_rows
        unique = rows.filter(to_arrow(seen.first_occurrences(question_keys(rows.column("question")))))
        counts.dropped_duplicate += rows.num_rows - unique.num_rows
        if unique.num_rows:
            yield unique


# --- writing -----------------------------------------------------------------------------

@dataclass
class LengthHistogram:
    """Exact length percentiles from a histogram: memory grows with the longest text, not the row count."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def add(self, texts: pa.Array) -> None:
        counted = pc.value_counts(pc.utf8_length(texts))
        lengths = np.array(counted.field("values").to_pylist(), dtype=np.int64)
        if len(lengths) and lengths.max() >= len(self.counts):
            self.counts = np.pad(self.counts, (0, lengths.max() + 1 - len(self.counts)))
        np.add.at(self.counts, lengths, counted.field("counts").to_pylist())

    def summary(self) -> dict[str, float | int]:
        total = int(self.counts.sum())
        if not total:
            return {}
        cumulative = np.cumsum(self.counts)
        lengths = np.arange(len(self.counts))

        def percentile(p: float) -> int:  # nearest rank
            return int(np.searchsorted(cumulative, max(1, int(np.ceil(p / 100 * total)))))

        return {"min": percentile(0), "p50": percentile(50), "p90": percentile(90), "p99": percentile(99),
                "max": percentile(100), "mean": round(float((lengths * self.counts).sum()) / total, 1)}


@dataclass
class ParquetSink:
    """Writes output batches to one parquet file, keeping count and character-length statistics."""

    path: Path
    rows: int = 0
    question_chars: LengthHistogram = field(default_factory=LengthHistogram)
    answer_chars: LengthHistogram = field(default_factory=LengthHistogram)

    def write_all(self, batches: Iterable[pa.RecordBatch]) -> None:
        import pyarrow.parquet as pq

        with pq.ParquetWriter(self.path, OUTPUT_SCHEMA) as writer:
            for batch in batches:
                writer.write_batch(batch)
                self.rows += batch.num_rows
                self.question_chars.add(batch.column("question"))
                self.answer_chars.add(batch.column("answer"))


def _take_first(batches: Iterable[pa.RecordBatch], limit: int | None) -> Iterator[pa.RecordBatch]:
    """The first `limit` rows; the batches after them are still consumed, so the counts cover the whole source."""
    taken = 0
    for batch in batches:
        room = batch.num_rows if limit is None else max(0, limit - taken)
        taken += room
        if room:
            yield batch.slice(0, room)


def split_rows(n_rows: int, *, max_rows: int | None, shuffle_seed: int | None,
               holdout_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training rows and of the held-out rows, each in output order.

    Without a seed both keep source order and the hold-out is still a reproducible random
    draw (seed 0), never just the tail of a possibly sorted source.
    """
    rng = np.random.default_rng(0 if shuffle_seed is None else shuffle_seed)
    selected = np.arange(n_rows) if shuffle_seed is None else rng.permutation(n_rows)
    selected = selected[:max_rows]
    n_holdout = _holdout_size(len(selected), holdout_fraction)
    chosen = rng.permutation(len(selected))
    holdout, train = selected[chosen[:n_holdout]], selected[chosen[n_holdout:]]
    if shuffle_seed is None:
        holdout, train = np.sort(holdout), np.sort(train)
    return train, holdout


def _holdout_size(n_rows: int, fraction: float) -> int:
    if not fraction:
        return 0
    n_holdout = max(1, round(fraction * n_rows))
    if n_holdout >= n_rows:
        raise StepInputError(f"--holdout-fraction {fraction}: leaves no training rows out of {n_rows}")
    return n_holdout


def stage_rows(path: Path, batches: Iterable[pa.RecordBatch]) -> int:
    """Write the cleaned rows to an Arrow IPC file; return how many there are."""
    rows = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, OUTPUT_SCHEMA) as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def _read_staged(path: Path) -> Iterator[pa.RecordBatch]:
    with pa.OSFile(str(path)) as source:  # read, not memory-mapped: pages read leave with each batch
        reader = pa.ipc.open_file(source)
        for index in range(reader.num_record_batches):
            yield reader.get_batch(index)


def rows_in_order(staged: Path, n_staged: int, positions: np.ndarray) -> Iterator[pa.RecordBatch]:
    """The staged rows at `positions`, in that order, holding one bucket of rows at a time.

    An external shuffle: one sequential pass appends every row to the bucket of its output rank
    (ranks [0, B), [B, 2B), ...), then each bucket is sorted by rank and emitted. Random reads
    of a memory-mapped file would instead pull most of the file into memory for every chunk.
    """
    rank = np.full(n_staged, -1, dtype=np.int64)
    rank[positions] = np.arange(len(positions))
    bucket_rows = max(BUCKET_ROWS, -(-len(positions) // MAX_OPEN_BUCKETS))
    with tempfile.TemporaryDirectory(prefix="buckets-", dir=staged.parent) as bucket_dir:
        n_buckets = -(-len(positions) // bucket_rows)
        bucket_files = [Path(bucket_dir) / f"{index}.arrow" for index in range(n_buckets)]
        schema = OUTPUT_SCHEMA.append(pa.field("rank", pa.int64()))
        with contextlib.ExitStack() as open_buckets:
            writers = [open_buckets.enter_context(pa.ipc.new_file(str(file), schema)) for file in bucket_files]
            start = 0
            for batch in _read_staged(staged):
                batch_rank = rank[start:start + batch.num_rows]
                start += batch.num_rows
                bucket = np.where(batch_rank >= 0, batch_rank // bucket_rows, -1)
                for index in np.unique(bucket[bucket >= 0]):
                    in_bucket = bucket == index
                    rows = batch.filter(to_arrow(in_bucket))
                    writers[index].write_batch(rows.append_column("rank", to_arrow(batch_rank[in_bucket])))
        for file in bucket_files:
            with pa.OSFile(str(file)) as source:
                rows = pa.ipc.open_file(source).read_all()
            rows = rows.take(pc.sort_indices(rows, sort_keys=[("rank", "ascending")])).drop_columns(["rank"])
            yield from rows.to_batches(max_chunksize=BATCH_ROWS)


# --- the step ----------------------------------------------------------------------------

def convert_dataset(source: str, out_dir: str | Path, *, fields: FieldMapping = FieldMapping(),
                    revision: str | None = None, split: str = "train", max_rows: int | None = None,
                    shuffle_seed: int | None = None, holdout_fraction: float | None = None) -> dict[str, Any]:
    """Write train.parquet (id, question, answer), stats.json and, if asked, holdout.parquet; return the stats."""
    revision = revision or None  # the DAG passes "" for "not pinned"
    if max_rows is not None and max_rows < 1:
        raise StepInputError(f"--max-rows {max_rows}: must be a positive number of rows")
    holdout_fraction = holdout_fraction or 0.0
    if not 0 <= holdout_fraction < 1:
        raise StepInputError(f"--holdout-fraction {holdout_fraction}: must be at least 0 and below 1")

    out_dir = check_output_dir(out_dir)
    opened = open_source(source, fields, revision=revision, split=split)
    counts = CleaningCounts()
    cleaned = clean_batches(opened.batches, counts)
    with contextlib.ExitStack() as outputs:
        # Entered first, renamed last: stats.json appears only once the parquet files are in place.
        stats_tmp = outputs.enter_context(atomic_path(out_dir / DATASET_STATS))
        train = ParquetSink(outputs.enter_context(atomic_path(out_dir / TRAIN_PARQUET)))
        holdout = ParquetSink(outputs.enter_context(atomic_path(out_dir / HOLDOUT_PARQUET))) \
            if holdout_fraction else None

        if shuffle_seed is None and holdout is None:
            train.write_all(_take_first(cleaned, max_rows))
        else:
            staging_dir = outputs.enter_context(tempfile.TemporaryDirectory(prefix=".staging-", dir=out_dir))
            staged = Path(staging_dir) / "rows.arrow"
            n_staged = stage_rows(staged, cleaned)
            _require_rows(n_staged, opened.name, counts)
            train_rows, holdout_rows = split_rows(n_staged, max_rows=max_rows, shuffle_seed=shuffle_seed,
                                                  holdout_fraction=holdout_fraction)
            train.write_all(rows_in_order(staged, n_staged, train_rows))
            if holdout is not None:
                holdout.write_all(rows_in_order(staged, n_staged, holdout_rows))
        _require_rows(train.rows, opened.name, counts)

        stats = {
            "source": opened.name, "revision": revision, "split": split,
            "question_field": fields.question, "answer_field": fields.answer,
            "rows_in": counts.rows_in, "dropped_empty": counts.dropped_empty,
            "dropped_duplicate": counts.dropped_duplicate,
            "dropped_over_max_rows": max(0, counts.rows_kept - (max_rows or counts.rows_kept)),
            "rows_out": train.rows, "holdout_rows": holdout.rows if holdout else 0,
            "max_rows": max_rows, "shuffle_seed": shuffle_seed, "holdout_fraction": holdout_fraction or None,
            "question_chars": train.question_chars.summary(), "answer_chars": train.answer_chars.summary(),
            "columns": OUTPUT_SCHEMA.names,
        }
        write_json_atomic(stats_tmp, stats)
    if holdout is None:
        # A hold-out from an earlier run with other settings would no longer match train.parquet.
        (out_dir / HOLDOUT_PARQUET).unlink(missing_ok=True)
    return stats


def _require_rows(n_rows: int, source: str, counts: CleaningCounts) -> None:
    if not n_rows:
        raise StepInputError(f"--source {source}: no rows left to train on ({counts.rows_in} read, "
                             f"{counts.dropped_empty} with an empty question or answer, "
                             f"{counts.dropped_duplicate} duplicate questions)")


# --- command line ------------------------------------------------------------------------

@step_errors
def convert_dataset_command(
    source: Annotated[str, typer.Option(help="Hub dataset id, or a local .parquet/.jsonl/.csv file or directory.")],
    out_dir: Annotated[Path, typer.Option(help="Folder for train.parquet, stats.json and holdout.parquet.")],
    revision: Annotated[str | None, typer.Option(help="Hub dataset revision (commit, tag or branch) to pin.")] = None,
    split: Annotated[str, typer.Option(help="Split of a hub dataset.")] = "train",
    question_field: Annotated[str, typer.Option(help="Source column that becomes `question`.")] = "problem",
    answer_field: Annotated[str, typer.Option(help="Source column that becomes `answer`.")] = "answer",
    max_rows: Annotated[int | None, typer.Option(
        help="Keep at most this many rows after cleaning (before the hold-out).")] = None,
    shuffle_seed: Annotated[int | None, typer.Option(
        help="Shuffle the rows with this seed (and sample --max-rows at random).")] = None,
    holdout_fraction: Annotated[float | None, typer.Option(
        help="Fraction of the rows to write to holdout.parquet instead.")] = None,
) -> None:
    """Convert a dataset to the question/answer parquet Axolotl's alpaca_chat.load_qa reads."""
    stats = convert_dataset(source, out_dir, fields=FieldMapping(question_field, answer_field),
                            revision=revision, split=split, max_rows=max_rows,
                            shuffle_seed=shuffle_seed, holdout_fraction=holdout_fraction)
    held_out = f", {stats['holdout_rows']:,} held out" if stats["holdout_rows"] else ""
    print(f"wrote {stats['rows_out']:,} rows to {Path(out_dir) / TRAIN_PARQUET}{held_out} "
          f"(read {stats['rows_in']:,}; dropped {stats['dropped_empty']:,} empty, "
          f"{stats['dropped_duplicate']:,} duplicate, {stats['dropped_over_max_rows']:,} over --max-rows)")


def main() -> None:
    step_main(convert_dataset_command)


if __name__ == "__main__":
    main()
