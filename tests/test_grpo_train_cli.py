"""`scripts/grpo_train.py` as a user runs it: the dry-run plan, and one-line errors with exit code 2."""

import importlib.util

import pytest


def test_dry_run_subset10k_prints_plan(run_script):
    result = run_script("grpo_train", "recipes/subset10k.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Backend    hf: auto: no CUDA GPU on this machine" in out
    assert "open-r1/OpenR1-Math-220k [default]" in out and "subset: 10000" in out
    assert "accuracy x 1.0" in out and "learning_rate" in out and "(TRL: 1e-06)" in out
    assert "Output     checkpoints/subset10k/" in out
    assert "Traceback" not in result.stderr


BAD_RECIPES = {
    "missing": (None, "recipe file not found"),
    "yaml": ("model:\n  name: [x\n", "invalid YAML at line"),
    "unknown": ("model: {nmae: x}\n", "model.nmae: unknown key (did you mean 'name'?)"),
    "type": ("data: {subset: many}\n", "data.subset: expected int or null"),
    "trl": ("training: {num_generation: 4}\n", "did you mean 'num_generations'?"),
    "cycle": ("extends: bad.yaml\n", "extends cycle"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_bad_recipe_exits_2_with_one_line(run_script, tmp_path, case):
    text, expected = BAD_RECIPES[case]
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    result = run_script("grpo_train", path, "--set", f"output.dir={tmp_path / 'runs'}", "--dry-run")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()


def test_malformed_set_exits_2(run_script):
    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", "--set", "training.learning_rate", "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --set training.learning_rate: expected section.key=value (e.g. training.learning_rate=1e-5)"
    )


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_use_vllm_without_vllm_exits_2_and_says_how_to_get_it(run_script, tmp_path):
    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", "--set", "training.use_vllm=true",
                        "--set", f"output.dir={tmp_path}", "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: training.use_vllm: true, but vLLM is not installed here (make setup-gpu "
                                     "on a CUDA machine, make setup-vllm for vLLM's CPU build)")
