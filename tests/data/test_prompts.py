"""Prompt formats: messages per format, system prompt overrides, rendering through the tiny tokenizer's
chat template, and exact prompt-token counting (including the fast path of PromptTokenCounter)."""

import pytest

from utils.data import (
    PromptTokenCounter,
    prompt_token_counts,
    render_prompt,
    render_prompts,
    tokens_at_most_bytes,
)
from utils.errors import UserError
from utils.formats import FORMAT_NAMES, FORMATS, build_messages

PROBLEM = "What is $\\frac{1}{2} + \\frac{1}{4}$?"


def test_formats_and_their_system_prompts():
    assert set(FORMAT_NAMES) == {"think_boxed", "xml"} == set(FORMATS)
    think = FORMATS["think_boxed"].system_prompt
    assert "<think>" in think and "</think>" in think and "\\boxed{" in think
    xml = FORMATS["xml"].system_prompt
    assert "<reasoning>" in xml and "</reasoning>" in xml and "<answer>" in xml and "</answer>" in xml
    assert "boxed" not in xml and "<think>" not in xml


@pytest.mark.parametrize("fmt", ["think_boxed", "xml"])
def test_build_messages_system_then_user(fmt):
    messages = build_messages("  " + PROBLEM + "\n", fmt)
    assert messages == [
        {"role": "system", "content": FORMATS[fmt].system_prompt},
        {"role": "user", "content": PROBLEM},  # surrounding whitespace stripped
    ]


def test_system_prompt_override_and_empty():
    assert build_messages(PROBLEM, "xml", system="Be terse.")[0] == {"role": "system", "content": "Be terse."}
    assert build_messages(PROBLEM, "think_boxed", system="") == [{"role": "user", "content": PROBLEM}]


def test_unknown_format_is_a_user_error():
    with pytest.raises(UserError, match="prompt.format: 'json' is not one of think_boxed, xml"):
        build_messages(PROBLEM, "json")


@pytest.mark.parametrize("fmt", ["think_boxed", "xml"])
def test_render_through_chat_template(tiny_tokenizer, fmt):
    text = render_prompt(build_messages(PROBLEM, fmt), tiny_tokenizer)
    assert text == (
        f"<|im_start|>system\n{FORMATS[fmt].system_prompt}<|im_end|>\n"
        f"<|im_start|>user\n{PROBLEM}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    batch = render_prompts([build_messages(PROBLEM, fmt), build_messages("Compute 2+2.", fmt)], tiny_tokenizer)
    assert batch[0] == text and batch[1].endswith("Compute 2+2.<|im_end|>\n<|im_start|>assistant\n")


def test_render_without_chat_template_is_a_user_error(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    with pytest.raises(UserError, match="no chat template"):
        render_prompt(build_messages(PROBLEM, "xml"), tokenizer)


def test_prompt_token_counts_are_the_rendered_length(tiny_tokenizer):
    messages = [build_messages(p, "think_boxed") for p in (PROBLEM, "Compute 2+2.")]
    counts = prompt_token_counts(messages, tiny_tokenizer)
    for msgs, count in zip(messages, counts, strict=True):
        text = tiny_tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        assert count == len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"])
    assert counts[0] > counts[1] > 20


def _problems(n: int) -> list[str]:
    words = "the sum of two numbers is twelve find their product if one exceeds the other by four".split()
    return [" ".join(words[: 3 + i % len(words)]) + f" {i} $x^{i % 7}$ " * (1 + i % 5) for i in range(n)]


@pytest.mark.parametrize("fmt", ["think_boxed", "xml"])
def test_token_counter_decisions_equal_exact_counts(tiny_tokenizer, fmt):
    problems = _problems(120)
    exact = prompt_token_counts([build_messages(p, fmt) for p in problems], tiny_tokenizer)
    counter = PromptTokenCounter(tiny_tokenizer, fmt)
    for limit in sorted(set(exact))[::7] + [min(exact) - 1, max(exact)]:
        assert counter.within(problems, limit) == [c <= limit for c in exact], limit
    assert counter.overhead is not None  # ChatML: the shortcut applies
    assert counter.within([], 10) == []


def test_token_counter_falls_back_to_exact_when_template_is_not_constant(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    # A template whose overhead depends on the content: the shortcut must notice and count exactly.
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['content']|length > 60 %}long long long {% endif %}"
        "{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )
    problems = _problems(80)
    exact = prompt_token_counts([build_messages(p, "xml") for p in problems], tokenizer)
    counter = PromptTokenCounter(tokenizer, "xml")
    limit = sorted(exact)[len(exact) // 2]
    assert counter.within(problems, limit) == [c <= limit for c in exact]
    assert counter.overhead is None


def test_byte_bound_holds_and_spares_the_tokenizer(tiny_tokenizer, monkeypatch):
    from tokenizers import Tokenizer, models, normalizers
    from transformers import PreTrainedTokenizerFast

    assert tokens_at_most_bytes(tiny_tokenizer)  # byte-level BPE, no normalizer
    texts = _problems(200) + ["", "x", "{}" * 50, "\\frac{1}{2}\\sqrt{3}" * 9, "   spaces   and\ttabs\n"]
    for text, ids in zip(texts, tiny_tokenizer(texts, add_special_tokens=False)["input_ids"], strict=True):
        assert len(ids) <= len(text.encode()) + 1
    word_level = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")))
    assert not tokens_at_most_bytes(word_level)
    replacing = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(tiny_tokenizer.backend_tokenizer.to_str()))
    replacing.backend_tokenizer.normalizer = normalizers.Replace("a", "aaaa")  # lengthens text: no bound
    assert not tokens_at_most_bytes(replacing)

    problems = _problems(100)
    exact = prompt_token_counts([build_messages(p, "xml") for p in problems], tiny_tokenizer)
    counter = PromptTokenCounter(tiny_tokenizer, "xml")
    counter.within(problems[:64], 10)  # calibrate
    tokenized: list[str] = []
    original = counter._content_tokens
    monkeypatch.setattr(counter, "_content_tokens", lambda texts: tokenized.extend(texts) or original(texts))
    limit = max(exact) + 50
    assert counter.within(problems, limit) == [True] * len(problems)
    assert tokenized == []  # every problem is shorter in bytes than the room left: no tokenizer call
    limit = sorted(exact)[len(exact) // 2]
    assert counter.within(problems, limit) == [c <= limit for c in exact]
    assert 0 < len(tokenized) < len(problems)
