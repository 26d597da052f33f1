"""Multi-process GRPO for real on CPU: `accelerate launch` (torchrun, gloo) runs grpo_train.py on the tiny
model in two processes, on one "machine" and as two "machines" on 127.0.0.1 (marked `dist`: make test-dist,
minutes). The plan and the Unsloth refusal are checked in-process, in the default suite.

`accelerate launch --cpu --num_processes 2` starts ONE process in accelerate 1.15 (its CPU path needs
mpirun); `--multi_gpu --num_processes 2` starts two through torchrun, and our GRPOConfig's use_cpu makes
accelerate pick gloo (recipes/accelerate/ddp.yaml does the same).

DeepSpeed ZeRO-2 (recipes/accelerate/zero2.yaml) runs on CPU too, through DeepSpeed's CPU accelerator and
gloo, where deepspeed is installed (make setup-deepspeed); the same test on GPUs is marked `gpu`.
FSDP does not run on CPU: see README "Scaling out".
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.repo import ROOT

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"
LAUNCH_TIMEOUT = 600  # two processes importing torch, transformers and TRL on a shared 2-core machine
NO_DEEPSPEED = importlib.util.find_spec("deepspeed") is None


def test_the_plan_shows_the_world_size_and_the_batch_across_ranks(tiny_model_dir, tmp_path):
    from utils.config import load_recipe
    from utils.training import format_plan, set_up_run

    recipe = load_recipe(SMOKE, [f"model.name={tiny_model_dir}", f"output.dir={tmp_path}",
                                 "training.gradient_accumulation_steps=2"])
    setup = set_up_run(recipe)
    assert "Processes  1 process; per optimizer step 2 prompts x 4 generations = 8 completions" in format_plan(setup)
    four = dataclasses.replace(setup, processes=4)  # as set_up_run sees it when torchrun starts 4 processes
    assert ("Processes  4 processes; per optimizer step 8 prompts x 4 generations = 32 completions across ranks "
            "(4 per process x 2 accumulation x 4)") in format_plan(four)


def test_unsloth_under_a_multi_process_launch_is_refused_pointing_to_hf(tiny_model_dir, tmp_path, monkeypatch):
    from utils.config import load_recipe
    from utils.errors import UserError
    from utils.models import Hardware
    from utils.training import set_up_run

    monkeypatch.setenv("WORLD_SIZE", "2")
    gpu_with_unsloth = Hardware(cuda=True, gpu_name="A100", bf16=True, unsloth_installed=True, vllm_installed=False)
    recipe = load_recipe(SMOKE, [f"model.name={tiny_model_dir}", f"output.dir={tmp_path}", "model.backend=unsloth"])
    with pytest.raises(UserError, match="model.backend: unsloth trains in one process only, and this launch has 2: "
                                        "set model.backend: hf"):
        set_up_run(recipe, gpu_with_unsloth)


@pytest.mark.skipif(NO_DEEPSPEED, reason="deepspeed is not installed (make setup-deepspeed)")
def test_the_plan_leaves_zero3_on_for_the_model_load(tiny_model_dir, tmp_path, monkeypatch):
    from transformers.integrations import is_deepspeed_zero3_enabled

    from utils.config import load_recipe
    from utils.training import format_plan, set_up_run

    # what `accelerate launch --config_file recipes/accelerate/zero3.yaml` sets in each process
    for key, value in {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
                       "ACCELERATE_DEEPSPEED_ZERO3_INIT": "true"}.items():
        monkeypatch.setenv(key, value)
    setup = set_up_run(load_recipe(SMOKE, [f"model.name={tiny_model_dir}", f"output.dir={tmp_path}"]))
    format_plan(setup)  # the main process prints it (and builds TRL's default config to compare) before loading
    gc.collect()
    # the main process loads the model under deepspeed.zero.Init like the others; off, ZeRO-3 hung at the start
    assert is_deepspeed_zero3_enabled()


@pytest.mark.skipif(torch.cuda.is_available(), reason="FSDP is refused only on a machine without CUDA")
def test_fsdp_on_a_machine_without_gpus_is_one_line_pointing_to_ddp(tiny_model_dir, tmp_path, monkeypatch,
                                                                    run_script):
    # what `accelerate launch --config_file recipes/accelerate/fsdp.yaml` sets in each process
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    done = run_script("grpo_train", SMOKE, "--dry-run", "--set", f"model.name={tiny_model_dir}",
                      "--set", f"output.dir={tmp_path}")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr[-2000:]
    assert "FSDP (recipes/accelerate/fsdp.yaml) needs CUDA GPUs" in done.stderr
    assert "use recipes/accelerate/ddp.yaml" in done.stderr and not (tmp_path / "smoke_cpu").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def dist_recipe(tiny_model_dir, tmp_path) -> Path:
    """The smoke recipe on the tiny model, rewarded by rank (tests/dist_rewards.py), into tmp_path/out."""
    recipe = yaml.safe_load(SMOKE.read_text())
    recipe["model"]["name"] = str(tiny_model_dir)
    recipe["rewards"] = {"tests.dist_rewards.rank_marker": 1.0}
    recipe["training"].update(max_steps=2, save_steps=100)
    recipe["output"].update(dir=str(tmp_path / "out"), plots=False)
    path = tmp_path / "dist.yaml"
    path.write_text(yaml.safe_dump(recipe))
    (tmp_path / "ranks").mkdir()
    return path


def launch(recipe: Path, *args: str, machines: int = 1, machine_rank: int = 0, port: int | None = None,
           sleep: float = 0.0, config: str | None = None, processes: int = 2) -> subprocess.Popen:
    """`accelerate launch` of grpo_train.py with `processes` in all (over `machines` machines); DDP, or the
    engine of recipes/accelerate/`config`."""
    engine = ["--config_file", str(ROOT / "recipes" / "accelerate" / config)] if config else ["--multi_gpu"]
    command = [sys.executable, "-m", "accelerate.commands.launch", *engine, "--num_processes", str(processes),
               "--num_machines", str(machines), "--machine_rank", str(machine_rank), "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1", "--main_process_port",
               str(port or free_port()), "scripts/grpo_train.py", str(recipe), "--no-progress", *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", GRPO_DIST_LOG=str(recipe.parent / "ranks"),
               GRPO_DIST_SLEEP=str(sleep))
    # its own session: a hung launch is killed with its ranks (kill_launch), not left running
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_launch(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def finish(process: subprocess.Popen) -> tuple[str, str]:
    try:
        out, err = process.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_launch(process)
        out, err = process.communicate()
        raise AssertionError(f"no exit within {LAUNCH_TIMEOUT} s (hung)\n{out[-2000:]}\n{err[-4000:]}") from None
    assert process.returncode == 0, f"exit {process.returncode}\n{out[-2000:]}\n{err[-4000:]}"
    return out, err


def rank_records(recipe: Path) -> dict[int, list[dict]]:
    return {rank: read_jsonl(recipe.parent / "ranks" / f"rank-{rank}.jsonl") for rank in (0, 1)}


def check_run_folder(recipe: Path, steps: int, processes: int = 2) -> Path:
    """One run folder, written once: each step logged once with metrics over every rank, one checkpoint."""
    run = recipe.parent / "out" / "smoke_cpu"
    trained = [m for m in read_jsonl(run / "metrics.jsonl") if "loss" in m]
    assert [m["step"] for m in trained] == list(range(1, steps + 1))
    # rank r rewards its completions r (0.0 and 1.0 over two): the logged mean is over every rank's completions
    mean_rank = (processes - 1) / 2
    assert all(m["reward"] == pytest.approx(mean_rank) for m in trained), [m["reward"] for m in trained]
    completions = read_jsonl(run / "completions.jsonl")
    assert sorted({c["step"] for c in completions}) == list(range(1, steps + 1))
    assert len(completions) == steps * 4  # completions_sample (4) of the main rank's 4 completions, once a step
    assert (run / f"checkpoint-{steps}" / "checkpoint.complete").is_file()
    rng_states = {f"rng_state_{rank}.pth" for rank in range(processes)} if processes > 1 else {"rng_state.pth"}
    assert {p.name for p in (run / f"checkpoint-{steps}").glob("rng_state*.pth")} == rng_states
    assert (run / "recipe.resolved.yaml").is_file() and (run / "best" / "best.json").is_file()
    return run


def check_ranks_saw_different_prompts(recipe: Path, steps: int) -> None:
    records = rank_records(recipe)
    for rank in (0, 1):
        assert sorted(r["step"] for r in records[rank]) == list(range(steps)), records[rank]
    for step in range(steps):
        prompts = [next(r["prompts"] for r in records[rank] if r["step"] == step) for rank in (0, 1)]
        assert prompts[0] and prompts[1] and not set(prompts[0]) & set(prompts[1]), prompts


@pytest.mark.dist
def test_two_processes_train_different_prompts_into_one_run_folder(dist_recipe):
    out, err = finish(launch(dist_recipe))
    assert "Processes  2 processes; per optimizer step 2 prompts x 4 generations = 8 completions" in out
    assert out.count("done: 2 steps") == 1 and out.count("Recipe     ") == 1  # the main process speaks, once
    check_run_folder(dist_recipe, 2)
    check_ranks_saw_different_prompts(dist_recipe, 2)


@pytest.mark.dist
def test_two_machines_on_one_host_train_as_one_run(dist_recipe):
    port = free_port()
    second = launch(dist_recipe, machines=2, machine_rank=1, port=port)
    first = launch(dist_recipe, machines=2, machine_rank=0, port=port)
    try:
        out, _ = finish(first)
        second_out, _ = finish(second)
    finally:
        for process in (first, second):
            kill_launch(process)
    assert "Processes  2 processes" in out and "done: 2 steps" in out
    assert "done:" not in second_out  # machine 1 holds no main process: it prints no plan and no summary
    check_run_folder(dist_recipe, 2)
    check_ranks_saw_different_prompts(dist_recipe, 2)


def wait_for_step(recipe: Path, step: int, process: subprocess.Popen) -> int:
    """Rank 1's pid, once it has scored the prompts of training step `step` (0-based)."""
    log = recipe.parent / "ranks" / "rank-1.jsonl"
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        records = read_jsonl(log) if log.is_file() else []
        if any(r["step"] >= step for r in records):
            return records[-1]["pid"]
        time.sleep(0.2)
    raise AssertionError(f"rank 1 never reached step {step}")


