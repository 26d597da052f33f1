"""What this machine can do: CUDA, bf16 (on the GPU or the CPU), Unsloth, vLLM. Probed without importing the
heavy GPU libraries."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass, field
from functools import lru_cache

from utils.errors import UserError

# Forces the CPU bf16 decision (1: as on a CPU with native bf16, 0: as on one without): tests, and timing one
# kind of CPU's defaults on the other.
CPU_BF16_ENV = "GRPO_MATH_CPU_BF16"

# Runs this machine's torch as an AVX2-only CPU's: PyTorch's own kernels, oneDNN and MKL limited to AVX2 (each
# reads its variable when it starts, so a new process). The probe then reads "AVX2, no native bf16" and bf16 matmuls
# fall to PyTorch's scalar GEMM as on such a CPU (256x896 @ 896x4864: 1.6 s against 15 ms in fp32 on a Xeon with
# AMX): how the AVX2 kind is measured on a newer CPU (bench/bench_demo.py --precision avx2, the tests).
AVX2_ONLY_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


@dataclass(frozen=True)
class CpuPrecision:
    """What the CPU computes fast, from torch's own checks, and the one bf16 decision taken from it.

    bf16 pays only where the CPU has bf16 instructions (AVX-512-BF16 or AMX): there bf16 autocast and a bf16
    sampling copy are the fastest CPU settings measured. On AVX2-only CPUs PyTorch runs bf16 matmuls through
    its scalar fallback GEMM: a SmolLM2 GRPO step took 181 s in bf16 against 15-19 s in fp32.
    """

    capability: str  # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", "DEFAULT", ...
    native_bf16: bool  # torch.ops.mkldnn._is_mkldnn_bf16_supported(): AVX-512-BF16 or AMX
    amx: bool = False  # Intel AMX tiles (torch.cpu._is_amx_tile_supported)
    forced: bool | None = None  # GRPO_MATH_CPU_BF16, when set

    @property
    def bf16(self) -> bool:
        """Compute in bf16 on this CPU: training's autocast, the sampling copy, evaluation's `--dtype auto`."""
        return self.native_bf16 if self.forced is None else self.forced

    def describe(self) -> str:
        what = (f"CPU {self.capability} with native bf16{' (AMX)' if self.amx else ''}" if self.native_bf16
                else f"CPU {self.capability}, no native bf16")
        if self.forced is not None:
            what += f", decided as {'with' if self.forced else 'without'} it ({CPU_BF16_ENV}={int(self.forced)})"
        return what


@dataclass(frozen=True)
class Hardware:
    cuda: bool
    gpu_name: str | None
    bf16: bool  # CUDA bf16 support (False on a T4)
    unsloth_installed: bool
    vllm_installed: bool
    cpu: CpuPrecision = field(default=CpuPrecision("unknown", native_bf16=False))  # fp32 unless probed
    compute_capability: tuple[int, int] | None = None  # the CUDA GPU's (7.5 on a T4); None without one

    def describe(self) -> str:
        if self.cuda:
            return f"CUDA GPU {self.gpu_name} ({'bf16' if self.bf16 else 'no bf16: fp16'})"
        return self.cpu.describe()  # "CPU ...": no CUDA GPU


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def forced_cpu_bf16() -> bool | None:
    """GRPO_MATH_CPU_BF16 as a decision: 1/true/yes, 0/false/no, or None when unset or empty."""
    value = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if not value:
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise UserError(f"{CPU_BF16_ENV}={value!r}: expected 1 (bf16 as on a CPU with native bf16) or 0 (fp32); "
                    "unset it to let the CPU decide")


def probe_cpu() -> CpuPrecision:
    """The CPU's precision abilities, as torch itself sees them (the checks its own kernels dispatch on)."""
    import torch

    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.x: absent is "no"
    return CpuPrecision(
        capability=torch.backends.cpu.get_cpu_capability(),
        native_bf16=bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        amx=bool(amx and amx()),
    )


def detect_hardware() -> Hardware:
    """This machine; GRPO_MATH_CPU_BF16 is read on every call (the probe itself runs once per process)."""
    probed = _probe()
    return dataclasses.replace(probed, cpu=dataclasses.replace(probed.cpu, forced=forced_cpu_bf16()))


@lru_cache(maxsize=1)
def _probe() -> Hardware:
    import torch

    cuda = torch.cuda.is_available()
    return Hardware(
        cuda=cuda,
        gpu_name=torch.cuda.get_device_name(0) if cuda else None,
        bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        unsloth_installed=_installed("unsloth"),
        vllm_installed=_installed("vllm"),
        cpu=probe_cpu(),
        compute_capability=tuple(torch.cuda.get_device_capability(0)) if cuda else None,
    )
