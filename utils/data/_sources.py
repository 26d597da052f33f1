"""Where rows come from: a local file, a folder (splits from file names or its dataset card), a saved
datasets folder, or a hub id (fails fast offline, its revision pinned for the cache key)."""

from __future__ import annotations

import os
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.config import DataSection
from utils.data._synthetic import SYNTHETIC, check_synthetic
from utils.errors import UserError, first_line

OPENR1_HUB_ID = "open-r1/OpenR1-Math-220k"
OPENR1_CONFIGS = ("default", "extended", "all")  # `all` = default + extended, concatenated
DATA_EXTENSIONS = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
_HUB_TIMEOUT_S = 3.0


@dataclass
class Source:
    """Where rows come from. kind: `files` (jsonl/json/parquet), `saved` (save_to_disk folder), `hub` or
    `synthetic` (generated: utils.data._synthetic)."""

    kind: str
    name: str  # as the user wrote it
    files: list[Path] = field(default_factory=list)
    validation_files: list[Path] = field(default_factory=list)  # a folder's own validation split
    path: Path | None = None
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    generator: dict[str, Any] = field(default_factory=dict)  # synthetic: kind, n, level, seed
    offline_fix: str = ("give a local path in data.dataset (a .jsonl/.json/.parquet file, a folder of them, or a "
                        "saved datasets folder)")  # what to do when a hub source is out of reach

    def describe(self) -> str:
        if self.kind == "synthetic":
            g = self.generator
            levels = g["level"] if isinstance(g["level"], list) else [g["level"]]
            level = f"level{'s' if len(levels) > 1 else ''} {', '.join(map(str, levels))}"
            return f"synthetic: {g['n']} {g['kind']} problems, {level}, seed {g['seed']} (generated)"
        if self.kind == "hub":
            return f"{self.name} [{self.config or 'default'}] split={self.split} (hub)"
        if self.kind == "saved":
            return f"{self.name} (saved datasets folder, split {self.split})"
        if len(self.files) == 1 and self.path and self.path.is_file():
            return self.name
        return f"{self.name} ({len(self.files)} files, split {self.split})"

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the source's content: files' path, size and mtime; the hub revision."""
        if self.kind == "synthetic":
            return {"synthetic": self.generator}  # the generator's code is in the cache key's code_version
        if self.kind == "hub":
            return {"hub": self.name, "config": self.config, "split": self.split, "revision": self.revision}
        files = self.files + self.validation_files
        if self.kind == "saved" and self.path:
            files = sorted(p for p in self.path.rglob("*") if p.is_file())
        return {"kind": self.kind, "split": self.split, "files": [file_stamp(p) for p in files]}


def file_stamp(path: Path) -> list[Any]:
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
    """Generated problems for `synthetic`; a local file/folder when `data.dataset` exists (paths are relative
    to the working directory, `./synthetic` for a folder of that name); else a hub id."""
    name = data.dataset
    if name == SYNTHETIC:
        generator = {"kind": data.kind, "n": data.n, "level": data.level, "seed": data.seed}
        check_synthetic(data.kind, data.n, data.level)
        return Source("synthetic", name, split=data.split, generator=generator)
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
            f"{source.name}: no such local file or folder, and the hub is out of reach ({reason}): {source.offline_fix}"
        )
    from huggingface_hub import HfApi

    try:
        # Pin the revision: the cache key then changes exactly when the hub data does.
        source.revision = str(HfApi().dataset_info(source.name, timeout=10).sha)
    except Exception as err:
        raise UserError(f"{source.name}: cannot load from the hub ({first_line(err)})") from None
    return source.revision


def load_hub(source: Source) -> Any:
    resolve_hub_revision(source)
    from datasets import concatenate_datasets, load_dataset

    # OpenR1's `all` is its two configs together; a hub validation split is not looked for (held out instead).
    configs = ["default", "extended"] if source.name == OPENR1_HUB_ID and source.config == "all" else [source.config]
    try:
        parts = [load_dataset(source.name, c, split=source.split, revision=source.revision) for c in configs]
    except Exception as err:  # network, missing repo/config/split: datasets' errors are long
        raise UserError(f"{source.name}: cannot load from the hub ({first_line(err)})") from None
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)

