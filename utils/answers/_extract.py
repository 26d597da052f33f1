"""Finding the final answer a completion commits to (`extract_answer`).

Order of evidence, first that applies:
1. the last complete `\boxed{}` / `\fbox{}`; boxes joined only by commas, "and" or spacing
   (`\boxed{2} \\quad \text{and} \\quad \boxed{3}`) make one answer `2, 3`; an explicit "the final
   answer is ..." after the last box overrides it; a completion that ends inside an unfinished box
   has no answer (it was cut off: an earlier number is not what it would have said);
2. the last `<answer>...</answer>` (prose inside is read with rules 3-5);
3. `#### N`;
4. "the (final) answer is ...", "Final Answer:" (a heading: the paragraph after it is read);
5. the last complete math expression: a `$...$`, `\\(...\\)`, `\\[...\\]` region (several joined by
   "and" or commas make a list), the text after the last plain `=`, or a number standing alone,
   whichever comes last. Never a fragment: `$\frac{1}{3}$` is `\frac{1}{3}`, not `3`; `AZYUK2A`
   has no answer.
"""

from __future__ import annotations

import re

from utils.answers._latex import _BOX_START, MAX_BOX_CHARS, TAIL_CHARS, _box_content, _sanitize
from utils.answers._normalize import clean_answer

_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(r"(?:final\s+answer|answer)\s*(?:is\s*:?|:|=)[ \t*_#]*", re.I)
_FINAL_ANSWER = re.compile(r"final\s+answer\s*(?:is|:)", re.I)  # only this overrides a box
_CALC_ANNOTATION = re.compile(r"<<[^<>\n]{0,200}>>")  # GSM8K calculator traces: 16-3-4=9 inside <<>>
# A number standing alone: not part of a word (AZYUK2A), a command argument (\frac{1}{3}) or a power.
_LONE_NUMBER = re.compile(
    r"(?<![\w.}{^_/\\])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s+\d+/\d+(?![\d/])|/\d+)?%?"
    r"(?=(?:[A-Za-z]{2,3}|[mgshL])?[²³]?(?![\w{}^_]|\.\d|/))"
    r"|(?<![\w.])-?\.\d+%?(?![\w.])"
)
# Between parts of one multi-part answer: commas, semicolons, "and", spacing, `$`, `\text{and}`.
_JOINER = re.compile(r"^(?:[\s$,;]|and\b|\\[()\[\]]|\\quad|\\qquad|\\[,;: !]|\\text\{[^{}]{0,40}?(?:\band|,)?\s*\})*$")
# Inline or display math; `$$` first so `$$x$$` is one region.
_MATH_REGION = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+?)\$|\\\(([^\n]+?)\\\)|\\\[(.+?)\\\]", re.S)
_TEXT_COMMAND = re.compile(r"\\(?:text\w*|mbox|mathrm|operatorname)\s*\{[^{}]*\}")
_BARE_NAME = re.compile(r"^(?:[A-Za-z]|[A-Z]{2,})(?:_\{?\w+\}?)?(?:\([A-Za-z]\))?$")  # $n$, $f(x)$, $a_1$, $ABCD$: a name, not an answer
_ENVIRONMENT = re.compile(r"\\begin\{[A-Za-z*]+\}(?:\{[^{}]*\})?|\\end\{[A-Za-z*]+\}")  # with array's {cc}
_BROKEN_INLINE = re.compile(r"(?:\$|\\\()[ \t]*\n\s*$")  # `$ \n 9 \n $`: inline math cannot span lines
_SENTENCE_END = re.compile(r"[.!?](?:\s|\$|$)|\n")
_CUT_OFF = "cut off"  # the completion ends inside an unfinished box


def extract_answer(text: str | None) -> str | None:
    """The final answer a completion commits to, cleaned (see `clean_answer`); None when there is none.

    See the module docstring for the order of evidence.
    """
    if text is None:
        return None
    try:
        text = _sanitize(text)
    except Exception:  # noqa: BLE001 - an unreadable object has no answer
        return None
    if not text.strip():
        return None
    for rule in (_from_boxes, _from_answer_tags, _from_hashes, _from_answer_is, _from_last_math):
        found = rule(text)
        if found == _CUT_OFF:
            return None
        cleaned = clean_answer(found) if found else ""
        if cleaned:
            return cleaned
    return None


