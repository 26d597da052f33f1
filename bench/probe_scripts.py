"""The scripts beside grpo_train.py, probed as bench/probe_runs.py probes training (issue 24; run from there):
an unwritable --out is one line and exit 2 in evaluate.py, compare.py, merge_lora.py and import_gguf.py;
SIGTERM mid-evaluation exits 143 keeping the samples, and the printed command continues them; a second
evaluation into a folder another one holds is refused naming it.

Read-only: a folder under /proc, which refuses new files even to root (chmod would not stop root).
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "openr1_sample.jsonl"  # 45 problems with answers
READ_ONLY = "/proc/grpo-probe/out"


def script(name: str, *args: object) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *map(str, args)]


def run(cmd: list[str], stop_when: Callable[[], bool] | None = None) -> subprocess.CompletedProcess:
    """Run `cmd`; with `stop_when`, send SIGTERM as soon as it holds (checked every 50 ms, up to 5 minutes)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if stop_when is not None:
        deadline = time.monotonic() + 300
        while proc.poll() is None and not stop_when() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def continues(result: subprocess.CompletedProcess, samples: Path) -> str | None:
    """The printed `continue with:` command runs to the end, each problem's sample once."""
    hint = next((line for line in result.stdout.splitlines() if line.startswith("continue with: ")), None)
    if hint is None or "samples so far kept" not in result.stdout:
        return "no 'continue with:' line saying the samples are kept"
    again = subprocess.run(shlex.split(hint.removeprefix("continue with: ")), cwd=ROOT, capture_output=True, text=True,
                           timeout=900)
    ids = [json.loads(line)["id"] for line in samples.read_text().splitlines()] if samples.is_file() else []
    summary = samples.with_name("summary.json")
    total = json.loads(summary.read_text())["problems"] if summary.is_file() else None
    if again.returncode != 0 or len(ids) != total or len(set(ids)) != len(ids):
        return f"the printed command: exit {again.returncode}, {len(ids)} samples for {total} problems"
    return None


def guard_probes(model: Path, tmp: Path, chosen: Callable[[str], bool],
                 check: Callable[[subprocess.CompletedProcess, int], str | None],
                 report: Callable[[str, subprocess.CompletedProcess, str | None, float], int]) -> tuple[int, int]:
    """Run the probes `chosen` picks by name, one `report` row each; returns (probes run, probes failed)."""
    from utils.runs import FolderLock

    evaluate = script("evaluate", model, "--bench", SAMPLE, "--max-new-tokens", 2, "--no-progress", "--backend", "hf")
    held = tmp / "held-eval"
    stopped = tmp / "stopped-eval"
    samples = stopped / SAMPLE.stem / "samples.jsonl"
    adapter = tmp / "adapter"
    evals = [tmp / "eval-a", tmp / "eval-b"]

    def two_evaluations() -> None:
        for out in evals:
            run([*evaluate, "--limit", "2", "--out", str(out)])

    def held_by_another() -> subprocess.CompletedProcess:
        with FolderLock(held, "an evaluation"):
            return run([*evaluate, "--limit", "1", "--out", str(held)])

    def an_adapter() -> None:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        lora = LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")
        get_peft_model(AutoModelForCausalLM.from_pretrained(model), lora).save_pretrained(adapter)

    def a_gguf() -> None:
        an_adapter()
        run(script("merge_lora", adapter, "--no-verify", "--gguf", "f16", "--out", tmp / "merged"))

    cases: list[tuple[str, Callable[[], None] | None, Callable[[], subprocess.CompletedProcess], int]] = [
        ("evaluate.py, --out read-only", None, lambda: run([*evaluate, "--limit", "1", "--out", READ_ONLY]), 2),
        ("evaluate.py, --out held by another", None, held_by_another, 2),
        ("evaluate.py, SIGTERM mid-benchmark", None, lambda: run(
            [*evaluate, "--batch-size", "1", "--out", str(stopped)],
            stop_when=lambda: samples.is_file() and samples.read_text().count("\n") >= 2), 143),
        ("compare.py, --out read-only", two_evaluations, lambda: run(script("compare", *evals, "--out", READ_ONLY)), 2),
        ("merge_lora.py, --out read-only", an_adapter, lambda: run(script("merge_lora", adapter, "--out", READ_ONLY)), 2),
        ("import_gguf.py, --out read-only", a_gguf,
         lambda: run(script("import_gguf", tmp / "merged" / "merged-f16.gguf", "--out", READ_ONLY)), 2),
    ]
    ran = failures = 0
    for name, prepare, probe, expect in (c for c in cases if chosen(c[0])):
        ran += 1
        if prepare:
            prepare()
        started = time.perf_counter()
        result = probe()
        problem = check(result, expect)
        if problem is None and expect == 143:
            problem = continues(result, samples)
        failures += report(name, result, problem, started)
    return ran, failures
