"""The Unsloth backend for real, on CPU (make test-unsloth, in .venv-unsloth): load the tiny Qwen2 through
`load_with_unsloth`, LoRA through Unsloth's get_peft_model, GRPO steps with TRL that change the weights,
and a saved PEFT adapter continued through Unsloth.

Without a GPU Unsloth runs its CPU backend (unsloth_zoo.cpu: transformers + PEFT, bitsandbytes 4-bit,
no vLLM); the CUDA path (fast LoRA kernels, vLLM generation) is tests/test_gpu.py.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from tests.grpo_helpers import GROUP, lora_weights, run_grpo_steps, tiny_recipe, train_watching_batches
from utils.config import LoraSection, ModelSection
from utils.models import load_with_unsloth, unsloth_grpo_overrides

pytestmark = [
    pytest.mark.unsloth,
    pytest.mark.skipif(importlib.util.find_spec("unsloth") is None, reason="Unsloth is not installed (make setup-unsloth)"),
]


@pytest.fixture(scope="session", autouse=True)
def _unsloth_imported_first():
    """Unsloth patches transformers / PEFT / TRL on import; the session fixtures (tiny model) import
    transformers, so import Unsloth before them, as the trainer must."""
    import unsloth  # noqa: F401


def _section(name: Path | str, **changes) -> ModelSection:
    return ModelSection(name=str(name), backend="unsloth", max_seq_length=256, **changes)


@pytest.mark.parametrize("load_in_4bit", [False, True], ids=["16bit", "4bit"])
def test_load_apply_lora_and_grpo_steps_change_weights(tiny_model_dir, tmp_path, load_in_4bit):
    from peft import PeftModel

    model_section = _section(tiny_model_dir, load_in_4bit=load_in_4bit)
    model, tokenizer = load_with_unsloth(model_section, LoraSection(r=8, alpha=16), seed=0)

    assert isinstance(model, PeftModel)
    assert model.config.model_type == "qwen2" and tokenizer.eos_token == "<|im_end|>"
    config = model.peft_config["default"]
    assert config.r == 8 and config.lora_alpha == 16
    assert set(config.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    four_bit = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    assert bool(four_bit) == load_in_4bit  # bitsandbytes' CPU backend quantizes the projections
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)  # the base stays frozen

    before = lora_weights(model)
    trainer = run_grpo_steps(model, tokenizer, str(tmp_path / "run"), use_cpu=True, **unsloth_grpo_overrides(model_section))
    after = lora_weights(model)

    assert trainer.state.global_step == 2
    logs = [entry for entry in trainer.state.log_history if "reward_std" in entry]
    assert len(logs) == 2 and any(entry["reward_std"] > 0 for entry in logs)
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    # lora_B starts at zero: it moves only through a non-zero policy gradient.
    assert any(".lora_B." in n for n in changed), "no LoRA B matrix changed after two GRPO steps"


def test_adapter_folder_loads_its_base_and_keeps_training_that_adapter(tiny_model_dir, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    # An adapter as our hf backend or any PEFT run saves it: non-zero B, so equality means something.
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    adapter_dir = tmp_path / "adapter"
    get_peft_model(base, config).save_pretrained(adapter_dir)
    saved = load_file(adapter_dir / "adapter_model.safetensors")
    assert any(".lora_B." in k and v.abs().sum() > 0 for k, v in saved.items())

    # The recipe's lora section (r=32, all-linear) must not replace the adapter being continued.
    model, tokenizer = load_with_unsloth(_section(adapter_dir, load_in_4bit=False), LoraSection(), seed=0)

    assert isinstance(model, PeftModel)
    assert model.peft_config["default"].r == 4
    loaded = get_peft_model_state_dict(model)
    assert set(loaded) == set(saved)
    for key, value in saved.items():
        assert torch.equal(loaded[key].cpu(), value), key
    lora_params = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora_params and all(p.requires_grad for p in lora_params.values())

    trainer = run_grpo_steps(model, tokenizer, str(tmp_path / "run"), steps=1, use_cpu=True)
    assert trainer.state.global_step == 1
    continued = get_peft_model_state_dict(model)
    assert any(not torch.equal(continued[k].cpu(), saved[k]) for k in saved), "training did not update the loaded adapter"


def test_grpo_train_script_runs_end_to_end_on_the_unsloth_backend(tiny_model_dir, tmp_path, run_script):
    """The whole main job (recipe, data, rewards, trainer, callbacks) through Unsloth, trl 1.15, datasets 4.x."""
    import json

    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", "--no-progress",
                        "--set", "model.backend=unsloth", "--set", f"model.name={tiny_model_dir}",
                        "--set", f"output.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Backend    unsloth" in result.stdout and "done: 4 steps" in result.stdout
    run = tmp_path / "smoke_cpu"
    assert (run / "checkpoint-4" / "checkpoint.complete").is_file()
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in steps if "loss" in m] == [1, 2, 3, 4]
    assert (run / "best" / "best.json").is_file()


def test_hf_backend_with_unsloths_trl_on_cpu_is_a_one_line_error(tiny_model_dir, tmp_path, run_script):
    """Unsloth pins TRL 1.15, whose GRPOTrainer has no CPU log-prob path: refused before anything is written."""
    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", "--no-progress",
                        "--set", f"model.name={tiny_model_dir}", "--set", f"output.dir={tmp_path}")
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: TRL 1.15") and "on CPU use TRL >= 1.16" in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "smoke_cpu").exists()


@pytest.mark.parametrize("load_in_4bit", [False, True], ids=["16bit", "4bit"])
def test_unsloth_trained_adapter_merges_and_verifies(tiny_model_dir, tmp_path, load_in_4bit):
    """An adapter trained through Unsloth (two GRPO steps, saved as Unsloth saves it) exported by our merge:
    verified against base + adapter, and checked here against the model Unsloth trained, in memory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.export import ExportOptions, export

    model, tokenizer = load_with_unsloth(_section(tiny_model_dir, load_in_4bit=load_in_4bit), LoraSection(r=8, alpha=16), seed=0)
    run_grpo_steps(model, tokenizer, str(tmp_path / "run"), use_cpu=True)
    model.save_pretrained(tmp_path / "adapter")
    tokenizer.save_pretrained(tmp_path / "adapter")

    result = export(ExportOptions(tmp_path / "adapter", tmp_path / "merged", dtype="fp32"), log=lambda _: None)

    assert result.checks and all(c.passed for c in result.checks), [c.describe() for c in result.checks]
    assert result.adapter_effect > 1e-3  # the GRPO steps moved the adapter: the check can tell it from the base
    ids = AutoTokenizer.from_pretrained(result.out)("What is 3 + 4?", return_tensors="pt").input_ids
    merged = AutoModelForCausalLM.from_pretrained(result.out).eval()
    with torch.no_grad():
        got = merged(ids).logits
        trained = model.eval()(ids).logits.float()  # in bf16 (Unsloth's CPU dtype); 4-bit: the NF4 base it saw
    tolerance = 0.2 if load_in_4bit else 0.05  # NF4 / bf16 rounding of what training ran vs the fp32 merge
    assert (got - trained).abs().max() < tolerance


def test_dynamic_sampling_runs_through_unsloths_trainer(tiny_model_dir, tmp_path):
    """Dynamic sampling wraps TRL's generation seam on the trainer instance; Unsloth compiles its own GRPOTrainer
    (TRL 1.15 underneath) and must still call the wrapper and train on the merged batch (subset10k.yaml and
    colab_t4.yaml turn it on). Half the planted problems agree: they are dropped and refilled."""
    recipe = tiny_recipe(tiny_model_dir, tmp_path, "half_constant", "model.backend=unsloth", "training.max_steps=2",
                         "dynamic_sampling.enabled=true", "dynamic_sampling.max_extra_batches=10")
    batches, steps = train_watching_batches(recipe)

    assert len(batches) == 2 and len(steps) == 2  # the wrapper saw every generation batch
    for groups in batches:
        assert groups.shape == (1, GROUP) and (groups.abs().amax(dim=1) > 0).all(), groups
    assert sum(m["dynamic_sampling/extra_batches"] for m in steps) >= 1  # agreeing groups were replaced
    assert all(m["dynamic_sampling/cap_hit"] == 0 and math.isfinite(m["loss"]) for m in steps)