@pytest.mark.dist
def test_sigterm_to_one_rank_stops_both_at_one_checkpoint_and_resume_continues(dist_recipe):
    recipe = yaml.safe_load(dist_recipe.read_text())
    recipe["training"]["max_steps"] = 8
    dist_recipe.write_text(yaml.safe_dump(recipe))
    process = launch(dist_recipe, sleep=1.0)  # 1 s a step: room to stop it mid-run
    os.kill(wait_for_step(dist_recipe, 1, process), signal.SIGTERM)  # rank 1 only, not the main process
    out, err = finish(process)
    assert "stopped by SIGTERM at step" in out, out[-2000:]
    stopped_at = int(out.split("stopped by SIGTERM at step ")[1].split(";")[0])
    assert 2 <= stopped_at < 8
    run = dist_recipe.parent / "out" / "smoke_cpu"
    assert [p.name for p in run.glob("checkpoint-*")] == [f"checkpoint-{stopped_at}"]
    assert (run / f"checkpoint-{stopped_at}" / "checkpoint.complete").is_file()
    for rank in (0, 1):  # both ranks ended at the same step: neither scored a step past the checkpoint
        assert max(r["step"] for r in rank_records(dist_recipe)[rank]) == stopped_at - 1

    out, err = finish(launch(dist_recipe, "--resume"))
    assert f"resuming from {run / f'checkpoint-{stopped_at}'}" in out and "done: 8 steps" in out
    trained = [m["step"] for m in read_jsonl(run / "metrics.jsonl") if "loss" in m]
    assert trained == list(range(1, 9))  # each step once: the resumed run went on at stopped_at + 1
    for rank in (0, 1):
        steps = [r["step"] for r in rank_records(dist_recipe)[rank]]
        assert steps == list(range(8)), steps  # went on from the checkpoint's step: none skipped or repeated


