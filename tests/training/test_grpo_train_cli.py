"""`scripts/grpo_train.py` as a user runs it: the dry-run plan, and one-line errors with exit code 2."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from tests.repo import ROOT


def test_dry_run_subset10k_prints_plan(run_script_here):
    code, out, err = run_script_here("grpo_train", "recipes/subset10k.yaml", "--dry-run")
    assert code == 0, err
    assert "Backend    hf: auto: no CUDA GPU on this machine" in out
    assert "open-r1/OpenR1-Math-220k [default]" in out and "subset: 10000" in out
    assert "accuracy x 1.0" in out and "learning_rate" in out and "(TRL: 1e-06)" in out
    assert "Output     checkpoints/subset10k/" in out
    assert "Traceback" not in err


BAD_RECIPES = {
    "missing": (None, "recipe file not found"),
    "yaml": ("model:\n  name: [x\n", "invalid YAML at line"),
    "unknown": ("model: {nmae: x}\n", "model.nmae: unknown key (did you mean 'name'?)"),
    "type": ("data: {subset: many}\n", "data.subset: expected int or null"),
    "trl": ("training: {num_generation: 4}\n", "did you mean 'num_generations'?"),
    "cycle": ("extends: bad.yaml\n", "extends cycle"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_bad_recipe_exits_2_with_one_line(run_script_here, tmp_path, case):
    text, expected = BAD_RECIPES[case]
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    code, _, err = run_script_here("grpo_train", path, "--set", f"output.dir={tmp_path / 'runs'}", "--dry-run")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert not (tmp_path / "runs").exists()


def test_malformed_set_exits_2(run_script):
    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", "--set", "training.learning_rate", "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --set training.learning_rate: expected section.key=value (e.g. training.learning_rate=1e-5)"
    )


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_use_vllm_without_vllm_exits_2_and_says_how_to_get_it(run_script_here, tmp_path):
    code, _, err = run_script_here("grpo_train", "recipes/smoke_cpu.yaml", "--set", "training.use_vllm=true",
                                   "--set", f"output.dir={tmp_path}", "--dry-run")
    assert code == 2
    assert err.strip() == ("error: training.use_vllm: true, but vLLM is not installed here (make setup-gpu "
                           "on a CUDA machine, make setup-vllm for vLLM's CPU build)")


def _adapter_without_base(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "%s"}' % (tmp_path / "gone"))
    return adapter


def _eval_file(tmp_path, text):
    (tmp_path / "mine.jsonl").write_text(text)
    return "eval.benchmarks=[{name: " + str(tmp_path / "mine.jsonl") + "}]"


# What the run would read only after minutes of loading fails in --dry-run already (exit 2, one line).
MISSING_PATHS = {
    "data": (lambda tmp: ["data.dataset=" + str(tmp / "nope.jsonl")], "nope.jsonl: file not found"),
    "decontaminate": (lambda tmp: ["data.filters.decontaminate=[" + str(tmp / "evalset.jsonl") + "]"],
                      "data.filters.decontaminate: '"),
    "eval_missing": (lambda tmp: ["eval.benchmarks=[{name: " + str(tmp / "mine.jsonl") + "}]"],
                     "eval: {tmp}/mine.jsonl: unknown benchmark and no such file"),
    "eval_unreadable": (lambda tmp: [_eval_file(tmp, "{not json\n")], "{tmp}/mine.jsonl: line 1: invalid JSON"),
    "eval_no_gold": (lambda tmp: [_eval_file(tmp, '{"problem": "1+1?", "answer": ""}\n')],
                     "eval: {tmp}/mine.jsonl: no problems with a gold answer in {tmp}/mine.jsonl"),
    "model": (lambda tmp: ["model.name=" + str(tmp / "no-model")], "model.name: " + "{tmp}/no-model: no such folder"),
    "adapter_base": (lambda tmp: ["model.name=" + str(_adapter_without_base(tmp))],
                     "the adapter's base model: {tmp}/gone: no such folder"),
}


@pytest.mark.parametrize("case", sorted(MISSING_PATHS))
def test_dry_run_checks_every_path_the_run_reads(run_script_here, tmp_path, tiny_model_dir, case):
    make_overrides, expected = MISSING_PATHS[case]
    sets = [f"model.name={tiny_model_dir}", f"output.dir={tmp_path / 'runs'}", *make_overrides(tmp_path)]
    args = [a for s in sets for a in ("--set", s)]
    code, out, err = run_script_here("grpo_train", "recipes/smoke_cpu.yaml", *args, "--dry-run")
    assert code == 2, out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected.format(tmp=tmp_path) in lines[0], err
    assert not (tmp_path / "runs").exists()


def test_dry_run_passes_when_every_path_exists(run_script, tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("GRPO_MATH_CPU_BF16", "1")  # as on a CPU with native bf16, whichever CPU runs the tests
    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", "--set", f"model.name={tiny_model_dir}",
                        "--set", f"output.dir={tmp_path / 'runs'}", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "generation: bf16 merged copy of the policy (CPU)" in result.stdout
    assert not (tmp_path / "runs").exists()


def test_dry_run_without_a_data_folder_plans_with_the_hub_copies(tmp_path):
    """A fresh clone (no ../shared/data beside it, no $GRPO_MATH_DATA_DIR): subset10k's decontamination sets and
    watched GSM8K are named on the hub, and nothing is fetched (the hub is made unreachable)."""
    clone = tmp_path / "grpo-math"
    for part in ("scripts", "utils", "recipes"):
        shutil.copytree(ROOT / part, clone / part, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "GRPO_MATH_DATA_DIR"} | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "scripts/grpo_train.py", "recipes/subset10k.yaml", "--dry-run"],
                            cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    data = next(line for line in result.stdout.splitlines() if line.startswith("Data "))
    assert ("decontaminate: math500 <- HuggingFaceH4/MATH-500 [default] split=test (hub), gsm8k <- openai/gsm8k "
            "[main] split=test (hub), aime24 <- HuggingFaceH4/aime_2024 [default] split=train (hub), amc23 <- "
            "math-ai/amc23 [default] split=test (hub)") in data
    assert "eval: gsm8k <- openai/gsm8k [main] split=test (hub)" in data
