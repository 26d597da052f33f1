"""What this machine can do: CUDA, bf16, Unsloth, vLLM. Probed without importing the heavy GPU libraries."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Hardware:
    cuda: bool
    gpu_name: str | None
    bf16: bool  # CUDA bf16 support (False on a T4)
    unsloth_installed: bool
    vllm_installed: bool

    def describe(self) -> str:
        if self.cuda:
            return f"CUDA GPU {self.gpu_name} ({'bf16' if self.bf16 else 'no bf16: fp16'})"
        return "CPU only (no CUDA GPU)"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@lru_cache(maxsize=1)
def detect_hardware() -> Hardware:
    import torch

    cuda = torch.cuda.is_available()
    return Hardware(
        cuda=cuda,
        gpu_name=torch.cuda.get_device_name(0) if cuda else None,
        bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        unsloth_installed=_installed("unsloth"),
        vllm_installed=_installed("vllm"),
    )