def zero_shard_ranks(run: Path, step: int) -> list[int]:
    """The ranks whose ZeRO optimizer shard DeepSpeed saved into checkpoint-`step` (its own layout)."""
    shards = (run / f"checkpoint-{step}" / f"global_step{step}").glob("*zero_pp_rank_*_optim_states.pt")
    return sorted(int(p.name.split("zero_pp_rank_")[1].split("_")[0]) for p in shards)


def check_checkpoint_merges(run: Path, step: int, out: Path) -> None:
    """checkpoint-`step` holds a plain PEFT adapter: merge_lora merges it and verifies the reloaded export."""
    from utils.export import ExportOptions, export

    result = export(ExportOptions(run, out, checkpoint=step), log=lambda _: None)
    assert result.checks and (out / "config.json").is_file()


@pytest.mark.dist
@pytest.mark.skipif(NO_DEEPSPEED, reason="deepspeed is not installed (make setup-deepspeed)")
def test_deepspeed_zero2_trains_two_processes_on_cpu_into_a_loadable_checkpoint_and_resumes(dist_recipe, tmp_path):
    out, _ = finish(launch(dist_recipe, config="zero2.yaml"))  # DeepSpeed's CPU accelerator, gloo
    assert out.count("done: 2 steps") == 1
    run = check_run_folder(dist_recipe, 2)
    check_ranks_saw_different_prompts(dist_recipe, 2)
    assert zero_shard_ranks(run, 2) == [0, 1]  # ZeRO-2: each rank kept and saved its half of the optimizer
    check_checkpoint_merges(run, 2, tmp_path / "merged")

    out, _ = finish(launch(dist_recipe, "--resume", "--set", "training.max_steps=4", config="zero2.yaml"))
    assert f"resuming from {run / 'checkpoint-2'}" in out and "done: 4 steps" in out
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl") if "loss" in m] == [1, 2, 3, 4]
    for rank in (0, 1):  # went on at step 3 from DeepSpeed's shards: no step skipped or repeated
        assert [r["step"] for r in rank_records(dist_recipe)[rank]] == [0, 1, 2, 3]
    assert zero_shard_ranks(run, 4) == [0, 1]


