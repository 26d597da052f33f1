"""Training data: load (hub id or local files), adapt the schema, filter, split, format, cache.

    prepared = load_training_data(recipe, tokenizer)   # -> PreparedData(.train, .validation, .report)

Pipeline, each step reported with counts:
1. source: a hub id (`open-r1/OpenR1-Math-220k` with config default | extended | all), or local files:
   .jsonl, .json (array), .parquet, a folder of them (splits inferred from file names as `datasets`
   does), or a folder written by `datasets.save_to_disk`. Offline, a hub id fails fast.
2. schema adapter (OpenR1-Math-220k, GSM8K, MATH-style, generic with recipe column names): every row
   becomes problem, gold answer (the `answer` column, else the solution's last \\boxed{} or ####),
   solution and light metadata. The heavy OpenR1 columns (generations, messages) are never carried.
3. filters (see FILTERS), each reported with the rows it removed.
4. a held-out validation split (the source's own when it has one) and a seeded subset.
5. `prompt` chat messages (utils.prompts) for the rows that ship.
The result is cached under data.cache_dir, keyed by the resolved data + prompt sections, the source
files' size/mtime (or the hub revision), the tokenizer, the decontamination files and this code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.config import DataSection, FiltersSection, PromptSection, Recipe
from utils.data._prompts import PromptTokenCounter, build_messages, system_prompt
from utils.errors import UserError, first_line

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"

OPENR1_HUB_ID = "open-r1/OpenR1-Math-220k"
OPENR1_CONFIGS = ("default", "extended", "all")  # `all` = default + extended, concatenated
DATA_EXTENSIONS = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
# Evaluation sets for decontamination, by name: files in ../shared/data beside the repository.
EVAL_SETS: dict[str, str] = {
    "math500": "math500/math500.jsonl",
    "gsm8k_test": "gsm8k/test.jsonl",
    "aime24": "competition/aime24.jsonl",
    "amc23": "competition/amc23.jsonl",
}
# Every row of train/validation carries these columns (TRL passes them to the reward functions).
OUTPUT_COLUMNS = ["prompt", "problem", "answer", "solution", "problem_type", "question_type", "source", "id"]
# Columns the adapters produce before filtering; the last two only feed filters.
_ADAPTED_COLUMNS = ["problem", "answer", "gold_from", "solution", "problem_type", "question_type", "source", "id",
                    "correctness_count", "reasoning_complete"]
_CACHE_VERSION = 1  # bump when the cache layout changes
# Progress bars only where a pass takes a while: on a small file they are noise (and stderr is where
# a script's one-line error goes).
LONG_PASS_ROWS = 20_000
LONG_READ_BYTES = 50 << 20
_HUB_TIMEOUT_S = 3.0


# ---------------------------------------------------------------------------------------------
# Report


@dataclass
class FilterStep:
    """One filter's effect: rows removed from what the previous steps left."""

    name: str
    setting: str
    removed: int = 0
    remaining: int = 0
    skipped: str | None = None  # why the filter did not run (column absent, no tokenizer, ...)
    detail: dict[str, int] = field(default_factory=dict)  # e.g. decontamination hits per eval set
    seconds: float = 0.0

    def line(self) -> str:
        if self.skipped:
            return f"{self.name:<22} {self.setting:<28} skipped: {self.skipped}"
        extra = f" ({', '.join(f'{k}: {v}' for k, v in self.detail.items())})" if self.detail else ""
        return f"{self.name:<22} {self.setting:<28} -{self.removed:<7} -> {self.remaining}{extra}"


@dataclass
class DataReport:
    """What happened to the data, printable (`print(report)`) and JSON-serialisable (`to_dict`)."""

    source: str = ""
    format: str = ""
    columns: list[str] = field(default_factory=list)
    rows_loaded: int = 0
    gold_from: dict[str, int] = field(default_factory=dict)  # where gold answers came from
    steps: list[FilterStep] = field(default_factory=list)
    rows_after_filters: int = 0
    validation_rows: int = 0
    validation_from: str = ""
    train_rows: int = 0
    subset: int | None = None
    seed: int = 0
    prompt_format: str = ""
    cache: str = "off"  # off | miss | hit
    cache_path: str = ""
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (load, filters, format, save)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataReport:
        data = dict(data)
        data["steps"] = [FilterStep(**s) for s in data.get("steps", [])]
        return cls(**data)

    def removed_by(self, name: str) -> int:
        return sum(s.removed for s in self.steps if s.name == name)

    def format_text(self) -> str:
        gold = ", ".join(f"{k}: {v}" for k, v in self.gold_from.items())
        lines = [
            f"Data       {self.source}",
            f"           format {self.format}; {self.rows_loaded} rows; gold answers from {gold or '-'}",
            "Filters",
            *(f"  {s.line()}" for s in self.steps),
            f"Kept       {self.rows_after_filters} of {self.rows_loaded} rows",
            f"Split      validation {self.validation_rows} ({self.validation_from}); train {self.train_rows}"
            + (f" (subset of {self.subset}, seed {self.seed})" if self.subset else f" (seed {self.seed})"),
            f"Prompt     {self.prompt_format}",
            f"Cache      {self.cache}" + (f": {self.cache_path}" if self.cache_path else "")
            + f" ({self.seconds:.1f} s)",
        ]
        return "\n".join(lines)

    __str__ = format_text


@dataclass
class PreparedData:
    """The training data: `train` and `validation` Datasets (OUTPUT_COLUMNS) and the report."""

    train: Any  # datasets.Dataset
    validation: Any  # datasets.Dataset
    report: DataReport

    def __str__(self) -> str:
        return str(self.report)


# ---------------------------------------------------------------------------------------------
# Sources


