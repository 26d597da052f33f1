"""The CUDA paths for real (pytest -m gpu on a machine with a GPU; make setup-gpu):

- Unsloth on CUDA: 4-bit load (bitsandbytes), Unsloth's LoRA, and GRPO steps through the GRPOTrainer
  Unsloth patches into TRL; grpo_train.py choosing Unsloth by itself (backend auto) and training.
- transformers + PEFT on CUDA: bitsandbytes 4-bit QLoRA GRPO through grpo_train.py (backend hf).
- vLLM: the 4-bit load with `fast_inference` (Unsloth's vLLM engine), fast generation, and a GRPO step
  whose generation goes through that engine. Needs vLLM besides Unsloth.

The model is a random Qwen2 with real head and projection shapes (head_dim 64, as Qwen2.5-0.5B), built
here; set GRPO_GPU_TEST_MODEL to a local model folder (e.g. Qwen2.5-0.5B-Instruct) to use a real one.
Each test is skipped, with the reason, where what it needs is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from tests.grpo_helpers import lora_weights, run_grpo_steps
from utils.config import LoraSection, ModelSection
from utils.models import load_with_unsloth, unsloth_grpo_overrides

MODEL_ENV = "GRPO_GPU_TEST_MODEL"


def _missing(*modules: str) -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (make setup-gpu)"
    return None


def _needs(*modules: str) -> pytest.MarkDecorator:
    reason = _missing(*modules)
    return pytest.mark.skipif(reason is not None, reason=str(reason))


NEEDS_UNSLOTH = _needs("unsloth", "bitsandbytes")
NEEDS_BNB = _needs("bitsandbytes")
NEEDS_VLLM = _needs("unsloth", "bitsandbytes", "vllm")
pytestmark = pytest.mark.gpu


@pytest.fixture(scope="session")
def gpu_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("unsloth") is not None:
        import unsloth  # noqa: F401  # before trl / transformers: it patches TRL's GRPO trainer on a GPU
    if os.environ.get(MODEL_ENV):
        path = Path(os.environ[MODEL_ENV])
        if not (path / "config.json").is_file():
            pytest.fail(f"{MODEL_ENV}={path}: not a model folder (no config.json)")
        return path
    from utils.models import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("gpu-qwen2"), hidden_size=256, layers=2)


def _four_bit_layers(model) -> list:
    return [m for m in model.modules() if type(m).__name__ == "Linear4bit"]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@NEEDS_UNSLOTH
def test_unsloth_4bit_lora_grpo_steps_on_cuda(gpu_model_dir, tmp_path):
    section = ModelSection(name=str(gpu_model_dir), backend="unsloth", load_in_4bit=True, max_seq_length=256)
    model, tokenizer = load_with_unsloth(section, LoraSection(r=8, alpha=16), seed=0)

    four_bit = _four_bit_layers(model)
    assert four_bit and all(m.weight.device.type == "cuda" for m in four_bit)
    before = lora_weights(model)
    trainer = run_grpo_steps(model, tokenizer, str(tmp_path / "run"), steps=2, **unsloth_grpo_overrides(section))

    # Unsloth swaps its own trainer into TRL on import (faster GRPO loss, its gradient checkpointing).
    assert "Unsloth" in type(trainer).__name__, type(trainer).__mro__
    assert trainer.state.global_step == 2
    assert any(entry.get("reward_std", 0) > 0 for entry in trainer.state.log_history)
    after = lora_weights(model)
    assert any(".lora_B." in n and not torch.equal(before[n], after[n]) for n in before), "no LoRA B matrix moved"


@pytest.mark.parametrize(("backend", "chosen"), [
    pytest.param("auto", "unsloth", marks=NEEDS_UNSLOTH, id="auto-picks-unsloth"),
    pytest.param("hf", "hf", marks=NEEDS_BNB, id="hf-bitsandbytes-qlora"),
])
def test_grpo_train_trains_4bit_on_cuda(gpu_model_dir, tmp_path, run_script, backend, chosen):
    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", "--no-progress",
                        "--set", f"model.backend={backend}", "--set", "model.load_in_4bit=true",
                        "--set", f"model.name={gpu_model_dir}", "--set", f"output.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Backend    {chosen}" in result.stdout and "done: 4 steps" in result.stdout, result.stdout[-3000:]
    run = tmp_path / "smoke_cpu"
    assert (run / "checkpoint-4" / "checkpoint.complete").is_file()
    assert (run / "best" / "best.json").is_file()
    if chosen == "hf":
        assert (run / "checkpoint-4" / "adapter_model.safetensors").is_file()
    steps = [m for m in _metrics(run) if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3, 4]
    assert all(m["peak_memory_mib"] > 0 for m in steps)  # read from the CUDA allocator


@pytest.fixture(scope="module")
def vllm_loaded(gpu_model_dir):
    """One 4-bit + vLLM load for the module: the engine takes a fixed share of GPU memory."""
    section = ModelSection(
        name=str(gpu_model_dir), backend="unsloth", load_in_4bit=True, fast_inference=True,
        max_seq_length=512, gpu_memory_utilization=0.3,
    )
    model, tokenizer = load_with_unsloth(section, LoraSection(r=8, alpha=16), seed=0)
    return section, model, tokenizer


@NEEDS_VLLM
def test_4bit_load_has_a_vllm_engine_and_generates(vllm_loaded):
    from vllm import SamplingParams

    _, model, tokenizer = vllm_loaded
    quant = model.config.quantization_config
    quant = quant if isinstance(quant, dict) else quant.to_dict()
    assert quant.get("load_in_4bit") is True
    assert getattr(model, "vllm_engine", None) is not None
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 12 * 7? Put the answer in \\boxed{}."}], tokenize=False, add_generation_prompt=True
    )
    outputs = model.fast_generate([text], sampling_params=SamplingParams(temperature=0.8, max_tokens=16, seed=0))
    assert len(outputs) == 1 and len(outputs[0].outputs[0].token_ids) > 0


@NEEDS_VLLM
def test_grpo_step_generates_through_unsloths_vllm_engine_and_updates_lora(vllm_loaded, tmp_path):
    section, model, tokenizer = vllm_loaded
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
