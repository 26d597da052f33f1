"""Batched generation on CPU that computes the prompt prefix every row shares once.

Why: batched prompts share their chat template's head and system prompt (think_boxed through SmolLM2's template:
59 of 86-91 tokens), and on CPU a batch's prefill is compute-bound. The demo's evaluation (64 problems, fp32,
2 cores as an AVX2-only CPU) spent 14 of its 30 s generating in the prefill; with the prefix computed once it ran
1.25x faster (bench/bench_prefix.py), every completion token for token the same. transformers' own prefix reuse (a cache handed to
`generate`) does the work; what it lacks for a batch is the layout, made here: the shared prefix first, then
each row's left-padded rest, the padding masked in the middle. `generate` takes position ids from the mask's
running sum, so every row's rest continues at the prefix's end, as it would after plain left padding.

CPU only: on a GPU the prefill is a small share of generation, and Unsloth patches `generate`. Anything but
plain greedy or sampled decoding of left-padded token ids goes to `generate` unchanged.
"""

from __future__ import annotations

import inspect
from typing import Any

MIN_SHARED_TOKENS = 16  # below this the prefix's own forward pass costs about what it saves
PLAIN_KWARGS = {"input_ids", "attention_mask", "generation_config", "streamer"}  # besides generation settings


def generate_sharing_prefix(model: Any, input_ids: Any = None, attention_mask: Any = None, **kwargs: Any) -> Any:
    """`model.generate(input_ids=..., attention_mask=..., **kwargs)`, the same token ids back (prompt rows as
    given, then the new tokens), with the prefix all rows share computed once where that applies."""
    shared = _shared_prefix(model, input_ids, attention_mask, kwargs)
    if shared < MIN_SHARED_TOKENS:
        given = {"input_ids": input_ids, "attention_mask": attention_mask}
        return model.generate(**{k: v for k, v in given.items() if v is not None}, **kwargs)
    import torch

    ids, mask = _prefix_first(input_ids, attention_mask, shared, _pad_id(model, kwargs))
    name = _cache_kwarg(model)
    cache = _prefix_cache(model, ids[:1, :shared], len(ids), name)
    out = model.generate(input_ids=ids, attention_mask=mask, **{name: cache}, **kwargs)
    return torch.cat([input_ids, out[:, input_ids.shape[1]:]], dim=1)


def _shared_prefix(model: Any, input_ids: Any, attention_mask: Any, kwargs: dict[str, Any]) -> int:
    """Tokens at the start of every row's prompt that all rows share (0 where the prefix path does not apply);
    each row keeps at least one token of its own for `generate` to start from."""
    import torch

    if input_ids is None or attention_mask is None or input_ids.ndim != 2 or len(input_ids) < 2:
        return 0
    if "generate" in vars(model):  # replaced on the instance (the CPU generation copy): it shares the prefix itself
        return 0
    if input_ids.device.type != "cpu" or not _plain_decoding(model, kwargs):
        return 0
    lengths = attention_mask.sum(dim=1)
    if not _left_padded(attention_mask, lengths):
        return 0
    room = int(lengths.min()) - 1
    if room < MIN_SHARED_TOKENS:
        return 0
    width = input_ids.shape[1]
    starts = width - lengths
    heads = input_ids.gather(1, starts[:, None] + torch.arange(room, device=input_ids.device)[None, :])
    differs = (heads != heads[:1]).any(dim=0)
    return int(differs.int().argmax()) if differs.any() else room


def _plain_decoding(model: Any, kwargs: dict[str, Any]) -> bool:
    """Greedy or sampled decoding of one sequence a row, with generate's own dynamic cache and token ids only."""
    if any(key not in PLAIN_KWARGS and _is_tensor(value) for key, value in kwargs.items()):
        return False  # images, token type ids and the like: their layout is the model's
    if "past_key_values" in kwargs or "cache" in kwargs or kwargs.get("assistant_model") is not None:
        return False
    config = kwargs.get("generation_config") or getattr(model, "generation_config", None)

    def setting(name: str, default: Any = None) -> Any:
        return kwargs[name] if name in kwargs else getattr(config, name, default)

    return ((setting("num_beams") or 1) == 1 and (setting("num_return_sequences") or 1) == 1
            and setting("use_cache", True) is not False and setting("cache_implementation") is None
            and not setting("return_dict_in_generate") and setting("prompt_lookup_num_tokens") is None)


def _left_padded(attention_mask: Any, lengths: Any) -> bool:
    """Each row's mask is zeros, then ones (the layout decoder-only generation needs)."""
    import torch

    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    expected = (positions[None, :] >= (attention_mask.shape[1] - lengths)[:, None]).to(attention_mask.dtype)
    return bool(torch.equal(attention_mask, expected))


def _prefix_first(input_ids: Any, attention_mask: Any, shared: int, pad_id: int) -> tuple[Any, Any]:
    """The same rows laid out as [shared prefix][padding][each row's rest], same width, padding masked."""
    import torch

    width = input_ids.shape[1]
    ids = torch.full_like(input_ids, pad_id)
    mask = torch.zeros_like(attention_mask)
    first_start = width - int(attention_mask[0].sum())
    ids[:, :shared] = input_ids[0, first_start:first_start + shared]
    mask[:, :shared] = 1
    rest = attention_mask.sum(dim=1) - shared  # each row's own tokens, still right-aligned
    keep = torch.arange(width, device=input_ids.device)[None, :] >= (width - rest)[:, None]
    ids[keep] = input_ids[keep]
    mask[keep] = 1
    return ids, mask


def _prefix_cache(model: Any, prefix_ids: Any, rows: int, name: str) -> Any:
    """The shared prefix's key/value cache (passed to forward as `name`), computed once, repeated for every row."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in _forward_parameters(model) else {}
    with torch.no_grad():
        model(input_ids=prefix_ids, use_cache=True, **last_only, **{name: cache})
    cache.batch_repeat_interleave(rows)
    return cache


def _cache_kwarg(model: Any) -> str:
    """transformers 5.24 names the cache argument `cache`; 5.17 (the GPU stack's pin) `past_key_values`."""
    return "cache" if "cache" in _forward_parameters(model) else "past_key_values"


def _forward_parameters(model: Any) -> Any:
    """The transformers model's forward parameters (a PEFT wrapper's forward takes **kwargs)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inspect.signature(base.forward).parameters


def _pad_id(model: Any, kwargs: dict[str, Any]) -> int:
    config = kwargs.get("generation_config") or getattr(model, "generation_config", None)
    pad = kwargs.get("pad_token_id", getattr(config, "pad_token_id", None))
    if isinstance(pad, list | tuple):
        pad = pad[0] if pad else None
    return int(pad) if pad is not None else 0  # masked out: any id will do


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")
