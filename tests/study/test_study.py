"""The retention study (scripts/study.py, utils.study): two stages chained on the tiny model, stage 2 from stage 1's
weights, the retention numbers against hand-computed ones, a stop and resume, and bad study files."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.repo import ROOT

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"
QUICK = ["eval.every_steps=0", "output.plots=false", "training.save_steps=1", "training.max_completion_length=8",
         "data.cache=false",
         "rewards.tests.grpo_helpers.varying_length_reward=1.0"]  # varies within a group: a real gradient


# ---- the retention numbers on planted evaluation files ----------------------------------------------------------

def plant_row(folder: Path, right: dict[str, set[int]], n: int = 10) -> Path:
    """An evaluation folder as evaluate.py writes it: per benchmark, samples.jsonl (problems 0..n-1, greedy, the
    ones in `right` correct) and the summary computed from them."""
    from utils.evaluation import summarize

    summaries = {}
    for bench, correct in right.items():
        records = [{"id": f"p{i}", "sample": 0, "problem": f"problem {i}", "predicted": str(i if i in correct else -1),
                    "gold": str(i), "correct": i in correct, "tokens": 5, "truncated": False} for i in range(n)]
        (folder / bench).mkdir(parents=True)
        (folder / bench / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        summaries[bench] = summarize(records, 1)
    (folder / "summary.json").write_text(json.dumps({"model": folder.name, "benchmarks": summaries}))
    return folder


@pytest.fixture
def planted(tmp_path):
    from utils.study import read_row

    rights = [{"A": {0, 1}, "B": {0}}, {"A": {0, 1, 2, 3, 4, 5}, "B": {0}}, {"A": {0, 1, 2, 3}, "B": set(range(7))}]
    return [read_row(label, plant_row(tmp_path / label, right))
            for label, right in zip(("start", "s1", "s2"), rights, strict=True)]


def test_matrix_forgetting_and_backward_transfer_match_hand_computed_values(planted, tmp_path):
    from utils.evaluation import paired_difference_interval, wilson_interval
    from utils.study import retention, write_outputs

    result = retention(planted, {1: "A", 2: "B"})
    assert [c["pass@1"] for c in result["matrix"]["A"]] == pytest.approx([0.2, 0.6, 0.4])
    assert [c["pass@1"] for c in result["matrix"]["B"]] == pytest.approx([0.1, 0.1, 0.7])
    assert result["matrix"]["A"][1]["ci95"] == pytest.approx(list(wilson_interval(6, 10)))
    # stage 2 on A: p4 and p5 went right -> wrong; 4 stayed right, 4 stayed wrong
    change = result["changes"]["A"][2]
    assert change["delta"] == pytest.approx(-0.2) and change["forgotten"] == ["p4", "p5"] and change["learned"] == []
    assert change["ci95"] == pytest.approx(list(paired_difference_interval(4, 2, 0, 4)))
    assert result["changes"]["B"][2]["learned"] == [f"p{i}" for i in range(1, 7)]
    # forgetting: best earlier minus final; A peaked after stage 1 (0.6 -> 0.4), B only rose
    forget_a = result["forgetting"]["A"]
    assert forget_a["value"] == pytest.approx(0.2) and forget_a["best_row"] == 1
    low, high = paired_difference_interval(4, 2, 0, 4)
    assert forget_a["ci95"] == pytest.approx([-high, -low])
    assert result["forgetting"]["B"]["value"] == pytest.approx(-0.6) and result["forgetting"]["B"]["best_row"] == 0
    # backward transfer: only stage 1 comes before the last: A 0.6 after learning it, 0.4 at the end
    assert result["backward_transfer"]["value"] == pytest.approx(-0.2)
    # with the starting model's own task (B, learned before the study): (0.7 - 0.1 + 0.4 - 0.6) / 2
    assert retention(planted, {0: "B", 1: "A", 2: "B"})["backward_transfer"]["value"] == pytest.approx(0.2)
    assert retention(planted, {2: "B"})["backward_transfer"] is None  # the last stage has nothing after it

    study = {"name": "planted", "path": "x.yaml", "stages": [{"name": "s1"}, {"name": "s2"}]}
    write_outputs(tmp_path / "out", study, [{"label": "", "model": "m", "seed": 1, "retention": result}])
    rows = list(csv.DictReader((tmp_path / "out" / "matrix.csv").open()))
    assert [r["stage"] for r in rows] == ["start", "s1", "s2"]
    assert [float(r["A"]) for r in rows] == pytest.approx([0.2, 0.6, 0.4])
    assert float(rows[1]["A_ci_low"]) == pytest.approx(wilson_interval(6, 10)[0], abs=1e-6)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Backward transfer: -20.0 points" in report and "| A | +20.0" in report
    for png in ("heatmap.png", "lines.png"):
        assert (tmp_path / "out" / "plots" / png).read_bytes()[:4] == b"\x89PNG"


# ---- a two-stage study on the tiny model --------------------------------------------------------------------------

def write_study(folder: Path, tiny_model_dir: Path, steps2: int = 2, **extra) -> Path:
    """Stage 1 on the OpenR1-schema sample, stage 2 on generated arithmetic; both held-out splits and a file."""
    bench_file = folder / "mini.jsonl"
    bench_file.write_text("".join(json.dumps({"problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                                  for i in range(4)))
    study = {
        "name": "tiny", "output_dir": str(folder / "studies"), "models": [str(tiny_model_dir)], "seeds": [3],
        "eval": {"max_new_tokens": 8, "batch_size": 8},
        "stages": [
            {"name": "sample", "recipe": str(SMOKE), "set": [*QUICK, "training.max_steps=2"], "task": "sample"},
            {"name": "arith", "recipe": str(SMOKE), "task": "arith",
             "set": [*QUICK, f"training.max_steps={steps2}", "data.dataset=synthetic", "data.kind=arithmetic",
                     "data.n=60", "data.level=1", "data.format=auto", "data.validation=6"]},
        ],
        "benchmarks": [{"name": "sample", "split_of": "sample"}, {"name": "arith", "split_of": "arith"},
                       {"name": "mini", "file": str(bench_file)}],
        **extra,
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def run_tiny(path: Path, **kwargs):
    from utils.study import check_study, read_study, run_study

    lines: list[str] = []
    outcome = run_study(check_study(read_study(path)), progress=False, log=lines.append, **kwargs)
    return outcome, "\n".join(lines)


@pytest.fixture(scope="module")
def finished_study(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    path = write_study(folder, tiny_model_dir)
    outcome, log = run_tiny(path)
    return path, outcome, log


def matrix_of(folder: Path) -> list[dict]:
    rows = list(csv.DictReader((folder / "matrix.csv").open()))
    return [{k: v for k, v in r.items() if k != "model"} for r in rows]


def test_a_two_stage_study_runs_end_to_end(finished_study):
    _, outcome, log = finished_study
    folder = outcome.folder
    assert outcome.stopped_by is None
    assert [r["stage"] for r in matrix_of(folder)] == ["start", "sample", "arith"]
    summary = json.loads((folder / "summary.json").read_text())
    result = summary["chains"][0]["retention"]
    assert result["benchmarks"] == ["sample", "arith", "mini"]
    assert result["matrix"]["sample"][0]["problems"] == 8 and result["matrix"]["arith"][0]["problems"] == 6
    assert set(result["forgetting"]) == {"sample", "arith", "mini"} and result["backward_transfer"] is not None
    for k in range(3):
        assert (folder / "evals" / f"after{k}" / "mini" / "samples.jsonl").is_file()
    assert (folder / "report.md").is_file() and (folder / "plots" / "heatmap.png").is_file()
    assert (folder / "study.resolved.yaml").is_file()
    resolved = yaml.safe_load((folder / "stage2-arith" / "recipe.resolved.yaml").read_text())
    assert resolved["training"]["seed"] == 3 and resolved["output"]["dir"] == str(folder)


def test_stage_two_starts_from_stage_one_weights(finished_study):
    """The adapter stage 2 starts training from, loaded as training loads it, holds stage 1's trained weights."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    from utils.models import load_model_and_tokenizer
    from utils.runs import run_recipe, trained_model_folder

    folder = finished_study[1].folder
    stage1 = trained_model_folder(folder / "stage1-sample")
    recipe2 = run_recipe(folder / "stage2-arith")
    assert Path(recipe2.model.name) == stage1
    start = get_peft_model_state_dict(load_model_and_tokenizer(recipe2).model)
    trained1 = load_file(str(stage1 / "adapter_model.safetensors"))
    assert start.keys() == trained1.keys()
    assert all(start[k].float().equal(trained1[k].float()) for k in trained1)
    assert any(k.endswith("lora_B.weight") and trained1[k].abs().sum() > 0 for k in trained1)  # stage 1 trained
    trained2 = load_file(str(trained_model_folder(folder / "stage2-arith") / "adapter_model.safetensors"))
    assert any(not trained2[k].equal(trained1[k]) for k in trained1)  # and stage 2 trained it further


