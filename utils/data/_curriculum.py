"""The curriculum: the train split ordered by difficulty (`data.curriculum: {by, order, sources}`).

by: pass_rate  the starting model's pass rate (utils.data._pass_rates): a higher rate is easier
    level      the last number in the `source` column: generated problems name theirs (synthetic/word/level-3);
               a dataset's level column is mapped there (data.columns: {source: level}), as MATH-500's is
    source     the `source` column's values in the order `sources` lists them (one dataset mixing several
               sources, e.g. OpenR1's); values not listed come last
order: easy_first | hard_first. Problems of equal difficulty keep a seeded order (data.seed), not the file's;
problems without a difficulty (not scored, no level, an unlisted source) come last. The order holds within one
data source and one epoch (each epoch repeats it); training turns TRL's shuffling off to keep it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from utils.config import CurriculumSection
from utils.data._pass_rates import PassRates
from utils.data._report import PreparedData
from utils.errors import UserError

_LAST_NUMBER = re.compile(r"(\d+(?:\.\d+)?)(?!.*\d)")
_SHOWN_GROUPS = 8  # groups named in the report's Order line


def level_of(source: str) -> float | None:
    """The level a `source` value names: its last number ('Level 3', 'synthetic/word/level-3', '5.0')."""
    match = _LAST_NUMBER.search(source or "")
    return float(match.group(1)) if match else None


def difficulties(train: Any, curriculum: CurriculumSection, rates: PassRates | None) -> list[float | None]:
    """Each train row's difficulty, larger = harder (None: unknown)."""
    if curriculum.by == "pass_rate":
        assert rates is not None
        values = [rates.of(p, a) for p, a in zip(train["problem"], train["answer"], strict=True)]
        return [None if v is None else 1.0 - v for v in values]
    if curriculum.by == "level":
        return [level_of(s) for s in train["source"]]
    rank = {name: i for i, name in enumerate(curriculum.sources)}
    return [rank.get(s) for s in train["source"]]


def curriculum_order(values: Sequence[float | None], hard_first: bool, seed: int) -> list[int]:
    """Row indices by difficulty (ties in a seeded order), unknown difficulties last."""
    import numpy as np

    shuffled = [int(i) for i in np.random.default_rng(seed).permutation(len(values))]
    sign = -1.0 if hard_first else 1.0
    return sorted(shuffled, key=lambda i: (values[i] is None, sign * (values[i] or 0.0)))  # stable: ties shuffled


def _label(by: str, value: float | None, source: str) -> str:
    if value is None:
        return {"pass_rate": "not scored", "level": "no level", "source": "unlisted"}[by]
    if by == "pass_rate":
        return f"p={1.0 - value:.2f}"
    return f"level {value:g}" if by == "level" else source


def describe_order(by: str, order: str, labels: list[str]) -> str:
    groups = [f"{label} ({len(list(run))})" for label, run in groupby(labels)]
    shown = groups if len(groups) <= _SHOWN_GROUPS else [*groups[:_SHOWN_GROUPS - 1], "...", groups[-1]]
    return f"by {by.replace('_', ' ')}, {order.replace('_', ' ')}: " + ", ".join(shown)


def order_train(prepared: PreparedData, curriculum: CurriculumSection, seed: int,
                rates: PassRates | None = None) -> PreparedData:
    """The train split in the curriculum's order; the report's Order line says what it is."""
    train = prepared.train
    values = difficulties(train, curriculum, rates)
    if train.num_rows and all(v is None for v in values):
        raise UserError(_nothing_to_order(curriculum, sorted(set(train["source"]))))
    order = curriculum_order(values, curriculum.order == "hard_first", seed)
    sources = train["source"]
    labels = [_label(curriculum.by, values[i], sources[i]) for i in order]
    prepared.report.order = describe_order(curriculum.by, curriculum.order, labels)
    return PreparedData(train.select(order), prepared.validation, prepared.report)


def _nothing_to_order(curriculum: CurriculumSection, found: list[str]) -> str:
    seen = ", ".join(repr(s) for s in found[:5]) + (", ..." if len(found) > 5 else "") or "none"
    if curriculum.by == "level":
        return (f"data.curriculum.by: level: no training problem names a level in its source column (found: {seen}); "
                "map the dataset's level column there (data.columns: {source: level}) or use dataset: synthetic "
                "with data.level: [1, 2, 3]")
    if curriculum.by == "source":
        return f"data.curriculum.sources: none of {curriculum.sources} is a source of the training problems (found: {seen})"
    return "data.curriculum.by: pass_rate: the pass-rate file scores none of the training problems (remake it)"
