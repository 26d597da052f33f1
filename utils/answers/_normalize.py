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
_THOUSANDS = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?%?")
_DECIMAL_COMMA = re.compile(r"([-+]?(?:0(?=,\d{3})|\d{4,})),(\d+)%?")  # 0,5 may be a list of roots
_ELLIPSIS = re.compile(r"\\[lc]?dots(?![A-Za-z])|…|\.\.\.")
_PERCENT_WORD = re.compile(r"(?<=\d)\s*(?:\\text\{\s*)?(?:percent(?:age)?|pct|per\s*cent)\b\s*\}?\.?", re.I)
_ARRAY_MATRIX = re.compile(r"[\[(]?\s*\\begin\{array\}\{[^{}]*\}(.*?)\\end\{array\}\s*[\])]?", re.S)
_DOUBLED_BACKSLASH = re.compile(r"\\\\(?=(?:frac|dfrac|tfrac|left|right|sqrt|pi|text|cdot|times|infty)(?![A-Za-z]))")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")  # a prose word, not a command or a variable
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
    s = _strip_markup(s)
    s = _strip_text(s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"^(?:=|:)\s*", "", s)
    s = _ELLIPSIS.sub(r"\\ldots", s)  # before sentence ends go: `1, 2, 3, ...` is not `1, 2, 3`
    s = re.sub(r"(?:\s|[.,;:?]|(?<![\w)}])!)+$", "", s)  # sentence ends; 5! is a factorial
    s = s.replace("\\{", "\x01").replace("\\}", "\x02")  # protect set braces from the brace rules
    s = _FRAC_SHORT.sub(lambda m: f"\\frac{{{_unbrace(m.group(1))}}}{{{_unbrace(m.group(2))}}}", s)
    s = _SQRT_SHORT.sub(r"\\sqrt{\1}", s)
    s = s.replace("\x01", "\\{").replace("\x02", "\\}")
    s = _number_forms(s)
    s = _list_forms(s)
    if s.startswith(("\\boxed", "\\fbox")):  # a boxed gold or a whole boxed answer: the box's content
        found = _box_content(s, 0) if _BOX_START.match(s) else None
        if found and found[1] == len(s) and found[0].strip():
            return clean_answer(found[0])
    choice = re.match(r"^\(([A-Ea-e])\)$", s)
    if choice:
        s = choice.group(1).upper()
    return s.strip()


def _strip_markup(s: str) -> str:
    """Unicode symbols, `$`, math delimiters, sizing and spacing commands, degrees; `\\%` as `%`."""
    for k, v in _UNICODE.items():
        if k in s:
            s = s.replace(k, v)
    s = s.replace("\\$", "").replace("$", "")
    s = _DOUBLED_BACKSLASH.sub(r"\\", s)  # `\\frac` from a doubly escaped string is `\frac`
    s = re.sub(r"(?<!\\)\\[\[\]()]", "", s)  # \( \) \[ \] math delimiters
    s = s.replace("\\displaystyle", "")
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = re.sub(r"\\[dt]binom(?![A-Za-z])", r"\\binom", s)
    s = _SIZING.sub("", s)
    s = _ARRAY_MATRIX.sub(r"\\begin{pmatrix}\1\\end{pmatrix}", s)  # [\begin{array}{cc}..\end{array}] is a matrix
    # LaTeX thousands separators before spacing commands go: 32,\!348, 1{,}000 and 14 {, }916
    s = re.sub(r"(\d),\\!\s*(?=\d{3})", r"\1", s)
    s = re.sub(r"(\d)\s*\{\s*,\s*\}\s*(?=\d{3})", r"\1", s)
    s = _SPACING.sub(" ", s)
    s = _DEGREES.sub("", s)
    return s.replace("\\%", "%")


def _strip_text(s: str) -> str:
    """`\\text{}` around a whole answer, trailing units in `\\text{}`, percent words."""
    whole = _WHOLE_TEXT.match(s.strip())
    if whole:
        s = whole.group(1)
    else:
        for _ in range(3):  # units: "864 \mbox{ inches}^2", "5.4 \text{ cents}", "0.06 \text{ yuan}"
            stripped = _TRAILING_TEXT.sub("", s)
            if stripped == s or not stripped.strip() or re.search(r"percent|pct", s[len(stripped) :], re.I):
                break
            s = stripped
        s = _INNER_TEXT.sub(lambda m: f" {m.group(1)} ", s)
    return _PERCENT_WORD.sub("%", s)


def _number_forms(s: str) -> str:
    """Units after a number, mixed numbers, thousands separators and decimal commas of a single number."""
    unit = _NUMBER_WITH_UNIT.match(s)
    if unit:
        s = unit.group(1).strip()
    m = re.match(r"^([-+]?)(\d+)\s+(\d+)\s*/\s*(\d+)$", s)  # "2 1/2": a mixed number
    if m:
        return f"{m.group(1)}{m.group(2)}\\frac{{{m.group(3)}}}{{{m.group(4)}}}"
    # Only a whole answer that is one number: in (2,12) \cup (12,102) or (1,2),(3,456) commas separate.
    if _THOUSANDS.fullmatch(s):
        return s.replace(",", "")
    decimal = _DECIMAL_COMMA.fullmatch(s)  # 0,111 and 1000,99 cannot be thousands: decimal commas
    if decimal:
        return f"{decimal.group(1)}.{decimal.group(2)}"
    return s


def _list_forms(s: str) -> str:
    """Lists written with semicolons or "and" (`-12;-11;-10`, `6 and 8`) as comma lists."""
    if ";" in s and not _is_bracketed(s):
        parts = [p.strip() for p in s.split(";")]
        if len(parts) > 1 and all(parts) and not any("," in p for p in parts):
            return ", ".join(parts)
    if " and " in s:
        parts = [p.strip() for p in re.split(r"\s*,?\s*\band\s+", s)]
        if len(parts) > 1 and all(p and not _WORD.search(p) for p in parts):
            return ", ".join(parts)
    return s


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

