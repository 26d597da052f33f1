"""The generation copy used for GRPO sampling on CPU (bf16 or fp32): same policy as the PEFT model, kept in sync."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.repo import ROOT
from utils.training import GenerationCopy


def peft_model(model_dir, seed: int = 0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # PEFT starts B at zero: make the adapter matter
    return model


def prompt_ids(tokenizer) -> dict:
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 12 * 7?"}], tokenize=False,
                                         add_generation_prompt=True)
    return tokenizer([text, text + " 8"], return_tensors="pt", padding=True)


def last_logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits[:, -1].float()


def test_copy_computes_the_adapted_policy(tiny_model_dir, tiny_tokenizer):
    model = peft_model(tiny_model_dir)
    batch = prompt_ids(tiny_tokenizer)
    copy = GenerationCopy(model)
    copy.sync()
    adapted, mirrored = last_logits(model, batch), last_logits(copy.copy, batch)
    with model.disable_adapter():
        base_only = last_logits(model, batch)
    assert (adapted - base_only).abs().max() > 0.05  # the adapter changes the output...
    assert (adapted - mirrored).abs().max() < 0.05  # ...and the copy follows it up to bf16 rounding
    assert next(copy.copy.parameters()).dtype == torch.bfloat16


def test_copy_resyncs_only_after_an_optimizer_step(tiny_model_dir, tiny_tokenizer):
    model = peft_model(tiny_model_dir)
    batch = prompt_ids(tiny_tokenizer)
    copy = GenerationCopy(model)
    kwargs = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": tiny_tokenizer.pad_token_id}
    copy.generate(**batch, **kwargs)
    copy.generate(**batch, **kwargs)
    assert copy.syncs == 1
    with torch.no_grad():  # an optimizer step updates trainable weights in place...
        for name, param in model.named_parameters():
            if "lora_A" in name:
                param.add_(0.3)
    copy.on_optimizer_step(None, None, None)  # ...and the trainer tells the copy
    copy.generate(**batch, **kwargs)
    assert copy.syncs == 2
    assert (last_logits(model, batch) - last_logits(copy.copy, batch)).abs().max() < 0.05


def test_copy_of_a_fully_finetuned_model(tiny_model_dir, tiny_tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    batch = prompt_ids(tiny_tokenizer)
    copy = GenerationCopy(model)
    copy.sync()
    assert (last_logits(model, batch) - last_logits(copy.copy, batch)).abs().max() < 0.05


@pytest.mark.parametrize(("bf16", "dtype"), [(True, torch.bfloat16), (False, torch.float32)])
def test_training_samples_from_the_synced_copy(tiny_model_dir, tmp_path, bf16, dtype):
    from utils.config import load_recipe
    from utils.training import prepare_training

    recipe = load_recipe(ROOT / "recipes" / "smoke_cpu.yaml", [
        f"model.name={tiny_model_dir}", f"output.dir={tmp_path}", "eval.every_steps=0", "training.max_steps=3",
        f"model.cpu_bf16_generation={str(bf16).lower()}",
    ])
    run = prepare_training(recipe, force=True, progress=False)
    copy = getattr(run.trainer.model.generate, "__self__", None)
    assert isinstance(copy, GenerationCopy) and next(copy.copy.parameters()).dtype == dtype
    run.train()
    assert copy.syncs == 3  # one generation per step, each after the previous step's update


def test_an_fp32_copy_computes_the_adapted_policy_exactly(tiny_model_dir, tiny_tokenizer):
    """The copy a CPU without native bf16 samples from: the PEFT model's output up to fp32 rounding."""
    model = peft_model(tiny_model_dir)
    batch = prompt_ids(tiny_tokenizer)
    copy = GenerationCopy(model, "fp32")
    copy.sync()
    assert (last_logits(model, batch) - last_logits(copy.copy, batch)).abs().max() < 1e-4
    kwargs = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": tiny_tokenizer.pad_token_id}
    with torch.no_grad():
        assert torch.equal(model.generate(**batch, **kwargs), copy.generate(**batch, **kwargs))


def test_a_cpu_without_native_bf16_trains_in_fp32_with_the_other_cpu_speed_ups(tiny_model_dir, tmp_path, monkeypatch):
    from trl.trainer import utils as trl_utils

    from utils.config import load_recipe
    from utils.training import prepare_training

    monkeypatch.setenv("GRPO_MATH_CPU_BF16", "0")  # the decision of an AVX2-only CPU, on any CPU
    recipe = load_recipe(ROOT / "recipes" / "smoke_cpu.yaml", [
        f"model.name={tiny_model_dir}", f"output.dir={tmp_path}", "eval.every_steps=0", "training.max_steps=2",
        "rewards.tests.grpo_helpers.varying_length_reward=1.0",  # a reward that varies: a real gradient
    ])
    run = prepare_training(recipe, force=True, progress=False)
    assert run.trainer.accelerator.mixed_precision == "no"  # no bf16 autocast
    copy = getattr(run.trainer.model.generate, "__self__", None)  # sampling from an fp32 merged copy
    assert isinstance(copy, GenerationCopy) and next(copy.copy.parameters()).dtype == torch.float32
    assert not run.trainer.args.gradient_checkpointing and trl_utils._use_triton(torch.device("cpu"))
    before = {n: p.detach().clone() for n, p in run.trainer.model.named_parameters() if "lora_B" in n}
    run.train()
    after = dict(run.trainer.model.named_parameters())
    assert all(after[n].dtype == torch.float32 for n in before)
    assert any(not torch.equal(before[n], after[n].detach()) for n in before)  # it learned, in fp32
