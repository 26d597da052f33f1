"""The Unsloth backend: load model + tokenizer through `unsloth.FastLanguageModel`, LoRA through its
`get_peft_model`, and the GRPOConfig values that this path needs.

Unsloth is imported lazily, inside `load_with_unsloth`: the default CPU environment (.venv) has no
Unsloth and imports this module for the pure helpers. On a CUDA GPU Unsloth takes its GPU path (4-bit
kernels, vLLM generation with `fast_inference`); on a machine without one it falls back to its CPU
backend (`unsloth_zoo.cpu.FastCPUModel`: stock transformers + PEFT, optional bitsandbytes 4-bit, no
vLLM), which is what `make test-unsloth` exercises.

How the trainer must be built on this path (GPU):

1. `import unsloth` before `trl` (and before transformers / peft where possible). On a GPU the import
   rewrites TRL's trainers: `trl.GRPOConfig` / `trl.GRPOTrainer` become Unsloth's subclasses, so
   take both from `trl` *after* the import (`load_with_unsloth` does the import; a module that did
   `from trl import GRPOTrainer` earlier keeps TRL's own class and loses the vLLM wiring). On CPU the
   import only patches `GRPOConfig.__post_init__` (forces `use_cpu`, CPU optimizers) and TRL's
   GRPOTrainer runs unchanged.
2. Pass the model returned here (already a PeftModel when LoRA is on) and `processing_class=tokenizer`;
   never pass `peft_config` to GRPOTrainer: the LoRA adapters exist already.
3. Merge `unsloth_grpo_overrides(recipe.model)` into the GRPOConfig kwargs above the machine defaults
   and below the recipe's own `training:` values. With `fast_inference` Unsloth's GRPOTrainer takes
   generation from `model.vllm_engine` (colocated; TRL's own `vllm_gpu_memory_utilization` is not used,
   `model.gpu_memory_utilization` sized the engine at load time).
4. Unsloth's GRPOConfig has its own defaults for fields a caller leaves out (as of 2026.10.9:
   learning_rate 5e-5, optim adamw_8bit, per_device_train_batch_size 4, gradient_accumulation_steps 2,
   weight_decay 0.001, warmup_steps 0.1, seed 3407, logging_steps 1, bf16/fp16 picked from the model
   dtype, beta/loss_type resolved like TRL's). Pass every value that must match the hf backend
   explicitly.
"""

from __future__ import annotations

import os
from typing import Any

from utils.config import LoraSection, ModelSection
from utils.errors import UserError
from utils.models._adapters import adapter_config
from utils.models._hardware import detect_hardware

# What `all-linear` means for the Qwen2 / Llama family: every projection of attention and MLP, never
# lm_head. Unsloth's fast LoRA kernels are written for exactly these names (its own default list).
UNSLOTH_TARGET_MODULES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# Unsloth's vLLM standby switch: read when unsloth is imported, so it is set before (set_vllm_standby).
VLLM_STANDBY_ENV = "UNSLOTH_VLLM_STANDBY"


def set_vllm_standby(on: bool) -> None:
    """Turn Unsloth's vLLM standby on (model.vllm_standby) before `import unsloth`; off leaves the environment as
    the user set it."""
    if on:
        os.environ[VLLM_STANDBY_ENV] = "1"


def _torch_dtype(name: str) -> Any:
    """Recipe dtype name -> what Unsloth takes: None lets it choose (bf16 where supported, else fp16 on
    GPU / fp32 on CPU). Unsloth's GPU loader accepts only None or a torch.dtype for float32."""
    if name == "auto":
        return None
    import torch

    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def target_modules_for_unsloth(target_modules: str | list[str]) -> str | list[str]:
    """Our `all-linear` -> the explicit projection list; explicit lists and PEFT regex strings pass through."""
    if isinstance(target_modules, str):
        return list(UNSLOTH_TARGET_MODULES) if target_modules == "all-linear" else target_modules
    return list(target_modules)