def test_a_finished_study_resumed_redoes_nothing(finished_study):
    path, outcome, _ = finished_study
    before = matrix_of(outcome.folder)
    again, log = run_tiny(path, resume=True)
    assert "stage 1 (sample): finished earlier" in log and "stage 2 (arith): finished earlier" in log
    assert "== stage" not in log and "== evaluation" not in log
    assert matrix_of(again.folder) == before


def test_a_folder_holding_a_study_needs_resume_or_force(finished_study):
    from utils.errors import UserError

    with pytest.raises(UserError, match="already holds a study: pass --resume"):
        run_tiny(finished_study[0])


@pytest.mark.slow
def test_sigterm_in_stage_two_then_resume_keeps_what_finished_and_gives_the_same_matrix(finished_study, tiny_model_dir,
                                                                                        tmp_path):
    path = write_study(tmp_path, tiny_model_dir, steps2=2)
    folder = tmp_path / "studies" / "tiny"
    command = [sys.executable, str(ROOT / "scripts" / "study.py"), str(path), "--no-progress"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    marker = folder / "stage2-arith" / "checkpoint-1" / "checkpoint.complete"
    deadline = time.time() + 240
    while not marker.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    assert "stopped by SIGTERM during stage 2 (arith)" in out and f"{path} --resume" in out
    kept = {p: p.stat().st_mtime_ns for p in [*(folder / "evals").rglob("*.jsonl"), *(folder / "stage1-sample").rglob("*")]}
    assert not (folder / "evals" / "after2").exists()

    resumed = subprocess.run([*command, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "stage 1 (sample): finished earlier" in resumed.stdout
    assert "evaluation after stage 1: finished earlier" in resumed.stdout
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # nothing finished was rewritten
    assert matrix_of(folder) == matrix_of(finished_study[1].folder)  # as the uninterrupted study's


# ---- bad study files: one line, exit 2, before any model loads ---------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s["benchmarks"].append({"name": "gsm8x"}), r"benchmarks\[3\]\.name: unknown benchmark .*gsm8k"),
    (lambda s: s["stages"][1]["set"].append("training.learning_rat=1"), r"stage arith .*learning_rat.*learning_rate"),
    (lambda s: s["stages"][0].update({"from": "arith"}), r"stages\[0\]\.from: 'arith': a cycle"),
    (lambda s: s["stages"][1].update({"recipe": "nope.yaml"}), r"stages\[1\]\.recipe: .*nope.yaml: recipe file not"),
    (lambda s: s["stages"][0].update({"task": "gsm8k"}), r"stages\[0\]\.task: 'gsm8k' is not one of the benchmarks"),
])
def test_a_bad_study_file_is_one_line_and_exit_2_before_any_model_loads(run_script_here, tiny_model_dir, tmp_path,
                                                                        change, message):
    path = write_study(tmp_path, tiny_model_dir)
    study = yaml.safe_load(path.read_text())
    change(study)
    path.write_text(yaml.safe_dump(study))
    code, out, err = run_script_here("study", path)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    import re

    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "studies").exists()  # nothing written, so nothing loaded


def test_a_missing_starting_model_is_refused_by_the_checks(tiny_model_dir, tmp_path):
    from utils.errors import UserError
    from utils.study import check_study, read_study

    path = write_study(tmp_path, tiny_model_dir, models=[str(tiny_model_dir), "/nowhere/model"])
    with pytest.raises(UserError, match=r"models: model.name: /nowhere/model: no such folder"):
        check_study(read_study(path))


def test_dry_run_prints_the_plan_and_writes_nothing(run_script_here, tiny_model_dir, tmp_path):
    path = write_study(tmp_path, tiny_model_dir)
    code, out, err = run_script_here("study", path, "--dry-run")
    assert code == 0, err
    assert "2. arith:" in out and "from stage sample's trained model" in out
    assert "mini <- " in out and "validation split of stage arith" in out
    assert not (tmp_path / "studies").exists()
