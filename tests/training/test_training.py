"""GRPO training end to end on CPU with the tiny model: run folder, learning, resume, signals, adapters."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.repo import ROOT
from utils.config import load_recipe
from utils.errors import UserError
from utils.runs import last_complete_checkpoint

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"


# Rewards differ within a group (a random model's accuracy is always 0, so its gradient is 0): a custom
# reward named by import path in the recipe, as a user adds one.
VARYING = "tests.grpo_helpers.varying_length_reward"


def smoke_recipe(tiny_model_dir: Path, out: Path, *extra: str):
    overrides = [f"model.name={tiny_model_dir}", f"output.dir={out}", "output.completions_every=1",
                 f"rewards.{VARYING}=1.0", *extra]
    return load_recipe(SMOKE, overrides)


def lora_tensors(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(folder / "adapter_model.safetensors").items() if "lora_" in k}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    """One 4-step LoRA run shared by the tests that read its folder."""
    from utils.training import run_training

    recipe = smoke_recipe(tiny_model_dir, tmp_path_factory.mktemp("runs"))
    return recipe, run_training(recipe, progress=False)


def test_lora_run_writes_a_complete_run_folder(lora_run):
    recipe, outcome = lora_run
    run = outcome.run_dir
    assert outcome.global_step == 4 and outcome.stopped_by is None
    assert (run / "recipe.resolved.yaml").is_file()
    from utils.training import set_up_run

    # the recipe as the run used it: every default filled in, the default prompt bound included
    assert load_recipe(run / "recipe.resolved.yaml").to_dict() == set_up_run(recipe).recipe.to_dict()
    assert outcome.last_checkpoint == run / "checkpoint-4"
    assert (run / "checkpoint-4" / "checkpoint.complete").is_file()
    from trl.trainer import utils as trl_utils

    assert trl_utils._use_triton(torch.device("cpu"))  # a CPU run scores completion tokens only (test_cpu_logprobs)
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]  # save_total_limit 2

    metrics = read_jsonl(run / "metrics.jsonl")
    steps = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3, 4]
    for m in steps:
        for key in ("rewards/accuracy/mean", "rewards/accuracy/std", f"rewards/{VARYING}/mean", "reward",
                    "completions/mean_length", "step_time_s", "tokens_per_s", "peak_memory_mib"):
            assert key in m, key
    evals = [m for m in metrics if "eval/accuracy" in m]
    assert [m["step"] for m in evals] == [0, 2, 4] and all(m["eval/total"] == 8 for m in evals)

    completions = read_jsonl(run / "completions.jsonl")
    assert {c["step"] for c in completions} == {1, 2, 3, 4}
    sample = completions[0]
    assert sample["prompt"] and "completion" in sample and "extracted" in sample and sample["gold"] is not None
    assert set(sample["rewards"]) == {"accuracy", "format", VARYING}

    assert {p.name for p in (run / "plots").glob("*.png")} == {"reward.png", "accuracy.png", "completion_length.png",
                                                             "learning_signal.png"}
    best = json.loads((run / "best" / "best.json").read_text())
    assert best["step"] == 0 and best["accuracy"] == 0.0  # a random model: the first eval stays the best
    assert (run / "best" / "adapter_model.safetensors").is_file()


def test_lora_weights_change_when_a_reward_varies(lora_run, tiny_model_dir):
    _, outcome = lora_run
    trained = lora_tensors(outcome.run_dir / "checkpoint-4")
    lora_b = [v for k, v in trained.items() if "lora_B" in k]
    assert lora_b and any(v.abs().max() > 0 for v in lora_b)  # PEFT initialises lora_B to zero
    assert lora_tensors(outcome.run_dir / "checkpoint-2").keys() == trained.keys()
    changed = [k for k, v in trained.items() if not torch.equal(v, lora_tensors(outcome.run_dir / "checkpoint-2")[k])]
    assert changed


def test_resume_continues_at_the_right_step(lora_run, tmp_path):
    from utils.training import run_training

    recipe, outcome = lora_run
    run = tmp_path / recipe.run_name
    shutil.copytree(outcome.run_dir, run)
    resumed = load_recipe(recipe.source, [f"model.name={recipe.model.name}", f"output.dir={tmp_path}",
                                          "output.completions_every=1", f"rewards.{VARYING}=1.0",
                                          "training.max_steps=6"])
    result = run_training(resumed, resume=True, progress=False)
    assert result.global_step == 6
    state = json.loads((run / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    steps = [m["step"] for m in read_jsonl(run / "metrics.jsonl") if "loss" in m]
    assert steps == [1, 2, 3, 4, 5, 6]  # no step logged twice


def test_run_folder_of_another_recipe_is_refused(lora_run, tmp_path, tiny_model_dir):
    from utils.training import run_training

    recipe, outcome = lora_run
    shutil.copytree(outcome.run_dir, tmp_path / recipe.run_name)
    other = smoke_recipe(tiny_model_dir, tmp_path, "training.learning_rate=0.001")
    with pytest.raises(UserError, match="holds a run of a different recipe"):
        run_training(other, progress=False)
    same = smoke_recipe(tiny_model_dir, tmp_path)
    with pytest.raises(UserError, match="--resume to continue it or --force"):
        run_training(same, progress=False)
    with pytest.raises(UserError, match="nothing to resume"):
        run_training(smoke_recipe(tiny_model_dir, tmp_path / "empty"), resume=True, progress=False)


@pytest.mark.parametrize(("backend", "cuda", "trl", "refused"), [
    ("hf", False, "1.15.0", True),  # TRL 1.15's log-prob kernel is Triton-only: fails at step 1 on CPU
    ("hf", False, "1.16.0", False),
    ("hf", True, "1.15.0", False),
    ("unsloth", False, "1.15.0", False),  # Unsloth's trainer brings its own loss
])
def test_trl_without_a_cpu_path_is_refused_on_cpu(backend, cuda, trl, refused):
    from utils.models import Hardware
    from utils.training import check_trl_trains_here

    hw = Hardware(cuda=cuda, gpu_name="T4" if cuda else None, bf16=False, unsloth_installed=True, vllm_installed=False)
    if refused:
        with pytest.raises(UserError, match=r"TRL 1.15.0's GRPOTrainer needs a GPU .* on CPU use TRL >= 1.16"):
            check_trl_trains_here(backend, hw, trl)
    else:
        check_trl_trains_here(backend, hw, trl)


@pytest.mark.parametrize(("gpu", "bf16", "expected"), [
    ("Tesla T4", False, {"fp16": True, "bf16": False}),  # Turing has no bf16
    ("NVIDIA L4", True, {"bf16": True, "fp16": None}),  # Unsloth loads bf16 there: fp16 would raise in its trainer
])
def test_colab_t4_precision_is_the_machines(gpu, bf16, expected):
    from utils.models import Hardware
    from utils.training import grpo_config_kwargs

    hw = Hardware(cuda=True, gpu_name=gpu, bf16=bf16, unsloth_installed=True, vllm_installed=True)
    kwargs = grpo_config_kwargs(load_recipe(ROOT / "recipes" / "colab_t4.yaml"), hw, "unsloth")
    assert {key: kwargs.get(key) for key in expected} == expected


@pytest.mark.parametrize(("capability", "strict", "kept"), [
    ((7, 5), False, False),  # a T4: vLLM >= 0.12 has no attention backend for it
    ((7, 5), True, True),  # model.strict keeps what the recipe says
    ((8, 0), False, True),  # A100
    ((8, 9), False, True),  # L4
])
def test_fast_inference_is_off_on_a_gpu_the_pinned_vllm_cannot_run(capability, strict, kept):
    import utils.training._setup as setup
    from utils.models import Hardware

    hw = Hardware(cuda=True, gpu_name="Tesla T4", bf16=capability >= (8, 0), unsloth_installed=True,
                  vllm_installed=True, compute_capability=capability)
    recipe = load_recipe(ROOT / "recipes" / "colab_t4.yaml", [f"model.strict={str(strict).lower()}"])
    lines = setup.fit_to_gpu(recipe, hw, "unsloth")
    assert recipe.model.fast_inference is kept
    said = [line for line in lines if line.startswith("model.fast_inference: true -> false (Tesla T4, compute "
                                                      "capability 7.5: vLLM >= 0.12 has no attention backend")]
    assert len(said) == (not kept) and len(lines) == len(said)


GIB = 2**30


@pytest.mark.parametrize(("cuda", "model", "recipe_sets", "ram", "checkpointing"), [
    (False, "tiny", [], 24 * GIB, False),  # CPU, activations fit: off, said in the plan
    (False, "tiny", ["training.gradient_checkpointing=true"], 24 * GIB, True),  # the recipe decides
    (False, "tiny", [], 1000, True),  # a machine they would crowd: TRL's default
    (False, "Qwen/Qwen2.5-0.5B-Instruct", [], 24 * GIB, True),  # a hub id: no config read, TRL's default
    (True, "tiny", [], 24 * GIB, True),  # GPUs keep TRL's default
])
def test_gradient_checkpointing_is_off_on_cpu_where_activations_fit(tiny_model_dir, tmp_path, monkeypatch, cuda,
                                                                     model, recipe_sets, ram, checkpointing):
    import utils.training._setup as setup
    from utils.models import Hardware

    hw = Hardware(cuda=cuda, gpu_name="T4" if cuda else None, bf16=False, unsloth_installed=False,
                  vllm_installed=False)
    monkeypatch.setattr(setup.os, "sysconf", lambda name: {"SC_PAGE_SIZE": 1, "SC_PHYS_PAGES": ram}[name])
    monkeypatch.setattr(setup, "check_run_paths", lambda recipe: "rows")  # a hub id is not looked up here
    recipe = smoke_recipe(tiny_model_dir, tmp_path, *recipe_sets, *([f"model.name={model}"] if model != "tiny" else []))
    run = setup.set_up_run(recipe, hw)
    assert run.config.gradient_checkpointing is checkpointing
    said = [line for line in run.adjustments if line.startswith("training.gradient_checkpointing: false")]
    assert len(said) == (not checkpointing)


def test_half_written_checkpoint_is_never_resumed(tmp_path):
    run = tmp_path / "run"
    good = run / "checkpoint-2"
    good.mkdir(parents=True)
    (good / "trainer_state.json").write_text("{}")
    (good / "checkpoint.complete").write_text("{}")
    half = run / "checkpoint-4"
    half.mkdir()
    (half / "adapter_model.safetensors").write_bytes(b"partial")
    assert last_complete_checkpoint(run) == good


def test_full_finetuning_updates_the_model(tiny_model_dir, tmp_path):
    from utils.training import run_training

    recipe = smoke_recipe(tiny_model_dir, tmp_path, "lora.enabled=false", "training.max_steps=2",
                          "eval.every_steps=0", "training.learning_rate=0.01")
    outcome = run_training(recipe, progress=False)
    saved = load_file(outcome.run_dir / "checkpoint-2" / "model.safetensors")
    original = load_file(tiny_model_dir / "model.safetensors")
    assert not (outcome.run_dir / "checkpoint-2" / "adapter_config.json").exists()
    assert any(not torch.equal(saved[k].float(), original[k].float()) for k in original)


def test_adapter_starting_point_continues_that_adapter(lora_run, tmp_path, tiny_model_dir):
    from utils.models import load_model_and_tokenizer
    from utils.training import run_training

    _, outcome = lora_run
    adapter = outcome.run_dir / "checkpoint-4"
    saved = lora_tensors(adapter)
    recipe = smoke_recipe(tiny_model_dir, tmp_path, f"model.name={adapter}", "training.max_steps=2",
                          "eval.every_steps=0")
    loaded = load_model_and_tokenizer(recipe)
    assert loaded.adapter_from == str(adapter) and Path(loaded.base_name) == tiny_model_dir
    state = {k: v for k, v in loaded.model.state_dict().items() if "lora_" in k}
    for key, value in saved.items():  # PEFT names the active adapter "default" in memory
        in_memory = key.replace(".weight", ".default.weight")
        assert torch.equal(state[in_memory], value), key
    result = run_training(recipe, progress=False)
    continued = lora_tensors(result.run_dir / "checkpoint-2")
    assert continued.keys() == saved.keys()
    assert any(not torch.equal(continued[k], saved[k]) for k in saved)


def test_sigterm_saves_a_loadable_checkpoint_and_the_printed_command_resumes(tiny_model_dir, tmp_path):
    args = ["scripts/grpo_train.py", str(SMOKE), "--no-progress", "--set", f"model.name={tiny_model_dir}",
            "--set", f"output.dir={tmp_path}", "--set", "training.save_steps=1000", "--set", "eval.every_steps=0"]
    proc = subprocess.Popen([sys.executable, *args, "--set", "training.max_steps=500"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = tmp_path / "smoke_cpu" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output  # 128 + SIGTERM: stopped, not finished (issue 24)
    assert "stopped by SIGTERM" in output
    checkpoint = last_complete_checkpoint(tmp_path / "smoke_cpu")
    assert checkpoint is not None
    step = int(checkpoint.name.split("-")[1])
    assert 2 <= step < 500

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), checkpoint)  # loads

    # the hint is a command that works as printed: this venv's python, the recipe, every --set, --resume
    hint = next(line for line in output.splitlines() if line.startswith("continue with: "))
    command = shlex.split(hint.removeprefix("continue with: "))
    assert command[-1] == "--resume" and f"output.dir={tmp_path}" in command and "training.max_steps=500" in command
    assert (ROOT / command[0]).resolve() == Path(sys.executable).resolve()
    resumed = subprocess.run([*command, "--set", f"training.max_steps={step + 1}"],  # a nearer goal: ends soon
                             cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from {checkpoint}" in resumed.stdout
    assert "Kept " in resumed.stdout  # the data report is printed before training
    assert f"done: {step + 1} steps" in resumed.stdout


@pytest.mark.parametrize(("interval", "plotted_during_training"), [(0.0, True), (3600.0, False)])
def test_plots_refresh_by_wall_time_and_always_at_the_end(tmp_path, interval, plotted_during_training):
    from types import SimpleNamespace

    from utils.training import RewardRecorder, RunMonitor

    monitor = RunMonitor(tmp_path, RewardRecorder(), completions_every=0, completions_sample=0, plots=True,
                         plot_interval_s=interval, progress=False)
    state = SimpleNamespace(global_step=0, max_steps=30)
    monitor.on_train_begin(None, state, None)
    for step in range(1, 31):  # a fast run: 30 logged steps well inside the interval
        state.global_step = step
        monitor.on_log(None, state, None, logs={"loss": 0.1, "reward": step / 30, "completions/mean_length": 8.0})
    assert (tmp_path / "plots" / "reward.png").is_file() == plotted_during_training
    monitor.on_train_end(None, state, None)
    assert (tmp_path / "plots" / "reward.png").is_file()
