"""Cleaning an answer (`clean_answer`) and the comparison key equal answers usually share."""

from __future__ import annotations

import re

from utils.answers._latex import _BOX_START, _box_content, _is_bracketed, _sanitize, _split_top_level

_TEXT_CMD = r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox|operatorname)\s*"
_WHOLE_TEXT = re.compile(rf"^{_TEXT_CMD}\{{([^{{}}]*)\}}$")
_TRAILING_TEXT = re.compile(rf"\s*{_TEXT_CMD}\{{[^{{}}]*\}}(?:\s*\^\s*\{{?\d\}}?)?\s*$")
_INNER_TEXT = re.compile(rf"{_TEXT_CMD}\{{([^{{}}]*)\}}")
_SIZING = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![A-Za-z])\s*\.?")
_SPACING = re.compile(r"(?<!\\)\\[,;:! ]|\\quad|\\qquad|~")  # not the `\\` row break of a matrix
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree(?![A-Za-z])|\\circ(?![A-Za-z])")
_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,]|\.\d*,)")
_UNITS = (
    r"(?:cm|mm|km|m|meters?|kilometers?|centimeters?|in|inch(?:es)?|ft|feet|foot|yards?|miles?|kg|g|grams?|"
    r"pounds?|lbs?|oz|ounces?|s|sec|seconds?|min|minutes?|h|hrs?|hours?|days?|weeks?|months?|years?|"
    r"dollars?|cents?|units?|degrees?|sq|square|cubic|mph|liters?|L|ml|mL|people|students|apples)"
)
_NUMBER_WITH_UNIT = re.compile(rf"^([-+]?[\d.,]+(?:\s*\\frac\{{\d+\}}\{{\d+\}})?)\s*(?:{_UNITS}(?:\s+|\^\d|$))+$")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d|[A-Za-z]|\{[^{}]*\})\s*(\d|[A-Za-z]|\{[^{}]*\})")
_SQRT_SHORT = re.compile(r"\\sqrt\s*(\d+|[A-Za-z])(?![\w{])")
_UNICODE = {"−": "-", "–": "-", "×": "\\times ", "·": "\\cdot ", "π": "\\pi ", "∞": "\\infty ", "÷": "\\div ", "√": "\\sqrt "}


def clean_answer(answer: str) -> str:
    """Strip what never changes an answer's value; keep its structure (brackets, commas of tuples)."""
    s = _sanitize(answer).strip()
    if not s:
        return ""
    for k, v in _UNICODE.items():
        if k in s:
            s = s.replace(k, v)
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"(?<!\\)\\[\[\]()]", "", s)  # \( \) \[ \] math delimiters
    s = s.replace("\\displaystyle", "")
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = re.sub(r"\\[dt]binom(?![A-Za-z])", r"\\binom", s)
    s = _SIZING.sub("", s)
    # LaTeX thousands separators before spacing commands go: 32,\!348 and 1{,}000
    s = re.sub(r"(\d),\\!\s*(?=\d{3})", r"\1", s)
    s = re.sub(r"(\d)\{,\}(?=\d{3})", r"\1", s)
    s = _SPACING.sub(" ", s)
    s = _DEGREES.sub("", s)
    s = s.replace("\\%", "%")
    whole = _WHOLE_TEXT.match(s.strip())
    if whole:
        s = whole.group(1)
    else:
        for _ in range(3):  # units: "864 \mbox{ inches}^2", "5.4 \text{ cents}"
            stripped = _TRAILING_TEXT.sub("", s)
            if stripped == s or not stripped.strip():
                break
            s = stripped
        s = _INNER_TEXT.sub(lambda m: f" {m.group(1)} ", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"^(?:=|:)\s*", "", s)
    s = re.sub(r"(?:\s|[.,;:?]|(?<![\w)}])!)+$", "", s)  # sentence ends; 5! is a factorial
    s = s.replace("\\{", "\x01").replace("\\}", "\x02")  # protect set braces from the brace rules
    s = _FRAC_SHORT.sub(lambda m: f"\\frac{{{_unbrace(m.group(1))}}}{{{_unbrace(m.group(2))}}}", s)
    s = _SQRT_SHORT.sub(r"\\sqrt{\1}", s)
    s = s.replace("\x01", "\\{").replace("\x02", "\\}")
    unit = _NUMBER_WITH_UNIT.match(s)
    if unit:
        s = unit.group(1).strip()
    m = re.match(r"^([-+]?)(\d+)\s+(\d+)\s*/\s*(\d+)$", s)  # "2 1/2": a mixed number
    if m:
        s = f"{m.group(1)}{m.group(2)}\\frac{{{m.group(3)}}}{{{m.group(4)}}}"
    if not _is_bracketed(s):  # "(1,000)" is a tuple; "1,000" is a thousand
        s = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), s)
    if s.startswith(("\\boxed", "\\fbox")):  # a boxed gold or a whole boxed answer: the box's content
        found = _box_content(s, 0) if _BOX_START.match(s) else None
        if found and found[1] == len(s) and found[0].strip():
            return clean_answer(found[0])
    choice = re.match(r"^\(([A-Ea-e])\)$", s)
    if choice:
        s = choice.group(1).upper()
    return s.strip()


def _unbrace(arg: str) -> str:
    return arg[1:-1] if arg.startswith("{") else arg


def _key(cleaned: str) -> str:
    """A comparison key: whitespace removed except between letters (`\\cot x` stays two tokens)."""
    s = re.sub(r"(?<![A-Za-z]) | (?![A-Za-z])", "", cleaned)
    s = s.replace("{,}", ",")
    if re.fullmatch(r"[A-Za-z][A-Za-z ]+", s):  # words compare case-insensitively: East == east
        return s.lower()
    return _strip_redundant_parens(s)


def _strip_redundant_parens(s: str) -> str:
    """((7)) is 7 and ((1,2)) is (1,2): drop parentheses that wrap a whole answer with no comma inside."""
    if not (s.startswith("(") and s.endswith(")")):
        return s
    stack: list[int] = []
    match: dict[int, int] = {}
    for i, c in enumerate(s):  # one pass: where each opening parenthesis closes
        if c == "(":
            stack.append(i)
        elif c == ")" and stack:
            match[stack.pop()] = i
    n = len(s)
    layers = 0
    while layers < n // 2 and s[layers] == "(" and match.get(layers) == n - 1 - layers:
        layers += 1
    while layers and len(_split_top_level(s[layers : n - layers])) > 1:
        layers -= 1  # the innermost pair encloses a tuple: keep it
    return s[layers : n - layers] if layers else s

