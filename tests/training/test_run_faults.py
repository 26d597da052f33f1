"""Faults met mid-run (tiny model): a save that cannot write (a full disk) and custom rewards that misbehave end
in one line and exit 2, keep the last complete checkpoint, and the printed command goes on from it."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.repo import ROOT
from utils.config import load_recipe
from utils.runs import last_complete_checkpoint
from utils.training import RunFailed

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"
QUICK = ["eval.every_steps=0", "output.plots=false", "training.max_steps=2", "training.save_steps=1"]
MISBEHAVES = "tests.custom_rewards.misbehaves"  # scores 0.5 at step 1, then fails as `how` says


def recipe_for(tiny_model_dir: Path, out: Path, *extra: str):
    return load_recipe(SMOKE, [f"model.name={tiny_model_dir}", f"output.dir={out}", *QUICK, *extra])


def train(recipe, **kwargs):
    from utils.training import run_training

    lines: list[str] = []
    return run_training(recipe, progress=False, log=lines.append, **kwargs), "\n".join(lines)


def strict_jsonl(path: Path) -> list[dict]:
    """Records as a strict JSON reader sees them: Python's bare NaN / Infinity are refused."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{path.name}: {constant} is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines() if line.strip()]


def script_args(tiny_model_dir: Path, out: Path, *sets: str) -> list[str]:
    pairs = [f"model.name={tiny_model_dir}", f"output.dir={out}", *QUICK, *sets]
    return [str(SMOKE), "--no-progress", *[a for s in pairs for a in ("--set", s)]]


def the_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def printed_command(error_line: str) -> list[str]:
    return shlex.split(error_line.split(" with: ", 1)[1])


# ---------------------------------------------------------------------------------------------
# a save that cannot write


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="no private mount namespace here (unshare -rm): no small tmpfs")
def test_a_disk_that_fills_during_a_save_is_one_line_and_the_printed_command_resumes(tiny_model_dir, tmp_path):
    """A real full disk: a 470 KiB tmpfs holds checkpoint-1 (~300 KiB with the run's logs) but not checkpoint-2,
    which fails inside optimizer.pt (torch's zip writer: a RuntimeError, no errno). Then the tmpfs grows and the
    command the error line printed resumes. All in one private mount namespace, so the tmpfs lives throughout."""
    out = tmp_path / "small-disk"
    out.mkdir()
    first = [sys.executable, str(ROOT / "scripts" / "grpo_train.py"), *script_args(tiny_model_dir, out)]
    script = f"""
        mount -t tmpfs -o size=470k tmpfs {out} || exit 99
        {shlex.join(first)} > {tmp_path}/out1 2> {tmp_path}/err1; echo $? > {tmp_path}/rc1
        ls {out}/smoke_cpu > {tmp_path}/ls1
        mount -o remount,size=16m {out}
        sh -c "$(sed -n 's/.* with: //p' {tmp_path}/err1)" > {tmp_path}/out2 2> {tmp_path}/err2; echo $? > {tmp_path}/rc2
    """
    subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, timeout=600,
                   env=dict(os.environ, PYTHONUNBUFFERED="1"))
    read = lambda name: (tmp_path / name).read_text()  # noqa: E731
    assert read("rc1").strip() == "2", f"expected exit 2 (a tmpfs that did not fill?): {read('err1')[-2000:]}"
    line = the_error_line(read("err1"))
    assert f"error: {out}/smoke_cpu: disk full while saving the checkpoint after step 2 (about" in line
    assert "free some space, then continue from checkpoint-1 with: " in line and line.endswith(" --resume")
    assert "checkpoint-2" not in read("ls1").split()  # the half-written save was removed, never taken as complete
    assert read("rc2").strip() == "0", read("err2")[-2000:]
    assert "resuming from" in read("out2") and "done: 2 steps" in read("out2")


# What torch.save raised when the tmpfs above filled inside optimizer.pt (its zip writer's check of the bytes
# written); a write that fails mid-record says "PytorchStreamWriter failed writing file data/0: file write failed".
TORCH_SHORT_WRITE = "[enforce fail at inline_container.cc:672] . unexpected pos 31936 vs 31824"


def torch_save_fails_at_step_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """checkpoint-2's optimizer.pt is cut short and torch.save raises what torch raises on a full disk."""
    import torch

    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and Path(f).parent.name == "checkpoint-2":
            Path(f).write_bytes(b"PK\x03\x04" + bytes(1000))
            raise RuntimeError(TORCH_SHORT_WRITE)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_checkpoint_write_that_fails_keeps_the_last_complete_one_and_resume_continues(tiny_model_dir, tmp_path,
                                                                                      monkeypatch):
    """Where no tmpfs can be mounted, the same failure made by hand (and a disk with room: no 'disk full')."""
    torch_save_fails_at_step_2(monkeypatch)
    recipe = recipe_for(tiny_model_dir, tmp_path)
    with pytest.raises(RunFailed) as failed:
        train(recipe)
    message = str(failed.value)
    assert message.startswith(f"{recipe.run_dir}: could not write the checkpoint after step 2 ({TORCH_SHORT_WRITE}; ")
    assert "check the disk (space, quota, permissions), then continue from checkpoint-1 with: --resume" in message
    assert "\n" not in message and failed.value.checkpoint.name == "checkpoint-1"
    assert last_complete_checkpoint(recipe.run_dir).name == "checkpoint-1"
    assert not (recipe.run_dir / "checkpoint-2").exists()  # the cut files are gone, not left to be taken
    monkeypatch.undo()
    outcome, _ = train(recipe, resume=True)
    assert outcome.global_step == 2 and last_complete_checkpoint(recipe.run_dir).name == "checkpoint-2"


