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


def _adapter_without_base(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "%s"}' % (tmp_path / "gone"))
    return adapter


# What the run would read only after minutes of loading fails in --dry-run already (exit 2, one line).
MISSING_PATHS = {
    "data": (lambda tmp: ["data.dataset=" + str(tmp / "nope.jsonl")], "nope.jsonl: file not found"),
    "decontaminate": (lambda tmp: ["data.filters.decontaminate=[" + str(tmp / "evalset.jsonl") + "]"],
                      "data.filters.decontaminate: '"),
    "model": (lambda tmp: ["model.name=" + str(tmp / "no-model")], "model.name: " + "{tmp}/no-model: no such folder"),
    "adapter_base": (lambda tmp: ["model.name=" + str(_adapter_without_base(tmp))],
                     "the adapter's base model: {tmp}/gone: no such folder"),
}


@pytest.mark.parametrize("case", sorted(MISSING_PATHS))
def test_dry_run_checks_every_path_the_run_reads(run_script, tmp_path, tiny_model_dir, case):
    make_overrides, expected = MISSING_PATHS[case]
    sets = [f"model.name={tiny_model_dir}", f"output.dir={tmp_path / 'runs'}", *make_overrides(tmp_path)]
    args = [a for s in sets for a in ("--set", s)]
    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", *args, "--dry-run")
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected.format(tmp=tmp_path) in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()


def test_dry_run_passes_when_every_path_exists(run_script, tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("GRPO_MATH_CPU_BF16", "1")  # as on a CPU with native bf16, whichever CPU runs the tests
    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", "--set", f"model.name={tiny_model_dir}",
                        "--set", f"output.dir={tmp_path / 'runs'}", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "generation: bf16 merged copy of the policy (CPU)" in result.stdout
    assert not (tmp_path / "runs").exists()
