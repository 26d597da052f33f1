"""Format rewards: the prompt format's layout, strictly, softly, or tag by tag."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from utils.rewards._common import PROMPT_FORMATS, _texts

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_THINK_STRICT = re.compile(r"^\s*<think>\n(?P<think>.*?)\n</think>\n(?P<answer>.*)$", re.S)
_XML_STRICT = re.compile(r"^\s*<reasoning>\n.*?\n</reasoning>\n<answer>\n(?P<answer>.*?)\n</answer>\s*$", re.S)
_THINK_SOFT = re.compile(r"<think>.*?</think>(?P<answer>.*)$", re.S)
_XML_SOFT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>(?P<answer>.*?)</answer>", re.S)


def _check_format(prompt_format: str) -> None:
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt format {prompt_format!r}; expected one of {', '.join(PROMPT_FORMATS)}")


def _strict_ok(text: str, prompt_format: str) -> bool:
    if prompt_format == "think_boxed":
        m = _THINK_STRICT.match(text)
        if not m or "<think>" in m.group("think") or "</think>" in m.group("answer") or "<think>" in m.group("answer"):
            return False
        boxes = list(_BOX.finditer(m.group("answer")))
        return len(boxes) == 1 and _matching_brace(m.group("answer"), boxes[0].end() - 1) is not None
    m = _XML_STRICT.match(text)
    if not m:
        return False
    inner = m.group("answer")
    return bool(inner.strip()) and "<answer>" not in inner and text.count("<reasoning>") == 1


def _soft_ok(text: str, prompt_format: str) -> bool:
    if prompt_format == "think_boxed":
        m = _THINK_SOFT.search(text)
        return bool(m and _BOX.search(m.group("answer")))
    m = _XML_SOFT.search(text)
    return bool(m and m.group("answer").strip())


def format_strict(
    prompts: Sequence[Any], completions: Sequence[Any], *, prompt_format: str = "think_boxed", **kwargs: Any
) -> list[float | None]:
    """1.0 for exactly the format's layout, else 0.0.

    think_boxed: `<think>\\n...\\n</think>\\n` then an answer section with exactly one `\\boxed{}`.
    xml: `<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>` and nothing after.
    """
    _check_format(prompt_format)
    return [1.0 if _strict_ok(t, prompt_format) else 0.0 for t in _texts(completions)]


def format_soft(
    prompts: Sequence[Any], completions: Sequence[Any], *, prompt_format: str = "think_boxed", **kwargs: Any
) -> list[float | None]:
    """1.0 when the format's parts appear in order anywhere (think block then a box; reasoning then answer)."""
    _check_format(prompt_format)
    return [1.0 if _soft_ok(t, prompt_format) else 0.0 for t in _texts(completions)]


def tag_count(
    prompts: Sequence[Any], completions: Sequence[Any], *, prompt_format: str = "think_boxed", **kwargs: Any
) -> list[float | None]:
    """Partial credit, 0.25 per well-placed part, so the format is learnable before it is exact.

    think_boxed: one `<think>` at the start, one `</think>`, one `\\boxed{}` after it, nothing but
    punctuation after the box. xml: one each of `<reasoning>\\n`, `\\n</reasoning>\\n`, `\\n<answer>\\n`,
    `\\n</answer>`, less a little for text trailing after `</answer>` (as in the GSM8K GRPO recipe).
    """
    _check_format(prompt_format)
    return [_tag_score(t, prompt_format) for t in _texts(completions)]


def _tag_score(text: str, prompt_format: str) -> float:
    score = 0.0
    if prompt_format == "think_boxed":
        if text.count("<think>") == 1 and text.lstrip().startswith("<think>"):
            score += 0.25
        if text.count("</think>") == 1:
            score += 0.25
            after = text.split("</think>", 1)[1]
            boxes = [m.start() for m in _BOX.finditer(after)]
            if len(boxes) == 1:
                score += 0.25
                tail = after[boxes[0] :]
                closing = _matching_brace(tail, tail.index("{"))
                if closing is not None and not re.sub(r"[\s$.\\\])]", "", tail[closing + 1 :]):
                    score += 0.25
        return score
    if text.count("<reasoning>\n") == 1:
        score += 0.25
    if text.count("\n</reasoning>\n") == 1:
        score += 0.25
    if text.count("\n<answer>\n") == 1:
        score += 0.25
    if text.count("\n</answer>") == 1:
        score += 0.25
        score -= min(0.25, len(text.split("\n</answer>")[-1].strip()) * 0.001)
    return max(0.0, score)


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    for i in range(start, min(len(text), start + 4000)):
        c = text[i]
        if c == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif c == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return i
    return None
