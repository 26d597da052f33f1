"""What the pinned GPU set (requirements-gpu.txt) asks of an NVIDIA GPU and its driver, and this machine's GPUs as
`nvidia-smi` reports them. Standard library only: it runs before anything GPU-side is installed (the notebook's
check cell, `scripts/check_gpu.py`, `make setup-gpu`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

# torch 2.13.0 on PyPI is a CUDA 13.0 build (its Requires-Dist names cuda-toolkit==13.0.3; PyTorch made CUDA 13.0
# the PyPI default from 2.11). bench/check_gpu_pins.py holds this number to the pinned torch's published metadata.
PINNED_CUDA_MAJOR = 13
# CUDA 13.x runs only on an R580 driver or newer.
MIN_DRIVER = 580
# CUDA 13 builds no code for Maxwell, Pascal or Volta: Turing (7.5, a T4) is the oldest GPU it runs on.
MIN_COMPUTE_CAPABILITY = (7, 5)
# vLLM >= 0.12 has no attention backend for Turing (its xformers backend, the one a T4 used, was removed in 0.12;
# Unsloth's T4 notebooks stay on vLLM 0.11.2, which needs transformers < 5). The pinned vLLM 0.31 is newer.
VLLM_MIN_COMPUTE_CAPABILITY = (8, 0)
_QUERY = "name,driver_version,compute_cap,memory.total"


@dataclass(frozen=True)
class GpuInfo:
    name: str
    driver: str  # e.g. "580.95.05"
    compute_capability: tuple[int, int]
    memory_mib: int

    def describe(self) -> str:
        major, minor = self.compute_capability
        return f"{self.name} (compute capability {major}.{minor}, {self.memory_mib} MiB), driver {self.driver}"


Runner = Callable[[list[str]], str]


def _nvidia_smi(args: list[str]) -> str:
    return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=60, check=True).stdout


def query_gpus(run: Runner | None = None) -> list[GpuInfo]:
    """Every GPU nvidia-smi lists; [] where there is no nvidia-smi or it fails (no GPU, no driver loaded)."""
    if run is None:
        if shutil.which("nvidia-smi") is None:
            return []
        run = _nvidia_smi
    try:
        text = run([f"--query-gpu={_QUERY}", "--format=csv,noheader,nounits"])
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in text.strip().splitlines():
        name, driver, capability, memory = (field.strip() for field in line.split(","))
        major, _, minor = capability.partition(".")
        gpus.append(GpuInfo(name, driver, (int(major), int(minor or 0)), int(float(memory))))
    return gpus


def gpu_problem(gpus: list[GpuInfo]) -> str | None:
    """Why this machine cannot run the pinned GPU set, in one line that says what to do; None when it can."""
    if not gpus:
        return ("no NVIDIA GPU found (nvidia-smi lists none): on Colab, Runtime -> Change runtime type -> T4 GPU; "
                "elsewhere install the NVIDIA driver, or train on CPU with .venv (make setup)")
    gpu = gpus[0]
    driver_major = int(gpu.driver.split(".")[0])
    if driver_major < MIN_DRIVER:
        return (f"NVIDIA driver {gpu.driver} is older than {MIN_DRIVER}, which the pinned torch (a CUDA "
                f"{PINNED_CUDA_MAJOR}.0 build) needs: update the driver to {MIN_DRIVER} or newer (on Colab: "
                "reconnect later or pick another GPU runtime; Colab's driver is not yours to change)")
    if gpu.compute_capability < MIN_COMPUTE_CAPABILITY:
        need = ".".join(map(str, MIN_COMPUTE_CAPABILITY))
        return (f"{gpu.name} has compute capability {'.'.join(map(str, gpu.compute_capability))}: CUDA "
                f"{PINNED_CUDA_MAJOR} runs on {need} (Turing, a T4) or newer; use a newer GPU")
    return None


def vllm_runs_on(compute_capability: tuple[int, int] | None) -> bool:
    """Whether the pinned vLLM has an attention backend for this GPU (None: unknown, e.g. no GPU)."""
    return compute_capability is None or compute_capability >= VLLM_MIN_COMPUTE_CAPABILITY
