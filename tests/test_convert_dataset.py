"""convert_dataset: sources, cleaning, streaming, shuffle/hold-out, stats, and every bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

import steps.convert_dataset as convert
from steps.common import StepInputError
from steps.convert_dataset import FieldMapping, SeenKeys, convert_dataset_command, convert_dataset, split_rows

# Synthetic rows in AceReason-Math's shape (problem, answer, plus a column to ignore).
ROWS = [
    {"problem": "What is 2 + 3?", "answer": "5", "source": "a"},
    {"problem": "Compute 7 * 6.", "answer": "42", "source": "a"},
    {"problem": "  what IS 2 +   3? ", "answer": "5", "source": "b"},   # same question, normalised
    {"problem": "", "answer": "1", "source": "b"},                      # blank question
    {"problem": "Find x if x^2 = 9 and x > 0.", "answer": "   ", "source": "c"},  # blank answer
    {"problem": None, "answer": "3", "source": "c"},                    # null question
    {"problem": "Ｗhat is 2 + 3?", "answer": "5", "source": "c"},        # fullwidth W: NFKC duplicate
    {"problem": "Sum of the first 10 positive integers?", "answer": "55", "source": "d"},
]
KEPT_IDS = [0, 1, 7]


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read(path: Path) -> pa.Table:
    return pq.read_table(path)


def run_cli(*args: object):
    app = typer.Typer()
    app.command()(convert_dataset_command)
    return CliRunner().invoke(app, [str(arg) for arg in args])


def numbered_rows(n: int) -> list[dict]:
    return [{"problem": f"Question number {i}?", "answer": str(i)} for i in range(n)]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_parquet(tmp_path / "source.parquet", ROWS)


# --- output --------------------------------------------------------------------------------

def test_writes_id_question_answer_and_drops_blank_and_duplicate_rows(source: Path, tmp_path: Path) -> None:
    stats = convert_dataset(str(source), tmp_path / "data")
    table = read(tmp_path / "data" / "train.parquet")
    assert table.schema == pa.schema([("id", pa.int64()), ("question", pa.string()), ("answer", pa.string())])
    assert table.column("id").to_pylist() == KEPT_IDS  # positions in the source
    assert table.column("question").to_pylist() == [ROWS[i]["problem"] for i in KEPT_IDS]
    assert table.column("answer").to_pylist() == [ROWS[i]["answer"] for i in KEPT_IDS]
    assert (stats["rows_in"], stats["dropped_empty"], stats["dropped_duplicate"], stats["rows_out"]) == (8, 3, 2, 3)
    assert json.loads((tmp_path / "data" / "stats.json").read_text()) == stats
    assert not (tmp_path / "data" / "holdout.parquet").exists()


def test_stats_report_length_percentiles_in_characters(tmp_path: Path) -> None:
    rows = [{"problem": "q" * length, "answer": "a" * (length % 7 + 1)} for length in range(1, 101)]
    stats = convert_dataset(str(write_parquet(tmp_path / "s.parquet", rows)), tmp_path / "out")
    assert stats["question_chars"] == {"min": 1, "p50": 50, "p90": 90, "p99": 99, "max": 100, "mean": 50.5}
    assert stats["answer_chars"]["max"] == 7 and stats["answer_chars"]["min"] == 1


def test_field_mapping_and_other_formats(tmp_path: Path) -> None:
    rows = [{"q": "Two plus two?", "a": "4", "extra": 1}, {"q": "Three times three?", "a": "9", "extra": 2}]
    jsonl = write_jsonl(tmp_path / "s.jsonl", rows)
    csv = tmp_path / "s.csv"
    csv.write_text("q,a,extra\nTwo plus two?,007,1\n\"Three, times three?\",9,2\n", encoding="utf-8")
    fields = FieldMapping(question="q", answer="a")
    convert_dataset(str(jsonl), tmp_path / "from-jsonl", fields=fields)
    convert_dataset(str(csv), tmp_path / "from-csv", fields=fields)
    assert read(tmp_path / "from-jsonl" / "train.parquet").column("answer").to_pylist() == ["4", "9"]
    # CSV text is kept as written: "007" is an answer, not the number 7.
    assert read(tmp_path / "from-csv" / "train.parquet").column("answer").to_pylist() == ["007", "9"]
    assert read(tmp_path / "from-csv" / "train.parquet").column("question").to_pylist()[1] == "Three, times three?"


def test_whole_number_answers_become_text(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "s.jsonl", [{"problem": "1+1?", "answer": 2}, {"problem": "2+2?", "answer": 4}])
    convert_dataset(str(source), tmp_path / "out")
    assert read(tmp_path / "out" / "train.parquet").column("answer").to_pylist() == ["2", "4"]


def test_a_directory_of_parquet_files_is_one_source(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    write_parquet(tmp_path / "parts" / "part-0.parquet", numbered_rows(3))
    write_parquet(tmp_path / "parts" / "part-1.parquet", numbered_rows(5)[3:])
    assert convert_dataset(str(tmp_path / "parts"), tmp_path / "out")["rows_out"] == 5


# --- streaming -----------------------------------------------------------------------------

def test_small_batches_give_the_same_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rows = numbered_rows(50) + ROWS + numbered_rows(20)  # duplicates across batches
    source = write_parquet(tmp_path / "s.parquet", rows)
    convert_dataset(str(source), tmp_path / "whole", shuffle_seed=3, holdout_fraction=0.2)
    monkeypatch.setattr(convert, "BATCH_ROWS", 4)  # and shuffled through many small buckets
    monkeypatch.setattr(convert, "BUCKET_ROWS", 5)
    convert_dataset(str(source), tmp_path / "batched", shuffle_seed=3, holdout_fraction=0.2)
    for name in ("train.parquet", "holdout.parquet"):
        assert read(tmp_path / "whole" / name).equals(read(tmp_path / "batched" / name))
    assert len(read(tmp_path / "batched" / "train.parquet")) + len(read(tmp_path / "batched" / "holdout.parquet")) \
        == 50 + 3


@pytest.mark.parametrize("max_open_buckets", [512, 2])
def test_rows_in_order_follows_any_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         max_open_buckets: int) -> None:
    monkeypatch.setattr(convert, "BUCKET_ROWS", 3)
    monkeypatch.setattr(convert, "MAX_OPEN_BUCKETS", max_open_buckets)
    batches = [pa.record_batch({"id": list(range(start, start + 4)), "question": [f"q{i}" for i in range(start, start + 4)],
                                "answer": ["a"] * 4}, schema=convert.OUTPUT_SCHEMA) for start in range(0, 20, 4)]
    staged = tmp_path / "rows.arrow"
    assert convert.stage_rows(staged, batches) == 20
    wanted = np.random.default_rng(5).permutation(20)[:13]
    got = [row for batch in convert.rows_in_order(staged, 20, wanted) for row in batch.column("id").to_pylist()]
    assert got == wanted.tolist()
    assert list(tmp_path.iterdir()) == [staged]  # the buckets are gone


def test_seen_keys_agree_with_a_python_set() -> None:
    rng = np.random.default_rng(0)
    seen, reference = SeenKeys(), set()
    for _ in range(40):
        keys = rng.integers(0, 500, size=int(rng.integers(1, 60))).astype(np.uint64)
        expected = []
        for key in keys.tolist():
            expected.append(key not in reference)
            reference.add(key)
        assert seen.first_occurrences(keys).tolist() == expected


# --- max rows, shuffle, hold-out ----------------------------------------------------------

def test_max_rows_keeps_the_first_rows_in_source_order(tmp_path: Path) -> None:
    stats = convert_dataset(str(write_parquet(tmp_path / "s.parquet", numbered_rows(30))), tmp_path / "out",
                            max_rows=10)
    assert read(tmp_path / "out" / "train.parquet").column("id").to_pylist() == list(range(10))
    assert (stats["rows_in"], stats["dropped_over_max_rows"], stats["rows_out"]) == (30, 20, 10)


def test_shuffle_is_reproducible_and_samples_max_rows(tmp_path: Path) -> None:
    source = str(write_parquet(tmp_path / "s.parquet", numbered_rows(200)))
    ids = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        convert_dataset(source, tmp_path / name, shuffle_seed=seed, max_rows=50)
        ids[name] = read(tmp_path / name / "train.parquet").column("id").to_pylist()
    assert ids["a"] == ids["b"] != ids["c"]
    assert len(set(ids["a"])) == 50 and ids["a"] != sorted(ids["a"])
    assert max(ids["a"]) > 50  # a random sample, not the first 50 rows


def test_holdout_is_disjoint_reproducible_and_sized(tmp_path: Path) -> None:
    source = str(write_parquet(tmp_path / "s.parquet", numbered_rows(101)))
    stats = convert_dataset(source, tmp_path / "out", holdout_fraction=0.1)
    train = read(tmp_path / "out" / "train.parquet").column("id").to_pylist()
    holdout = read(tmp_path / "out" / "holdout.parquet").column("id").to_pylist()
    assert (len(train), len(holdout)) == (91, 10) == (stats["rows_out"], stats["holdout_rows"])
    assert sorted(train + holdout) == list(range(101))
    assert train == sorted(train) and holdout == sorted(holdout)  # no seed: source order
    assert holdout != list(range(91, 101))  # a random draw, not the tail
    convert_dataset(source, tmp_path / "again", holdout_fraction=0.1)
    assert read(tmp_path / "again" / "holdout.parquet").column("id").to_pylist() == holdout


def test_a_rerun_without_holdout_removes_the_stale_one(source: Path, tmp_path: Path) -> None:
    convert_dataset(str(source), tmp_path / "out", holdout_fraction=0.34)
    assert (tmp_path / "out" / "holdout.parquet").exists()
    convert_dataset(str(source), tmp_path / "out")
    assert not (tmp_path / "out" / "holdout.parquet").exists()
    assert read(tmp_path / "out" / "train.parquet").num_rows == 3


def test_split_rows_with_seed_shuffles_both_parts() -> None:
    train, holdout = split_rows(1000, max_rows=None, shuffle_seed=1, holdout_fraction=0.25)
    assert len(holdout) == 250 and len(train) == 750
    assert sorted(np.concatenate([train, holdout]).tolist()) == list(range(1000))
    assert train.tolist() != sorted(train.tolist())


# --- hub source (datasets.load_dataset at the library boundary) ----------------------------

@pytest.fixture
def fake_load_dataset(monkeypatch: pytest.MonkeyPatch):
    import datasets

    calls = []

    def load_dataset(path, *, revision=None, split=None, **_):
        calls.append((path, revision, split))
        if path == "org/missing":
            raise datasets.exceptions.DatasetNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")
        if split != "train":
            raise ValueError(f'Unknown split "{split}". Should be one of [\'train\'].')
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_dataset_is_loaded_at_the_pinned_revision_and_split(fake_load_dataset, tmp_path: Path) -> None:
    stats = convert_dataset("nvidia/AceReason-Math", tmp_path / "out", revision="0123abc", split="train")
    assert fake_load_dataset == [("nvidia/AceReason-Math", "0123abc", "train")]
    assert read(tmp_path / "out" / "train.parquet").column("id").to_pylist() == KEPT_IDS
    assert (stats["source"], stats["revision"]) == ("nvidia/AceReason-Math", "0123abc")


def test_an_empty_revision_means_unpinned(fake_load_dataset, tmp_path: Path) -> None:
    convert_dataset("org/data", tmp_path / "out", revision="")
    assert fake_load_dataset == [("org/data", None, "train")]


@pytest.mark.parametrize(("args", "says"), [
    (["--source", "org/missing"], "not found on the Hugging Face hub"),
    (["--source", "org/data", "--split", "validation"], "--split validation"),
    (["--source", "org/data", "--question-field", "question"], "columns are: problem, answer, source"),
])
def test_hub_bad_input_exits_2(fake_load_dataset, tmp_path: Path, args: list[str], says: str) -> None:
    result = run_cli(*args, "--out-dir", tmp_path / "out")
    assert result.exit_code == 2 and says in result.stderr


# --- bad input: one line, exit 2, nothing left behind ------------------------------------

def _bad_sources(tmp_path: Path) -> dict[str, tuple[list, str]]:
    """Case -> (command-line arguments, what the one-line message must say)."""
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not a parquet file at all")
    mixed = tmp_path / "mixed.jsonl"  # the type changes after pyarrow's first 1 MiB block
    write_jsonl(mixed, [{"problem": f"p{i}" + "x" * 100, "answer": i} for i in range(12_000)]
                + [{"problem": "late", "answer": "text"}])
    lists = write_parquet(tmp_path / "lists.parquet", [{"problem": "p", "answer": ["a", "b"]}])
    floats = write_jsonl(tmp_path / "floats.jsonl", [{"problem": "p", "answer": 0.5}])
    blank = write_parquet(tmp_path / "blank.parquet", [{"problem": " ", "answer": "x"}, {"problem": None, "answer": "y"}])
    good = write_parquet(tmp_path / "good.parquet", numbered_rows(3))
    unknown = tmp_path / "rows.xlsx"
    unknown.write_text("x")
    return {
        "missing field": (["--source", good, "--question-field", "prompt"],
                          "--question-field prompt: no such column in"),
        "missing answer field": (["--source", good, "--answer-field", "solution"], "its columns are: problem, answer"),
        "unreadable file": (["--source", garbage], "cannot read it as parquet"),
        "wrong type found while reading": (["--source", mixed], "cannot read it as json"),
        "wrong type (list)": (["--source", lists], "--answer-field answer: the column holds list<"),
        "wrong type (float)": (["--source", floats], "the column holds double"),
        "empty result": (["--source", blank], "no rows left to train on (2 read, 2 with an empty"),
        "no such file": (["--source", tmp_path / "absent.parquet"], "no such file"),
        "unknown format": (["--source", unknown], "cannot tell the file format"),
        "max rows zero": (["--source", good, "--max-rows", 0], "--max-rows 0"),
        "holdout of everything": (["--source", good, "--holdout-fraction", 1], "--holdout-fraction 1.0"),
        "holdout leaves no training rows": (["--source", good, "--holdout-fraction", 0.9], "leaves no training rows"),
    }


def test_every_bad_input_exits_2_with_one_line_and_no_output(tmp_path: Path) -> None:
    for case, (args, says) in _bad_sources(tmp_path).items():
        out_dir = tmp_path / f"out-{case.replace(' ', '-')}"
        result = run_cli(*args, "--out-dir", out_dir)
        assert result.exit_code == 2, (case, result.output)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, (case, result.stderr)
        assert says in result.stderr, (case, result.stderr)
        assert not out_dir.exists() or not list(out_dir.iterdir()), (case, list(out_dir.iterdir()))


def test_a_failed_run_keeps_the_previous_outputs(source: Path, tmp_path: Path) -> None:
    convert_dataset(str(source), tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    with pytest.raises(StepInputError):
        convert_dataset(str(source), tmp_path / "out", fields=FieldMapping(question="nope"))
    with pytest.raises(StepInputError):
        convert_dataset(str(source), tmp_path / "out", holdout_fraction=0.99)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


def test_cli_reports_counts_and_help_works(source: Path, tmp_path: Path) -> None:
    result = run_cli("--source", source, "--out-dir", tmp_path / "out", "--holdout-fraction", 0.34,
                     "--shuffle-seed", 1)
    assert result.exit_code == 0, result.output
    assert "wrote 2 rows" in result.stdout and "1 held out" in result.stdout and "2 duplicate" in result.stdout
    help_run = subprocess.run([sys.executable, "-m", "steps.convert_dataset", "--help"], capture_output=True,
                              text=True, check=False, cwd=Path(__file__).resolve().parents[1])
    assert help_run.returncode == 0
    for flag in ("--source", "--revision", "--split", "--question-field", "--answer-field", "--out-dir",
                 "--max-rows", "--shuffle-seed", "--holdout-fraction"):
        assert flag in help_run.stdout


# --- issue 11: rows of any size (item 12), an --out-dir that is a file (item 10) ---------------

@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_item12_rows_larger_than_pyarrows_block_are_read(tmp_path: Path, suffix: str) -> None:
    long_question = "why " * 1_000_000  # 4 MB, several of pyarrow's 1 MiB blocks
    rows = numbered_rows(50) + [{"problem": long_question, "answer": "long"}] + numbered_rows(60)[50:]
    source = tmp_path / f"source{suffix}"
    if suffix == ".csv":
        source.write_text("problem,answer\n" + "".join(f"{r['problem']},{r['answer']}\n" for r in rows))
    else:
        write_jsonl(source, rows)
    stats = convert_dataset(str(source), tmp_path / "out")
    table = read(tmp_path / "out" / "train.parquet")
    assert stats["rows_out"] == 61 and table.column("question")[50].as_py() == long_question


def test_longest_line_counts_across_read_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convert, "SCAN_CHUNK_BYTES", 7)
    path = tmp_path / "lines"
    path.write_bytes(b"ab\n" + b"x" * 20 + b"\nabc\n" + b"y" * 9)
    assert convert.longest_line_bytes(path) == 21


def test_item10_an_out_dir_that_is_a_file_is_one_line(source: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder")
    result = run_cli("--source", source, "--out-dir", tmp_path / "taken")
    assert result.exit_code == 2
    assert result.stderr == (f"error: {tmp_path / 'taken'} is a file, not a directory; outputs cannot be written "
                             f"under {tmp_path / 'taken'}\n")
    assert (tmp_path / "taken").read_text() == "not a folder"
