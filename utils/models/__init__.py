"""The machine, the backend choice (unsloth | hf), model loading, LoRA, adapters, GGUF import."""

from utils.models._gguf import smollm2_checkpoint, smollm2_gguf
from utils.models._hardware import Hardware, detect_hardware
from utils.models._loading import adapter_base, import_backend, load_model_and_tokenizer, resolve_backend, torch_dtype
from utils.models._tiny import build_tiny_qwen2, build_tokenizer
from utils.models._unsloth import (
    UNSLOTH_TARGET_MODULES,
    adapter_config,
    load_with_unsloth,
    target_modules_for_unsloth,
    unsloth_grpo_overrides,
    unsloth_load_kwargs,
    unsloth_peft_kwargs,
)

__all__ = [
    "Hardware",
    "UNSLOTH_TARGET_MODULES",
    "adapter_base",
    "adapter_config",
    "build_tiny_qwen2",
    "build_tokenizer",
    "detect_hardware",
    "import_backend",
    "load_model_and_tokenizer",
    "load_with_unsloth",
    "resolve_backend",
    "smollm2_checkpoint",
    "smollm2_gguf",
    "target_modules_for_unsloth",
    "torch_dtype",
    "unsloth_grpo_overrides",
    "unsloth_load_kwargs",
    "unsloth_peft_kwargs",
]
