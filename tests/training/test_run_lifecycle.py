"""A run never strands, never overruns, never lies: resume, stop, lock and output-folder faults (tiny model)."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.repo import ROOT
from utils.config import load_recipe
from utils.errors import UserError
from utils.runs import last_complete_checkpoint

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"
QUICK = ["eval.every_steps=0", "output.plots=false", "training.max_steps=2", "training.save_steps=1"]


def recipe_for(tiny_model_dir: Path, out: Path, *extra: str):
    return load_recipe(SMOKE, [f"model.name={tiny_model_dir}", f"output.dir={out}", *QUICK, *extra])


def train(recipe, **kwargs):
    from utils.training import run_training

    lines: list[str] = []
    return run_training(recipe, progress=False, log=lines.append, **kwargs), "\n".join(lines)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, tmp_path_factory):
    """A finished 2-step run, copied by the tests that change it."""
    recipe = recipe_for(tiny_model_dir, tmp_path_factory.mktemp("runs"))
    outcome, _ = train(recipe)
    return recipe, outcome


def copy_run(finished_run, tmp_path: Path) -> Path:
    import shutil

    recipe, outcome = finished_run
    shutil.copytree(outcome.run_dir, tmp_path / recipe.run_name)
    return tmp_path / recipe.run_name


def test_resuming_a_finished_run_trains_nothing(finished_run, tiny_model_dir, tmp_path):
    run = copy_run(finished_run, tmp_path)
    for _ in range(2):  # each further --resume used to add a step and a checkpoint
        outcome, log = train(recipe_for(tiny_model_dir, tmp_path), resume=True)
        assert outcome.global_step == 2 and "already finished at step 2" in log
    assert not (run / "checkpoint-3").exists()
    assert [m["step"] for m in read_jsonl(run / "metrics.jsonl") if "loss" in m] == [1, 2]


def test_resume_refuses_a_changed_recipe_naming_the_keys(finished_run, tiny_model_dir, tmp_path):
    run = copy_run(finished_run, tmp_path)
    saved = (run / "recipe.resolved.yaml").read_text()
    changed = recipe_for(tiny_model_dir, tmp_path, "prompt.format=xml", "training.learning_rate=0.5")
    with pytest.raises(UserError) as err:
        train(changed, resume=True)
    assert "prompt.format: 'think_boxed' -> 'xml'" in str(err.value) and "training.learning_rate" in str(err.value)
    assert "--force" in str(err.value)
    assert (run / "recipe.resolved.yaml").read_text() == saved  # untouched by a refused resume


def test_resume_records_harmless_changes_and_force_resumes_a_changed_one(finished_run, tiny_model_dir, tmp_path):
    run = copy_run(finished_run, tmp_path)
    outcome, log = train(recipe_for(tiny_model_dir, tmp_path, "training.max_steps=3", "output.completions_every=2"),
                         resume=True)
    assert outcome.global_step == 3 and "training.max_steps: 2 -> 3" in log
    record = read_jsonl(run / "resumes.jsonl")[-1]
    assert record["step"] == 2 and record["changes"]["output.completions_every"] == [1, 2]
    outcome, _ = train(recipe_for(tiny_model_dir, tmp_path, "training.max_steps=4", "training.learning_rate=0.5"),
                       resume=True, force=True)
    assert outcome.global_step == 4


def test_a_run_saved_before_a_recipe_key_existed_resumes_when_the_key_stands_at_its_default(
        finished_run, tiny_model_dir, tmp_path):
    import yaml

    run = copy_run(finished_run, tmp_path)
    saved = yaml.safe_load((run / "recipe.resolved.yaml").read_text())
    del saved["data"]["filters"]["decontaminate_ngram"]  # as an older version of the suite wrote it
    (run / "recipe.resolved.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(UserError, match=r"data.filters.decontaminate_ngram: None -> 8"):
        train(recipe_for(tiny_model_dir, tmp_path, "training.max_steps=3", "data.filters.decontaminate_ngram=8"),
              resume=True)
    outcome, log = train(recipe_for(tiny_model_dir, tmp_path, "training.max_steps=3"), resume=True)
    assert outcome.global_step == 3 and "data.filters.decontaminate_ngram: None -> 13" in log
    assert read_jsonl(run / "resumes.jsonl")[-1]["changes"]["data.filters.decontaminate_ngram"] == [None, 13]


def test_a_damaged_complete_checkpoint_falls_back_to_the_previous_one(finished_run, tiny_model_dir, tmp_path):
    run = copy_run(finished_run, tmp_path)
    optimizer = run / "checkpoint-2" / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[:100])  # still marked complete
    outcome, log = train(recipe_for(tiny_model_dir, tmp_path, "training.max_steps=3"), resume=True)
    assert "checkpoint-2 is damaged (optimizer.pt:" in log and "resuming from" in log and "checkpoint-1" in log
    assert outcome.global_step == 3


def test_a_second_run_in_the_same_folder_is_refused_and_a_dead_holder_is_taken_over(tiny_model_dir, tmp_path):
    from utils.runs import FolderLock

    recipe = recipe_for(tiny_model_dir, tmp_path)
    with FolderLock(recipe.run_dir), pytest.raises(UserError, match=rf"in use by a run in progress \(pid {os.getpid()}\)"):
        train(recipe)
    (recipe.run_dir / ".lock").write_text("999999\n")  # left by a killed run: no process holds the lock
    outcome, _ = train(recipe)
    assert outcome.global_step == 2


def test_stop_while_loading_leaves_a_folder_that_simply_restarts(tiny_model_dir, tmp_path, monkeypatch):
    import utils.data

    real = utils.data.load_training_data

    def sigterm_while_loading(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(utils.data, "load_training_data", sigterm_while_loading)
    recipe = recipe_for(tiny_model_dir, tmp_path)
    outcome, log = train(recipe)
    assert outcome.stopped_by == "SIGTERM" and outcome.global_step == 0 and "nothing saved" in log
    monkeypatch.setattr(utils.data, "load_training_data", real)
    outcome, _ = train(recipe)  # neither --resume nor --force needed
    assert outcome.global_step == 2


def test_stop_during_the_first_evaluation_and_a_crash_before_a_checkpoint_restart(tiny_model_dir, tmp_path,
                                                                                  monkeypatch):
    import utils.training._callbacks as callbacks

    def sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal should have stopped the run")

    recipe = recipe_for(tiny_model_dir, tmp_path, "eval.every_steps=1")
    monkeypatch.setattr(callbacks, "evaluate_accuracy", sigterm)
    outcome, _ = train(recipe)
    assert outcome.stopped_by == "SIGTERM" and last_complete_checkpoint(recipe.run_dir) is None
    assert (recipe.run_dir / "recipe.resolved.yaml").is_file()

    def crash(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(callbacks, "evaluate_accuracy", crash)
    with pytest.raises(RuntimeError):
        train(recipe)
    monkeypatch.undo()
    outcome, log = train(recipe_for(tiny_model_dir, tmp_path))
    assert outcome.global_step == 2 and "saved no complete checkpoint: starting from the beginning" in log


def test_disk_full_during_a_save_is_one_line_and_resume_works_after(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import Trainer

    real_save = Trainer._save_checkpoint

    def full_disk_at_step_2(self, *args, **kwargs):
        if self.state.global_step == 2:
            (Path(self.args.output_dir) / "checkpoint-2").mkdir()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_save_checkpoint", full_disk_at_step_2)
    recipe = recipe_for(tiny_model_dir, tmp_path)
    with pytest.raises(UserError, match=r"disk full while saving the checkpoint after step 2 \(about \d+ MiB needed"):
        train(recipe)
    assert last_complete_checkpoint(recipe.run_dir).name == "checkpoint-1"  # the cut save is not marked
    monkeypatch.undo()
    outcome, _ = train(recipe, resume=True)
    assert outcome.global_step == 2 and last_complete_checkpoint(recipe.run_dir).name == "checkpoint-2"


@pytest.mark.parametrize("where", ["file", "readonly_fs"])
def test_an_unwritable_output_dir_fails_before_loading(run_script, tiny_model_dir, tmp_path, where):
    out = tmp_path / "a-file" if where == "file" else Path("/proc/grpo-runs")
    if where == "file":
        out.write_text("not a folder")
    result = run_script("grpo_train", SMOKE, "--set", f"model.name={tiny_model_dir}", "--set", f"output.dir={out}",
                        "--dry-run")
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: output.dir: "), result.stderr


def test_huge_prompts_are_bounded_by_default(tiny_model_dir, tmp_path):
    rows = [json.loads(line) for line in (ROOT / "data" / "openr1_sample.jsonl").read_text().splitlines()]
    rows[0]["problem"] = "Compute 1 + 1. " * 7000  # ~100k characters
    data = tmp_path / "huge.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = recipe_for(tiny_model_dir, tmp_path, f"data.dataset={data}", "data.cache=false")
    outcome, log = train(recipe)
    assert outcome.global_step == 2
    assert re.search(r"max_prompt_tokens +<= \d+ +-1 ", log), log  # the data report names what the bound removed


def test_gpu_options_are_dropped_on_cpu_in_one_visible_line_unless_strict(run_script_here, monkeypatch):
    monkeypatch.setenv("GRPO_MATH_CPU_BF16", "1")  # as on a CPU with native bf16, whichever CPU runs the tests
    code, plan, err = run_script_here("grpo_train", "recipes/gsm8k.yaml", "--dry-run")
    assert code == 0, err
    assert "Adjusted   model.load_in_4bit: true -> false (no CUDA GPU" in plan
    assert "generation: bf16 merged copy of the policy (CPU)" in plan
    # strict keeps every GPU option: fast_inference too, which on the hf backend is TRL's colocated vLLM, absent here
    code, _, err = run_script_here("grpo_train", "recipes/gsm8k.yaml", "--set", "model.strict=true", "--dry-run")
    assert code == 2 and "model.fast_inference" in err and "not installed" in err
    code, strict, _ = run_script_here("grpo_train", "recipes/gsm8k.yaml", "--set", "model.strict=true",
                                      "--set", "model.fast_inference=false", "--dry-run")
    assert "4-bit: yes" in strict and "load_in_4bit: true -> false" not in strict


def test_step_time_leaves_out_evaluation_and_completions_span_prompts(tiny_model_dir, tmp_path, monkeypatch):
    import utils.training._callbacks as callbacks

    real_eval, real_clock = callbacks.evaluate_accuracy, time.perf_counter
    skipped = [0.0]  # a clock that jumps 100 s inside each evaluation: a step that counted it would show it

    def slow_eval(*args, **kwargs):
        skipped[0] += 100.0
        return real_eval(*args, **kwargs)

    monkeypatch.setattr(callbacks, "evaluate_accuracy", slow_eval)
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: real_clock() + skipped[0])
    recipe = recipe_for(tiny_model_dir, tmp_path, "eval.every_steps=2", "training.per_device_train_batch_size=8",
                        "output.completions_sample=4")
    outcome, _ = train(recipe)
    monkeypatch.undo()
    metrics = read_jsonl(outcome.run_dir / "metrics.jsonl")
    assert next(m for m in metrics if m["step"] == 2 and "eval/seconds" in m)["eval/seconds"] >= 100
    assert next(m for m in metrics if m["step"] == 2 and "step_time_s" in m)["step_time_s"] < 50
    step1 = [c for c in read_jsonl(outcome.run_dir / "completions.jsonl") if c["step"] == 1]
    assert len({c["prompt"] for c in step1}) == 2  # 8 completions = 2 prompts x 4 generations: both sampled