@pytest.mark.dist
@pytest.mark.skipif(NO_DEEPSPEED, reason="deepspeed is not installed (make setup-deepspeed)")
def test_deepspeed_zero3_shards_the_model_across_two_processes_on_cpu(dist_recipe, tmp_path):
    out, _ = finish(launch(dist_recipe, config="zero3.yaml"))  # hung before step 1 when the plan cleared ZeRO-3
    assert out.count("done: 2 steps") == 1
    run = check_run_folder(dist_recipe, 2)
    check_ranks_saw_different_prompts(dist_recipe, 2)
    assert zero_shard_ranks(run, 2) == [0, 1]
    parameter_shards = (run / "checkpoint-2" / "global_step2").glob("zero_pp_rank_*_model_states.pt")
    assert len(list(parameter_shards)) == 2  # ZeRO-3: the parameters too, a shard per rank
    check_checkpoint_merges(run, 2, tmp_path / "merged")  # the adapter gathered whole, not ZeRO-3's empty shards


def gpus_for_deepspeed() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    return "deepspeed is not installed (make setup-deepspeed)" if NO_DEEPSPEED else None


@pytest.mark.gpu
@pytest.mark.skipif(gpus_for_deepspeed() is not None, reason=str(gpus_for_deepspeed()))
def test_deepspeed_zero2_on_gpus_trains_into_a_loadable_checkpoint(dist_recipe, tmp_path):
    processes = min(2, torch.cuda.device_count())  # one process ZeRO-2 on a single GPU: the same engine
    out, _ = finish(launch(dist_recipe, config="zero2.yaml", processes=processes))
    assert f"Processes  {processes} process" in out and out.count("done: 2 steps") == 1
    run = check_run_folder(dist_recipe, 2, processes)
    assert zero_shard_ranks(run, 2) == list(range(processes))
    check_checkpoint_merges(run, 2, tmp_path / "merged")
