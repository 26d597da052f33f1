"""Each named benchmark once: its local file, hub dataset, columns, completion budget and report breakdown."""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from utils.errors import UserError

OPENR1_VAL = "openr1-val"  # evaluation only: the validation split of the run's own recipe


@dataclass(frozen=True)
class Benchmark:
    """Where a named benchmark lives and how to read it."""

    name: str
    local: str  # file under the data folder
    hub: str  # hub dataset id, used where the data folder has no copy
    split: str  # the hub split holding the problems
    max_new_tokens: int  # completion budget: room for a chain of thought at this difficulty
    hub_config: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # adapter role -> column, beyond auto-detection
    breakdown: dict[str, str] = field(default_factory=dict)  # report label -> adapted column


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("gsm8k", "gsm8k/test.jsonl", "openai/gsm8k", "test", 512, hub_config="main"),
    # The adapter has no `level` role: MATH-500's level column rides in the `source` role.
    Benchmark("math500", "math500/math500.jsonl", "HuggingFaceH4/MATH-500", "test", 1024,
              columns={"source": "level"}, breakdown={"subject": "problem_type", "level": "source"}),
    Benchmark("aime24", "competition/aime24.jsonl", "HuggingFaceH4/aime_2024", "train", 2048),
    Benchmark("amc23", "competition/amc23.jsonl", "math-ai/amc23", "test", 2048,
              columns={"problem": "question", "answer": "answer"}),
)}
KNOWN = (*BENCHMARKS, OPENR1_VAL)
RENAMED = {"gsm8k_test": "gsm8k"}  # old name -> its name now (decontamination called GSM8K's test set so)
_noted: set[str] = set()


def canonical_name(name: str) -> str:
    """The benchmark's name now; an old name works, with a one-line note the first time it is seen."""
    new = RENAMED.get(name)
    if new is None:
        return name
    if name not in _noted:
        _noted.add(name)
        print(f"note: benchmark '{name}' is now called '{new}'; the old name still works (rename it)",
              file=sys.stderr, flush=True)
    return new


def benchmark_label(name: str) -> str:
    """A folder-safe name: a known name as is, a path by its file or folder name."""
    name = canonical_name(name)
    return name if name in KNOWN else Path(name).stem or Path(name).name


def unknown_benchmark(name: str, where: str, known: tuple[str, ...] = KNOWN) -> UserError:
    """The one wording for a benchmark entry that is neither a known name nor an existing file."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return UserError(f"{where}: unknown benchmark and no such file ({hint}known: {', '.join(known)}; "
                     "or give a .jsonl/.json/.parquet file or folder)")
