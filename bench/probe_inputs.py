"""Probes of odd inputs to the scripts after training (issue #24, items 6, 7, 8, 10), run by probe_runs.py.

Each builds what a user would have (a benchmark file, an older run folder, a cut GGUF file, evaluation folders)
and runs one script on it; it must end in exit 0, or 2 with one `error:` line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"


@dataclass
class ScriptProbe:
    name: str
    script: str  # scripts/NAME.py
    args: Callable[[Path], list[str]]  # given the probe's folder
    prepare: Callable[[Path], None] | None = None
    in_folder: str | None = None  # run from this subfolder of the probe's folder (else the repository)
    expect: int = 0


def run_script_probe(probe: ScriptProbe, folder: Path) -> subprocess.CompletedProcess:
    if probe.prepare:
        probe.prepare(folder)
    cwd = folder / probe.in_folder if probe.in_folder else ROOT
    cwd.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(ROOT / "scripts" / f"{probe.script}.py"), *probe.args(folder)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def amc_file(folder: Path) -> None:
    """aimo_validation_amc.jsonl's shape: a `question` column and bare float answers."""
    rows = [{"question": f"What is {i} + {i}?", "answer": 2.0 * i} for i in (71, 3, 12)]
    (folder / "aimo_validation_amc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def older_run(model: Path, recorded: str = "models/tiny") -> Callable[[Path], None]:
    """A run folder as older code left it: started in project/ with model.name models/tiny, its adapter
    recording that relative path."""
    def prepare(folder: Path) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        from utils.config import load_recipe
        from utils.runs import BEST, RESOLVED_RECIPE

        base = folder / "project" / "models" / "tiny"
        shutil.copytree(model, base)
        run = folder / "project" / "checkpoints" / "old"
        torch.manual_seed(0)
        peft = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                              LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
        peft.save_pretrained(run / BEST)
        config_path = run / BEST / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = recorded
        config_path.write_text(json.dumps(config))
        load_recipe(SMOKE, ["model.name=models/tiny", "output.dir=checkpoints", "output.run_name=old"]).dump(
            run / RESOLVED_RECIPE)
    return prepare


def cut_gguf(folder: Path) -> None:
    """A GGUF file cut inside its header (SmolLM2's when installed, else a header of our own making)."""
    from utils.models import smollm2_gguf

    source = smollm2_gguf()
    head = source.read_bytes()[:1000] if source else b"GGUF\x03\x00\x00\x00\x10\x00"
    (folder / "cut.gguf").write_bytes(head)


def evaluations(folder: Path) -> None:
    """Evaluation folders as evaluate.py writes them: 64 and 16 problems of gsm8k, and one stopped midway."""
    from utils.evaluation import summarize, write_report

    for name, count, finished in (("base", 64, True), ("short", 16, True), ("stopped", 64, False)):
        records = [{"id": f"gsm8k-{i}", "sample": 0, "problem": f"{i} + {i}?", "predicted": str(2 * i),
                    "gold": str(2 * i), "correct": i % 3 != 0, "tokens": 5, "truncated": False}
                   for i in range(count if finished else count // 2)]
        bench = folder / name / "gsm8k"
        bench.mkdir(parents=True)
        (bench / "settings.json").write_text("{}\n")
        (bench / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        if finished:
            (bench / "summary.json").write_text(json.dumps(summarize(records, 1)))
            write_report(folder / name, name)


def script_probes(model: Path) -> list[ScriptProbe]:
    eval_args = ["--max-new-tokens", "4", "--no-progress", "--limit", "2"]
    return [
        ScriptProbe("evaluate.py: question column, bare answers", "evaluate",
                    lambda f: [str(model), "--bench", str(f / "aimo_validation_amc.jsonl"), "--out", str(f / "eval"),
                               *eval_args], amc_file),
        ScriptProbe("evaluate.py --columns with an unknown role", "evaluate",
                    lambda f: [str(model), "--bench", str(f / "aimo_validation_amc.jsonl"), "--columns", "problme=q"],
                    amc_file, expect=2),
        ScriptProbe("merge_lora.py: older run's relative base, elsewhere", "merge_lora",
                    lambda f: [str(f / "project" / "checkpoints" / "old"), "--out", str(f / "merged")],
                    older_run(model), in_folder="elsewhere"),
        ScriptProbe("evaluate.py: older run's relative base, elsewhere", "evaluate",
                    lambda f: [str(f / "project" / "checkpoints" / "old"), "--bench", "gsm8k", "--out", str(f / "eval"),
                               *eval_args], older_run(model), in_folder="elsewhere"),
        ScriptProbe("merge_lora.py: relative base found nowhere", "merge_lora",
                    lambda f: [str(f / "project" / "checkpoints" / "old"), "--out", str(f / "merged")],
                    older_run(model, "../models/tiny"), in_folder="elsewhere", expect=2),
        ScriptProbe("import_gguf.py: file cut inside its header", "import_gguf",
                    lambda f: [str(f / "cut.gguf"), "--out", str(f / "imported")], cut_gguf, expect=2),
        ScriptProbe("compare.py: 64 vs 16 problems", "compare",
                    lambda f: [str(f / "base"), str(f / "short"), "--out", str(f / "cmp")], evaluations, expect=2),
        ScriptProbe("compare.py --intersection: 64 vs 16 problems", "compare",
                    lambda f: [str(f / "base"), str(f / "short"), "--out", str(f / "cmp"), "--intersection"],
                    evaluations),
        ScriptProbe("compare.py: an unfinished evaluation", "compare",
                    lambda f: [str(f / "base"), str(f / "stopped"), "--out", str(f / "cmp")], evaluations, expect=2),
    ]
