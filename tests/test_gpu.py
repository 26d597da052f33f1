"""The Unsloth GPU path for real: 4-bit load + vLLM engine (fast_inference), fast generation, and a GRPO
step whose generation goes through that engine. Needs a CUDA GPU, Unsloth and vLLM (make setup-gpu)
and a small local model folder:

    GRPO_GPU_TEST_MODEL=/path/to/Qwen2.5-0.5B-Instruct .venv/bin/pytest -m gpu

Skipped, with the reason, wherever one of those is missing.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from grpo_helpers import lora_weights, run_grpo_steps

from utils.recipe import LoraSection, ModelSection
from utils.unsloth_backend import load_with_unsloth, unsloth_grpo_overrides

MODEL_ENV = "GRPO_GPU_TEST_MODEL"


def _missing() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    for module, hint in (("unsloth", "make setup-gpu"), ("vllm", "make setup-gpu")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed ({hint})"
    if not os.environ.get(MODEL_ENV):
        return f"set {MODEL_ENV} to a small local model folder (e.g. Qwen2.5-0.5B-Instruct); no hub access is assumed"
    return None


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


@pytest.fixture(scope="module")
def loaded():
    """One 4-bit + vLLM load for the module: the engine takes a fixed share of GPU memory."""
    import unsloth  # noqa: F401  # before trl / transformers: it rewrites TRL's GRPO trainer on a GPU

    path = Path(os.environ[MODEL_ENV])
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        pytest.fail(f"{MODEL_ENV}={path}: not a model folder (no config.json)")
    section = ModelSection(
        name=str(path), backend="unsloth", load_in_4bit=True, fast_inference=True,
        max_seq_length=512, gpu_memory_utilization=0.3,
    )
    model, tokenizer = load_with_unsloth(section, LoraSection(r=8, alpha=16), seed=0)
    return section, model, tokenizer


def test_4bit_load_has_a_vllm_engine_and_generates(loaded):
    from vllm import SamplingParams

    _, model, tokenizer = loaded
    quant = model.config.quantization_config
    quant = quant if isinstance(quant, dict) else quant.to_dict()
    assert quant.get("load_in_4bit") is True
    assert getattr(model, "vllm_engine", None) is not None
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 12 * 7? Put the answer in \\boxed{}."}], tokenize=False, add_generation_prompt=True
    )
    outputs = model.fast_generate([text], sampling_params=SamplingParams(temperature=0.8, max_tokens=16, seed=0))
    assert len(outputs) == 1 and len(outputs[0].outputs[0].token_ids) > 0


def test_grpo_step_generates_through_unsloths_vllm_engine_and_updates_lora(loaded, tmp_path):
    section, model, tokenizer = loaded
    before = lora_weights(model)
    trainer = run_grpo_steps(model, tokenizer, str(tmp_path / "run"), steps=1, **unsloth_grpo_overrides(section))

    assert trainer.args.use_vllm and trainer.args.vllm_mode == "colocate"
    # Generation uses the engine Unsloth loaded, not a second TRL-built one: TRL >= 1.x keeps it on
    # trainer.vllm_generation (Unsloth patches VLLMGeneration to adopt model.vllm_engine), older on trainer.
    generation = getattr(trainer, "vllm_generation", trainer)
    assert getattr(generation, "llm", None) is model.vllm_engine
    assert trainer.state.global_step == 1
    after = lora_weights(model)
    assert any(not torch.equal(before[n], after[n].to(before[n].device)) for n in before)
