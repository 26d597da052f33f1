"""Benchmarks by name (gsm8k, math500, aime24, amc23, openr1-val) or by path, as rows to evaluate.

Names, files and hub ids live in utils.benchmarks; a named benchmark is read from its copy in the data folder
(utils.benchmarks.find_data_dir) and otherwise from its hub dataset, through the data package as
decontamination reads it. Rows are adapted by the training data's schema adapters and asked in the chosen
prompt format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.benchmarks import BENCHMARKS, OPENR1_VAL, benchmark_label, canonical_name
from utils.config import Recipe
from utils.data import prepare_data, read_benchmark
from utils.errors import UserError
from utils.formats import build_messages

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
    roles: str = ""  # which column was read as what: "problem <- question, answer <- answer"


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
                   recipe: Recipe | None = None, tokenizer: Any = None, limit: int | None = None,
                   columns: dict[str, str] | None = None) -> LoadedBenchmark:
    """One benchmark's rows; a named one from its copy in `data_dir` (None: no folder), else the hub.
    `openr1-val` is the validation split `recipe` makes (in its own prompt format; `tokenizer` applies its
    prompt-token filter; its columns are the recipe's data.columns). `columns` (role -> column, --columns)
    overrides the roles detected in any other. Raises UserError for unknown names and missing files."""
    name = canonical_name(name)
    breakdown: dict[str, str] = {}
    if name == OPENR1_VAL:
        if recipe is None:
            raise UserError(f"--bench {OPENR1_VAL}: needs a training run (MODEL a run folder or one of its "
                            "checkpoints) or --recipe RECIPE, whose validation split it is")
        prepared = prepare_data(recipe.data, recipe.prompt, tokenizer, progress=False)
        adapted, roles = prepared.validation, prepared.report.roles
        source, budget = f"validation split of {recipe.data.dataset}", recipe.eval.max_new_tokens
    else:
        loaded = read_benchmark(name, data_dir, f"--bench {name}", columns)
        adapted, source, budget = loaded.rows, loaded.source.describe(), FALLBACK_MAX_NEW_TOKENS
        roles = loaded.adapter.roles()
        if name in BENCHMARKS:
            budget, breakdown = BENCHMARKS[name].max_new_tokens, BENCHMARKS[name].breakdown
    if limit is not None:
        adapted = adapted.select(range(min(limit, len(adapted))))
    rows, without_gold = _as_rows(adapted, prompt_format, system, breakdown)
    if not rows:
        read_as = f" (columns read as {roles}: evaluate.py --columns says which is which)" if name != OPENR1_VAL else ""
        raise UserError(f"--bench {name}: no problems with a gold answer in {source}{read_as}")
    return LoadedBenchmark(benchmark_label(name), source, rows, budget, list(breakdown), without_gold, roles)