def _from_boxes(text: str) -> str | None:
    """The last box (or joined boxes), a closing statement after it, or _CUT_OFF."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    starts = [m.start() for m in _BOX_START.finditer(text)]
    if _box_content(text, starts[-1]) is None and len(text) - starts[-1] <= MAX_BOX_CHARS:
        return _CUT_OFF
    boxes: list[tuple[int, str, int]] = []  # (start, content, end) of complete boxes, last first
    for start in reversed(starts[-64:]):
        found = _box_content(text, start)
        if found is None:
            if boxes:
                break
            continue
        content, end = found
        if boxes and not _JOINER.match(text[end : boxes[-1][0]]):
            break
        if boxes and end > boxes[-1][0]:  # nested box inside the previous one: not a sibling
            break
        boxes.append((start, content, end))
        if len(boxes) >= 8:
            break
    if not boxes:
        return None
    after = text[boxes[0][2] :]
    closing = _from_answer_is(after) if _FINAL_ANSWER.search(after) else None  # "The final answer is $10,455$"
    if closing:
        return closing
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
        for rule in (_from_hashes, _from_answer_is, _from_last_math):
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
        rest = re.sub(r'^\s*(?:\\?["\'])*', "", tail[m.end() : m.end() + 500])  # `is "$12$ and $13$"`
        paragraph = rest.split("\n\n", 1)[0]  # after a "Final Answer:" heading, the next paragraph
        candidate = _leading_math(paragraph) or _math_prefix(paragraph.split("\n", 1)[0])
        if not (candidate and candidate.strip()):  # "The number of apples is 12.": its last math
            candidate = _from_last_math(paragraph)
        if candidate and candidate.strip():
            return candidate
    return None


def _leading_math(paragraph: str) -> str | None:
    """The math regions a statement starts with: `$12$ and $13$` -> `12, 13`."""
    if not paragraph.startswith(("$", "\\(", "\\[")):
        return None
    groups = _region_groups(paragraph)
    if groups and groups[0][0][0] == 0:
        return _joined(groups[0])[1]
    inline = re.match(r"(\${1,2}|\\\(|\\\[)(.+?)(\${1,2}|\\\)|\\\])", paragraph, re.S)
    return inline.group(2) if inline else None


def _from_last_math(text: str) -> str | None:
    """The last complete math expression: a math region or the text after a plain `=`, whichever is
    later; else the last number standing alone."""
    tail = _CALC_ANNOTATION.sub("", text[-TAIL_CHARS:])
    math = max((c for c in (_last_region(tail), _last_equals(tail)) if c), default=None)
    number = _last_number(tail)
    # a sentence may end inside the math before it (`= 2.$$`): look from just before the closing delimiter
    if number and (math is None or _SENTENCE_END.search(tail, max(0, math[0] - 3), number[0] - len(number[1]))):
        return number[1]  # "... $\\frac{90}{n}$ ... Therefore, there are 12 sequences."
    return math[1] if math else None


def _last_region(tail: str) -> tuple[int, str] | None:
    """(end, content) of the last math region; regions joined by "and"/commas form one list."""
    groups = _region_groups(tail)
    return _joined(groups[-1]) if groups else None


def _region_groups(tail: str) -> list[list[tuple[int, int, str]]]:
    """Math regions that can be answers, as runs joined only by commas, "and" or spacing."""
    groups: list[list[tuple[int, int, str]]] = []
    for m in _MATH_REGION.finditer(tail):
        raw = next(g for g in m.groups() if g is not None)
        content = raw.strip()
        if not content or _has_prose(content) or _is_currency(m.group(0), raw, tail[m.end() : m.end() + 1]):
            continue
        if _BARE_NAME.match(content):
            continue
        if groups and _JOINER.match(tail[groups[-1][-1][1] : m.start()]):
            groups[-1].append((m.start(), m.end(), content))
        else:
            groups.append([(m.start(), m.end(), content)])
    return groups


def _joined(group: list[tuple[int, int, str]]) -> tuple[int, str]:
    return group[-1][1], ", ".join(_right_of_equals(content) for _, _, content in group[-8:])


def _is_currency(region: str, raw: str, following: str) -> bool:
    """`$204 + $160 + $330 = $694`: dollar signs, not math (`$5 and gets $` is caught as prose)."""
    if region.startswith("$$") or not region.startswith("$"):
        return False
    return following[:1].isdigit() or raw.rstrip().endswith(("=", "+", "-", "*", "/", "\\times", "\\cdot"))


def _right_of_equals(content: str) -> str:
    """`x = 42` -> `42`, `2+3=5` -> `5`; relations (<=, \\geq) stay whole."""
    sides = re.split(r"(?<![<>!=\\])=(?!=)", content)
    return sides[-1].strip() if len(sides) > 1 and sides[-1].strip() else content


def _has_prose(s: str) -> bool:
    if "\\begin" in s:
        s = _ENVIRONMENT.sub(" ", s).replace("&", " ")  # \\begin{pmatrix}, matrix columns: not prose
    if re.fullmatch(r"\s*[A-Za-z]+\s*", s):
        return False  # one word ($odd$): a text answer
    return any(
        w.group(0).lower() not in _MATH_WORDS and not _inside_text_command(s, w.start()) for w in _PROSE_WORD.finditer(s)
    )


def _last_equals(tail: str) -> tuple[int, str] | None:
    """(position, the math after the last plain `=`); None when prose follows it."""
    m = None
    for m in re.finditer(r"(?<![<>!=\\])=(?!=)", tail):  # noqa: B007 - the last one
        continue
    if m is None:
        return None
    line_end = tail.find("\n", m.end())
    candidate = _math_prefix(tail[m.end() : line_end if line_end != -1 else len(tail)])
    return (m.end(), candidate) if candidate else None


def _last_number(tail: str) -> tuple[int, str] | None:
    last = None
    for m in _LONE_NUMBER.finditer(tail):
        if not _BROKEN_INLINE.search(tail, max(0, m.start() - 20), m.start()):
            last = m
    return (last.end(), last.group(0)) if last else None


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
    return any(m.start() < pos < m.end() for m in _TEXT_COMMAND.finditer(s, max(0, pos - 200), pos + 200))

