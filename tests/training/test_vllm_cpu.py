"""TRL's colocated vLLM generation for real, on vLLM's CPU build (make test-vllm, in .venv-vllm):
`grpo_train.py` training through it, weight sync reaching the engine after the policy changed, and the
one-line errors. The GPU paths (Unsloth's vLLM engine, vLLM on CUDA) are tests/test_gpu.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from tests.repo import ROOT
from utils.config import load_recipe
from utils.errors import UserError

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (make setup-vllm)"),
]


SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"


@pytest.fixture(autouse=True)
def no_kv_cache_size_given(monkeypatch):
    """Each test starts as a user would, without VLLM_CPU_KVCACHE_SPACE; what our code sets is undone after
    (and monkeypatch then restores a value the caller had set)."""
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    yield
    os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)


@pytest.fixture(scope="module")
def head32_model_dir(tmp_path_factory) -> Path:
    """The tiny Qwen2 with 32-wide attention heads: vLLM's CPU attention has no kernel for the default 16."""
    from utils.models import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-head32"), hidden_size=64, heads=2, kv_heads=1)


def vllm_recipe(model_dir: Path, out: Path, *extra: str):
    return load_recipe(SMOKE, [f"model.name={model_dir}", f"output.dir={out}", "training.use_vllm=true", *extra])


def test_grpo_train_generates_through_vllm_on_cpu(head32_model_dir, tmp_path, run_script):
    # No KV cache size given, and vLLM's share of memory (2%) smaller than the trainer's process: vLLM's
    # own sizing (share minus the process's memory) would refuse to start; ours gives it an explicit size.
    result = run_script("grpo_train", SMOKE, "--no-progress", "--set", f"model.name={head32_model_dir}",
                        "--set", f"output.dir={tmp_path}", "--set", "training.use_vllm=true",
                        "--set", "training.max_steps=2", "--set", "training.vllm_gpu_memory_utilization=0.02")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "generation: vLLM (TRL, colocate)" in result.stdout and "done: 2 steps" in result.stdout
    run = tmp_path / "smoke_cpu"
    assert (run / "checkpoint-2" / "checkpoint.complete").is_file() and (run / "best" / "best.json").is_file()
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained = [m for m in steps if "loss" in m]
    assert [m["step"] for m in trained] == [1, 2]
    assert all(m["completions/mean_length"] > 0 for m in trained)
    samples = [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]
    assert samples and all(s["completion"] for s in samples)


def test_weight_sync_puts_the_trained_policy_into_the_engine(head32_model_dir, tmp_path):
    """After the policy changes, vLLM scores text as the policy does (up to its bf16), not as before."""
    from vllm import SamplingParams

    from utils.training import prepare_training

    run = prepare_training(vllm_recipe(head32_model_dir, tmp_path), progress=False)
    trainer, generation = run.trainer, run.trainer.vllm_generation
    ids = trainer.processing_class("Natalia sold 48 clips in April. The answer is 72.")["input_ids"]
    targets = torch.tensor(ids[1:])

    def engine_logprobs() -> torch.Tensor:
        out = generation.llm.generate([{"prompt_token_ids": ids}], SamplingParams(max_tokens=1, prompt_logprobs=0),
                                  use_tqdm=False)
        return torch.tensor([scores[t].logprob for t, scores in zip(ids[1:], out[0].prompt_logprobs[1:], strict=True)])

    def policy_logprobs() -> torch.Tensor:
        with torch.no_grad():
            logits = trainer.model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        return torch.log_softmax(logits, -1).gather(1, targets[:, None])[:, 0]

    before = engine_logprobs()
    assert (before - policy_logprobs()).abs().max() < 0.05
    with torch.no_grad():  # a large update of every LoRA B, as many optimizer steps would make
        generator = torch.Generator().manual_seed(0)
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    policy = policy_logprobs()
    assert (policy - before).abs().max() > 0.2, "the update should move the policy's log-probs"

    generation.sync_weights()
    after = engine_logprobs()
    assert (after - policy).abs().max() < 0.05
    assert (after - before).abs().max() > 0.2


def test_in_training_evaluation_generates_through_the_run_s_engine_with_the_current_policy(
        head32_model_dir, tmp_path, monkeypatch):
    """The eval callback generates with TRL's colocated engine, not transformers, and pushes the changed policy
    into it first: afterwards the engine scores text as the policy does."""
    from vllm import SamplingParams

    from utils.evaluation import HfGenerator
    from utils.training import prepare_training

    run = prepare_training(vllm_recipe(head32_model_dir, tmp_path), progress=False)
    trainer, generation = run.trainer, run.trainer.vllm_generation
    assert run.evaluator is not None and run.evaluator.engine is not None
    ids = trainer.processing_class("Natalia sold 48 clips in April. The answer is 72.")["input_ids"]
    with torch.no_grad():  # as optimizer steps would: every LoRA B moved
        generator = torch.Generator().manual_seed(0)
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
        logits = trainer.model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
    policy = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]

    def not_transformers(*args, **kwargs):
        raise AssertionError("in-training evaluation should generate through the run's vLLM engine")

    monkeypatch.setattr(HfGenerator, "generate_batch", not_transformers)
    trainer.state.global_step = 1
    accuracy = run.evaluator.evaluate(trainer.model, 1)
    assert 0.0 <= accuracy <= 1.0 and trainer._last_loaded_step == 1
    out = generation.llm.generate([{"prompt_token_ids": ids}], SamplingParams(max_tokens=1, prompt_logprobs=0),
                                  use_tqdm=False)
    engine = torch.tensor([scores[t].logprob for t, scores in zip(ids[1:], out[0].prompt_logprobs[1:], strict=True)])
    assert (engine - policy).abs().max() < 0.05
    evals = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in evals if "eval/accuracy" in m] == [1]


@pytest.mark.parametrize(("model", "changes", "message"), [
    ("tiny", [], r"vLLM's CPU attention takes head sizes \[32, .*this model's is 16"),
    ("head32", ["model.load_in_4bit=true", "model.strict=true"], "vLLM's CPU build cannot load bitsandbytes 4-bit weights"),
], ids=["head-size-16", "bitsandbytes-4bit"])
def test_what_vllms_cpu_build_cannot_run_is_a_user_error(tiny_model_dir, head32_model_dir, tmp_path, model, changes,
                                                         message):
    """Refused before the engine starts and before the run folder is written; else a traceback from vLLM."""
    from utils.training import prepare_training

    model_dir = tiny_model_dir if model == "tiny" else head32_model_dir
    with pytest.raises(UserError, match=message):
        prepare_training(vllm_recipe(model_dir, tmp_path, *changes), progress=False)
    assert not (tmp_path / "smoke_cpu").exists()
