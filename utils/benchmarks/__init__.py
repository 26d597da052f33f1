"""Benchmarks by name and the data folder holding their local copies: each set defined once, found one way.

    data_dir = find_data_dir(args.data_dir)          # --data-dir, $GRPO_MATH_DATA_DIR, ../shared/data, else None
    where = locate_benchmark("gsm8k", data_dir)      # its copy in that folder when there, else its hub dataset

Decontamination (utils.data), evaluation, recipe validation, scripts/demo.py, bench/ and the tests all resolve
names and the folder here. `gsm8k_test` (decontamination's old name for GSM8K's test set) still works, with a
one-line note. Imports only utils.errors: every package above may use it.
"""

from utils.benchmarks._folder import DATA_DIR_ENV, BenchmarkLocation, find_data_dir, locate_benchmark
from utils.benchmarks._registry import (
    BENCHMARKS,
    KNOWN,
    OPENR1_VAL,
    Benchmark,
    benchmark_label,
    canonical_name,
    unknown_benchmark,
)

__all__ = [
    "BENCHMARKS",
    "DATA_DIR_ENV",
    "KNOWN",
    "OPENR1_VAL",
    "Benchmark",
    "BenchmarkLocation",
    "benchmark_label",
    "canonical_name",
    "find_data_dir",
    "locate_benchmark",
    "unknown_benchmark",
]
