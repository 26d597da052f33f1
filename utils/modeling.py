"""Load model + tokenizer through a backend: `unsloth` (CUDA, 4-bit, vLLM) or `hf` (transformers + PEFT)."""

from __future__ import annotations

from dataclasses import dataclass

from utils.errors import UserError
from utils.hardware import Hardware, detect_hardware
from utils.recipe import ModelSection


@dataclass(frozen=True)
class BackendChoice:
    name: str  # "unsloth" | "hf"
    reason: str


def resolve_backend(model: ModelSection, hardware: Hardware | None = None) -> BackendChoice:
    """Pick the backend the recipe asks for, or for `auto` the best one this machine can run."""
    hw = hardware or detect_hardware()
    if model.backend == "hf":
        return BackendChoice("hf", "the recipe asks for model.backend: hf")
    if model.backend == "unsloth":
        if not hw.unsloth_installed:
            raise UserError(
                "model.backend: unsloth, but Unsloth is not installed here "
                "(run `make setup-gpu` on a CUDA machine, or set model.backend: auto)"
            )
        where = hw.gpu_name if hw.cuda else "CPU (no CUDA GPU: Unsloth trains slowly on CPU)"
        return BackendChoice("unsloth", f"the recipe asks for model.backend: unsloth, on {where}")
    if not hw.cuda:
        return BackendChoice(
            "hf",
            "auto: no CUDA GPU on this machine, so transformers + PEFT "
            "(Unsloth's 4-bit kernels and vLLM generation need a CUDA GPU)",
        )
    if not hw.unsloth_installed:
        return BackendChoice("hf", f"auto: CUDA GPU {hw.gpu_name} found, but Unsloth is not installed (make setup-gpu)")
    return BackendChoice("unsloth", f"auto: CUDA GPU {hw.gpu_name} found and Unsloth is installed")
