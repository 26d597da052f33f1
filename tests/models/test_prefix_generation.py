"""CPU generation that computes a batch's shared prompt prefix once: the same tokens as plain `generate`, less
prefill, and plain `generate` wherever the layout does not apply."""

from __future__ import annotations

import functools

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig

from utils.models import generate_sharing_prefix
from utils.models._prefix import MIN_SHARED_TOKENS

SYSTEM = ("You are a careful math tutor. Think step by step inside think tags, then give the final answer "
          "in a box. Keep the working short and check the arithmetic before you answer.")
QUESTIONS = ["What is 12 * 7?", "Eli has 17 books and buys 8 more. How many books does Eli have now?",
             "2 + 2?", "A train leaves at 3 and arrives at 5. How long is the trip in hours?"]


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def chat_batch(tokenizer, questions: list[str], system: str | None = SYSTEM, side: str = "left") -> dict:
    texts = [tokenizer.apply_chat_template(([{"role": "system", "content": system}] if system else [])
                                           + [{"role": "user", "content": q}], tokenize=False,
                                           add_generation_prompt=True) for q in questions]
    tokenizer.padding_side = side
    try:
        return dict(tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False))
    finally:
        tokenizer.padding_side = "left"


def prefill_widths(model, monkeypatch) -> list[int]:
    """The input widths of the model's forward passes, in order (the first of generate's is its prefill)."""
    widths: list[int] = []
    forward = model.forward

    @functools.wraps(forward)  # keeps the signature, which names the cache argument
    def counting(*args, **kwargs):
        widths.append(kwargs["input_ids"].shape[1])
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting)
    return widths


def greedy(tokenizer) -> dict:
    return {"max_new_tokens": 12, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}


def test_greedy_completions_are_the_same_tokens_with_the_prefix_computed_once(model, tiny_tokenizer, monkeypatch):
    batch = chat_batch(tiny_tokenizer, QUESTIONS)
    with torch.no_grad():
        plain = model.generate(**batch, **greedy(tiny_tokenizer))
        widths = prefill_widths(model, monkeypatch)
        shared = generate_sharing_prefix(model, **batch, **greedy(tiny_tokenizer))
    assert torch.equal(shared, plain)  # prompt rows as given, then the same new tokens
    width = batch["input_ids"].shape[1]
    prefix, prefill = widths[0], widths[1]  # the prefix once (one row), then generate's prefill of the rest
    assert prefix >= MIN_SHARED_TOKENS
    assert prefill == width - prefix


def test_sampled_completions_follow_the_seed_as_plain_generate_does(model, tiny_tokenizer):
    batch = chat_batch(tiny_tokenizer, [q for q in QUESTIONS[:2] for _ in range(4)])  # TRL's layout: 2 x 4
    config = GenerationConfig(max_new_tokens=12, do_sample=True, temperature=0.7, top_k=None,
                              pad_token_id=tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        torch.manual_seed(3)
        plain = model.generate(**batch, generation_config=config)
        torch.manual_seed(3)
        shared = generate_sharing_prefix(model, **batch, generation_config=config)
    assert torch.equal(shared, plain)


@pytest.mark.parametrize("case", ["no system prompt", "right padding", "two sequences a row", "one row"])
def test_where_the_layout_does_not_apply_generate_runs_as_given(model, tiny_tokenizer, monkeypatch, case):
    questions, system, side, extra = QUESTIONS, SYSTEM, "left", {}
    if case == "no system prompt":  # the template's head alone is shorter than the bound
        system = None
    elif case == "right padding":
        side = "right"
    elif case == "two sequences a row":
        extra = {"num_return_sequences": 2, "do_sample": True}
    else:
        questions = QUESTIONS[:1]
    batch = chat_batch(tiny_tokenizer, questions, system, side)
    with torch.no_grad():
        widths = prefill_widths(model, monkeypatch)
        out = generate_sharing_prefix(model, **batch, **{**greedy(tiny_tokenizer), **extra})
    assert widths[0] == batch["input_ids"].shape[1]  # the whole prompt in generate's own prefill
    assert out.shape[0] == len(questions) * extra.get("num_return_sequences", 1)


def test_a_model_whose_generate_was_replaced_is_left_to_it(model, tiny_tokenizer, monkeypatch):
    """The CPU generation copy replaces the policy's generate and shares the prefix itself; evaluation during
    training calls the policy, so the prefix must not be computed twice (or by the policy's slower weights)."""
    calls = []
    monkeypatch.setattr(model, "generate", lambda **kwargs: calls.append(kwargs) or kwargs["input_ids"])
    batch = chat_batch(tiny_tokenizer, QUESTIONS)
    generate_sharing_prefix(model, **batch, **greedy(tiny_tokenizer))
    assert len(calls) == 1 and torch.equal(calls[0]["input_ids"], batch["input_ids"]) and "cache" not in calls[0]


def test_the_training_copy_samples_through_the_shared_prefix(tiny_model_dir, tiny_tokenizer, monkeypatch):
    from utils.training import GenerationCopy

    policy = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    copy = GenerationCopy(policy, dtype="fp32")
    batch = chat_batch(tiny_tokenizer, [q for q in QUESTIONS[:2] for _ in range(4)])
    config = GenerationConfig(max_new_tokens=8, do_sample=False, pad_token_id=tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        copy.sync()
        plain = copy.copy.generate(**batch, generation_config=config)
        widths = prefill_widths(copy.copy, monkeypatch)
        shared = copy.generate(**batch, generation_config=config)  # as TRL calls it
    assert torch.equal(shared, plain)
    assert widths[1] < batch["input_ids"].shape[1]
