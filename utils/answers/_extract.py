"""Finding the final answer a completion commits to (`extract_answer`)."""

from __future__ import annotations

import re

from utils.answers._latex import _BOX_START, TAIL_CHARS, _box_content, _sanitize
from utils.answers._normalize import clean_answer

_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(r"(?:final\s+answer|answer)\s*(?:is\s*:?|:|=)\s*", re.I)
_CALC_ANNOTATION = re.compile(r"<<[^<>\n]{0,200}>>")  # GSM8K calculator traces: 16-3-4=9 inside <<>>
_NUMBER_TOKEN = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?%?|-?\.\d+%?")
_BOX_JOINER = re.compile(r"^[\s$,]*(?:and)?[\s$,]*$")  # between boxes of one multi-part answer


def extract_answer(text: str | None) -> str | None:
    """The final answer a completion commits to, cleaned (see `clean_answer`); None when there is none.

    Rules, first that applies: the last complete `\\boxed{}` / `\\fbox{}` (boxes joined only by
    commas or "and" make one answer: `\\boxed{2} and \\boxed{3}` -> `2, 3`); else the last
    `<answer>...</answer>`; else `#### N`; else "the (final) answer is ..."; else the text after
    the last `=`; else the last number.
    """
    if text is None:
        return None
    try:
        text = _sanitize(text)
    except Exception:  # noqa: BLE001 - an unreadable object has no answer
        return None
    if not text.strip():
        return None
    for rule in (_from_boxes, _from_answer_tags, _from_hashes, _from_answer_is, _from_last_equals, _from_last_number):
        found = rule(text)
        if found:
            cleaned = clean_answer(found)
            if cleaned:
                return cleaned
    return None


def _from_boxes(text: str) -> str | None:
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    starts = [m.start() for m in _BOX_START.finditer(text)]
    boxes: list[tuple[int, str, int]] = []  # (start, content, end) of complete boxes, last first
    for start in reversed(starts[-64:]):  # a truncated completion may end in an unclosed box
        found = _box_content(text, start)
        if found is None:
            if boxes:
                break
            continue
        content, end = found
        if boxes and not _BOX_JOINER.match(text[end : boxes[-1][0]]):
            break
        if boxes and end > boxes[-1][0]:  # nested box inside the previous one: not a sibling
            break
        boxes.append((start, content, end))
        if len(boxes) >= 8:
            break
    if not boxes:
        return None
    parts = [content.strip() for _, content, _ in reversed(boxes) if content.strip()]
    return ", ".join(parts) if parts else None


def _from_answer_tags(text: str) -> str | None:
    # rfind, not a regex: 100k unclosed `<answer>` tags would make `<answer>(.*?)</answer>` quadratic
    lower = text.lower()
    end = lower.rfind("</answer>")
    start = lower.rfind("<answer>", 0, end) if end != -1 else -1
    if start == -1:
        return None
    content = text[start + len("<answer>") : end].strip()
    if not content:
        return None
    if len(_PROSE_WORD.findall(content)) >= 3:  # prose inside the tags: find the answer in it
        for rule in (_from_hashes, _from_answer_is, _from_last_equals, _from_last_number):
            found = rule(content)
            if found:
                return found
        return None
    return content


def _from_hashes(text: str) -> str | None:
    if "####" not in text:
        return None
    found = None
    for m in _HASHES.finditer(text):
        if m.group(1).strip():
            found = m.group(1)
    return _math_prefix(found) if found else None


def _from_answer_is(text: str) -> str | None:
    tail = _CALC_ANNOTATION.sub("", text[-TAIL_CHARS:])
    for m in reversed(list(_ANSWER_IS.finditer(tail))):
        rest = tail[m.end() : m.end() + 500]
        rest = rest.split("\n\n", 1)[0]
        inline = re.match(r"\s*(\${1,2}|\\\(|\\\[)(.+?)(\${1,2}|\\\)|\\\])", rest, re.S)
        candidate = inline.group(2) if inline else _math_prefix(rest.split("\n", 1)[0])
        if candidate and candidate.strip():
            return candidate
    return None


def _from_last_equals(text: str) -> str | None:
    tail = _CALC_ANNOTATION.sub("", text[-TAIL_CHARS:])
    for m in reversed(list(re.finditer(r"(?<![<>!=\\])=(?!=)", tail))):
        rest = tail[m.end() :].split("\n", 1)[0]
        candidate = _math_prefix(rest)
        if candidate:
            return candidate
        if rest.strip():  # prose right after the last `=`: the rule found nothing usable
            return None
    return None


def _from_last_number(text: str) -> str | None:
    tail = _CALC_ANNOTATION.sub("", text[-TAIL_CHARS:])
    last = None
    for m in _NUMBER_TOKEN.finditer(tail):
        last = m
    return last.group(0) if last else None


# A word that is prose, not math: 2+ letters not preceded by a backslash (that is a LaTeX command)
# and not a function name; or the article "a" before another word ("$50 a day").
_MATH_WORDS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "arcsin", "arccos", "arctan",
    "sinh", "cosh", "tanh", "lim", "max", "min", "gcd", "lcm", "mod", "det", "dx", "dy", "xy", "ab", "bc", "ac",
}
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z])(?:[A-Za-z]{2,}|[aA](?=\s+[A-Za-z]{2}))(?![A-Za-z])|[&\"](?<!\\&)|'s\b")


def _math_prefix(s: str) -> str | None:
    """The math that starts `s`, up to the first prose word, without a trailing sentence end."""
    s = s.strip()
    # inline math first: `$42$ apples`
    m = re.match(r"(\${1,2}|\\\(|\\\[)(.+?)(\${1,2}|\\\)|\\\])", s, re.S)
    if m:
        return m.group(2).strip() or None
    cut = len(s)
    for w in _PROSE_WORD.finditer(s):
        if w.group(0).lower() in _MATH_WORDS or _inside_text_command(s, w.start()):
            continue
        cut = w.start()
        break
    s = s[:cut]
    # a sentence end: ". " or a final "."; "10.5" keeps its point
    s = re.split(r"(?<!\d)\.(?!\d)|\.(?=\s)|[;!?](?=\s|$)", s, maxsplit=1)[0]
    s = s.strip().rstrip(",:;").strip()
    return s or None


def _inside_text_command(s: str, pos: int) -> bool:
    opened = s.rfind("\\text{", 0, pos)
    return opened != -1 and s.find("}", opened) > pos

