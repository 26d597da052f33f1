"""The data cache: a key over everything that shapes the rows (data + prompt sections, source stamps,
tokenizer, decontamination files, this code), and atomic save/load of an entry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from utils.config import DataSection, PromptSection
from utils.data._report import DataReport, PreparedData
from utils.data._sources import Source
from utils.files import staged

CACHE_VERSION = 1  # bump when the cache layout changes
UTILS_DIR = Path(__file__).resolve().parents[1]
# Packages whose code shapes the cached rows: every *.py in them (new modules included) keys the cache.
# formats: the system prompts and messages written into each row's `prompt`.
CODE_PACKAGES = ("data", "answers", "formats")


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_version(utils_dir: Path = UTILS_DIR) -> str:
    """A hash of the code that shapes the cached rows: a change there invalidates the cache.

    Every *.py of the CODE_PACKAGES under `utils_dir` (a copy of the tree, in tests), by path and bytes.
    """
    import datasets

    digest = hashlib.sha256(f"{CACHE_VERSION}:{datasets.__version__}".encode())
    files = sorted(path for package in CODE_PACKAGES for path in (utils_dir / package).rglob("*.py"))
    for path in files:
        digest.update(path.relative_to(utils_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer: Any) -> str | None:
    """What identifies a tokenizer's counts: its vocabulary/merges and chat template."""
    if tokenizer is None:
        return None
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(str(getattr(tokenizer, "chat_template", "")).encode())
    return digest.hexdigest()[:16]


def rows_section(data: DataSection) -> dict[str, Any]:
    """The data section's keys that decide the prepared rows: not where the cache goes, nor what is done to the
    train split afterwards from pass rates and the curriculum (utils.data._pass_rates, _curriculum), so a run
    with them shares its cache entry, and its pass-rate file, with one without."""
    section = dataclasses.asdict(data)
    for key in ("cache", "cache_dir", "curriculum"):
        section.pop(key)
    for key in ("pass_rate", "pass_rate_file"):
        section["filters"].pop(key)
    return section


def cache_key(data: DataSection, prompt: PromptSection, source: Source, tokenizer: Any,
              eval_sets: Sequence[Source]) -> tuple[str, dict[str, Any]]:
    """The cache key and what went into it (written beside the cache for anyone wondering)."""
    inputs = {
        "data": rows_section(data),
        "prompt": dataclasses.asdict(prompt),
        "source": source.fingerprint(),
        # Only the token filter depends on the tokenizer: no reason to rebuild for another model otherwise.
        "tokenizer": tokenizer_fingerprint(tokenizer) if data.filters.max_prompt_tokens is not None else None,
        "eval_sets": [s.fingerprint() for s in eval_sets],  # decontamination sets: files or hub revisions
        "code": code_version(),
    }
    return stable_hash(inputs), inputs


def _load_split(path: Path) -> Any:
    from datasets import Dataset, DatasetInfo, load_from_disk

    if not json.loads((path / "state.json").read_text())["_data_files"]:
        # datasets 5.2 saves an empty split (validation: 0) with no data file and cannot load it back
        # (IndexError in concat_tables): rebuild it from its saved schema.
        features = DatasetInfo.from_directory(str(path)).features
        return Dataset.from_dict({name: [] for name in features}, features=features)
    return load_from_disk(str(path))


def load_cached(path: Path) -> PreparedData | None:
    try:
        train, validation = (_load_split(path / "data" / split) for split in ("train", "validation"))
        report = DataReport.from_dict(json.loads((path / "report.json").read_text()))
    except Exception:  # a partial or foreign folder is no cache: rebuild it
        return None
    return PreparedData(train, validation, report)


def save_cache(path: Path, prepared: PreparedData, inputs: dict[str, Any]) -> None:
    from datasets import DatasetDict

    try:
        with staged(path) as tmp:  # a reader sees the whole cache entry or none
            tmp.mkdir()
            DatasetDict({"train": prepared.train, "validation": prepared.validation}).save_to_disk(str(tmp / "data"))
            (tmp / "report.json").write_text(json.dumps(prepared.report.to_dict(), indent=1))
            (tmp / "key.json").write_text(json.dumps(inputs, indent=1, default=str))
    except FileExistsError:  # another process saved the same entry meanwhile: theirs is as good
        pass

