"""Split and format: a held-out validation split (or the source's own) and a seeded train subset, then
the `prompt` chat messages and the fixed output columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from utils.config import DataSection, PromptSection
from utils.data._cache import stable_hash
from utils.data._filters import FilterContext, apply_filters
from utils.data._report import DataReport, FilterStep
from utils.errors import UserError
from utils.formats import build_messages

# Every row of train/validation carries these columns (TRL passes them to the reward functions).
OUTPUT_COLUMNS = ["prompt", "problem", "answer", "solution", "problem_type", "question_type", "source", "id"]


def split_indices(n: int, validation: int, subset: int | None, seed: int, held_out: bool = True) -> tuple[list[int], list[int]]:
    """Seeded (numpy PCG64: the same on every machine) validation and train row indices, disjoint.

    The validation rows are the first `validation` of one permutation and the train subset the next
    `subset`, so changing the subset size never moves a problem between train and validation.
    """
    import numpy as np

    perm = np.random.default_rng(seed).permutation(n)
    val = perm[:validation] if held_out else perm[:0]
    rest = perm[len(val):]
    train = rest if subset is None else rest[:subset]
    return sorted(int(i) for i in val), sorted(int(i) for i in train)


def _format_batch(problems: list[str], fmt: str, system: str | None) -> dict[str, list[Any]]:
    return {"prompt": [build_messages(p, fmt, system) for p in problems]}


def output_features() -> Any:
    """The schema of train/validation rows (fixed, so an empty validation split has it too)."""
    from datasets import Features, List, Value

    features = {name: Value("string") for name in OUTPUT_COLUMNS}
    features["prompt"] = List({"role": Value("string"), "content": Value("string")})
    return Features({name: features[name] for name in OUTPUT_COLUMNS})


def format_rows(ds: Any, prompt: PromptSection) -> Any:
    """Add the `prompt` chat messages and keep OUTPUT_COLUMNS (in that order)."""
    if len(ds) == 0:
        from datasets import Dataset

        return Dataset.from_dict({name: [] for name in OUTPUT_COLUMNS}, features=output_features())
    ds = ds.map(_format_batch, batched=True, input_columns=["problem"],
                fn_kwargs={"fmt": prompt.format, "system": prompt.system},
                keep_in_memory=True, load_from_cache_file=False,
                new_fingerprint=stable_hash([ds._fingerprint, prompt.format, prompt.system]), desc="Formatting prompts")
    return ds.select_columns(OUTPUT_COLUMNS)


def no_rows_left(dataset: str, rows_loaded: int, steps: Sequence[FilterStep]) -> UserError:
    """The error for data that filters emptied, with what each filter removed."""
    counts = ", ".join(f"{s.name} -{s.removed}" for s in steps if not s.skipped)
    return UserError(f"{dataset}: no rows left after filtering {rows_loaded} rows ({counts}): loosen data.filters")


def split_rows(rows: Any, source_validation: Any | None, ctx: FilterContext, data: DataSection,
               report: DataReport) -> tuple[Any, Any]:
    """Train and validation rows (unformatted): the source's own validation split when it has one, else held out."""
    if source_validation is not None:
        val_rows, _ = apply_filters(source_validation, ctx)
        val_idx, _ = split_indices(len(val_rows), min(data.validation, len(val_rows)), None, data.seed)
        _, train_idx = split_indices(len(rows), 0, data.subset, data.seed, held_out=False)
        report.validation_from = "the source's validation split"
        available = len(rows)
        validation = val_rows.select(val_idx)
    else:
        if data.validation >= len(rows):
            raise UserError(
                f"data.validation: {data.validation} problems asked, but only {len(rows)} remain after filters "
                "(lower data.validation or loosen data.filters)"
            )
        val_idx, train_idx = split_indices(len(rows), data.validation, data.subset, data.seed)
        report.validation_from = f"held out, seed {data.seed}"
        available = len(rows) - len(val_idx)
        validation = rows.select(val_idx)
    if data.subset is not None and data.subset > available:
        held = f" and the {len(val_idx)}-problem validation split" if source_validation is None else ""
        raise UserError(f"data.subset: {data.subset} problems asked, but only {available} remain after filters{held}")
    return rows.select(train_idx), validation
