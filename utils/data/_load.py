"""The entry points: load_training_data (a recipe's train + validation rows, cached), prepare_data (the
same from the data + prompt sections), load_adapted (read + adapt only, for explore_data), read_benchmark
(a benchmark set's rows, for evaluation) and check_benchmark (a dry run's read of one).

Pipeline, each step reported with counts:
1. source: a hub id (`open-r1/OpenR1-Math-220k` with config default | extended | all), or local files:
   .jsonl, .json (array), .parquet, a folder of them (splits inferred from file names as `datasets`
   does), or a folder written by `datasets.save_to_disk`. Offline, a hub id fails fast.
2. schema adapter (OpenR1-Math-220k, GSM8K, MATH-style, generic with recipe column names): every row
   becomes problem, gold answer (the `answer` column, else the solution's last \\boxed{} or ####),
   solution and light metadata. The heavy OpenR1 columns (generations, messages) are never carried.
3. filters (see FILTERS), each reported with the rows it removed.
4. a held-out validation split (the source's own when it has one) and a seeded subset.
5. `prompt` chat messages (utils.formats) for the rows that ship.
6. (load_training_data, train split only, after the cache) the pass-rate filter (_pass_rates), the curriculum's
   order (_curriculum).
The result is cached under data.cache_dir, keyed by the resolved data + prompt sections, the source
files' size/mtime (or the hub revision), the tokenizer, the decontamination files and this code.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.config import DataSection, PromptSection, Recipe
from utils.data._adapters import Adapter, adapt, make_adapter, settle_roles
from utils.data._benchmark_sets import benchmark_source
from utils.data._cache import cache_key, load_cached, save_cache
from utils.data._curriculum import order_train
from utils.data._decontaminate import resolve_eval_set
from utils.data._filters import apply_filters, make_filter_context
from utils.data._pass_rates import find_pass_rate_file, keep_band, needs_pass_rates, read_pass_rates
from utils.data._readers import LONG_PASS_ROWS, LONG_READ_BYTES, Reader, progress_bars
from utils.data._report import DataReport, PreparedData
from utils.data._sources import Source, resolve_hub_revision, resolve_source
from utils.data._split import format_rows, no_rows_left, split_rows
from utils.errors import UserError


@dataclass
class LoadedData:
    """Adapted (not yet filtered) rows of a source, plus what is known about it (explore_data uses this)."""

    source: Source
    adapter: Adapter
    raw_columns: list[str]
    rows: Any  # Dataset with the adapted columns
    validation_rows: Any | None  # the source's own validation split, adapted, when it has one
    features: dict[str, str] = field(default_factory=dict)


def load_adapted(data: DataSection, progress: bool = True, source: Source | None = None,
                 columns_key: str = "data.columns") -> LoadedData:
    """Resolve the source, pick the schema adapter, read only the needed columns, settle the answer and solution
    roles from what those columns hold, adapt the rows. `columns_key` is where the user names columns."""
    source = source or resolve_source(data)
    cache_dir = Path(data.cache_dir) if data.cache else None
    reader = Reader(source, cache_dir, progress)
    raw_columns = reader.columns()
    adapter = make_adapter(raw_columns, data, source.name, columns_key)
    prefix = Path(source.name).stem if source.kind != "hub" else source.name.split("/")[-1]
    big = source.kind == "hub" or sum(p.stat().st_size for p in source.files) >= LONG_READ_BYTES
    with progress_bars(progress and big):
        raw = reader.read(adapter.source_columns)
    adapter = settle_roles(adapter, raw, data)
    features = {name: str(feature) for name, feature in raw.features.items()}
    with progress_bars(progress and len(raw) >= LONG_PASS_ROWS):
        rows = adapt(raw, adapter, prefix)
        validation = None
        if source.validation_files:
            make_adapter(reader.columns(source.validation_files), data, f"{source.name} (validation split)",
                         columns_key)
            validation = adapt(reader.read(adapter.source_columns, source.validation_files), adapter, f"{prefix}-val")
    return LoadedData(source, adapter, raw_columns, rows, validation, features)


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
    eval_sets = [source for _, source in map(resolve_eval_set, data.filters.decontaminate)]
    inputs: dict[str, Any] | None = None
    cache_path: Path | None = None
    if data.cache:
        if source.kind == "hub":
            resolve_hub_revision(source)  # the hub revision keys the cache
        for eval_set in eval_sets:
            if eval_set.kind == "hub":
                resolve_hub_revision(eval_set)  # a decontamination set from the hub: its revision too
        key, inputs = cache_key(data, prompt, source, tokenizer, eval_sets)
        cache_path = Path(data.cache_dir) / key
        cached = load_cached(cache_path) if cache_path.is_dir() else None
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
            save_cache(cache_path, prepared, inputs)
            lap("cache write")
    report.timings = timings
    report.seconds = round(time.perf_counter() - start, 3)
    return prepared


def _filter_split_format(data: DataSection, prompt: PromptSection, tokenizer: Any, loaded: LoadedData,
                         progress: bool, lap: Callable[[str], None]) -> PreparedData:
    report = DataReport(source=loaded.source.describe(), format=loaded.adapter.title, columns=loaded.raw_columns,
                        roles=loaded.adapter.roles(), rows_loaded=len(loaded.rows), subset=data.subset, seed=data.seed, prompt_format=prompt.format)
    report.gold_from = dict(Counter(loaded.rows["gold_from"]))
    lap("load+adapt")
    ctx = make_filter_context(data, prompt, tokenizer, loaded.adapter, progress)
    rows, report.steps = apply_filters(loaded.rows, ctx)
    report.rows_after_filters = len(rows)
    if len(rows) == 0:
        raise no_rows_left(data.dataset, report.rows_loaded, report.steps)
    lap("filters")
    train, validation = split_rows(rows, loaded.validation_rows, ctx, data, report)
    train, validation = format_rows(train, prompt), format_rows(validation, prompt)
    report.train_rows, report.validation_rows = len(train), len(validation)
    lap("split+format")
    return PreparedData(train, validation, report)


def load_training_data(recipe: Recipe, tokenizer: Any = None) -> PreparedData:
    """Train and validation rows for a recipe: columns OUTPUT_COLUMNS, `prompt` as chat messages.

    `tokenizer` applies `data.filters.max_prompt_tokens`; without one that filter is skipped and the
    report says so (explore_data.py and dry runs have no model at hand). Then, on the train split only (the
    cache holds the rows before them): the pass-rate filter and the curriculum's order. Raises UserError on
    bad data.
    """
    prepared = prepare_data(recipe.data, recipe.prompt, tokenizer)
    rates = read_pass_rates(find_pass_rate_file(recipe)) if needs_pass_rates(recipe) else None
    if rates is not None and recipe.data.filters.pass_rate is not None:
        prepared = keep_band(prepared, rates, recipe)
    if recipe.data.curriculum.by != "none":
        prepared = order_train(prepared, recipe.data.curriculum, recipe.data.seed, rates)
    return prepared


def read_benchmark(name: str, data_dir: Path | None, where: str, columns: dict[str, str] | None = None) -> LoadedData:
    """A benchmark's adapted rows: a named one from its copy in `data_dir`, else its hub dataset; or a file or
    folder (its test split, else its train split). `where` starts the message of an unknown name; `columns`
    (role -> column, evaluate.py's --columns) overrides the roles detected."""
    section, source = benchmark_source(name, data_dir, where, columns=columns)
    return load_adapted(section, progress=False, source=source, columns_key="--columns")


def check_benchmark(section: DataSection, source: Source, where: str, gold: bool = True) -> str:
    """A dry run's check of a benchmark set the run will read: a local file is read and adapted (with `gold`,
    it must hold a problem with a gold answer); a hub dataset is only named, without a network call.
    Returns where the set is read from, in words."""
    if source.kind != "hub":
        rows = load_adapted(section, progress=False, source=source).rows
        if gold and not any(rows["answer"]):
            raise UserError(f"{where}: no problems with a gold answer in {source.describe()}")
    return source.describe()
