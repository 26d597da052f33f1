"""Benchmarks by name (gsm8k, math500, aime24, amc23, openr1-val) or by path, read through the data package.

A named benchmark resolves to a local copy under the data folder (`--data-dir`, default ../shared/data
beside the repository, when present) and otherwise to its hub dataset, so offline machines work. Its rows
are adapted by the same schema adapters as training data and asked in the chosen prompt format.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.config import DataSection, Recipe
from utils.data import build_messages, load_adapted, prepare_data
from utils.errors import UserError

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
OPENR1_VAL = "openr1-val"


@dataclass(frozen=True)
class Benchmark:
    """Where a named benchmark lives and how to read it."""

    local: str  # file under the data folder
    hub: str  # hub dataset id, used where the local copy is missing
    split: str  # the hub split holding the problems
    max_new_tokens: int  # completion budget: room for a chain of thought at this difficulty
    hub_config: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # adapter role -> column, beyond auto-detection
    breakdown: dict[str, str] = field(default_factory=dict)  # report label -> adapted column


BENCHMARKS: dict[str, Benchmark] = {
    "gsm8k": Benchmark("gsm8k/test.jsonl", "openai/gsm8k", "test", 512, hub_config="main"),
    # The adapter has no `level` role: MATH-500's level column rides in the `source` role.
    "math500": Benchmark("math500/math500.jsonl", "HuggingFaceH4/MATH-500", "test", 1024,
                         columns={"source": "level"}, breakdown={"subject": "problem_type", "level": "source"}),
    "aime24": Benchmark("competition/aime24.jsonl", "HuggingFaceH4/aime_2024", "train", 2048),
    "amc23": Benchmark("competition/amc23.jsonl", "math-ai/amc23", "test", 2048,
                       columns={"problem": "question", "answer": "answer"}),
}
KNOWN = (*BENCHMARKS, OPENR1_VAL)
FALLBACK_MAX_NEW_TOKENS = 1024  # a local file or openr1-val without a recipe budget


@dataclass
class LoadedBenchmark:
    """Problems ready to evaluate: rows {id, problem, answer, prompt (chat messages), breakdown fields}."""

    name: str
    source: str  # where the rows came from, for the report
    rows: list[dict[str, Any]]
    max_new_tokens: int
    breakdown: list[str] = field(default_factory=list)
    without_gold: int = 0  # rows dropped: no gold answer to check against


def default_data_dir() -> Path | None:
    return DEFAULT_DATA_DIR if DEFAULT_DATA_DIR.is_dir() else None


def benchmark_label(name: str) -> str:
    """A folder-safe name: a known name as is, a path by its file or folder name."""
    return name if name in KNOWN else Path(name).stem or Path(name).name


def _named_section(name: str, data_dir: Path | None) -> DataSection:
    spec = BENCHMARKS[name]
    local = data_dir / spec.local if data_dir else None
    if local is not None and local.is_file():
        return DataSection(dataset=str(local), config=None, columns=dict(spec.columns), validation=0, cache=False)
    return DataSection(dataset=spec.hub, config=spec.hub_config, split=spec.split, columns=dict(spec.columns),
                       validation=0, cache=False)


def _path_rows(name: str) -> Any:
    """Rows of a local file or folder (a folder: its `test` split, else its `train` split)."""
    try:
        return load_adapted(DataSection(dataset=name, config=None, split="test", validation=0, cache=False),
                            progress=False).rows
    except UserError as err:
        if not Path(name).is_dir() or "split" not in str(err):
            raise
        return load_adapted(DataSection(dataset=name, config=None, validation=0, cache=False), progress=False).rows


def _unknown(name: str) -> UserError:
    close = difflib.get_close_matches(name, KNOWN, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return UserError(f"--bench {name}: unknown benchmark and no such file ({hint}known: {', '.join(KNOWN)}; "
                     "or give a .jsonl/.json/.parquet file or folder)")


def _as_rows(adapted: Any, prompt_format: str, system: str | None, breakdown: dict[str, str]) -> tuple[list, int]:
    rows, seen, without_gold = [], set(), 0
    for r in adapted:
        if not r["answer"]:
            without_gold += 1
            continue
        pid = r["id"]
        while pid in seen:  # ids key resumption and flips: they must be unique
            pid += "'"
        seen.add(pid)
        row = {"id": pid, "problem": r["problem"], "answer": r["answer"],
               "prompt": r.get("prompt") or build_messages(r["problem"], prompt_format, system)}
        row.update({label: r.get(column) or None for label, column in breakdown.items()})
        rows.append(row)
    return rows, without_gold


def load_benchmark(name: str, prompt_format: str, system: str | None = None, data_dir: Path | None = None,
                   recipe: Recipe | None = None, tokenizer: Any = None, limit: int | None = None) -> LoadedBenchmark:
    """One benchmark's rows. `openr1-val` is the validation split `recipe` makes (in its own prompt format;
    `tokenizer` applies its prompt-token filter). Raises UserError for unknown names and missing files."""
    breakdown: dict[str, str] = {}
    if name == OPENR1_VAL:
        if recipe is None:
            raise UserError(f"--bench {OPENR1_VAL}: needs a training run (MODEL a run folder or one of its "
                            "checkpoints) or --recipe RECIPE, whose validation split it is")
        adapted = prepare_data(recipe.data, recipe.prompt, tokenizer, progress=False).validation
        source, budget = f"validation split of {recipe.data.dataset}", recipe.eval.max_new_tokens
    elif name in BENCHMARKS:
        section = _named_section(name, data_dir)
        adapted, source = load_adapted(section, progress=False).rows, section.dataset
        budget, breakdown = BENCHMARKS[name].max_new_tokens, BENCHMARKS[name].breakdown
    elif Path(name).expanduser().exists():
        adapted, source, budget = _path_rows(name), name, FALLBACK_MAX_NEW_TOKENS
    else:
        raise _unknown(name)
    if limit is not None:
        adapted = adapted.select(range(min(limit, len(adapted))))
    rows, without_gold = _as_rows(adapted, prompt_format, system, breakdown)
    if not rows:
        raise UserError(f"--bench {name}: no problems with a gold answer in {source}")
    return LoadedBenchmark(benchmark_label(name), source, rows, budget, list(breakdown), without_gold)
