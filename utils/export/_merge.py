"""Base model in full precision + LoRA adapter -> merged weights, with the checks that make a merge trustworthy:
the adapter must fit the base (module names and shapes), and a 4-bit run still merges into unquantized weights."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from utils.errors import UserError, first_line
from utils.models import PRECISIONS, record_base


def load_base(base: str) -> Any:
    """The base in fp32, whatever the training used: 4-bit training quantized a copy of these same weights,
    and merging into unquantized weights keeps the adapter's update exact. A base that is itself stored
    pre-quantized (e.g. a *-bnb-4bit checkpoint) is dequantized first, with a warning."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the adapter's base model {base} ({first_line(err)}); pass --base MODEL") from None
    if getattr(config, "quantization_config", None):
        method = dict(config.quantization_config).get("quant_method", "quantized")
        warnings.warn(f"the base {base} is stored pre-quantized ({method}): the merge adds the adapter to its "
                      "dequantized weights, so the export carries that rounding (merge onto the original "
                      "16-bit base with --base to avoid it)", stacklevel=2)
        model = model.dequantize().float()
    return model


def check_adapter_fits(base_model: Any, adapter_dir: Path, base: str) -> None:
    """Every module the adapter changes must exist in the base with the shapes the adapter was trained for."""
    from safetensors.torch import load_file

    weights_file = adapter_dir / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise UserError(f"{adapter_dir}: no adapter_model.safetensors")
    modules = dict(base_model.named_modules())
    model_type = base_model.config.model_type
    for key, tensor in load_file(weights_file).items():
        if ".lora_A." not in key and ".lora_B." not in key:
            continue
        name = key.split(".lora_")[0].removeprefix("base_model.model.")
        module = modules.get(name)
        if module is None or not hasattr(module, "weight"):
            raise UserError(f"{adapter_dir} does not fit the base {base} ({model_type}): the adapter changes {name}, "
                            "which the base does not have")
        out_features, in_features = module.weight.shape[:2]
        expected = in_features if ".lora_A." in key else out_features
        got = tensor.shape[1] if ".lora_A." in key else tensor.shape[0]
        if got != expected:
            raise UserError(f"{adapter_dir} does not fit the base {base} ({model_type}): {name} is "
                            f"{out_features}x{in_features} in the base, the adapter was trained on a size {got}")


def attach_adapter(base_model: Any, adapter_dir: Path, base: str) -> Any:
    """The PeftModel base + adapter (not merged yet: it is the reference the export is checked against)."""
    from peft import PeftModel

    check_adapter_fits(base_model, adapter_dir, base)
    try:
        model = PeftModel.from_pretrained(base_model, str(adapter_dir))
    except (ValueError, RuntimeError, KeyError) as err:
        raise UserError(f"{adapter_dir} does not load onto the base {base} ({first_line(err)})") from None
    record_base(model, base)  # an adapter-only export names the base it was checked on, absolutely
    return model.eval()


def merged_model(peft_model: Any) -> Any:
    """Fold the adapter into the fp32 base weights (the PeftModel is consumed)."""
    return peft_model.merge_and_unload(safe_merge=True)


def cast(model: Any, dtype: str) -> Any:
    import torch

    return model.to(getattr(torch, PRECISIONS[dtype]))


def default_dtype(base: str) -> str:
    """The precision the base was published in (its config's dtype); fp32 when it says nothing else."""
    from transformers import AutoConfig

    stored = str(getattr(AutoConfig.from_pretrained(base), "dtype", "") or "").removeprefix("torch.")
    return {name: short for short, name in PRECISIONS.items()}.get(stored, "fp32")


def export_size_bytes(model: Any, dtype: str, gguf: str | None) -> int:
    """What the export will take on disk: weights at `dtype`, plus the GGUF file if asked for."""
    params = sum(p.numel() for p in model.parameters())
    size = params * (4 if dtype == "fp32" else 2)
    if gguf:
        size += params * (2 if gguf == "f16" else 1.07)  # q8_0: 34 bytes per block of 32
    return int(size)
