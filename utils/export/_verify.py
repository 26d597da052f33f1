"""Proof that an export computes what base + adapter computed: next-token logits on a few prompts, within a
tolerance suited to the export's precision, and the same greedy continuation of the first prompt.

The export is run with its saved weights computed in fp32: the check measures what the written weights are
worth, not CPU bf16/fp16 arithmetic (slower here, and noisier than the rounding being checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Max |next-token logit difference| allowed against base + adapter in fp32. fp32 only reorders sums; 16-bit
# exports round every weight (bf16 keeps 8 significant bits, fp16 11), GGUF q8_0 rounds matrices to 8 bits
# per block of 32. SmolLM2-135M with a random r=16 adapter (moving logits by up to 14): bf16 0.20, fp16 and
# GGUF f16 0.022, q8_0 0.64 (docs/BENCHMARKS.md "export"). About 2.5x those: corruption still stands out.
TOLERANCES = {"fp32": 1e-3, "fp16": 0.1, "bf16": 0.5, "f16": 0.1, "q8_0": 1.5}
GREEDY_TOKENS = 24


@dataclass
class Reference:
    """What the model being exported computes, in fp32, before it is merged or written."""

    prompts: list[str]  # rendered by the chat template
    input_ids: list[Any]  # one [1, n] tensor per prompt
    logits: list[Any]  # next-token logits after each prompt: one [vocab] fp32 tensor per prompt
    greedy: list[int]  # greedy continuation of the first prompt
    greedy_gaps: list[float]  # top-1 minus top-2 logit at each greedy step: how close each choice was
    adapter_effect: float | None = None  # max |base+adapter - base|: what the check can tell apart


@dataclass
class Check:
    """One verification: of the exported folder or of the GGUF file."""

    what: str
    max_diff: float
    tolerance: float
    greedy_tokens: int
    greedy_note: str  # "identical", or where and why a difference was accepted or refused
    greedy_ok: bool

    @property
    def passed(self) -> bool:
        return self.max_diff <= self.tolerance and self.greedy_ok

    def describe(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (f"{self.what}: max |logit difference| {self.max_diff:.3g} (tolerance {self.tolerance:g}); "
                f"greedy {self.greedy_tokens} tokens {self.greedy_note} [{verdict}]")


def tokenize_prompts(tokenizer: Any, prompts: list[str]) -> list[Any]:
    # The chat template already wrote the special tokens: don't add a BOS of the tokenizer's own.
    return [tokenizer(p, return_tensors="pt", add_special_tokens=False).input_ids for p in prompts]


def prompt_logits(model: Any, input_ids: list[Any]) -> list[Any]:
    import torch

    with torch.no_grad():
        return [model(ids).logits[0, -1].float() for ids in input_ids]


def greedy(model: Any, tokenizer: Any, input_ids: Any, max_new_tokens: int = GREEDY_TOKENS) -> tuple[list[int], list[float]]:
    """Greedy continuation (token ids) and the top-1 minus top-2 logit gap at each step."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False, temperature=None,
                             top_p=None, top_k=None, max_new_tokens=max_new_tokens, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=pad, output_logits=True, return_dict_in_generate=True)
    new = out.sequences[0, input_ids.shape[1]:].tolist()
    gaps = [float(top[0] - top[1]) for top in (step[0].float().topk(2).values for step in out.logits)]
    return new, gaps


def reference_outputs(model: Any, tokenizer: Any, prompts: list[str]) -> Reference:
    """Logits and greedy text of `model` (a PeftModel: also measures what the adapter changes)."""
    input_ids = tokenize_prompts(tokenizer, prompts)
    logits = prompt_logits(model, input_ids)
    tokens, gaps = greedy(model, tokenizer, input_ids[0])
    effect = None
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            base = prompt_logits(model, input_ids)
        effect = max(float((a - b).abs().max()) for a, b in zip(logits, base, strict=True))
    return Reference(prompts, input_ids, logits, tokens, gaps, effect)


def verify_outputs(model: Any, tokenizer: Any, reference: Reference, tolerance: float, what: str) -> Check:
    """Verify `model` against the reference: its logits on the same prompts and its greedy continuation."""
    logits = prompt_logits(model, reference.input_ids)
    max_diff = max(float((a - b).abs().max()) for a, b in zip(logits, reference.logits, strict=True))
    tokens, _ = greedy(model, tokenizer, reference.input_ids[0], max_new_tokens=len(reference.greedy) or 1)
    ok, note = _greedy_verdict(reference, tokens[: len(reference.greedy)], tolerance)
    return Check(what, max_diff, tolerance, len(reference.greedy), note, ok)


def _greedy_verdict(reference: Reference, tokens: list[int], tolerance: float) -> tuple[bool, str]:
    """Identical, or diverging only where the reference itself hesitated (top-2 gap within the tolerance):
    a rounding of that size may flip such a choice without the weights being wrong."""
    if tokens == reference.greedy:
        return True, "identical"
    step = next((i for i, (a, b) in enumerate(zip(tokens, reference.greedy, strict=False)) if a != b),
                min(len(tokens), len(reference.greedy)))
    gap = reference.greedy_gaps[step] if step < len(reference.greedy_gaps) else float("inf")
    if gap <= tolerance:
        return True, f"identical up to token {step}, where the reference's top-2 logits were {gap:.3g} apart (a near tie)"
    return False, f"differ from token {step} (the reference's top-2 logits were {gap:.3g} apart there)"
