"""Decontamination: word n-gram index of evaluation problems (named benchmarks or files).

A named set is read where evaluation reads it (utils.benchmarks: its copy in the data folder, else its hub
dataset, through the same readers as training data), so a fresh clone without ../shared/data still runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from utils.benchmarks import BENCHMARKS, benchmark_label, find_data_dir
from utils.config import DataSection
from utils.data._adapters import make_adapter
from utils.data._benchmark_sets import benchmark_source
from utils.data._readers import Reader
from utils.data._sources import Source
from utils.errors import UserError

_WORD = re.compile(r"\w+")


def normalized_words(text: str) -> list[str]:
    """Lower-cased word tokens (LaTeX commands keep their name: \\frac -> frac); punctuation dropped."""
    return _WORD.findall(text.lower())


class NgramIndex:
    """Word n-grams of evaluation problems; a training problem overlaps when it shares one n-gram.

    Problems shorter than n words are indexed (and looked up) as their whole normalised text, so a short
    evaluation problem is still caught when it appears verbatim.
    """

    def __init__(self, n: int = 13):
        if n < 1:
            raise UserError(f"data.filters.decontaminate_ngram: must be >= 1, got {n}")
        self.n = n
        self.grams: dict[tuple[str, ...], str] = {}  # n-gram -> eval set it came from
        self.whole: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    def _grams(self, words: list[str]) -> Iterable[tuple[str, ...]]:
        return zip(*(words[i:] for i in range(self.n)), strict=False)  # shifted copies: stop at the shortest

    def add(self, text: str, label: str) -> None:
        words = normalized_words(text)
        if not words:
            return
        self.sizes[label] = self.sizes.get(label, 0) + 1
        if len(words) < self.n:
            self.whole.setdefault(" ".join(words), label)
        else:
            for gram in self._grams(words):
                self.grams.setdefault(gram, label)

    def match(self, text: str) -> str | None:
        """The eval set this text overlaps with, or None."""
        words = normalized_words(text)
        if len(words) < self.n:
            return self.whole.get(" ".join(words)) if words else None
        if self.grams.keys().isdisjoint(self._grams(words)):  # the common case, in one C-level loop
            return None
        return next(self.grams[g] for g in self._grams(words) if g in self.grams)


def resolve_eval_set(name_or_path: str) -> tuple[DataSection, Source]:
    """A decontamination set: a benchmark name (its copy in the data folder, else the hub) or a file path."""
    where = f"data.filters.decontaminate: '{name_or_path}'"
    return benchmark_source(name_or_path, find_data_dir(), where, tuple(BENCHMARKS))


def eval_problems(section: DataSection, source: Source) -> list[str]:
    """The problem texts of an evaluation set, through the same readers and schema adapters."""
    reader = Reader(source, None, progress=False)
    adapter = make_adapter(reader.columns(), section, source.name)
    column = adapter.mapping["problem"]
    return [str(p) for p in reader.read([column])[column] if p]


def build_ngram_index(sets: Sequence[str], n: int) -> tuple[NgramIndex, list[Source]]:
    index = NgramIndex(n)
    sources = []
    for name in sets:
        section, source = resolve_eval_set(name)
        sources.append(source)
        label = benchmark_label(name)
        for problem in eval_problems(section, source):
            index.add(problem, label)
    return index, sources