@dataclass
class Source:
    """Where rows come from. kind: `files` (jsonl/json/parquet), `saved` (save_to_disk folder) or `hub`."""

    kind: str
    name: str  # as the user wrote it
    files: list[Path] = field(default_factory=list)
    validation_files: list[Path] = field(default_factory=list)  # a folder's own validation split
    path: Path | None = None
    config: str | None = None
    split: str = "train"
    revision: str | None = None

    def describe(self) -> str:
        if self.kind == "hub":
            return f"{self.name} [{self.config or 'default'}] split={self.split} (hub)"
        if self.kind == "saved":
            return f"{self.name} (saved datasets folder, split {self.split})"
        if len(self.files) == 1 and self.path and self.path.is_file():
            return self.name
        return f"{self.name} ({len(self.files)} files, split {self.split})"

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the source's content: files' path, size and mtime; the hub revision."""
        if self.kind == "hub":
            return {"hub": self.name, "config": self.config, "split": self.split, "revision": self.revision}
        files = self.files + self.validation_files
        if self.kind == "saved" and self.path:
            files = sorted(p for p in self.path.rglob("*") if p.is_file())
        return {"kind": self.kind, "split": self.split, "files": [_file_stamp(p) for p in files]}


def _file_stamp(path: Path) -> list[Any]:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _looks_like_path(text: str) -> bool:
    return (
        Path(text).suffix.lower() in DATA_EXTENSIONS
        or text.startswith((".", "/", "~"))
        or text.count("/") != 1
        or "\\" in text
    )


def resolve_source(data: DataSection) -> Source:
    """A local file/folder when `data.dataset` exists (paths are relative to the working directory), else a hub id."""
    name = data.dataset
    path = Path(name).expanduser()
    if path.is_file():
        kind = DATA_EXTENSIONS.get(path.suffix.lower())
        if kind is None:
            raise UserError(
                f"{name}: unsupported file type '{path.suffix}' "
                "(expected .jsonl, .json, .parquet, a folder of them, or a saved datasets folder)"
            )
        return Source("files", name, files=[path], path=path, split=data.split)
    if path.is_dir():
        return _folder_source(name, path, data.split, data.config)
    if _looks_like_path(name) or not _HUB_ID.match(name):
        raise UserError(f"{name}: file not found (data.dataset: a local .jsonl/.json/.parquet file or folder, or a hub id)")
    if name == OPENR1_HUB_ID and (data.config or "default") not in OPENR1_CONFIGS:
        raise UserError(f"data.config: {data.config!r} is not one of {', '.join(OPENR1_CONFIGS)} for {OPENR1_HUB_ID}")
    return Source("hub", name, config=data.config or ("default" if name == OPENR1_HUB_ID else None), split=data.split)


def _readme_configs(path: Path) -> dict[str, dict[str, list[str]]]:
    """`configs:` of a dataset card (README.md front matter): config -> split -> file patterns.

    A downloaded hub dataset (e.g. OpenR1-Math-220k: `default` in data/, `extended` in extended/) keeps
    its card; without it every config's files would look like one `train` split.
    """
    readme = path / "README.md"
    if not readme.is_file():
        return {}
    text = readme.read_text(encoding="utf-8", errors="replace")
    end = text.find("\n---", 3)
    if not text.startswith("---") or end < 0:
        return {}
    import yaml

    try:
        meta = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    configs: dict[str, dict[str, list[str]]] = {}
    entries = meta.get("configs") if isinstance(meta, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        files = entry.get("data_files")
        files = [files] if isinstance(files, str) else files
        splits: dict[str, list[str]] = {}
        if isinstance(files, list) and all(isinstance(f, str) for f in files):
            splits["train"] = list(files)
        elif isinstance(files, list):
            for item in files:
                if isinstance(item, dict) and "split" in item and "path" in item:
                    paths = item["path"]
                    splits[str(item["split"])] = [paths] if isinstance(paths, str) else list(paths)
        configs[str(entry.get("config_name", "default"))] = splits
    return configs


def _card_splits(path: Path, config: str | None, name: str) -> dict[str, list[Path]] | None:
    """Split -> files for `config` per the folder's dataset card; None when the card declares no configs."""
    configs = _readme_configs(path)
    if not configs:
        return None
    config = config or "default"
    if config in configs:
        chosen = [configs[config]]
    elif config == "all":  # OpenR1's `all`: every config together, as for the hub id
        chosen = list(configs.values())
    else:
        raise UserError(f"{name}: no config '{config}' in its README.md (data.config); found: {', '.join(configs)}")
    splits: dict[str, list[Path]] = {}
    for config_splits in chosen:
        for split_name, patterns in config_splits.items():
            for pattern in patterns:
                splits.setdefault(split_name, []).extend(path.glob(pattern))
    return splits


def _folder_source(name: str, path: Path, split: str, config: str | None = None) -> Source:
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return Source("saved", name, path=path, split=split)
    from datasets.data_files import DataFilesDict, get_data_patterns

    resolved: Any = _card_splits(path, config, name)
    if resolved is None:
        try:
            resolved = DataFilesDict.from_patterns(get_data_patterns(str(path)), base_path=str(path))
        except Exception:  # datasets raises EmptyDatasetError / FileNotFoundError for folders without data
            resolved = {}
    splits: dict[str, list[Path]] = {}
    for split_name, files in resolved.items():
        kept = sorted({Path(f) for f in files if Path(f).suffix.lower() in DATA_EXTENSIONS})
        if kept:
            splits[str(split_name)] = kept
    if not splits:
        raise UserError(f"{name}: folder has no .jsonl, .json or .parquet files (nor a saved datasets folder)")
    if split not in splits:
        raise UserError(f"{name}: no '{split}' split in this folder (data.split); found: {', '.join(sorted(splits))}")
    validation = splits.get("validation", []) if split != "validation" else []
    return Source("files", name, files=splits[split], validation_files=validation, path=path, split=split)


# ---------------------------------------------------------------------------------------------
# Reading


