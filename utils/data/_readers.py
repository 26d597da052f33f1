"""Reading a Source: column names first (cheap), then only the columns the schema adapter needs.

jsonl/json through our own reader (names the line of a bad row; never materialises heavy columns),
parquet through `datasets` (column projection, memory-mapped), saved folders and hub ids as `datasets` loads them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from utils.data import _sources
from utils.data._sources import DATA_EXTENSIONS, Source
from utils.data._synthetic import generate_problems
from utils.errors import UserError, first_line

# Progress bars only where a pass takes a while: on a small file they are noise (and stderr is where
# a script's one-line error goes).
LONG_PASS_ROWS = 20_000
LONG_READ_BYTES = 50 << 20


def _arrow_column(values: list[Any]) -> Any:
    """An Arrow array for one column; mixed types (a float answer among strings) fall back to strings."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(_whole(v)) for v in values],
                        type=pa.string())


def _whole(value: Any) -> Any:
    """142.0 as 142: a float answer among strings reads as it would in a column of floats."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


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


class Reader:
    """Reads a Source: column names first (cheap), then only the columns the adapter needs."""

    def __init__(self, source: Source, cache_dir: Path | None, progress: bool):
        self.source = source
        self.cache_dir = cache_dir
        self.progress = progress
        self._json_docs: dict[Path, list[dict[str, Any]] | None] = {}
        self._hub: Any = None  # hub datasets are loaded whole (datasets caches them)
        self._saved: Any = None
        self._generated: list[dict[str, Any]] | None = None

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
        if self.source.kind == "synthetic":
            return list(self._generated_rows()[0])
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
        if self.source.kind == "synthetic":
            rows = self._generated_rows()
            return _dataset_from_columns({c: [row[c] for row in rows] for c in columns})
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

    def _generated_rows(self) -> list[dict[str, Any]]:
        if self._generated is None:
            self._generated = generate_problems(**self.source.generator)
        return self._generated

    def _hub_dataset(self) -> Any:
        if self._hub is None:
            self._hub = _sources.load_hub(self.source)  # looked up here: tests stand a local file in for it
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