def test_what_counts_as_a_write_failure_is_what_torch_and_safetensors_raise():
    import errno

    from safetensors import SafetensorError

    from utils.training._faults import is_write_failure

    raised = [RuntimeError(TORCH_SHORT_WRITE), OSError(errno.ENOSPC, "No space left on device"),
              SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
              RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")]
    assert all(is_write_failure(err) for err in raised)
    assert not is_write_failure(RuntimeError("CUDA out of memory")) and not is_write_failure(ValueError("bad"))


def test_a_best_checkpoint_that_cannot_be_written_leaves_the_previous_best(tiny_model_dir, tmp_path, monkeypatch):
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.training._callbacks import EvalCallback
    from utils.training._faults import SaveFailed

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    callback = EvalCallback.__new__(EvalCallback)  # only the save: no benchmark, no monitor
    callback.best_dir, callback.tokenizer = tmp_path / "best", AutoTokenizer.from_pretrained(tiny_model_dir)
    callback._save_best(model, 1, 0.25)

    def disk_full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(model, "save_pretrained", disk_full)
    with pytest.raises(SaveFailed, match="best/ after step 2"):
        callback._save_best(model, 2, 0.5)
    assert json.loads((tmp_path / "best" / "best.json").read_text()) == {"step": 1, "accuracy": 0.25}
    assert not (tmp_path / "best.tmp").exists()


# ---------------------------------------------------------------------------------------------
# custom rewards that misbehave at run time


@pytest.mark.parametrize("how, said", [
    ("raise", "raised ZeroDivisionError (division by zero) at step 2: fix the reward, or set rewards_on_error: skip"),
    ("short", "returned 3 rewards for 4 completions at step 2: return one reward per completion"),
    ("scalar", "returned 0.5 (a float) at step 2, not a list of 4 rewards: return one reward per completion"),
    ("nan", "returned nan for completion 0 at step 2: fix the reward (None skips a completion), or set"),
    ("inf", "returned inf for completion 0 at step 2: fix the reward (None skips a completion), or set"),
])
def test_a_misbehaving_reward_stops_the_run_in_one_line_keeping_the_checkpoint(tiny_model_dir, tmp_path, how, said):
    recipe = recipe_for(tiny_model_dir, tmp_path, f"rewards.{MISBEHAVES}={{weight: 1.0, how: {how}}}")
    with pytest.raises(RunFailed) as failed:
        train(recipe)
    message = str(failed.value)
    assert message.startswith(f"rewards.{MISBEHAVES} {said}") and "\n" not in message, message
    assert message.endswith("then continue from checkpoint-1 with: --resume")
    assert last_complete_checkpoint(recipe.run_dir).name == "checkpoint-1"
    assert strict_jsonl(recipe.run_dir / "completions.jsonl")  # step 1's records, JSON throughout


def test_a_raising_reward_through_the_script_then_resumed_with_skip(run_script, tiny_model_dir, tmp_path):
    args = script_args(tiny_model_dir, tmp_path, f"rewards.{MISBEHAVES}={{weight: 1.0, how: raise}}")
    failed = run_script("grpo_train", *args)
    assert failed.returncode == 2, failed.stderr[-2000:]
    line = the_error_line(failed.stderr)
    assert line.startswith(f"error: rewards.{MISBEHAVES} raised ZeroDivisionError (division by zero) at step 2")
    command = printed_command(line)
    assert command[-1] == "--resume" and "continue from checkpoint-1" in line
    # the printed command, told to score the failures as no reward: a harmless change, so --resume takes it
    resumed = subprocess.run([*command, "--set", "rewards_on_error=skip"], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "done: 2 steps" in resumed.stdout
    warnings = [w for w in resumed.stderr.splitlines() if w.startswith(f"warning: rewards.{MISBEHAVES}")]
    assert len(warnings) == 1 and "raised ZeroDivisionError (division by zero) at step 2" in warnings[0]


def test_skip_scores_non_finite_rewards_as_none_counted_and_files_stay_json(tiny_model_dir, tmp_path):
    recipe = recipe_for(tiny_model_dir, tmp_path, "rewards_on_error=skip",
                        f"rewards.{MISBEHAVES}={{weight: 1.0, how: nan, from_step: 1}}")
    outcome, log = train(recipe)
    assert outcome.global_step == 2
    assert f"rewards.{MISBEHAVES}: 2 completions scored as no reward" in log  # one NaN per step
    scored = [r["rewards"][MISBEHAVES] for r in strict_jsonl(recipe.run_dir / "completions.jsonl")]
    assert None in scored and 0.5 in scored and all(v in (None, 0.5) for v in scored)
    metrics = strict_jsonl(recipe.run_dir / "metrics.jsonl")
    assert [m[f"rewards/{MISBEHAVES}/skipped"] for m in metrics if f"rewards/{MISBEHAVES}/skipped" in m] == [1.0, 1.0]
