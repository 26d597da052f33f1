"""Format rewards: the prompt format's layout, strictly, softly, or tag by tag.

The layout instruction copied is not the layout used: the system prompt describes the layout, tags and a
placeholder box included (`inside <think> </think> tags ... \\boxed{ANSWER}`), and a small model that parrots
it would otherwise earn the format reward for it (SmolLM2-135M did within 20 GRPO steps, at zero accuracy).
Copied runs of the system prompt and boxes or answer tags holding its placeholders are dropped before any
format is checked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import Any

from utils.rewards._common import PROMPT_FORMATS, _texts, prompt_text

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_THINK_STRICT = re.compile(r"^\s*<think>\n(?P<think>.*?)\n</think>\n(?P<answer>.*)$", re.S)
_XML_STRICT = re.compile(r"^\s*<reasoning>\n.*?\n</reasoning>\n<answer>\n(?P<answer>.*?)\n</answer>\s*$", re.S)
_THINK_SOFT = re.compile(r"<think>.*?</think>(?P<answer>.*)$", re.S)
_XML_SOFT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>(?P<answer>.*?)</answer>", re.S)
# Characters of the layout instruction's words (tags and spaces not counted) copied in one run that make it
# parroting, not using its layout: a completion that merely uses the tags in their order copies no words.
COPIED_RUN = 16
_TAGS_AND_SPACE = re.compile(r"</?\w+>|\s+")
_ANSWER_TAG = re.compile(r"<answer>(?P<answer>.*?)</answer>", re.S)


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every closed \\boxed{...} in `text`."""
    found = []
    for m in _BOX.finditer(text):
        close = _matching_brace(text, m.end() - 1)
        if close is not None:
            found.append((m.start(), close + 1, text[m.end():close].strip()))
    return found


def _layout(prompt: Any) -> str:
    """Where a prompt shows the answer layout: its system message(s), or the whole prompt when it is a string."""
    if isinstance(prompt, (list, tuple)):
        return prompt_text([m for m in prompt if isinstance(m, dict) and m.get("role") == "system"])
    return prompt_text(prompt)


def _without_copies(text: str, layout: str) -> str:
    """`text` less what it copied from the layout instruction: runs holding COPIED_RUN+ characters of its words,
    then any box or answer tag holding one of its placeholders (the copy may be reworded around them)."""
    if not layout:
        return text
    matcher = SequenceMatcher(None, text, layout, autojunk=False)
    for start, _, size in reversed(matcher.get_matching_blocks()):
        if len(_TAGS_AND_SPACE.sub("", text[start:start + size])) >= COPIED_RUN:
            text = text[:start] + text[start + size:]
    placeholders = {content for _, _, content in _boxes(layout)}
    placeholders |= {m.group("answer").strip() for m in _ANSWER_TAG.finditer(layout)}
    for start, end, content in reversed(_boxes(text)):
        if content in placeholders:
            text = text[:start] + text[end:]
    return _ANSWER_TAG.sub(lambda m: "" if m.group("answer").strip() in placeholders else m.group(0), text)


def _answers(prompts: Sequence[Any], completions: Sequence[Any]) -> list[str]:
    """Completion texts with the prompt's placeholders dropped (prompts may be missing: nothing dropped)."""
    texts = _texts(completions)
    if not prompts or len(prompts) != len(texts):
        return texts
    return [_without_copies(t, _layout(p)) for t, p in zip(texts, prompts, strict=True)]


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
    return [1.0 if _strict_ok(t, prompt_format) else 0.0 for t in _answers(prompts, completions)]


def format_soft(
    prompts: Sequence[Any], completions: Sequence[Any], *, prompt_format: str = "think_boxed", **kwargs: Any
) -> list[float | None]:
    """1.0 when the format's parts appear in order anywhere (think block then a box; reasoning then answer)."""
    _check_format(prompt_format)
    return [1.0 if _soft_ok(t, prompt_format) else 0.0 for t in _answers(prompts, completions)]


def tag_count(
    prompts: Sequence[Any], completions: Sequence[Any], *, prompt_format: str = "think_boxed", **kwargs: Any
) -> list[float | None]:
    """Partial credit, 0.25 per well-placed part, so the format is learnable before it is exact.

    think_boxed: one `<think>` at the start, one `</think>`, one `\\boxed{}` after it, nothing but
    punctuation after the box. xml: one each of `<reasoning>\\n`, `\\n</reasoning>\\n`, `\\n<answer>\\n`,
    `\\n</answer>`, less a little for text trailing after `</answer>` (as in the GSM8K GRPO recipe).
    """
    _check_format(prompt_format)
    return [_tag_score(t, prompt_format) for t in _answers(prompts, completions)]


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
