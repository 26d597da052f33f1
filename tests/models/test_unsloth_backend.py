"""The Unsloth backend's pure parts (recipe -> Unsloth / GRPOConfig arguments): run in the default
suite, where Unsloth is not installed. The real loads and GRPO steps are tests/test_unsloth_cpu.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.repo import ROOT
from utils.config import LoraSection, ModelSection, grpo_config_fields, load_recipe
from utils.errors import UserError
from utils.models import (
    UNSLOTH_TARGET_MODULES,
    Hardware,
    adapter_config,
    load_with_unsloth,
    target_modules_for_unsloth,
    unsloth_grpo_overrides,
    unsloth_load_kwargs,
    unsloth_peft_kwargs,
)

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_module_imports_without_importing_unsloth():
    code = "import sys, utils.models; sys.exit('unsloth' in sys.modules or 'trl' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_load_kwargs_carry_every_model_setting():
    model = ModelSection(
        name="Qwen/Qwen2.5-0.5B-Instruct", load_in_4bit=True, fast_inference=True, max_seq_length=1536,
        gpu_memory_utilization=0.45, dtype="bfloat16", trust_remote_code=True, revision="abc123",
    )
    assert unsloth_load_kwargs(model, LoraSection(r=32)) == {
        "model_name": "Qwen/Qwen2.5-0.5B-Instruct",
        "max_seq_length": 1536,
        "load_in_4bit": True,
        "fast_inference": True,
        "gpu_memory_utilization": 0.45,
        "max_lora_rank": 32,
        "dtype": torch.bfloat16,
        "trust_remote_code": True,
        "revision": "abc123",
    }


def test_load_kwargs_defaults_are_explicit():
    kwargs = unsloth_load_kwargs(ModelSection(), LoraSection(r=16))
    # Unsloth's own defaults are load_in_4bit=True and max_lora_rank=64: ours must win.
    assert kwargs["load_in_4bit"] is False and kwargs["fast_inference"] is False
    assert kwargs["max_lora_rank"] == 16
    assert kwargs["dtype"] is None  # auto: Unsloth picks bf16 / fp16 / fp32 for the device
    assert kwargs["revision"] is None and "full_finetuning" not in kwargs


@pytest.mark.parametrize(
    ("name", "dtype"),
    [("auto", None), ("bfloat16", torch.bfloat16), ("float16", torch.float16), ("float32", torch.float32)],
)
def test_dtype_mapping(name, dtype):
    assert unsloth_load_kwargs(ModelSection(dtype=name), LoraSection())["dtype"] is dtype


def test_explicit_max_lora_rank_wins_over_lora_r():
    assert unsloth_load_kwargs(ModelSection(max_lora_rank=64), LoraSection(r=8))["max_lora_rank"] == 64


def test_full_finetuning_asks_unsloth_for_it_and_refuses_4bit():
    kwargs = unsloth_load_kwargs(ModelSection(load_in_4bit=False), LoraSection(enabled=False))
    assert kwargs["full_finetuning"] is True
    with pytest.raises(UserError, match="load_in_4bit"):
        unsloth_load_kwargs(ModelSection(load_in_4bit=True), LoraSection(enabled=False))


def test_peft_kwargs_map_all_linear_to_the_projection_list():
    lora = LoraSection(r=32, alpha=64, dropout=0.05, target_modules="all-linear")
    assert unsloth_peft_kwargs(lora, seed=7) == {
        "r": 32,
        "lora_alpha": 64,
        "lora_dropout": 0.05,
        "target_modules": PROJECTIONS,
        "use_gradient_checkpointing": "unsloth",
        "random_state": 7,
    }
    assert list(UNSLOTH_TARGET_MODULES) == PROJECTIONS


def test_explicit_targets_pass_through_as_a_copy():
    targets = ["q_proj", "v_proj"]
    mapped = target_modules_for_unsloth(targets)
    assert mapped == targets and mapped is not targets
    assert target_modules_for_unsloth(r".*\.(q|v)_proj") == r".*\.(q|v)_proj"  # a PEFT regex stays one string


def test_grpo_overrides():
    assert unsloth_grpo_overrides(ModelSection()) == {}
    assert unsloth_grpo_overrides(ModelSection(fast_inference=True)) == {"use_vllm": True, "vllm_mode": "colocate"}
    assert unsloth_grpo_overrides(ModelSection(dtype="float16")) == {"fp16": True, "bf16": False}
    assert unsloth_grpo_overrides(ModelSection(dtype="bfloat16", fast_inference=True)) == {
        "use_vllm": True, "vllm_mode": "colocate", "bf16": True, "fp16": False,
    }


def test_grpo_overrides_are_fields_of_the_installed_trl():
    fields = grpo_config_fields()
    every = unsloth_grpo_overrides(ModelSection(fast_inference=True, dtype="float16"))
    assert every and set(every) <= set(fields)


def test_shipped_recipes_translate(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "subset10k.yaml")
    kwargs = unsloth_load_kwargs(recipe.model, recipe.lora)
    assert kwargs["model_name"] == recipe.model.name
    assert kwargs["load_in_4bit"] is recipe.model.load_in_4bit
    assert kwargs["max_lora_rank"] >= recipe.lora.r
    peft = unsloth_peft_kwargs(recipe.lora, recipe.data.seed)
    assert peft["r"] == recipe.lora.r and isinstance(peft["target_modules"], list)


def test_adapter_config_detects_adapter_folders(tmp_path):
    assert adapter_config(tmp_path) is None
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 4, "base_model_name_or_path": "base"}))
    assert adapter_config(tmp_path) == {"r": 4, "base_model_name_or_path": "base"}
    (tmp_path / "adapter_config.json").write_text("{not json")
    with pytest.raises(UserError, match="adapter config"):
        adapter_config(tmp_path)


def test_fast_inference_without_cuda_is_a_user_error_before_unsloth_loads(monkeypatch):
    cpu = Hardware(cuda=False, gpu_name=None, bf16=False, unsloth_installed=True, vllm_installed=True)
    monkeypatch.setattr("utils.models._unsloth.detect_hardware", lambda: cpu)
    with pytest.raises(UserError, match="fast_inference: true needs a CUDA GPU"):
        load_with_unsloth(ModelSection(name="unused", fast_inference=True), LoraSection(), seed=0)
    gpu_no_vllm = Hardware(cuda=True, gpu_name="T4", bf16=False, unsloth_installed=True, vllm_installed=False)
    monkeypatch.setattr("utils.models._unsloth.detect_hardware", lambda: gpu_no_vllm)
    with pytest.raises(UserError, match="vLLM is not installed"):
        load_with_unsloth(ModelSection(name="unused", fast_inference=True), LoraSection(), seed=0)