def unsloth_load_kwargs(model: ModelSection, lora: LoraSection) -> dict[str, Any]:
    """Keyword arguments for `FastLanguageModel.from_pretrained` from the recipe (no I/O, no Unsloth)."""
    if not lora.enabled and model.load_in_4bit:
        # Full fine-tuning updates every weight; 4-bit weights cannot be trained.
        raise UserError("lora.enabled: false (full fine-tuning) cannot train a 4-bit model; set model.load_in_4bit: false")
    kwargs: dict[str, Any] = {
        "model_name": model.name,
        "max_seq_length": model.max_seq_length,
        # Explicit: Unsloth's own default is load_in_4bit=True.
        "load_in_4bit": model.load_in_4bit,
        "fast_inference": model.fast_inference,
        "gpu_memory_utilization": model.gpu_memory_utilization,
        # vLLM reserves LoRA slots of this rank; Unsloth's default (64) would waste memory for r=32.
        "max_lora_rank": model.max_lora_rank if model.max_lora_rank is not None else lora.r,
        "dtype": _torch_dtype(model.dtype),
        "trust_remote_code": model.trust_remote_code,
        "revision": model.revision,
    }
    if not lora.enabled:
        kwargs["full_finetuning"] = True
    return kwargs


def unsloth_peft_kwargs(lora: LoraSection, seed: int) -> dict[str, Any]:
    """Keyword arguments for `FastLanguageModel.get_peft_model` from the recipe's `lora:` section."""
    return {
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": target_modules_for_unsloth(lora.target_modules),
        # Unsloth's checkpointing offloads activations to host RAM: its long-context memory saver.
        "use_gradient_checkpointing": "unsloth",
        "random_state": seed,
    }


def unsloth_grpo_overrides(model: ModelSection) -> dict[str, Any]:
    """GRPOConfig values the Unsloth path needs (see the module docstring for where they go)."""
    overrides: dict[str, Any] = {}
    if model.fast_inference:
        # Unsloth's GRPOTrainer also forces these when the model carries a vLLM engine; saying so here
        # keeps the printed plan and the saved config true to what runs.
        overrides.update(use_vllm=True, vllm_mode="colocate")
    # Unsloth's GRPOTrainer raises when the autocast dtype contradicts a model loaded in 16 bits.
    if model.dtype == "float16":
        overrides.update(fp16=True, bf16=False)
    elif model.dtype == "bfloat16":
        overrides.update(bf16=True, fp16=False)
    return overrides


def load_with_unsloth(model: ModelSection, lora: LoraSection, seed: int) -> tuple[Any, Any]:
    """Load (model, tokenizer) through Unsloth; LoRA applied when `lora.enabled`.

    `model.name` may be a LoRA adapter folder (adapter_config.json inside): Unsloth then loads the
    adapter's `base_model_name_or_path` and the adapter on top of it, trainable, so training continues
    that adapter with its own r / alpha / target modules (the recipe's `lora:` shape is not applied).
    """
    kwargs = unsloth_load_kwargs(model, lora)
    if model.fast_inference:
        hw = detect_hardware()
        if not hw.cuda:
            raise UserError("model.fast_inference: true needs a CUDA GPU (vLLM generation); set model.fast_inference: false")
        if not hw.vllm_installed:
            raise UserError("model.fast_inference: true, but vLLM is not installed here (make setup-gpu)")

    set_vllm_standby(model.vllm_standby)
    import unsloth  # noqa: F401  # before trl: on a GPU it rewrites TRL's trainers on import
    from unsloth import FastLanguageModel

    adapter = adapter_config(model.name)
    if adapter is not None:
        if not lora.enabled:
            raise UserError(f"model.name: {model.name} is a LoRA adapter; lora.enabled: false cannot fully fine-tune it")
        # vLLM must reserve slots as large as the adapter being continued.
        kwargs["max_lora_rank"] = max(kwargs["max_lora_rank"], int(adapter.get("r") or 0))
    loaded, tokenizer = FastLanguageModel.from_pretrained(**kwargs, random_state=seed)
    if lora.enabled and adapter is None:
        loaded = FastLanguageModel.get_peft_model(loaded, **unsloth_peft_kwargs(lora, seed))
    return loaded, tokenizer
