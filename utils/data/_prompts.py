"""Prompts as the model sees them: chat messages (utils.formats) rendered through the tokenizer's chat
template, and their token counts (exact, and PromptTokenCounter's fast exact decisions)."""

from __future__ import annotations

import json
from typing import Any

from utils.errors import UserError
from utils.formats import Message, build_messages


def render_prompts(batch: list[list[Message]], tokenizer: Any) -> list[str]:
    """The texts a model sees for each conversation: the tokenizer's chat template, ready for the assistant
    turn (one template call for the batch: much faster on large data). The one prompt renderer."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template: "
            "use an instruct/chat model, or give the tokenizer a chat_template"
        )
    batch = [list(messages) for messages in batch]  # a datasets Column is no list: the template would misread it
    if not batch:
        return []
    return list(tokenizer.apply_chat_template(batch, tokenize=False, add_generation_prompt=True))


def render_prompt(messages: list[Message], tokenizer: Any) -> str:
    """`render_prompts` for one conversation."""
    return render_prompts([messages], tokenizer)[0]


def prompt_token_counts(batch: list[list[Message]], tokenizer: Any) -> list[int]:
    """Tokens of each rendered prompt, as the model will see it (template + special tokens included)."""
    texts = render_prompts(batch, tokenizer)
    # The template already wrote the special tokens; adding BOS etc. again would overcount.
    encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    return [len(ids) for ids in encoded]


def tokens_at_most_bytes(tokenizer: Any) -> bool:
    """Whether an ASCII text never has more tokens than bytes (+1 for a prefix space) with this tokenizer.

    True for byte-level BPE (GPT-2, Qwen, Llama 3, our tiny tokenizer): every token covers at least one
    byte, and the only normalizers allowed are Unicode forms, which leave ASCII unchanged.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "BPE" or backend.pre_tokenizer is None:
        return False
    try:
        pre = json.loads(backend.pre_tokenizer.__getstate__())
        norm = json.loads(backend.normalizer.__getstate__()) if backend.normalizer is not None else None
    except (AttributeError, TypeError, ValueError):
        return False
    pre_types = [p.get("type") for p in pre.get("pretokenizers", [pre])]
    norm_types = [] if norm is None else [n.get("type") for n in norm.get("normalizers", [norm])]
    return "ByteLevel" in pre_types and set(norm_types) <= {"NFC", "NFKC", "NFD", "NFKD"}


class PromptTokenCounter:
    """Decides `rendered prompt tokens <= limit` for many problems, exactly, without rendering them all.

    Rendering every prompt through the chat template and tokenizing the system prompt again for each
    row costs most of a 94k-row data pass. With chat templates the problem sits between special tokens,
    so tokens(prompt) = tokens(problem) + a constant. That is checked on the first rows (the same
    constant for all of them, else every row is counted exactly), and rows whose estimate lies within
    `margin` tokens of the limit are counted exactly anyway, so a decision never rests on the shortcut
    where it could matter. With byte-level BPE an ASCII problem has at most len(problem) + 1 tokens, so
    a problem that short passes without being tokenized at all.
    """

    def __init__(self, tokenizer: Any, prompt_format: str, system: str | None = None, margin: int = 8,
                 calibration_rows: int = 64):
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format
        self.system = system
        self.margin = margin
        self.calibration_rows = calibration_rows
        self.overhead: int | None = None  # tokens the template + system prompt add; None = count exactly
        self.calibrated = False
        self.byte_bound = tokens_at_most_bytes(tokenizer)

    def exact(self, problems: list[str]) -> list[int]:
        return prompt_token_counts([build_messages(p, self.prompt_format, self.system) for p in problems],
                                   self.tokenizer)

    def _content_tokens(self, problems: list[str]) -> list[int]:
        contents = [p.strip() for p in problems]
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and backend.truncation is None and backend.padding is None:
            # The Rust encodings' lengths, without turning millions of ids into Python ints.
            return [len(e) for e in backend.encode_batch(contents, add_special_tokens=False)]
        encoded = self.tokenizer(contents, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def _calibrate(self, problems: list[str]) -> None:
        sample = problems[: self.calibration_rows]
        differences = {e - c for e, c in zip(self.exact(sample), self._content_tokens(sample), strict=True)}
        self.overhead = differences.pop() if len(differences) == 1 else None
        self.calibrated = True

    def within(self, problems: list[str], limit: int) -> list[bool]:
        """For each problem: does its rendered prompt have at most `limit` tokens?"""
        if not problems:
            return []
        if not self.calibrated:
            self._calibrate(problems)
        if self.overhead is None:
            return [c <= limit for c in self.exact(problems)]
        # Bytes bound tokens from above: a short ASCII problem is decided without the tokenizer.
        room = limit - self.margin - self.overhead - 1
        contents = [p.strip() for p in problems]
        rest = [i for i, c in enumerate(contents) if not (self.byte_bound and len(c) <= room and c.isascii())]
        counts = [0] * len(problems)  # 0: decided "within" by the bound
        for i, c in zip(rest, self._content_tokens([contents[i] for i in rest]) if rest else [], strict=True):
            counts[i] = c + self.overhead
        near = [i for i in rest if abs(counts[i] - limit) <= self.margin]
        if near:
            for i, c in zip(near, self.exact([problems[i] for i in near]), strict=True):
                counts[i] = c
        return [c <= limit for c in counts]
