"""Decontamination: word n-gram index of evaluation problems (known sets in the shared data folder, or files)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from utils.config import DataSection
from utils.data._adapters import make_adapter
from utils.data._readers import Reader
from utils.data._sources import Source
from utils.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
# The real data folder beside the repository (never copied into it); GRPO_MATH_DATA_DIR points elsewhere.
DATA_DIR_ENV = "GRPO_MATH_DATA_DIR"
# Evaluation sets for decontamination, by name: files in the shared data folder.
EVAL_SETS: dict[str, str] = {
    "math500": "math500/math500.jsonl",
    "gsm8k_test": "gsm8k/test.jsonl",
    "aime24": "competition/aime24.jsonl",
    "amc23": "competition/amc23.jsonl",
}


def shared_data_dir() -> Path:
    """The shared real-data folder: $GRPO_MATH_DATA_DIR, else ../shared/data beside the repository."""
    return Path(os.environ.get(DATA_DIR_ENV) or ROOT.parent / "shared" / "data").expanduser()


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


def resolve_eval_set(name_or_path: str) -> Path:
    """A decontamination set: a known name (files in ../shared/data) or a file path."""
    if name_or_path in EVAL_SETS:
        path = shared_data_dir() / EVAL_SETS[name_or_path]
        if not path.is_file():
            raise UserError(
                f"data.filters.decontaminate: '{name_or_path}' needs {path}, which is missing "
                "(the shared data folder sits beside the repository; or give the set's file path)"
            )
        return path
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise UserError(
            f"data.filters.decontaminate: '{name_or_path}' is neither a known set "
            f"({', '.join(EVAL_SETS)}) nor an existing file"
        )
    return path


def eval_problems(path: Path) -> list[str]:
    """The problem texts of an evaluation file, through the same readers and schema adapters."""
    source = Source("files", str(path), files=[path], path=path)
    reader = Reader(source, None, progress=False)
    adapter = make_adapter(reader.columns(), DataSection(dataset=str(path), format="auto"), str(path))
    column = adapter.mapping["problem"]
    return [str(p) for p in reader.read([column])[column] if p]


def build_ngram_index(sets: Sequence[str], n: int) -> tuple[NgramIndex, list[Path]]:
    index = NgramIndex(n)
    paths = []
    for name in sets:
        path = resolve_eval_set(name)
        paths.append(path)
        label = name if name in EVAL_SETS else path.stem
        for problem in eval_problems(path):
            index.add(problem, label)
    return index, paths

