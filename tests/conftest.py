"""Shared fixtures: a tiny random Qwen2 + tokenizer (built once per run), the OpenR1-schema sample rows,
the real data folder (found as the scripts find it: $GRPO_MATH_DATA_DIR, else ../shared/data; skipped where
absent), and a script runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the repository: `utils`, and the helpers as `tests.<module>`
    sys.path.insert(0, str(ROOT))

from tests.repo import SAMPLE_OPENR1  # noqa: E402  (after the path above)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from utils.models import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def openr1_rows() -> list[dict]:
    """Fixture rows in the exact OpenR1-Math-220k schema, with answers of many kinds."""
    return [json.loads(line) for line in SAMPLE_OPENR1.read_text().splitlines()]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from utils.benchmarks import DATA_DIR_ENV, find_data_dir

    found = find_data_dir()
    if found is None:
        pytest.skip(f"no real data folder: ${DATA_DIR_ENV} is unset and ../shared/data is absent (it ships beside "
                    "the repo, not in it)")
    return found


@pytest.fixture
def run_script():
    """Run `python scripts/NAME.py ARGS...` from the repo root; returns the CompletedProcess."""

    def run(name: str, *args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.run(
            [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *map(str, args)],
            cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        )

    return run


@pytest.fixture
def load_script(monkeypatch: pytest.MonkeyPatch):
    """`load_script("demo")`: scripts/demo.py as a module, imported here (its `__main__` block does not run)."""
    import importlib.util

    def load(name: str):
        monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # the scripts import their _bootstrap
        spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def run_script_here(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, load_script):
    """`scripts/NAME.py ARGS...` in this process, through the same run_main a user's run goes through (one-line
    errors, exit codes): returns (exit code, stdout, stderr). For paths that end before any model loads (a
    dry run, a refused input), where a child process would spend most of its time importing torch."""
    import signal

    from utils.cli import _stop_note, run_main

    monkeypatch.setattr(signal, "signal", lambda *_: None)  # run_main's SIGTERM handler is pytest's process's
    monkeypatch.setitem(_stop_note, "command", None)  # what the script declares for a stop, undone afterwards
    monkeypatch.setitem(_stop_note, "saved", None)

    def run(name: str, *args: str, cwd: Path = ROOT) -> tuple[int, str, str]:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", [f"scripts/{name}.py", *map(str, args)])
        module = load_script(name)
        capsys.readouterr()
        with pytest.raises(SystemExit) as ended:
            run_main(module.main, [str(a) for a in args])
        out = capsys.readouterr()
        return int(ended.value.code or 0), out.out, out.err

    return run


@pytest.fixture
def cpu_kind(monkeypatch: pytest.MonkeyPatch):
    """Make torch's own CPU checks report a given CPU, probed afresh: `cpu_kind("AVX2", native_bf16=False)`
    returns detect_hardware() as it reads on such a CPU without CUDA (GRPO_MATH_CPU_BF16 unset unless `forced`)."""
    import torch

    from utils.models import CPU_BF16_ENV, detect_hardware
    from utils.models._hardware import _probe

    def make(capability: str, native_bf16: bool, forced: str | None = None):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native_bf16, raising=False)
        if forced is None:
            monkeypatch.delenv(CPU_BF16_ENV, raising=False)
        else:
            monkeypatch.setenv(CPU_BF16_ENV, forced)
        _probe.cache_clear()
        return detect_hardware()

    yield make
    _probe.cache_clear()  # the next caller probes the real machine again
