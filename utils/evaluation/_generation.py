"""Batched generation of rendered prompts with transformers' generate (any backend, CPU or GPU).

Prompts come rendered through the tokenizer's chat template (utils.data.render_prompts), are sorted by
length so each batch pads little, and padded on the left (decoder-only models continue from the right end).
Each completion comes back with its token count and whether it stopped at the token budget (truncated)
rather than at end-of-sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from utils.models import generate_sharing_prefix


@dataclass(frozen=True)
class Sampling:
    """How completions are drawn: greedy (the default) or sampled with a temperature and a seed."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Generated:
    text: str  # decoded, special tokens removed
    tokens: int  # generated tokens, end-of-sequence included, padding excluded
    truncated: bool  # stopped by max_new_tokens, not by end-of-sequence


def length_order(texts: Sequence[str]) -> list[int]:
    """Indices of `texts`, shortest first: batches of similar length pad (and waste) little."""
    return sorted(range(len(texts)), key=lambda i: len(texts[i]))


def quantization_of(model: Any) -> str | None:
    """How a loaded transformers model's weights are quantized, in words (`4-bit NF4`), or None for plain
    weights: the dtype alone would call a 4-bit model float16 (its compute dtype)."""
    config = getattr(getattr(model, "config", None), "quantization_config", None)
    if config is None:
        return None
    values = config if isinstance(config, dict) else config.to_dict()
    if values.get("load_in_4bit"):
        return f"4-bit {str(values.get('bnb_4bit_quant_type') or 'nf4').upper()}"
    if values.get("load_in_8bit"):
        return "8-bit"
    return str(values.get("quant_method") or "quantized")


class HfGenerator:
    """Generation through a loaded transformers model (plain, PEFT or merged): `generate_batch` per batch."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.on_token: Callable[[int], None] | None = None  # called with the step count as a batch decodes

    @property
    def dtype(self) -> str:
        return str(self.model.dtype).removeprefix("torch.")

    @property
    def quantization(self) -> str | None:
        return quantization_of(self.model)

    def _generate_kwargs(self, sampling: Sampling) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "do_sample": sampling.do_sample,
            "pad_token_id": self.tokenizer.pad_token_id,
            "use_cache": True,
        }
        if sampling.do_sample:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=None)
        else:  # greedy: silence sampling settings inherited from the model's generation_config
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def generate_batch(self, texts: Sequence[str], sampling: Sampling) -> list[Generated]:
        """Completions of rendered prompts, in order, as one padded batch.

        The model is put in eval mode (KV cache on) and restored to its previous mode afterwards, so this
        is safe to call in the middle of training.
        """
        import torch

        tokenizer, model = self.tokenizer, self.model
        was_training, padding_side = model.training, tokenizer.padding_side
        model.eval()
        tokenizer.padding_side = "left"
        device = next(model.parameters()).device
        try:
            batch = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {k: v.to(device) for k, v in batch.items()}
            if sampling.do_sample:
                torch.manual_seed(sampling.seed)
            streamer = {"streamer": _StepCounter(self.on_token)} if self.on_token else {}
            with torch.inference_mode():
                out = generate_sharing_prefix(model, **batch, **self._generate_kwargs(sampling), **streamer)
            return self._decode(out[:, batch["input_ids"].shape[1]:])
        finally:
            tokenizer.padding_side = padding_side
            model.train(was_training)

    def _decode(self, new_tokens: Any) -> list[Generated]:
        eos = _eos_ids(self.model, self.tokenizer)
        results = []
        for ids, text in zip(new_tokens.tolist(), self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True),
                             strict=True):
            # A row that finished early is padded after its first end-of-sequence (pad may equal eos);
            # a row without one ran out of tokens.
            ended = next((i for i, t in enumerate(ids) if t in eos), None)
            results.append(Generated(text, ended + 1 if ended is not None else len(ids), truncated=ended is None))
        return results


class _StepCounter:
    """A generate() streamer that only counts decoding steps, so a long batch can show progress (a batch of 64
    on a CPU takes minutes, and the problem count moves only when it ends). Its first put() is the prompt."""

    def __init__(self, on_step: Callable[[int], None]) -> None:
        self.on_step, self.steps = on_step, -1

    def put(self, value: Any) -> None:
        self.steps += 1
        if self.steps:
            self.on_step(self.steps)

    def end(self) -> None:
        pass


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every id that ends generation: the generation config may list several (ChatML: <|im_end|>, <|endoftext|>)."""
    config = getattr(model, "generation_config", None)
    ids = getattr(config, "eos_token_id", None)
    ids = ids if isinstance(ids, list) else [ids]
    return {i for i in [*ids, tokenizer.eos_token_id] if i is not None}


def generate_all(generator: Any, texts: Sequence[str], sampling: Sampling, progress: Any = None) -> list[Generated]:
    """Completions of many rendered prompts in input order: length-sorted batches of the generator's size."""
    order = length_order(texts)
    outputs: list[Generated | None] = [None] * len(texts)
    for start in range(0, len(order), generator.batch_size):
        idx = order[start: start + generator.batch_size]
        for i, result in zip(idx, generator.generate_batch([texts[i] for i in idx], sampling), strict=True):
            outputs[i] = result
        if progress is not None:
            progress.update(len(idx))
    return [o for o in outputs if o is not None]

