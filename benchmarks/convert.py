"""Benchmark steps.convert_dataset against a plain pyarrow read + write of the same parquet file.

    python benchmarks/convert.py [--rows 50000] [--memory-rows 1000000] [--workdir DIR]

Writes synthetic AceReason-Math-like files (problem, answer, source; about 1% repeated
questions and 0.5% blank answers), runs each command once as its own process, and prints
wall time and peak RSS, with convert/copy ratios. The aim: time within 2x of the plain copy,
and convert's peak memory flat as the row count grows (the copy's grows with the file).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import typer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHUNK_ROWS = 50_000
WORDS = ("let find the value of integer real number sum product such that triangle circle radius area "
         "prove compute how many ways probability sequence function polynomial roots satisfies positive "
         "digits divisible remainder when divided by equation solutions ordered pairs maximum minimum").split()
VARIANTS = {"streamed (default)": [],
            "staged (shuffle + holdout)": ["--shuffle-seed", "1", "--holdout-fraction", "0.01"]}
# Each measured process reports its own high-water RSS (VmHWM) on exit: the parent's ru_maxrss
# for a child would include the benchmark's own memory, inherited at fork and kept over exec.
REPORT_PEAK = ("import atexit, sys\n"
               "atexit.register(lambda: print('peak_kib', *[line.split()[1] for line in open('/proc/self/status')"
               " if line.startswith('VmHWM')], file=sys.stderr))\n")
PLAIN_COPY = REPORT_PEAK + "import pyarrow.parquet as pq; pq.write_table(pq.read_table(sys.argv[1]), sys.argv[2])"
CONVERT = REPORT_PEAK + "import runpy; runpy.run_module('steps.convert_dataset', run_name='__main__', alter_sys=True)"


def synthetic_chunk(rng: np.random.Generator, first_row: int, n_rows: int) -> pa.Table:
    """Math-problem-like rows: 20-110 words with numbers mixed in, a short answer."""
    lengths = rng.integers(20, 110, size=n_rows)
    words = rng.integers(0, len(WORDS), size=int(lengths.sum()))
    numbers = rng.integers(0, 10_000, size=n_rows)
    problems, start = [], 0
    for row, length in enumerate(lengths):
        text = " ".join(WORDS[w] for w in words[start:start + length])
        problems.append(f"Problem {first_row + row}: {text} {numbers[row]}?")
        start += length
    repeats = rng.random(n_rows) < 0.01  # a repeated question, differently spaced and cased
    for row in np.flatnonzero(repeats)[1:]:
        problems[row] = "  " + problems[row - 1].upper()
    answers = [str(n) for n in rng.integers(0, 1_000, size=n_rows)]
    for row in np.flatnonzero(rng.random(n_rows) < 0.005):
        answers[row] = " "
    return pa.table({"problem": problems, "answer": answers,
                     "source": pa.array(rng.choice(["amc", "aime", "olympiad"], size=n_rows))})


def write_synthetic(path: Path, n_rows: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    schema = synthetic_chunk(rng, 0, 1).schema
    with pq.ParquetWriter(path, schema) as writer:
        for first_row in range(0, n_rows, CHUNK_ROWS):
            writer.write_table(synthetic_chunk(rng, first_row, min(CHUNK_ROWS, n_rows - first_row)))
    return path


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mib: float


def measure(code: str, *args: str) -> Run:
    """Wall time and peak resident memory of `python -c code args...` run once."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"benchmark command failed ({result.returncode}): {args}\n{result.stderr}")
    peak_kib = int(result.stderr.split("peak_kib")[-1].split()[0])
    return Run(seconds, peak_kib / 1024)




def main(
    rows: Annotated[int, typer.Option(help="Rows for the timing comparison.")] = 50_000,
    memory_rows: Annotated[int, typer.Option(help="Rows for the memory comparison (0 skips it).")] = 1_000_000,
    workdir: Annotated[Path | None, typer.Option(help="Where to write the files (default: a temporary folder).")] = None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="tunebench-bench-", dir=workdir) as tmp:
        tmp_path = Path(tmp)
        print(f"{'rows':>9}  {'variant':<26} {'copy s':>7} {'convert s':>9} {'time x':>7}  "
              f"{'copy MiB':>8} {'convert MiB':>11} {'memory x':>8}")
        peaks = {}
        for n_rows in (rows, memory_rows):
            if not n_rows:
                continue
            source = write_synthetic(tmp_path / f"source-{n_rows}.parquet", n_rows)
            copy = measure(PLAIN_COPY, str(source), str(tmp_path / "copy.parquet"))
            for variant, args in VARIANTS.items():
                converted = measure(CONVERT, "--source", str(source), "--out-dir", str(tmp_path / "converted"), *args)
                peaks[(n_rows, variant)] = converted.peak_rss_mib
                print(f"{n_rows:>9,}  {variant:<26} {copy.seconds:>7.2f} {converted.seconds:>9.2f} "
                      f"{converted.seconds / copy.seconds:>7.2f}  {copy.peak_rss_mib:>8.0f} "
                      f"{converted.peak_rss_mib:>11.0f} {converted.peak_rss_mib / copy.peak_rss_mib:>8.2f}")
            source.unlink()
        if memory_rows:
            growth = peaks[(memory_rows, "streamed (default)")] / peaks[(rows, "streamed (default)")]
            print(f"convert peak RSS, {memory_rows:,} rows / {rows:,} rows (streamed): {growth:.2f}x")


if __name__ == "__main__":
    typer.run(main)
