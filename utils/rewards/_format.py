"""Format rewards: the prompt format's layout, strictly, softly, or tag by tag.

The layout instruction copied is not the layout used: the system prompt describes the layout, tags and a
placeholder box included (`inside <think> </think> tags ... \\boxed{ANSWER}`), and a small model that parrots
it would otherwise earn the format reward for it (SmolLM2-135M did within 20 GRPO steps, at zero accuracy).
Copied runs of the system prompt and boxes or answer tags holding its placeholders are dropped before any
format is checked. The layouts, tags and system prompts are utils.formats'.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import Any

from utils.formats import BOX, DEFAULT_FORMAT, FORMATS, PromptFormat, get_format
from utils.rewards._common import _texts

# Characters of the layout instruction's words (tags and spaces not counted) copied in one run that make it
# parroting, not using its layout: a completion that merely uses the tags in their order copies no words.
COPIED_RUN = 16
_TAGS_AND_SPACE = re.compile(r"</?\w+>|\s+")
# Answer tags (of any format) around a placeholder in the layout instruction are copies, not answers.
_ANSWER_TAGS = [re.compile(re.escape(f.answer[0]) + "(?P<answer>.*?)" + re.escape(f.answer[1]), re.S)
                for f in FORMATS.values() if f.answer]


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every closed \\boxed{...} in `text`."""
    found = []
    for m in BOX.finditer(text):
        close = _matching_brace(text, m.end() - 1)
        if close is not None:
            found.append((m.start(), close + 1, text[m.end():close].strip()))
    return found


def _system_text(prompt: Any) -> str:
    """The text of a prompt's system message(s), where it shows the answer layout; a string prompt whole."""
    if isinstance(prompt, (list, tuple)):
        return "\n".join(str(m.get("content") or "") for m in prompt
                         if isinstance(m, dict) and m.get("role") == "system")
    return "" if prompt is None else str(prompt)


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
    placeholders |= {m.group("answer").strip() for tags in _ANSWER_TAGS for m in tags.finditer(layout)}
    for start, end, content in reversed(_boxes(text)):
        if content in placeholders:
            text = text[:start] + text[end:]
    for tags in _ANSWER_TAGS:
        text = tags.sub(lambda m: "" if m.group("answer").strip() in placeholders else m.group(0), text)
    return text


def _answers(prompts: Sequence[Any], completions: Sequence[Any]) -> list[str]:
    """Completion texts with the prompt's placeholders dropped (prompts may be missing: nothing dropped)."""
    texts = _texts(completions)
    if not prompts or len(prompts) != len(texts):
        return texts
    return [_without_copies(t, _system_text(p)) for t, p in zip(texts, prompts, strict=True)]


def _format(reward: str, prompt_format: str) -> PromptFormat:
    return get_format(prompt_format, key=f"{reward}: prompt format")


def _strict_ok(text: str, fmt: PromptFormat) -> bool:
    m = fmt.strict.match(text)
    if not m:
        return False
    opening, closing = fmt.reasoning
    answer = m.group("answer")
    if fmt.answer is None:  # boxed: one closed box after the reasoning, no second reasoning block
        if opening in m.group("reasoning") or closing in answer or opening in answer:
            return False
        boxes = list(BOX.finditer(answer))
        return len(boxes) == 1 and _matching_brace(answer, boxes[0].end() - 1) is not None
    return bool(answer.strip()) and fmt.answer[0] not in answer and text.count(opening) == 1


def _soft_ok(text: str, fmt: PromptFormat) -> bool:
    m = fmt.soft.search(text)
    if fmt.answer is None:
        return bool(m and BOX.search(m.group("answer")))
    return bool(m and m.group("answer").strip())


def format_strict(
    prompts: Sequence[Any], completions: Sequence[Any], *, prompt_format: str = DEFAULT_FORMAT, **kwargs: Any
) -> list[float | None]:
    """1.0 for exactly the format's layout, else 0.0.

    think_boxed: `<think>\\n...\\n</think>\\n` then an answer section with exactly one `\\boxed{}`.
    xml: `<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>` and nothing after.
    """
    fmt = _format("format_strict", prompt_format)
    return [1.0 if _strict_ok(t, fmt) else 0.0 for t in _answers(prompts, completions)]


def format_soft(
    prompts: Sequence[Any], completions: Sequence[Any], *, prompt_format: str = DEFAULT_FORMAT, **kwargs: Any
) -> list[float | None]:
    """1.0 when the format's parts appear in order anywhere (think block then a box; reasoning then answer)."""
    fmt = _format("format_soft", prompt_format)
    return [1.0 if _soft_ok(t, fmt) else 0.0 for t in _answers(prompts, completions)]


def tag_count(
    prompts: Sequence[Any], completions: Sequence[Any], *, prompt_format: str = DEFAULT_FORMAT, **kwargs: Any
) -> list[float | None]:
    """Partial credit, 0.25 per well-placed part, so the format is learnable before it is exact.

    think_boxed: one `<think>` at the start, one `</think>`, one `\\boxed{}` after it, nothing but
    punctuation after the box. xml: one each of `<reasoning>\\n`, `\\n</reasoning>\\n`, `\\n<answer>\\n`,
    `\\n</answer>`, less a little for text trailing after `</answer>` (as in the GSM8K GRPO recipe).
    """
    fmt = _format("tag_count", prompt_format)
    return [_tag_score(t, fmt) for t in _answers(prompts, completions)]


def _tag_score(text: str, fmt: PromptFormat) -> float:
    if fmt.answer is None:
        return _boxed_tag_score(text, fmt.reasoning)
    return _tagged_tag_score(text, fmt.reasoning, fmt.answer)


def _boxed_tag_score(text: str, reasoning: tuple[str, str]) -> float:
    opening, closing = reasoning
    score = 0.0
    if text.count(opening) == 1 and text.lstrip().startswith(opening):
        score += 0.25
    if text.count(closing) == 1:
        score += 0.25
        after = text.split(closing, 1)[1]
        boxes = [m.start() for m in BOX.finditer(after)]
        if len(boxes) == 1:
            score += 0.25
            tail = after[boxes[0] :]
            brace = _matching_brace(tail, tail.index("{"))
            if brace is not None and not re.sub(r"[\s$.\\\])]", "", tail[brace + 1 :]):
                score += 0.25
    return score


def _tagged_tag_score(text: str, reasoning: tuple[str, str], answer: tuple[str, str]) -> float:
    (opening, closing), (answer_open, answer_close) = reasoning, answer
    score = 0.0
    if text.count(f"{opening}\n") == 1:
        score += 0.25
    if text.count(f"\n{closing}\n") == 1:
        score += 0.25
    if text.count(f"\n{answer_open}\n") == 1:
        score += 0.25
    if text.count(f"\n{answer_close}") == 1:
        score += 0.25
        score -= min(0.25, len(text.split(f"\n{answer_close}")[-1].strip()) * 0.001)
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
