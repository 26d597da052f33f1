"""The benchmarks a training run watches (the recipe's `eval:` section), as rows for the eval callback.

`openr1-val` is the run's own validation split; any other benchmark is read like evaluate.py reads it, in the
recipe's prompt format, so a run sees what it forgets (GSM8K) as it trains on something else (OpenR1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from utils.benchmarks import OPENR1_VAL, benchmark_label, find_data_dir
from utils.config import Recipe
from utils.evaluation._benchmarks import load_benchmark


@dataclass
class WatchedSet:
    name: str  # as logged: eval/<name>/accuracy
    rows: list[dict]  # each with `prompt` chat messages and a gold `answer`
    max_new_tokens: int


def watched_sets(recipe: Recipe, validation: Any) -> list[WatchedSet]:
    """Rows of every benchmark in `recipe.eval`, first `samples` of each; an empty validation split is skipped."""
    sets = []
    for entry in recipe.eval.watched():
        name, samples = entry["name"], entry["samples"]
        if name == OPENR1_VAL:
            if not len(validation):
                continue
            rows = list(validation.select(range(min(samples, len(validation)))))
        else:
            rows = load_benchmark(name, recipe.prompt.format, recipe.prompt.system, find_data_dir(),
                                  limit=samples).rows
        sets.append(WatchedSet(benchmark_label(name), rows, entry["max_new_tokens"]))
    return sets
