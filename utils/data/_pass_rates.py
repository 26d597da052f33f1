"""Per-problem pass rates of a recipe's starting model (written by scripts/pass_rate.py), and the filter that
keeps the training problems it sometimes solves (`data.filters.pass_rate: [low, high]`).

The file is PASS_RATE_DIR/KEY-kK.jsonl: one line per problem, {key, id, answer, k, correct, decided,
pass_rate, ...}, appended as problems are scored. KEY hashes what decides the rates: the model, the data
section as it decides the rows (rows_section: what the data cache keys on), the prompt and the sampling
(utils.config.sampling_settings); K is the samples per problem. Rows are matched to lines by their problem
text and gold answer (problem_key), so a file made with --limit serves the rest as "not scored".

The filter runs on the train split only, after the split and subset (the problems pass_rate.py scores): the
validation set never depends on it. Bounds are excluded, low < p < high, so [0, 1] drops exactly the
problems whose k samples all agree (no GRPO advantage), and open-r1's band is [0.1, 0.9].
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import Recipe, sampling_settings
from utils.data._cache import rows_section, stable_hash
from utils.data._filters import normalized_problem
from utils.data._report import FilterStep, PreparedData
from utils.errors import UserError
from utils.files import read_jsonl

PASS_RATE_DIR = Path(".cache/pass_rates")  # relative to the working directory, as data.cache_dir is
DEFAULT_K = 8
DEFAULT_BAND = (0.1, 0.9)  # open-r1's band: problems the model solves sometimes, not never or always
_FILE = re.compile(r"^[0-9a-f]{16}-k(?P<k>\d+)\.jsonl$")


def pass_rate_key(recipe: Recipe) -> tuple[str, dict[str, Any]]:
    """The key of a recipe's pass-rate file and what went into it (model, data, prompt, sampling)."""
    inputs = {
        "model": {"name": recipe.model.name, "revision": recipe.model.revision},
        "data": rows_section(recipe.data),
        "prompt": dataclasses.asdict(recipe.prompt),
        "sampling": sampling_settings(recipe.training),
    }
    return stable_hash(inputs), inputs


def pass_rate_path(recipe: Recipe, k: int) -> Path:
    """Where pass_rate.py writes a recipe's pass rates with k samples per problem."""
    return PASS_RATE_DIR / f"{pass_rate_key(recipe)[0]}-k{k}.jsonl"


def problem_key(problem: str, answer: str) -> str:
    """What matches a row to its line: the problem text (whitespace-insensitive) and the gold answer."""
    return stable_hash([normalized_problem(problem), answer])


def needs_pass_rates(recipe: Recipe) -> str | None:
    """The recipe key that reads the pass-rate file, or None when nothing does."""
    if recipe.data.filters.pass_rate is not None:
        return "data.filters.pass_rate"
    if recipe.data.curriculum.by == "pass_rate":
        return "data.curriculum.by: pass_rate"
    return None


def make_command(recipe: Recipe, out: str | None = None) -> str:
    """The command that writes the recipe's pass-rate file."""
    recipe_path = recipe.source or "RECIPE"
    return f"python scripts/pass_rate.py {recipe_path} --k {DEFAULT_K}" + (f" --out {out}" if out else "")


def find_pass_rate_file(recipe: Recipe) -> Path:
    """The file the recipe reads: data.filters.pass_rate_file, else the keyed one with the most samples per
    problem. UserError, naming the command that makes it, when there is none."""
    what = needs_pass_rates(recipe) or "data.filters.pass_rate_file"
    explicit = recipe.data.filters.pass_rate_file
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UserError(f"data.filters.pass_rate_file: {explicit}: no such file "
                            f"(make it with: {make_command(recipe, explicit)})")
        return path
    key, _ = pass_rate_key(recipe)
    found = [p for p in PASS_RATE_DIR.glob(f"{key}-k*.jsonl") if _FILE.match(p.name)]
    if not found:
        raise UserError(f"{what}: no pass rates for this recipe's model, data, prompt and sampling in "
                        f"{PASS_RATE_DIR}/ (make them with: {make_command(recipe)}, with the same --set options)")
    return max(found, key=lambda p: int(_FILE.match(p.name)["k"]))  # type: ignore[index]


@dataclass
class PassRates:
    """A pass-rate file's records (one per scored problem)."""

    path: Path
    records: list[dict[str, Any]]

    def __post_init__(self) -> None:
        self._rates = {r["key"]: r.get("pass_rate") for r in self.records}

    @property
    def k(self) -> int | None:
        return self.records[0].get("k") if self.records else None

    def of(self, problem: str, answer: str) -> float | None:
        """The problem's pass rate; None when it was not scored (or no sample could be checked)."""
        return self._rates.get(problem_key(problem, answer))

    def describe(self) -> str:
        return f"{self.path} ({len(self.records)} problems, k={self.k})"


def read_pass_rates(path: Path, repair: bool = False) -> PassRates:
    """The records of a pass-rate file; a torn last line is skipped (`repair`: removed from the file)."""
    records = read_jsonl(path, repair=repair)
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict) or "key" not in record:
            raise UserError(f"{path}: not a pass-rate file (record {number} has no 'key'; scripts/pass_rate.py "
                            "writes them)")
    return PassRates(Path(path), records)


def keep_band(prepared: PreparedData, rates: PassRates, recipe: Recipe) -> PreparedData:
    """The train split's problems with low < pass rate < high (data.filters.pass_rate), the step reported like
    every filter's: the rows it removed, and why (not scored, at or below low, at or above high)."""
    start = time.perf_counter()
    low, high = recipe.data.filters.pass_rate or DEFAULT_BAND
    train, report = prepared.train, prepared.report
    values = [rates.of(p, a) for p, a in zip(train["problem"], train["answer"], strict=True)]
    keep = [i for i, v in enumerate(values) if v is not None and low < v < high]
    counts = {"not scored": sum(v is None for v in values),
              f"p <= {low:g}": sum(v is not None and v <= low for v in values),
              f"p >= {high:g}": sum(v is not None and v >= high for v in values)}
    step = FilterStep("pass_rate", f"{low:g} < p < {high:g} (train split)", removed=len(train) - len(keep),
                      remaining=len(keep), detail={name: n for name, n in counts.items() if n})
    if not keep and counts["not scored"] == len(train):
        raise UserError(f"data.filters.pass_rate: {rates.path} scores none of the {len(train)} training problems "
                        f"(made for other data? remake it with: {make_command(recipe)})")
    if not keep:
        found = ", ".join(f"{name}: {n}" for name, n in step.detail.items())
        raise UserError(f"data.filters.pass_rate: no training problem has {low:g} < p < {high:g} in {rates.path} "
                        f"({found}): widen the band")
    step.seconds = round(time.perf_counter() - start, 3)
    report.steps.append(step)
    report.train_rows, report.pass_rates = len(keep), rates.describe()
    return PreparedData(train.select(keep), prepared.validation, report)
