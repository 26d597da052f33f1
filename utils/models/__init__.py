"""The machine (and its CPU's bf16 decision), the backend choice (unsloth | hf), model loading, LoRA, adapters
(their base model: recorded absolutely, found again by find_adapter_base), GGUF import, CPU generation that
computes a batch's shared prompt prefix once."""

from utils.models._adapters import (
    adapter_base,
    adapter_config,
    could_be_hub_id,
    find_adapter_base,
    record_base,
    restore_base,
)
from utils.models._gguf import load_gguf, plain_model, smollm2_checkpoint, smollm2_gguf
from utils.models._gpu import (
    MIN_COMPUTE_CAPABILITY,
    MIN_DRIVER,
    PINNED_CUDA_MAJOR,
    GpuInfo,
    gpu_problem,
    query_gpus,
    vllm_runs_on,
)
from utils.models._hardware import (
    AVX2_ONLY_ENV,
    CPU_BF16_ENV,
    CpuPrecision,
    Hardware,
    detect_hardware,
    probe_cpu,
)
from utils.models._loading import (
    PRECISIONS,
    BackendChoice,
    LoadedModel,
    check_model_source,
    holds_weights,
    import_backend,
    load_model_and_tokenizer,
    local_model_config,
    resolve_backend,
    torch_dtype,
)
from utils.models._prefix import generate_sharing_prefix
from utils.models._tiny import QWEN2_SHAPES, build_tiny_qwen2, build_tokenizer
from utils.models._unsloth import (
    UNSLOTH_TARGET_MODULES,
    VLLM_STANDBY_ENV,
    load_with_unsloth,
    target_modules_for_unsloth,
    unsloth_grpo_overrides,
    unsloth_load_kwargs,
    unsloth_peft_kwargs,
)

__all__ = [
    "BackendChoice",
    "LoadedModel",
    "adapter_base",
    "check_model_source",
    "AVX2_ONLY_ENV",
    "CPU_BF16_ENV",
    "CpuPrecision",
    "GpuInfo",
    "MIN_COMPUTE_CAPABILITY",
    "MIN_DRIVER",
    "PINNED_CUDA_MAJOR",
    "PRECISIONS",
    "QWEN2_SHAPES",
    "gpu_problem",
    "query_gpus",
    "vllm_runs_on",
    "Hardware",
    "UNSLOTH_TARGET_MODULES",
    "VLLM_STANDBY_ENV",
    "adapter_config",
    "build_tiny_qwen2",
    "could_be_hub_id",
    "find_adapter_base",
    "generate_sharing_prefix",
    "record_base",
    "restore_base",
    "build_tokenizer",
    "detect_hardware",
    "holds_weights",
    "import_backend",
    "load_model_and_tokenizer",
    "load_gguf",
    "local_model_config",
    "load_with_unsloth",
    "plain_model",
    "probe_cpu",
    "resolve_backend",
    "smollm2_checkpoint",
    "smollm2_gguf",
    "target_modules_for_unsloth",
    "torch_dtype",
    "unsloth_grpo_overrides",
    "unsloth_load_kwargs",
    "unsloth_peft_kwargs",
]
