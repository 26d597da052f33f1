"""Shared by the evaluation tests: a LoRA adapter that really changes its base model."""

from __future__ import annotations

from pathlib import Path

import torch


def save_adapter(base_dir: Path, out: Path, std: float = 0.5, r: int = 4) -> Path:
    """A LoRA adapter on `base_dir` with non-zero B matrices of scale `std` (a fresh adapter changes nothing)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                           LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, std)
    model.save_pretrained(out)
    return out
