"""The data folder (local benchmark copies) and where a named benchmark is read from: its copy there, else the hub.

One resolution order everywhere: `--data-dir`, then $GRPO_MATH_DATA_DIR, then ../shared/data beside the
repository when present, else no folder (each benchmark's hub dataset).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from utils.benchmarks._registry import BENCHMARKS, Benchmark
from utils.errors import UserError

DATA_DIR_ENV = "GRPO_MATH_DATA_DIR"
# The real data folder ships beside the repository, never inside it.
BESIDE_REPO = Path(__file__).resolve().parents[3] / "shared" / "data"


def find_data_dir(explicit: str | Path | None = None) -> Path | None:
    """`explicit` (--data-dir), else $GRPO_MATH_DATA_DIR, else ../shared/data when present; None: the hub.

    A folder named explicitly or by the variable must exist: a typo would otherwise fall back to the hub."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise UserError(f"--data-dir {explicit}: no such folder")
        return path
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise UserError(f"${DATA_DIR_ENV} {env}: no such folder (unset it to read the benchmarks from the hub)")
        return path
    return BESIDE_REPO if BESIDE_REPO.is_dir() else None


@dataclass(frozen=True)
class BenchmarkLocation:
    """A named benchmark as it will be read: its copy in the data folder, or (local None) its hub dataset."""

    benchmark: Benchmark
    local: Path | None

    @property
    def dataset(self) -> str:
        return str(self.local) if self.local else self.benchmark.hub

    @property
    def config(self) -> str | None:
        return None if self.local else self.benchmark.hub_config


def locate_benchmark(name: str, data_dir: Path | None) -> BenchmarkLocation:
    """Where the named benchmark `name` (a key of BENCHMARKS) is read from; no file is opened, no network used."""
    benchmark = BENCHMARKS[name]
    local = data_dir / benchmark.local if data_dir else None
    return BenchmarkLocation(benchmark, local if local is not None and local.is_file() else None)
