"""Batched generation from chat messages with transformers' generate (any backend, CPU or GPU)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from utils.data import render_prompts


def generate(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[list[dict]],
    max_new_tokens: int,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    progress: Any = None,
) -> list[str]:
    """Completions (decoded, special tokens removed), one per conversation, in input order.

    Prompts are sorted by length so each batch pads little; the model is put in eval mode (KV cache on)
    and restored to its previous mode afterwards, so this is safe to call in the middle of training.
    """
    import torch

    texts = render_prompts(list(conversations), tokenizer)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    outputs: list[str] = [""] * len(texts)
    was_training = model.training
    model.eval()
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "pad_token_id": tokenizer.pad_token_id,
        "use_cache": True,
    }
    if do_sample:
        kwargs["temperature"] = temperature
    else:  # greedy: silence sampling settings inherited from the model's generation_config
        kwargs.update(temperature=None, top_p=None, top_k=None)
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
                batch = {k: v.to(device) for k, v in batch.items()}
                out = model.generate(**batch, **kwargs)
                new_tokens = out[:, batch["input_ids"].shape[1] :]
                for i, text in zip(idx, tokenizer.batch_decode(new_tokens, skip_special_tokens=True), strict=True):
                    outputs[i] = text
                if progress is not None:
                    progress.update(len(idx))
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return outputs