def _arrow_column(values: list[Any]) -> Any:
    """An Arrow array for one column; mixed types (a float answer among strings) fall back to strings."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values],
                        type=pa.string())


def _dataset_from_columns(columns: dict[str, list[Any]]) -> Any:
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    table = pa.table({name: _arrow_column(values) for name, values in columns.items()})
    return Dataset(InMemoryTable(table))


def _jsonl_columns(path: Path) -> list[str]:
    """Columns of a jsonl file: the keys of its first row (a bad first row is reported with its line)."""
    with path.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                return list(_parse_jsonl_line(path, lineno, line))
    raise UserError(f"{path}: file is empty (no JSON rows)")


def _parse_jsonl_line(path: Path, lineno: int, line: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line.rstrip(b"\r\n"))  # the newline would shift an error to "line 2, column 1"
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: line {lineno}: invalid JSON ({err.msg} at column {err.pos + 1})") from None
    except ValueError as err:  # bad UTF-8
        raise UserError(f"{path}: line {lineno}: not valid UTF-8 JSON ({err})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: line {lineno}: expected one JSON object per line, got {type(obj).__name__}")
    return obj


def _read_jsonl(path: Path, columns: Sequence[str], progress: bool) -> dict[str, list[Any]]:
    """Stream a jsonl file keeping only `columns`.

    Our own reader rather than load_dataset("json"): it names the line of a corrupt row (datasets'
    error does not), it never materialises the heavy columns (OpenR1's generations), and on 94k
    OpenR1-sized rows it is several times faster than datasets' full conversion to an Arrow copy.
    """
    from tqdm.auto import tqdm

    out: dict[str, list[Any]] = {c: [] for c in columns}
    size = path.stat().st_size
    with path.open("rb") as f, tqdm(total=size, unit="B", unit_scale=True, desc=f"Reading {path.name}",
                                    disable=not progress or size < LONG_READ_BYTES) as bar:
        pending = 0
        for lineno, line in enumerate(f, 1):
            pending += len(line)
            if pending > 1 << 22:
                bar.update(pending)
                pending = 0
            if not line.strip():
                continue
            row = _parse_jsonl_line(path, lineno, line)
            for c in columns:
                out[c].append(row.get(c))
        bar.update(pending)
    return out


def _load_json_document(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as err:
        if err.msg == "Extra data" and err.lineno > 1:
            return None  # one object per line: a jsonl file named .json
        raise UserError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except ValueError as err:
        raise UserError(f"{path}: not valid UTF-8 JSON ({err})") from None


def _json_rows(path: Path, document: Any) -> list[dict[str, Any]]:
    """The rows of a JSON document: an array of objects, or an object holding one such array."""
    if isinstance(document, dict):
        arrays = [v for v in document.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(arrays) != 1:
            raise UserError(f"{path}: expected a JSON array of row objects (or an object holding one array)")
        document = arrays[0]
    if not isinstance(document, list):
        raise UserError(f"{path}: expected a JSON array of row objects, got {type(document).__name__}")
    for i, row in enumerate(document):
        if not isinstance(row, dict):
            raise UserError(f"{path}: item {i} of the JSON array is {type(row).__name__}, expected an object")
    if not document:
        raise UserError(f"{path}: JSON array is empty (no rows)")
    return document


class _Reader:
    """Reads a Source: column names first (cheap), then only the columns the adapter needs."""

    def __init__(self, source: Source, cache_dir: Path | None, progress: bool):
        self.source = source
        self.cache_dir = cache_dir
        self.progress = progress
        self._json_docs: dict[Path, list[dict[str, Any]] | None] = {}
        self._hub: Any = None  # hub datasets are loaded whole (datasets caches them)
        self._saved: Any = None

    def _json_doc(self, path: Path) -> list[dict[str, Any]] | None:
        if path not in self._json_docs:
            document = _load_json_document(path)
            self._json_docs[path] = None if document is None else _json_rows(path, document)
        return self._json_docs[path]

    def _file_columns(self, path: Path) -> list[str]:
        kind = DATA_EXTENSIONS[path.suffix.lower()]
        if kind == "jsonl":
            return _jsonl_columns(path)
        if kind == "json":
            rows = self._json_doc(path)
            return _jsonl_columns(path) if rows is None else list(rows[0])
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as err:  # pyarrow raises ArrowInvalid / OSError for non-parquet bytes
            raise UserError(f"{path}: not a readable parquet file ({first_line(err)})") from None

    def columns(self, files: Sequence[Path] | None = None) -> list[str]:
        if self.source.kind == "hub":
            return list(self._hub_dataset().column_names)
        if self.source.kind == "saved":
            return list(self._saved_dataset().column_names)
        files = self.source.files if files is None else files
        first = self._file_columns(files[0])
        for path in files[1:]:
            other = self._file_columns(path)
            if set(other) != set(first):
                raise UserError(
                    f"{path}: columns differ from {files[0].name} "
                    f"(found: {', '.join(other)}; expected: {', '.join(first)})"
                )
        return first

    def read(self, columns: Sequence[str], files: Sequence[Path] | None = None) -> Any:
        """A Dataset of `columns` from the source (all its files concatenated, in sorted order)."""
        columns = list(dict.fromkeys(columns))
        if self.source.kind == "hub":
            return self._hub_dataset().select_columns(columns)
        if self.source.kind == "saved":
            return self._saved_dataset().select_columns(columns)
        files = list(self.source.files if files is None else files)
        parts = []
        # Consecutive files of one kind are read together; parts keep the files' (sorted) order.
        for is_parquet, group in itertools.groupby(files, key=lambda p: DATA_EXTENSIONS[p.suffix.lower()] == "parquet"):
            group = list(group)
            if is_parquet:
                parts.append(self._read_parquet(group, columns))
                continue
            merged: dict[str, list[Any]] = {c: [] for c in columns}
            for path in group:
                rows = self._json_doc(path) if DATA_EXTENSIONS[path.suffix.lower()] == "json" else None
                cols = _read_jsonl(path, columns, self.progress) if rows is None else {
                    c: [r.get(c) for r in rows] for c in columns}
                for c in columns:
                    merged[c].extend(cols[c])
            parts.append(_dataset_from_columns(merged))
        if len(parts) == 1:
            return parts[0]
        from datasets import concatenate_datasets

        try:
            return concatenate_datasets(parts)
        except ValueError as err:
            raise UserError(f"{self.source.name}: files have different column types ({first_line(err)})") from None

    def _read_parquet(self, files: Sequence[Path], columns: Sequence[str]) -> Any:
        # datasets reads only the requested columns (OpenR1's generations are never decoded) into
        # a memory-mapped Arrow cache under our cache folder.
        from datasets import load_dataset

        kwargs: dict[str, Any] = {}
        if self.cache_dir is not None:
            kwargs["cache_dir"] = str(self.cache_dir / "hf")
        try:
            return load_dataset("parquet", data_files=[str(p) for p in files], split="train",
                                columns=list(columns), **kwargs)
        except Exception as err:
            raise UserError(f"{self.source.name}: cannot read parquet ({first_line(err)})") from None

    def _saved_dataset(self) -> Any:
        if self._saved is None:
            from datasets import DatasetDict, load_from_disk

            try:
                loaded = load_from_disk(str(self.source.path))
            except Exception as err:
                raise UserError(f"{self.source.name}: cannot load saved datasets folder ({first_line(err)})") from None
            if isinstance(loaded, DatasetDict):
                if self.source.split not in loaded:
                    raise UserError(
                        f"{self.source.name}: no '{self.source.split}' split (data.split); found: {', '.join(loaded)}"
                    )
                loaded = loaded[self.source.split]
            self._saved = loaded
        return self._saved

    def _hub_dataset(self) -> Any:
        if self._hub is None:
            self._hub = _load_hub(self.source)
        return self._hub


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """datasets' progress bars on or off for a block (its switch is global: restored afterwards)."""
    import datasets

    was = datasets.is_progress_bar_enabled()
    (datasets.enable_progress_bars if enabled else datasets.disable_progress_bars)()
    try:
        yield
    finally:
        (datasets.enable_progress_bars if was else datasets.disable_progress_bars)()


# ---------------------------------------------------------------------------------------------
# Hub


def hub_unreachable_reason(timeout: float = _HUB_TIMEOUT_S) -> str | None:
    """Why the Hugging Face hub cannot be used right now (None when it can): checked in seconds, not retries."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var} is set"
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    result: list[str | None] = []

    def probe() -> None:  # in a thread: DNS lookups ignore socket timeouts
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as err:
            result.append(f"cannot reach {host}: {err.strerror or err}")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1)
    return result[0] if result else f"cannot reach {host}: no answer in {timeout:.0f} s"


def resolve_hub_revision(source: Source) -> str:
    """The hub commit of a dataset (fails fast, in one line, when the hub is out of reach)."""
    if source.revision:
        return source.revision
    reason = hub_unreachable_reason()
    if reason:
        raise UserError(
            f"{source.name}: no such local file or folder, and the hub is out of reach ({reason}): give a local "
            "path in data.dataset (a .jsonl/.json/.parquet file, a folder of them, or a saved datasets folder)"
        )
    from huggingface_hub import HfApi

    try:
        # Pin the revision: the cache key then changes exactly when the hub data does.
        source.revision = str(HfApi().dataset_info(source.name, timeout=10).sha)
    except Exception as err:
        raise UserError(f"{source.name}: cannot load from the hub ({first_line(err)})") from None
    return source.revision


def _load_hub(source: Source) -> Any:
    resolve_hub_revision(source)
    from datasets import concatenate_datasets, load_dataset

    # OpenR1's `all` is its two configs together; a hub validation split is not looked for (held out instead).
    configs = ["default", "extended"] if source.name == OPENR1_HUB_ID and source.config == "all" else [source.config]
    try:
        parts = [load_dataset(source.name, c, split=source.split, revision=source.revision) for c in configs]
    except Exception as err:  # network, missing repo/config/split: datasets' errors are long
        raise UserError(f"{source.name}: cannot load from the hub ({first_line(err)})") from None
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


# ---------------------------------------------------------------------------------------------
# Schema adapters

# role -> default source column, per format. `problem` and a gold answer are what every format needs.
ADAPTER_COLUMNS: dict[str, dict[str, str]] = {
    "openr1": {
        "problem": "problem", "answer": "answer", "solution": "solution", "problem_type": "problem_type",
        "question_type": "question_type", "source": "source", "id": "uuid",
        "correctness_count": "correctness_count", "reasoning_complete": "is_reasoning_complete",
    },
    # GSM8K's `answer` column is a worked solution ending in `#### N`: the gold answer comes from it.
    "gsm8k": {"problem": "question", "solution": "answer"},
    "math": {"problem": "problem", "answer": "answer", "solution": "solution", "problem_type": "type",
             "id": "unique_id"},
    "generic": {},
}
ADAPTER_TITLES = {"openr1": "OpenR1-Math-220k", "gsm8k": "GSM8K", "math": "MATH-style", "generic": "generic"}
# Fallbacks for optional roles when the default column is absent (MATH-500 says `subject`, others `id`).
_ALTERNATIVES = {"problem_type": ("subject", "type", "problem_type"), "id": ("unique_id", "id", "uuid")}
_OPENR1_MARKERS = {"generations", "correctness_count", "question_type", "problem_type", "is_reasoning_complete"}
ROLES = ("problem", "answer", "solution", "problem_type", "question_type", "source", "id",
         "correctness_count", "reasoning_complete")


@dataclass
class Adapter:
    """How one schema maps onto our columns: role -> source column (only columns present)."""

    format: str
    mapping: dict[str, str]

    @property
    def title(self) -> str:
        return ADAPTER_TITLES[self.format]

    @property
    def source_columns(self) -> list[str]:
        return list(dict.fromkeys(self.mapping.values()))


def detect_format(columns: Iterable[str]) -> str | None:
    """Which known schema these columns are (None when none fits)."""
    cols = set(columns)
    if {"problem", "answer", "solution"} <= cols and cols & _OPENR1_MARKERS:
        return "openr1"
    if {"question", "answer"} <= cols and "problem" not in cols:
        return "gsm8k"
    if "problem" in cols and cols & {"answer", "solution"}:
        return "math"
    return None


def _expected_columns(fmt: str, overrides: dict[str, str]) -> list[str]:
    roles = {**ADAPTER_COLUMNS[fmt], **overrides}
    if fmt == "openr1":
        return [roles["problem"], roles["solution"], roles["answer"]]
    if fmt == "generic":
        return [roles.get("problem", "problem")] + [roles[r] for r in ("answer", "solution") if r in roles]
    if fmt == "gsm8k":
        return [roles["problem"], roles["solution"]]
    return [roles["problem"], f"{roles['answer']} and/or {roles['solution']}"]


def make_adapter(columns: Sequence[str], data: DataSection, where: str) -> Adapter:
    """Pick (format auto) or check (format given) the schema adapter for `columns`; errors list both sides."""
    found = list(columns)
    fmt = data.format
    if fmt == "auto":
        fmt = detect_format(found) or ""
        if not fmt:
            raise UserError(
                f"{where}: cannot tell the data's schema (found columns: {', '.join(found)}); expected "
                "OpenR1-Math-220k (problem, solution, answer, problem_type, question_type, ...), "
                "GSM8K (question, answer with '#### N'), MATH-style (problem, answer and/or solution), "
                "or set data.format: generic with data.columns {problem: COL, answer: COL}"
            )
    wanted = {**ADAPTER_COLUMNS[fmt], **data.columns}
    unknown_roles = sorted(set(data.columns) - set(ROLES))
    if unknown_roles:
        raise UserError(f"data.columns: unknown role(s) {', '.join(unknown_roles)} (roles: {', '.join(ROLES)})")
    present = set(found)
    mapping = {role: col for role, col in wanted.items() if col in present}
    for role, alternatives in _ALTERNATIVES.items():
        if role not in mapping and role not in data.columns:
            for col in alternatives:
                if col in present:
                    mapping[role] = col
                    break
    required_ok = "problem" in mapping and ("answer" in mapping or "solution" in mapping)
    if fmt == "openr1":
        required_ok = required_ok and {"answer", "solution"} <= set(mapping)
    if fmt == "gsm8k":
        required_ok = required_ok and "solution" in mapping
    explicit_missing = [col for role, col in data.columns.items() if col not in present]
    if not required_ok or explicit_missing:
        expected = _expected_columns(fmt, data.columns)
        missing = explicit_missing or [c for c in expected if c.split(" and/or ")[0] not in present]
        raise UserError(
            f"{where}: missing required column(s) {', '.join(missing)} for data.format {fmt} "
            f"(found: {', '.join(found)}; expected: {', '.join(expected)})"
        )
    return Adapter(fmt, mapping)


def _answers_module() -> Any:
    try:
        from utils import answers
    except ImportError as err:  # pragma: no cover - utils/answers.py ships with the answers issue
        raise UserError(f"utils.answers is not available ({err}): the answer extractor is needed for gold answers") from None
    return answers


def _as_text(value: Any) -> str | None:
    """A cell as text: numbers as written (27.0 -> '27'), lists/dicts as JSON, blanks as None."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    text = text.strip()
    return text or None


def gold_from_solution(solution: str | None) -> str | None:
    """The gold answer written in a reference solution: its last \\boxed{} or `#### N` (nothing else)."""
    if not solution or ("\\boxed" not in solution and "\\fbox" not in solution and "####" not in solution):
        return None  # the extractor's looser fallbacks (last number, ...) are no way to read a gold answer
    return _answers_module().extract_answer(solution)


def _adapt_batch(batch: dict[str, list[Any]], indices: list[int], mapping: dict[str, str], id_prefix: str) -> dict[str, list[Any]]:
    n = len(indices)

    def col(role: str) -> list[Any]:
        return batch[mapping[role]] if role in mapping else [None] * n

    problems, answers, solutions = col("problem"), col("answer"), col("solution")
    out: dict[str, list[Any]] = {c: [] for c in _ADAPTED_COLUMNS}
    for i in range(n):
        solution = _as_text(solutions[i])
        gold = _as_text(answers[i])
        origin = "answer column" if gold else ""
        if not gold:
            gold = gold_from_solution(solution)
            origin = "solution" if gold else "none"
        out["problem"].append(_as_text(problems[i]) or "")
        out["answer"].append(gold or "")
        out["gold_from"].append(origin)
        out["solution"].append(solution or "")
        out["id"].append(_as_text(col("id")[i]) or f"{id_prefix}-{indices[i]}")
    for role in ("problem_type", "question_type", "source"):
        out[role] = [_as_text(v) or "" for v in col(role)]
    counts = col("correctness_count")
    out["correctness_count"] = [int(v) if isinstance(v, (int, float)) else None for v in counts]
    complete = col("reasoning_complete")
    # OpenR1: a list with one flag per R1 generation; complete when any generation finished its reasoning.
    out["reasoning_complete"] = [any(v) if isinstance(v, list) else (bool(v) if v is not None else None)
                                 for v in complete]
    return out


def adapted_features() -> Any:
    """Fixed types for adapted rows: a column that is all null in one source still has its type."""
    from datasets import Features, Value

    types = {"correctness_count": Value("int64"), "reasoning_complete": Value("bool")}
    return Features({name: types.get(name, Value("string")) for name in _ADAPTED_COLUMNS})


def adapt(raw: Any, adapter: Adapter, id_prefix: str) -> Any:
    """Raw rows -> our columns (problem, answer, solution, metadata); batched, kept in memory."""
    return raw.map(
        _adapt_batch, batched=True, with_indices=True, input_columns=None,
        fn_kwargs={"mapping": adapter.mapping, "id_prefix": id_prefix},
        remove_columns=raw.column_names, keep_in_memory=True, load_from_cache_file=False,
        features=adapted_features(),
        try_original_type=False,  # else an `answer` column read as float64 turns "27" back into 27.0
        new_fingerprint=_hash([raw._fingerprint, adapter.mapping, id_prefix, "adapt"]),
        desc="Adapting rows",
    )


# ---------------------------------------------------------------------------------------------
# Decontamination


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
        path = SHARED_DATA / EVAL_SETS[name_or_path]
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
    reader = _Reader(source, None, progress=False)
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


# ---------------------------------------------------------------------------------------------
# Filters


@dataclass
class FilterContext:
    filters: FiltersSection
    prompt: PromptSection
    tokenizer: Any = None
    ngram_index: NgramIndex | None = None
    roles: set[str] = field(default_factory=lambda: set(ROLES))  # roles the source's columns provide
    progress: bool = True
    # The two slow filters, computed ahead on threads for all rows (see prefetch)
    parse_verdicts: Future[dict[str, bool]] | None = None
    token_verdicts: Future[dict[str, bool]] | None = None

    def prefetch(self, ds: Any) -> None:
        """Start the gold-answer checks and the prompt-token decisions for every row, on two threads.

        The answer checks mostly wait on the verifier's worker process and tokenizers encode in Rust
        without the GIL, so on two cores both run while the cheap filters do: the pass takes about as
        long as the slower of the two instead of their sum. Rows an earlier filter drops were checked
        for nothing: a few percent more work for much less wall time.
        """
        limit = self.filters.max_prompt_tokens
        if self.filters.parseable_answer and self.parse_verdicts is None:
            answers = [a for a in ds["answer"] if a]
            self.parse_verdicts = _in_thread(lambda: parseable_verdicts(answers, self.progress), "gold-answers")
        if limit is not None and self.tokenizer is not None and self.token_verdicts is None:
            problems = list(ds["problem"])
            counter = PromptTokenCounter(self.tokenizer, self.prompt.format, self.prompt.system)

            def decide() -> dict[str, bool]:
                verdicts: dict[str, bool] = {}
                for start in range(0, len(problems), 1000):
                    chunk = problems[start:start + 1000]
                    verdicts.update(zip(chunk, counter.within(chunk, limit), strict=True))
                return verdicts

            self.token_verdicts = _in_thread(decide, "prompt-tokens")


def _in_thread(fn: Callable[[], Any], name: str) -> Future:
    executor = ThreadPoolExecutor(1, thread_name_prefix=name)
    future = executor.submit(fn)
    executor.shutdown(wait=False)  # the thread ends with its one task
    return future


def _filter(ds: Any, keep: Callable[..., list[bool]], columns: list[str], desc: str, tag: Any) -> Any:
    return ds.filter(keep, batched=True, input_columns=columns, keep_in_memory=True, load_from_cache_file=False,
                     new_fingerprint=_hash([ds._fingerprint, tag]), desc=desc)


def _step_has_answer(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    return _filter(ds, lambda p, a: [bool(x.strip()) and bool(y) for x, y in zip(p, a, strict=True)], ["problem", "answer"],
                   "Filter: problem and gold answer present", "has_answer")


def _step_question_types(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    drop = {t.lower() for t in ctx.filters.drop_question_types}
    if not drop:
        step.skipped = "nothing to drop"
        return ds
    if "question_type" not in ctx.roles:
        step.skipped = "no question_type column"
        return ds
    return _filter(ds, lambda q: [t.lower() not in drop for t in q], ["question_type"],
                   "Filter: question types", ["qt", sorted(drop)])


def _step_problem_types(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    keep = ctx.filters.keep_problem_types
    if keep is None:
        step.skipped = "all kept"
        return ds
    if "problem_type" not in ctx.roles:
        step.skipped = "no problem_type column"
        return ds
    wanted = {t.lower() for t in keep}
    return _filter(ds, lambda p: [t.lower() in wanted for t in p], ["problem_type"], "Filter: problem types",
                   ["pt", sorted(wanted)])


def _step_correctness(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    minimum = ctx.filters.min_correctness_count
    if minimum is None:
        step.skipped = "off"
        return ds
    if "correctness_count" not in ctx.roles:
        step.skipped = "no correctness_count column"
        return ds
    return _filter(ds, lambda c: [v is not None and v >= minimum for v in c], ["correctness_count"],
                   "Filter: correctness count", ["cc", minimum])


def _step_complete(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    if not ctx.filters.complete_reasoning_only:
        step.skipped = "off"
        return ds
    if "reasoning_complete" not in ctx.roles:
        step.skipped = "no is_reasoning_complete column"
        return ds
    return _filter(ds, lambda c: [bool(v) for v in c], ["reasoning_complete"], "Filter: complete reasoning", "rc")


# Gold answers are checked once, off the training path: a generous bound, so a loaded machine cannot
# time out a sound answer and change which rows are kept (the verifier refuses pathological input itself).
PARSE_TIMEOUT_S = 5.0


def parseable_verdicts(golds: Iterable[str], progress: bool = True) -> dict[str, bool]:
    """is_parseable for each distinct gold answer (answers repeat a lot: "2", "\\frac{1}{2}")."""
    from tqdm.auto import tqdm

    is_parseable = _answers_module().is_parseable
    distinct = list(dict.fromkeys(golds))
    # One at a time, on purpose: one verifier process keeps one core busy while the prompt-token
    # filter's prefetch uses the other; parallel checks measured slower on 2 shared cores.
    bar = tqdm(distinct, desc="Checking gold answers", disable=not progress or len(distinct) < 5000)
    return {g: bool(is_parseable(g, timeout=PARSE_TIMEOUT_S)) for g in bar}


def _step_parseable(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    if not ctx.filters.parseable_answer:
        step.skipped = "off"
        return ds
    verdicts = ctx.parse_verdicts.result() if ctx.parse_verdicts is not None else {}
    missing = [a for a in ds["answer"] if a not in verdicts]
    if missing:
        verdicts.update(parseable_verdicts(missing, ctx.progress))
    return _filter(ds, lambda answers: [verdicts[a] for a in answers], ["answer"], "Filter: parseable gold answers",
                   "parse")


def normalized_problem(text: str) -> str:
    """Exact-duplicate key: whitespace collapsed, case kept (`x` and `X` can be different problems)."""
    return " ".join(text.split())


def _step_dedupe(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    if not ctx.filters.dedupe:
        step.skipped = "off"
        return ds
    seen: set[int] = set()

    def keep(problems: list[str]) -> list[bool]:  # first occurrence wins: runs in order, one process
        out = []
        for p in problems:
            key = hash(normalized_problem(p))
            out.append(key not in seen)
            seen.add(key)
        return out

    return _filter(ds, keep, ["problem"], "Filter: exact duplicates", "dedupe")


def _step_decontaminate(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    index = ctx.ngram_index
    if index is None:
        step.skipped = "no evaluation sets"
        return ds
    hits: Counter[str] = Counter()

    def keep(problems: list[str]) -> list[bool]:
        out = []
        for p in problems:
            label = index.match(p)
            if label is not None:
                hits[label] += 1
            out.append(label is None)
        return out

    result = _filter(ds, keep, ["problem"], "Filter: decontamination", ["decon", index.n, sorted(index.sizes)])
    step.detail = dict(sorted(hits.items()))
    return result


def _step_prompt_tokens(ds: Any, ctx: FilterContext, step: FilterStep) -> Any:
    limit = ctx.filters.max_prompt_tokens
    if limit is None:
        step.skipped = "off"
        return ds
    if ctx.tokenizer is None:
        # Documented choice: a run without a tokenizer (explore_data.py without a model) still works;
        # the report says the limit was not applied. The training code always passes its tokenizer.
        step.skipped = "no tokenizer given"
        return ds
    tag = ["tok", limit, ctx.prompt.format, ctx.prompt.system, tokenizer_fingerprint(ctx.tokenizer)]
    verdicts = ctx.token_verdicts.result() if ctx.token_verdicts is not None else {}
    counter = PromptTokenCounter(ctx.tokenizer, ctx.prompt.format, ctx.prompt.system)

    def keep(problems: list[str]) -> list[bool]:
        missing = [p for p in problems if p not in verdicts]  # all of them when nothing was prefetched
        if missing:
            verdicts.update(zip(missing, counter.within(missing, limit), strict=True))
        return [verdicts[p] for p in problems]

    return _filter(ds, keep, ["problem"], "Filter: prompt tokens", tag)


# name, recipe setting shown in the report, step. Order: cheap and certain first, the tokenizer last.
def _on_off(value: bool) -> str:
    return "on" if value else "off"


FILTERS: list[tuple[str, Callable[[FiltersSection], str], Callable[..., Any]]] = [
    ("has_answer", lambda f: "always", _step_has_answer),
    ("question_types", lambda f: "drop " + (", ".join(f.drop_question_types) or "none"), _step_question_types),
    ("problem_types", lambda f: "keep " + (", ".join(f.keep_problem_types) if f.keep_problem_types is not None
                                           else "all"), _step_problem_types),
    ("min_correctness_count", lambda f: "off" if f.min_correctness_count is None else f">= {f.min_correctness_count}",
     _step_correctness),
    ("complete_reasoning", lambda f: _on_off(f.complete_reasoning_only), _step_complete),
    ("parseable_answer", lambda f: _on_off(f.parseable_answer), _step_parseable),
    ("dedupe", lambda f: _on_off(f.dedupe), _step_dedupe),
    ("decontaminate", lambda f: f"{', '.join(f.decontaminate)} ({f.decontaminate_ngram}-grams)" if f.decontaminate
     else "off", _step_decontaminate),
    ("max_prompt_tokens", lambda f: "off" if f.max_prompt_tokens is None else f"<= {f.max_prompt_tokens}",
     _step_prompt_tokens),
]
"""Filters in the order they run (cheap and certain first, the tokenizer last): name, setting text, step."""


def apply_filters(ds: Any, ctx: FilterContext, only: str | None = None) -> tuple[Any, list[FilterStep]]:
    """Run the filters in order (or just `only`); each step records the rows it removed."""
    if only is None:
        ctx.prefetch(ds)
    steps = []
    for name, setting, run in FILTERS:
        if only is not None and name != only:
            continue
        step = FilterStep(name, setting(ctx.filters))
        before, start = len(ds), time.perf_counter()
        ds = run(ds, ctx, step)
        step.removed, step.remaining = before - len(ds), len(ds)
        step.seconds = round(time.perf_counter() - start, 3)
        steps.append(step)
    return ds, steps


def make_filter_context(data: DataSection, prompt: PromptSection, tokenizer: Any = None,
                        adapter: Adapter | None = None, progress: bool = True) -> FilterContext:
    index = None
    if data.filters.decontaminate:
        index, _ = build_ngram_index(data.filters.decontaminate, data.filters.decontaminate_ngram)
    roles = set(adapter.mapping) if adapter is not None else set(ROLES)
    return FilterContext(data.filters, prompt, tokenizer, index, roles, progress)


# ---------------------------------------------------------------------------------------------
# Split, subset, format


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
    system_prompt(prompt.format, prompt.system)  # fail early on an unknown format
    if len(ds) == 0:
        from datasets import Dataset

        return Dataset.from_dict({name: [] for name in OUTPUT_COLUMNS}, features=output_features())
    ds = ds.map(_format_batch, batched=True, input_columns=["problem"],
                fn_kwargs={"fmt": prompt.format, "system": prompt.system},
                keep_in_memory=True, load_from_cache_file=False,
                new_fingerprint=_hash([ds._fingerprint, prompt.format, prompt.system]), desc="Formatting prompts")
    return ds.select_columns(OUTPUT_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Cache


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_version() -> str:
    """A hash of the code that shapes the cached rows: a change there invalidates the cache."""
    import datasets

    digest = hashlib.sha256(f"{_CACHE_VERSION}:{datasets.__version__}".encode())
    utils_dir = Path(__file__).resolve().parents[1]
    for path in sorted([*utils_dir.joinpath("data").glob("*.py"), *utils_dir.joinpath("answers").glob("*.py")]):
        digest.update(path.name.encode())
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


def cache_key(data: DataSection, prompt: PromptSection, source: Source, tokenizer: Any,
              eval_files: Sequence[Path]) -> tuple[str, dict[str, Any]]:
    """The cache key and what went into it (written beside the cache for anyone wondering)."""
    section = dataclasses.asdict(data)
    for key in ("cache", "cache_dir"):
        section.pop(key)
    inputs = {
        "data": section,
        "prompt": dataclasses.asdict(prompt),
        "source": source.fingerprint(),
        # Only the token filter depends on the tokenizer: no reason to rebuild for another model otherwise.
        "tokenizer": tokenizer_fingerprint(tokenizer) if data.filters.max_prompt_tokens is not None else None,
        "eval_sets": [_file_stamp(p) for p in eval_files],
        "code": code_version(),
    }
    return _hash(inputs), inputs


def _eval_set_paths(filters: FiltersSection) -> list[Path]:
    return [resolve_eval_set(name) for name in filters.decontaminate]


def _load_cached(path: Path) -> PreparedData | None:
    from datasets import load_from_disk

    try:
        dd = load_from_disk(str(path / "data"))
        report = DataReport.from_dict(json.loads((path / "report.json").read_text()))
    except Exception:  # a partial or foreign folder is no cache: rebuild it
        return None
    return PreparedData(dd["train"], dd["validation"], report)


def _save_cache(path: Path, prepared: PreparedData, inputs: dict[str, Any]) -> None:
    from datasets import DatasetDict

    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    DatasetDict({"train": prepared.train, "validation": prepared.validation}).save_to_disk(str(tmp / "data"))
    (tmp / "report.json").write_text(json.dumps(prepared.report.to_dict(), indent=1))
    (tmp / "key.json").write_text(json.dumps(inputs, indent=1, default=str))
    shutil.rmtree(path, ignore_errors=True)
    try:
        tmp.rename(path)  # atomic: a reader sees the whole cache entry or none
    except OSError:  # another process won the race with the same content
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Entry points


@dataclass
class LoadedData:
    """Adapted (not yet filtered) rows of a source, plus what is known about it (explore_data uses this)."""

    source: Source
    adapter: Adapter
    raw_columns: list[str]
    rows: Any  # Dataset with the adapted columns
    validation_rows: Any | None  # the source's own validation split, adapted, when it has one
    features: dict[str, str] = field(default_factory=dict)


def load_adapted(data: DataSection, progress: bool = True, source: Source | None = None) -> LoadedData:
    """Resolve the source, pick the schema adapter, read only the needed columns, adapt the rows."""
    source = source or resolve_source(data)
    cache_dir = Path(data.cache_dir) if data.cache else None
    reader = _Reader(source, cache_dir, progress)
    raw_columns = reader.columns()
    adapter = make_adapter(raw_columns, data, source.name)
    prefix = Path(source.name).stem if source.kind != "hub" else source.name.split("/")[-1]
    big = source.kind == "hub" or sum(p.stat().st_size for p in source.files) >= LONG_READ_BYTES
    with progress_bars(progress and big):
        raw = reader.read(adapter.source_columns)
    features = {name: str(feature) for name, feature in raw.features.items()}
    with progress_bars(progress and len(raw) >= LONG_PASS_ROWS):
        rows = adapt(raw, adapter, prefix)
        validation = None
        if source.validation_files:
            make_adapter(reader.columns(source.validation_files), data, f"{source.name} (validation split)")
            validation = adapt(reader.read(adapter.source_columns, source.validation_files), adapter, f"{prefix}-val")
    return LoadedData(source, adapter, raw_columns, rows, validation, features)


def no_rows_left(dataset: str, rows_loaded: int, steps: Sequence[FilterStep]) -> UserError:
    """The error for data that filters emptied, with what each filter removed."""
    counts = ", ".join(f"{s.name} -{s.removed}" for s in steps if not s.skipped)
    return UserError(f"{dataset}: no rows left after filtering {rows_loaded} rows ({counts}): loosen data.filters")


def _split(rows: Any, loaded: LoadedData, ctx: FilterContext, data: DataSection, report: DataReport) -> tuple[Any, Any]:
    """Validation and train rows (unformatted): the source's validation split when it has one, else held out."""
    if loaded.validation_rows is not None:
        val_rows, _ = apply_filters(loaded.validation_rows, ctx)
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
        held = f" and the {len(val_idx)}-problem validation split" if loaded.validation_rows is None else ""
        raise UserError(f"data.subset: {data.subset} problems asked, but only {available} remain after filters{held}")
    return rows.select(train_idx), validation


def prepare_data(data: DataSection, prompt: PromptSection, tokenizer: Any = None, progress: bool = True) -> PreparedData:
    """The full pipeline for a recipe's data + prompt sections (cached); see load_training_data."""
    start = clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    source = resolve_source(data)
    system_prompt(prompt.format, prompt.system)
    eval_files = _eval_set_paths(data.filters)
    inputs: dict[str, Any] | None = None
    cache_path: Path | None = None
    if data.cache:
        if source.kind == "hub":
            resolve_hub_revision(source)  # the hub revision keys the cache
        key, inputs = cache_key(data, prompt, source, tokenizer, eval_files)
        cache_path = Path(data.cache_dir) / key
        cached = _load_cached(cache_path) if cache_path.is_dir() else None
        if cached is not None:
            cached.report.cache, cached.report.cache_path = "hit", str(cache_path)
            cached.report.seconds = round(time.perf_counter() - start, 3)
            return cached

    loaded = load_adapted(data, progress, source)
    long_pass = progress and len(loaded.rows) >= LONG_PASS_ROWS
    with progress_bars(long_pass):
        prepared = _filter_split_format(data, prompt, tokenizer, loaded, long_pass, lap)
        report = prepared.report
        if cache_path is not None and inputs is not None:
            report.cache, report.cache_path = "miss", str(cache_path)
            report.timings = timings
            _save_cache(cache_path, prepared, inputs)
            lap("cache write")
    report.timings = timings
    report.seconds = round(time.perf_counter() - start, 3)
    return prepared


def _filter_split_format(data: DataSection, prompt: PromptSection, tokenizer: Any, loaded: LoadedData,
                         progress: bool, lap: Callable[[str], None]) -> PreparedData:
    report = DataReport(source=loaded.source.describe(), format=loaded.adapter.title, columns=loaded.raw_columns,
                        rows_loaded=len(loaded.rows), subset=data.subset, seed=data.seed, prompt_format=prompt.format)
    report.gold_from = dict(Counter(loaded.rows["gold_from"]))
    lap("load+adapt")
    ctx = make_filter_context(data, prompt, tokenizer, loaded.adapter, progress)
    rows, report.steps = apply_filters(loaded.rows, ctx)
    report.rows_after_filters = len(rows)
    if len(rows) == 0:
        raise no_rows_left(data.dataset, report.rows_loaded, report.steps)
    lap("filters")
    train, validation = _split(rows, loaded, ctx, data, report)
    train, validation = format_rows(train, prompt), format_rows(validation, prompt)
    report.train_rows, report.validation_rows = len(train), len(validation)
    lap("split+format")
    return PreparedData(train, validation, report)


def load_training_data(recipe: Recipe, tokenizer: Any = None) -> PreparedData:
    """Train and validation rows for a recipe: columns OUTPUT_COLUMNS, `prompt` as chat messages.

    `tokenizer` applies `data.filters.max_prompt_tokens`; without one that filter is skipped and the
    report says so (explore_data.py and dry runs have no model at hand). Raises UserError on bad data.
    """
    return prepare_data(recipe.data, recipe.prompt, tokenizer)
