"""Benchmark sets as data sources: a named benchmark (its copy in the data folder, else its hub dataset) or a
file/folder path, resolved the same way for decontamination, evaluation and the dry run."""

from __future__ import annotations

from pathlib import Path

from utils.benchmarks import BENCHMARKS, DATA_DIR_ENV, KNOWN, canonical_name, locate_benchmark, unknown_benchmark
from utils.config import DataSection
from utils.data._sources import Source, resolve_source
from utils.errors import UserError


def benchmark_source(name: str, data_dir: Path | None, where: str, known: tuple[str, ...] = KNOWN,
                     columns: dict[str, str] | None = None) -> tuple[DataSection, Source]:
    """The section and source to read benchmark `name` from; no rows are read and no network is used.

    A folder path gives its `test` split, else its `train` split. `where` starts the message of an unknown
    name (e.g. "--bench gsm8x"); `known` lists the names that place accepts; `columns` (role -> column) is
    the user's word on which column is which, over a named benchmark's own."""
    name = canonical_name(name)
    given = dict(columns or {})
    if name in BENCHMARKS:
        at = locate_benchmark(name, data_dir)
        section = _section(at.dataset, at.config, at.benchmark.split, {**at.benchmark.columns, **given})
        source = resolve_source(section)
        source.offline_fix = (f"{where} needs {at.benchmark.local} in a data folder (--data-dir, ${DATA_DIR_ENV} "
                              "or ../shared/data)")
        return section, source
    path = Path(name).expanduser()
    if not path.exists():
        raise unknown_benchmark(name, where, known)
    section = _section(name, None, "test", given)
    try:
        return section, resolve_source(section)
    except UserError as err:
        if not path.is_dir() or "split" not in str(err):
            raise
    section = _section(name, None, "train", given)
    return section, resolve_source(section)


def _section(dataset: str, config: str | None, split: str, columns: dict[str, str] | None = None) -> DataSection:
    return DataSection(dataset=dataset, config=config, split=split, columns=dict(columns or {}), validation=0,
                       cache=False)
