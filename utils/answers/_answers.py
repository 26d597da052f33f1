"""Final answers: extract what a completion commits to, and decide math equivalence with a gold answer.

The pieces, cheapest first:
- `extract_answer(text)`: regex rules, linear in the text (last `\\boxed{}`, `<answer>` tags, `####`,
  "the answer is", the last `=`, the last number).
- `clean_answer(s)`: strips what never changes the value (`$`, `\\left`, `\\text{}` units, degrees,
  thousands separators, trailing punctuation) so equal answers usually become equal strings.
- Fast paths in this process: normalised string equality, and exact rational comparison of numbers
  (integers, decimals, fractions, percentages, mixed numbers, scientific notation).
- Everything else goes to math-verify in a worker process (utils/_verify_worker.py) that the caller
  kills when it outlives its deadline. That is the only hard bound: math-verify's own timeout uses
  signal.alarm (main thread only) and a huge power evaluates in C where no signal lands.

Tolerance rules for numbers (written down because they decide rewards):
- Exact forms (integers, fractions, mixed numbers `2\\frac{1}{2}`, terminating decimals) compare as
  exact rationals: `0.75` = `\\frac{3}{4}`, `2.50` = `2.5`.
- When the values differ and either side is written as a decimal, they are equal iff both round to
  the same 6 decimal places (math-verify's float_rounding): `0.333333` = `\\frac{1}{3}`, but `0.333`,
  `0.33` != `\\frac{1}{3}`.
- A percentage `p%` equals `p/100` and also `p`: `50\\%` = `0.5` = `50`, the way graders read
  "what percent" answers. Nothing else is scaled: `0.5` != `50`.
- Signs, order and bracket kinds matter: `2` != `-2`, `(1,2)` != `(2,1)`, `(1,2)` != `[1,2]`.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import random
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

# Per-answer deadline for the symbolic check (seconds). math-verify needs 3-40 ms on real answers
# (p99), a few times that on a loaded machine; anything slower is pathological, and a GRPO step
# must not wait for it. With fork and IPC overhead a killed check still returns within 1 s.
DEFAULT_TIMEOUT = 0.75
# Starting the verifier process (imports sympy + math-verify) happens once per process; bounded too.
STARTUP_TIMEOUT = 30.0
# Input size limits. Extraction reads any length (linear regexes); rules that search backwards for
# prose patterns look at the last TAIL_CHARS only. Symbolic checks refuse bigger or deeper inputs.
TAIL_CHARS = 10_000
MAX_BOX_CHARS = 4_000
MAX_ANSWER_CHARS = 10_000
MAX_SYMBOLIC_CHARS = 400
MAX_NESTING = 25
MAX_POWER_DEPTH = 2  # 9^{9^{9}} is depth 3: no real answer needs it, and it never finishes
MAX_EXPONENT_DIGITS = 5
MAX_NUMBER_DIGITS = 400
_WORKER_SCRIPT = Path(__file__).with_name("_worker.py")


# ---------------------------------------------------------------------------------------------
# Text hygiene


def _sanitize(text: str) -> str:
    """Drop NUL and other control bytes and lone surrogates: they only come from broken decoding."""
    if not isinstance(text, str):
        text = bytes(text).decode("utf-8", "replace") if isinstance(text, (bytes, bytearray)) else str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "ignore").decode("utf-8")
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    return text


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# ---------------------------------------------------------------------------------------------
# Extraction

_BOX_START = re.compile(r"\\(?:boxed|fbox)\b")
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


def _box_content(text: str, start: int) -> tuple[str, int] | None:
    """Content and end of the box whose command starts at `start`; None when it never closes."""
    i = _BOX_START.match(text, start).end()  # type: ignore[union-attr]
    n = len(text)
    while i < n and text[i] in " \t":
        i += 1
    if i >= n:
        return None
    if text[i] != "{":  # `\boxed 5`: one token
        m = re.match(r"[^\s$]+", text[i:])
        return (m.group(0), i + m.end()) if m else None
    depth = 0
    limit = min(n, i + MAX_BOX_CHARS)
    j = i
    while j < limit:
        c = text[j]
        if c == "\\":
            j += 2  # an escaped brace (`\{`) is content, not structure
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j], j + 1
        j += 1
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


# ---------------------------------------------------------------------------------------------
# Cleaning and normalisation

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


def _is_bracketed(s: str) -> bool:
    """Whether one bracket pair encloses all of `s`: (1,2), [0,1), \\{1,2\\}; not (a+5)(b+2)."""
    t = s.replace("\\{", "(").replace("\\}", ")")
    if len(t) < 2 or t[0] not in "([{" or t[-1] not in ")]}":
        return False
    depth = 0
    for i, c in enumerate(t):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and i < len(t) - 1:
                return False
    return depth == 0


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


# ---------------------------------------------------------------------------------------------
# Exact numbers


@dataclass(frozen=True)
class _Number:
    value: Fraction
    decimal: bool  # written with a decimal point: rounding rules apply
    percent: bool  # written with %: value is p/100, `raw` is p
    raw: Fraction


_DEC = r"(?:\d+\.\d*|\.\d+|\d+)"
_PLAIN = re.compile(rf"^([+-]?)({_DEC})(?:(?:e|E|\\times10\^|\\cdot10\^|\*10\^|\*\*)\{{?([+-]?\d+)\}}?)?(%?)$")
_FRAC = re.compile(rf"^([+-]?)\\frac\{{([+-]?{_DEC})\}}\{{([+-]?{_DEC})\}}(%?)$")
_SLASH = re.compile(rf"^([+-]?)({_DEC})/({_DEC})(%?)$")
_MIXED = re.compile(r"^([+-]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}(%?)$")


def _to_fraction(s: str) -> Fraction:
    if len(s) > MAX_NUMBER_DIGITS:
        raise ValueError("number too long")
    return Fraction(s)


def _parse_number(key: str) -> _Number | None:
    """Exact value of a plain number key; None for anything else (expressions, tuples, text)."""
    if not key or len(key) > MAX_NUMBER_DIGITS or not any(c.isdigit() for c in key):
        return None
    try:
        m = _PLAIN.match(key)
        if m:
            sign, num, exp, pct = m.groups()
            if key.endswith("**" + (exp or "")) and exp is not None and "**" in key:
                return None  # 2**10 is a power, not scientific notation
            value = _to_fraction(num)
            if exp is not None:
                if abs(int(exp)) > 400:
                    return None
                value *= Fraction(10) ** int(exp)
            decimal = "." in num or (exp is not None and int(exp) < 0)
            return _signed(sign, value, decimal, pct)
        m = _FRAC.match(key) or _SLASH.match(key)
        if m:
            sign, num, den, pct = m.groups()
            den_value = _to_fraction(den)
            if den_value == 0:
                return None
            return _signed(sign, _to_fraction(num) / den_value, "." in num + den, pct)
        m = _MIXED.match(key)
        if m:
            sign, whole, num, den, pct = m.groups()
            if int(den) == 0 or int(num) >= int(den):  # 2\frac{5}{3} is not how anyone writes a mixed number
                return None
            return _signed(sign, int(whole) + Fraction(int(num), int(den)), False, pct)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return None


def _signed(sign: str, value: Fraction, decimal: bool, pct: str) -> _Number:
    if sign == "-":
        value = -value
    if pct:
        return _Number(value / 100, decimal, True, value)
    return _Number(value, decimal, False, value)


def _round6(x: Fraction) -> Fraction:
    return Fraction(round(x * 10**6), 10**6)


def _numbers_equal(a: _Number, b: _Number) -> bool:
    values_a = {a.value, a.raw} if a.percent else {a.value}
    values_b = {b.value, b.raw} if b.percent else {b.value}
    inexact = a.decimal or b.decimal
    for x in values_a:
        for y in values_b:
            if x == y or (inexact and _round6(x) == _round6(y)):
                return True
    return False


# ---------------------------------------------------------------------------------------------
# Prepared answers and the fast verdict


@dataclass(frozen=True)
class _Prepared:
    clean: str
    key: str
    number: _Number | None
    symbolic_ok: bool  # within the size / nesting / power limits for math-verify


def _prepare(answer: object) -> _Prepared:
    if isinstance(answer, str) and len(answer) <= 2000:
        return _prepare_cached(answer)
    return _prepare_uncached(answer)


@lru_cache(maxsize=65536)
def _prepare_cached(answer: str) -> _Prepared:
    return _prepare_uncached(answer)


def _prepare_uncached(answer: object) -> _Prepared:
    if isinstance(answer, (int, Fraction)) and not isinstance(answer, bool):
        answer = str(answer)
    elif isinstance(answer, float):
        answer = repr(answer)
    if not isinstance(answer, str) or len(answer) > MAX_ANSWER_CHARS:
        return _Prepared("", "", None, False)  # a final answer is short: this is not one
    clean = clean_answer(answer)
    key = _key(clean)
    return _Prepared(clean, key, _parse_number(key), _symbolic_ok(clean))


def _symbolic_ok(s: str) -> bool:
    """Inputs math-verify may see: short, balanced braces, shallow nesting, no power towers."""
    if not s or len(s) > MAX_SYMBOLIC_CHARS:
        return False
    t = s.replace("\\{", "(").replace("\\}", ")")  # set braces are brackets, not TeX groups
    depth = 0
    for c in t:  # bracket kinds may legitimately differ: (3,4] is an interval
        if c in "([{":
            depth += 1
            if depth > MAX_NESTING:
                return False
        elif c in ")]}":
            depth -= 1
    groups: list[bool] = []  # open TeX groups: True where the group is an exponent
    i, n = 0, len(t)
    while i < n:
        c = t[i]
        if c == "{":
            groups.append(False)
        elif c == "}":
            if not groups:
                return False
            groups.pop()
        elif c == "^" or t.startswith("**", i):
            i += 2 if c == "*" else 1
            while i < n and t[i] == " ":
                i += 1
            powers = sum(groups) + 1
            brace = i < n and t[i] == "{"
            if not brace and re.match(r"[\\\w.]+\s*(?:\^|\*\*)", t[i:]):  # a^b^c chains without braces
                powers += 1
            if powers > MAX_POWER_DEPTH:
                return False
            if not brace:
                continue
            groups.append(True)
        i += 1
    if groups:
        return False
    # huge literal exponents evaluate to numbers with millions of digits
    for m in re.finditer(r"(?:\^|\*\*)\s*\{?\s*[+-]?(\d+)", t):
        if len(m.group(1)) > MAX_EXPONENT_DIGITS:
            return False
    return True


_WORDS = re.compile(r"^[a-z][a-z ]{2,}$")
_ASSIGNMENT = re.compile(r"^([A-Za-z](?:_\{?\w+\}?)?)=(?!.*=)(.+)$")


def _fast_verdict(g: _Prepared, p: _Prepared, depth: int = 0) -> bool | None:
    """A verdict without math-verify where one is certain; None when symbolic work is needed.

    Every False here is a case math-verify also rejects: different numbers, different kinds of
    object, different constant values, an expression in x against a constant.
    """
    if g.key == p.key:
        return True
    if g.number is not None and p.number is not None:
        return _numbers_equal(g.number, p.number)
    if depth == 0:
        # `x = 5` against a gold with no equation compares the right-hand side (math-verify does too)
        if "=" in p.key and "=" not in g.key and (m := _ASSIGNMENT.match(p.key)):
            return _fast_verdict(g, _prepare(m.group(2)), 1)
        if "=" in g.key and "=" not in p.key and (m := _ASSIGNMENT.match(g.key)):
            return _fast_verdict(_prepare(m.group(2)), p, 1)
    # a word ("east", "Navin") against anything but the same word
    if _WORDS.match(g.key) or _WORDS.match(p.key):
        return False
    return _kind_mismatch(g.key, p.key)


_RELATION = re.compile(r"=|<|>|\\(?:in|le|ge|leq|geq|neq|ne|lt|gt|cap|setminus|subset|subseteq|mid)(?![A-Za-z])")
_PLUS_MINUS = re.compile(r"\\(?:pm|mp)(?![A-Za-z])")
_COMMAND = re.compile(r"\\[A-Za-z]+")


def _kind(key: str) -> str:
    """matrix | relation | union | list | scalar."""
    if "\\begin{" in key:
        return "matrix"
    if _RELATION.search(key):
        return "relation"  # equations, inequalities, set-builder: math-verify's job
    if "\\cup" in key:
        return "union"
    if _is_bracketed(key) or len(_split_top_level(key)) > 1:
        return "list"
    return "scalar"


def _has_variables(key: str) -> bool:
    """Letters other than the constants e and i, outside LaTeX commands: x, a, k..."""
    return bool(re.search(r"[A-Za-df-hj-z]", _COMMAND.sub("", key)))


def _kind_mismatch(g_key: str, p_key: str) -> bool | None:
    """False where the answers are different kinds of object or different constants; None when unsure."""
    g_kind, p_kind = _kind(g_key), _kind(p_key)
    if (g_kind == "matrix") != (p_kind == "matrix"):
        return False
    if "relation" in (g_kind, p_kind) or g_kind == "matrix":
        return None
    g_vars, p_vars = _has_variables(g_key), _has_variables(p_key)
    if g_vars and p_vars:
        return None  # two expressions in variables: math-verify's job
    if "union" in (g_kind, p_kind):
        other = p_key if g_kind == "union" else g_key
        if _kind(other) == "scalar" and not _PLUS_MINUS.search(other):
            return False  # a union of intervals is never a single number or expression
        return None
    if g_vars != p_vars:
        # an expression in x against a constant: unequal when it takes two values (not sin^2 x + cos^2 x)
        return False if _nonconstant(g_key if g_vars else p_key) else None
    if {g_kind, p_kind} == {"scalar", "list"} and not _PLUS_MINUS.search(g_key + p_key):
        listed = g_key if g_kind == "list" else p_key
        if len(_split_top_level(_unbracket(listed))) > 1:
            return False  # one value against a tuple, interval or list of several
    # constants, or lists of them (\frac{\sqrt{3}}{2}, 12\pi, (2, \infty), 1 \pm \sqrt{19}): different
    # sets of values are never equal, whatever the bracket or order rules; equal ones go to math-verify
    g_values, p_values = _values(g_key), _values(p_key)
    if g_values is None or p_values is None:
        return None
    if not _PLUS_MINUS.search(g_key + p_key) and len(g_values) != len(p_values):
        return False  # a number vs a tuple, 2 elements vs 3
    if not _same_values(_sorted(g_values), _sorted(p_values)):
        return False
    return None


def _sorted(values: list[complex]) -> list[complex]:
    return sorted(set(values), key=lambda v: (v.real, v.imag))


def _unbracket(key: str) -> str:
    if _is_bracketed(key):
        return key[2:-2] if key.startswith("\\{") else key[1:-1]
    return key


def _values(key: str) -> list[complex] | None:
    """Float values of a constant or a list of constants (a +- b counts as two); None if any is not constant."""
    body = _unbracket(key)
    values: list[complex] = []
    for element in _split_top_level(body):
        pm = _PLUS_MINUS.split(element)
        if len(pm) > 2:
            return None
        if len(pm) == 2:
            a = _numeric_value(pm[0]) if pm[0].strip() else 0.0
            b = _numeric_value(pm[1])
            if a is None or b is None:
                return None
            values += [a + b, a - b]
            continue
        value = _numeric_value(element)
        if value is None:
            return None
        values.append(value)
    return values


def _split_top_level(body: str) -> list[str]:
    out, depth, start = [], 0, 0
    t = body.replace("\\{", "(\x00").replace("\\}", "\x00)")  # same length per brace pair
    for i, c in enumerate(t):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(body[start:i])
            start = i + 1
    out.append(body[start:])
    return out


def _same_values(a: list[complex], b: list[complex]) -> bool:
    """Equal within any tolerance math-verify could apply (6 decimal places, float noise)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue  # also inf == inf
        if not (abs(x - y) <= max(2e-6, 1e-9 * max(abs(x), abs(y)))):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Float value of constant LaTeX expressions: a disproof only (never a proof of equality)


class _NotConstant(Exception):
    pass


_EVAL_TOKEN = re.compile(r"\\[A-Za-z]+|\d+\.?\d*|\.\d+|[-+*/^(){}\[\]]|\s+|.")
_FLOAT_LIMIT = 1e300
_EVAL_ERRORS = (_NotConstant, OverflowError, ValueError, ZeroDivisionError, IndexError, RecursionError, TypeError)


def _numeric_value(expr: str, env: dict[str, float] | None = None) -> complex | None:
    """Value of an expression of numbers, + - * / ^, \\frac, \\sqrt, \\pi, \\infty, i; else None.

    With `env`, single letters are variables (values drawn into `env` on first sight); without, an
    expression with a letter has no value.
    """
    if not expr or len(expr) > 200 or re.search(r"\d\\frac", expr):  # 2\frac12 might be a mixed number
        return None
    tokens = [t for t in _EVAL_TOKEN.findall(expr) if not t.isspace()]
    evaluator = _Evaluator(tokens, env)
    try:
        value = evaluator.sum(0)
    except _EVAL_ERRORS:
        return None
    if evaluator.pos != len(tokens) or value != value:
        return None
    return value


def _nonconstant(expr: str) -> bool:
    """True when an expression in variables surely takes different values (so equals no constant)."""
    rng = random.Random(expr)  # deterministic per expression
    env_a: dict[str, float] = {}
    a = _numeric_value(expr, env_a)
    if a is None or not env_a:
        return False
    env_b = {name: rng.uniform(0.3, 1.7) for name in env_a}
    b = _numeric_value(expr, env_b)
    return b is not None and not _same_values([a], [b])


_TIMES = {"*", "\\cdot", "\\times"}


class _Evaluator:
    """Recursive descent over LaTeX tokens; floats only (no bigints, so nothing can hang)."""

    def __init__(self, tokens: list[str], env: dict[str, float] | None) -> None:
        self.tokens = tokens
        self.env = env
        self.pos = 0
        self.depth = 0

    def peek(self, offset: int = 0) -> str:
        return self.tokens[self.pos + offset]

    def sum(self, depth: int) -> complex:
        if depth > MAX_NESTING * 2:
            raise _NotConstant
        value = self.product(depth)
        while self.pos < len(self.tokens) and self.peek() in "+-":
            op = self.peek()
            self.pos += 1
            rhs = self.product(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    def product(self, depth: int) -> complex:
        value = self.unary(depth)
        while self.pos < len(self.tokens):
            tok = self.peek()
            if tok in _TIMES or tok in ("/", "\\div"):
                self.pos += 1
                rhs = self.unary(depth)
                value = value * rhs if tok in _TIMES else value / rhs
            elif tok in ("(", "{", "\\frac", "\\sqrt", "\\pi") or tok[0].isalnum() or tok[0] == ".":
                value = value * self.unary(depth)  # implicit product: 2\sqrt{3}, 3\pi, 9i, 2x
            else:
                break
            _check_finite(value)
        return value

    def unary(self, depth: int) -> complex:
        if self.peek() in "+-":
            sign = -1.0 if self.peek() == "-" else 1.0
            self.pos += 1
            return sign * self.unary(depth + 1)
        return self.power(depth)

    def power(self, depth: int) -> complex:
        base = self.atom(depth)
        if self.pos < len(self.tokens) and self.peek() == "^":
            self.pos += 1
            exponent = self.unary(depth + 1) if self.peek() in "+-" else self.atom(depth + 1)
            if self.pos < len(self.tokens) and self.peek() == "^":
                raise _NotConstant  # a^b^c: leave towers to math-verify's reading
            if abs(exponent) > 1000 or (isinstance(base, float) and base < 0 and exponent != int(exponent.real)):
                raise _NotConstant
            base = base**exponent
            _check_finite(base)
        return base

    def atom(self, depth: int) -> complex:
        tok = self.peek()
        self.pos += 1
        if tok in ("(", "{"):
            value = self.sum(depth + 1)
            if self.peek() != (")" if tok == "(" else "}"):
                raise _NotConstant
            self.pos += 1
            return value
        if tok == "\\frac":
            num = self.group(depth)
            return num / self.group(depth)
        if tok == "\\sqrt":
            index = 2.0
            if self.peek() == "[":  # \sqrt[n]{x}
                self.pos += 1
                index = self.sum(depth + 1)
                if self.peek() != "]" or index != int(index.real) or index.real < 2:
                    raise _NotConstant
                self.pos += 1
            radicand = self.group(depth)
            if isinstance(radicand, complex) or radicand < 0:
                raise _NotConstant  # imaginary, or a branch math-verify may read differently
            return radicand ** (1.0 / index.real if isinstance(index, complex) else 1.0 / index)
        if tok == "\\pi":
            return math.pi
        if tok == "\\infty":
            return math.inf
        if tok == "i":  # the imaginary unit: 6+9i
            return 1j
        if tok[0].isdigit() or tok[0] == ".":
            if len(tok) > 300:
                raise _NotConstant
            if self.pos + 1 < len(self.tokens) and self.peek() == "_":  # 52_8: math-verify reads 52
                self.pos += 1
                sub = self.peek()
                if sub == "{":
                    if not (self.peek(1).isdigit() and self.peek(2) == "}"):
                        raise _NotConstant
                    self.pos += 3
                elif sub.isdigit():
                    self.pos += 1
                else:
                    raise _NotConstant
            return float(tok)
        if tok == "e":  # Euler's number, as math-verify reads it
            return math.e
        if self.env is not None and len(tok) == 1 and tok.isalpha():
            if tok not in self.env:
                self.env[tok] = random.Random(tok).uniform(0.3, 1.7)
            return self.env[tok]
        raise _NotConstant

    def group(self, depth: int) -> complex:
        if self.peek() != "{":
            raise _NotConstant
        return self.atom(depth + 1)


def _check_finite(value: complex) -> None:
    if not (abs(value) < _FLOAT_LIMIT):
        raise _NotConstant


_TEXT_ANSWER = re.compile(r"^[A-Za-z][A-Za-z '\-]{0,39}$")
_NOT_ANSWERS = {"proof", "notfound", "not found"}  # OpenR1 puts these in `answer` for proof problems


# ---------------------------------------------------------------------------------------------
# The worker pool (client side)


class VerifierUnavailable(RuntimeError):
    """The symbolic verifier process could not be started."""


class _Worker:
    """One forked verifier process, spoken to over a socket with newline-delimited JSON."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self.buf = bytearray()

    def send(self, obj: dict) -> None:
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv(self, deadline: float) -> dict | None:
        """The next message, or None at the deadline. EOFError when the worker died."""
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("verifier worker exited")
            self.buf += chunk
        line, _, rest = bytes(self.buf).partition(b"\n")
        self.buf = bytearray(rest)
        return json.loads(line)

    def kill(self) -> None:
        try:
            os.kill(self.pid, 9)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class _Pool:
    """Client of the verifier zygote: hands out workers, kills those that overrun their deadline."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.owner_pid = os.getpid()
        self.max_workers = max_workers or max(4, 2 * (os.cpu_count() or 1))
        self.cond = threading.Condition()
        self.zygote_lock = threading.Lock()
        self.idle: list[_Worker] = []
        self.live = 0
        self.proc: subprocess.Popen | None = None
        self.ctrl: socket.socket | None = None
        self.warm = False
        self.failed_at = 0.0

    # -- zygote
    def start(self) -> None:
        with self.zygote_lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self.proc is not None and self.proc.poll() is None and self.ctrl is not None:
            return
        if time.monotonic() - self.failed_at < 5.0:
            raise VerifierUnavailable("verifier failed to start moments ago")
        self._stop_zygote_locked()
        parent, child = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(_WORKER_SCRIPT), str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=None if os.environ.get("GRPO_MATH_VERIFIER_DEBUG") else subprocess.DEVNULL,
                env={**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"},
            )
        finally:
            child.close()
        ready, _, _ = select.select([parent], [], [], STARTUP_TIMEOUT)
        if not ready or parent.recv(1) != b"R":
            parent.close()
            self.proc.kill()
            self.proc = None
            self.failed_at = time.monotonic()
            raise VerifierUnavailable("the math-verify worker did not start (is math-verify installed?)")
        self.ctrl = parent
        self.warm = False

    def _wait_warm_locked(self) -> None:
        """Wait until the fork server has exercised math-verify (its `W`), so every worker starts warm.

        A worker forked earlier pays 50-400 ms for its first parse of each kind of answer, which
        on a loaded machine can overrun the deadline and turn a right answer into a timeout.
        """
        if self.warm or self.ctrl is None:
            return
        ready, _, _ = select.select([self.ctrl], [], [], STARTUP_TIMEOUT)
        if ready and self.ctrl.recv(1) == b"W":
            self.warm = True
        else:
            self.warm = True  # never wait twice; workers will warm up as they go
            logger.warning("math-verify fork server did not finish warming up")

    def _stop_zygote_locked(self) -> None:
        if self.ctrl is not None:
            try:
                self.ctrl.close()
            except OSError:
                pass
            self.ctrl = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def _fork_worker(self) -> _Worker:
        for attempt in range(2):
            with self.zygote_lock:
                self._start_locked()
                self._wait_warm_locked()
                mine, theirs = socket.socketpair()
                try:
                    socket.send_fds(self.ctrl, [b"F"], [theirs.fileno()])  # type: ignore[arg-type]
                except OSError:
                    mine.close()
                    self._stop_zygote_locked()  # the zygote died: start a new one and retry
                    if attempt:
                        raise
                    continue
                finally:
                    theirs.close()
            worker = _Worker(mine, pid=-1)
            try:
                hello = worker.recv(time.monotonic() + STARTUP_TIMEOUT)
            except (EOFError, OSError, ValueError):
                hello = None
            if hello and "pid" in hello:
                worker.pid = int(hello["pid"])
                return worker
            mine.close()
            with self.zygote_lock:
                self._stop_zygote_locked()
        raise VerifierUnavailable("could not fork a verifier worker")

    # -- workers
    def checkout(self) -> _Worker:
        with self.cond:
            while not self.idle and self.live >= self.max_workers:
                self.cond.wait()
            if self.idle:
                return self.idle.pop()
            self.live += 1
        try:
            return self._fork_worker()
        except BaseException:
            with self.cond:
                self.live -= 1
                self.cond.notify()
            raise

    def checkin(self, worker: _Worker) -> None:
        with self.cond:
            self.idle.append(worker)
            self.cond.notify()

    def discard(self, worker: _Worker) -> None:
        worker.kill()
        with self.cond:
            self.live -= 1
            self.cond.notify()

    # -- requests
    def verify(self, gold: str, preds: Sequence[str], timeout: float) -> list[bool | None]:
        """math-verify verdicts for one gold against many predictions, each within `timeout` seconds.

        None marks a prediction whose check overran its deadline or killed its worker.
        """
        results: list[bool | None] = []
        while len(results) < len(preds):
            worker = self.checkout()
            try:
                worker.send({"op": "verify", "gold": gold, "preds": list(preds[len(results) :])})
                while len(results) < len(preds):
                    reply = worker.recv(time.monotonic() + timeout)
                    if reply is None:  # overran its deadline: kill it, the rest go to a fresh worker
                        logger.debug("verifier timeout after %.2fs", timeout)
                        results.append(None)
                        self.discard(worker)
                        worker = None
                        break
                    results.append(bool(reply.get("v")))
            except (EOFError, OSError, ValueError):  # died on this item (e.g. out of memory)
                results.append(None)
                if worker is not None:
                    self.discard(worker)
                worker = None
            if worker is not None:
                self.checkin(worker)
        return results

    def ask(self, request: dict, timeout: float) -> dict | None:
        worker = self.checkout()
        try:
            worker.send(request)
            reply = worker.recv(time.monotonic() + timeout)
        except (EOFError, OSError, ValueError):
            reply = None
            self.discard(worker)
            return None
        if reply is None:
            self.discard(worker)
        else:
            self.checkin(worker)
        return reply

    def close(self) -> None:
        with self.cond:
            idle, self.idle = self.idle, []
            self.live -= len(idle)
        for worker in idle:
            worker.kill()
        with self.zygote_lock:
            self._stop_zygote_locked()

    def forget(self) -> None:
        """In a forked child: drop the parent's sockets without touching the parent's processes."""
        for worker in self.idle:
            try:
                worker.sock.close()
            except OSError:
                pass
        if self.ctrl is not None:
            try:
                self.ctrl.close()
            except OSError:
                pass


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> _Pool:
    global _POOL
    pool = _POOL
    if pool is not None and pool.owner_pid == os.getpid():
        return pool
    with _POOL_LOCK:
        if _POOL is None or _POOL.owner_pid != os.getpid():
            _POOL = _Pool()
        return _POOL


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time stays held forever in the child: replace them all.
    global _POOL, _POOL_LOCK, _STATS_LOCK
    if _POOL is not None:
        _POOL.forget()
    _POOL = None
    _POOL_LOCK = threading.Lock()
    _STATS_LOCK = threading.Lock()
    _VERDICTS.lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def shutdown() -> None:
    """Stop the verifier processes (they also stop by themselves when this process exits)."""
    global _POOL
    pool = _POOL
    if pool is not None and pool.owner_pid == os.getpid():
        pool.close()
    _POOL = None


def warm_up() -> None:
    """Start the verifier now instead of at the first symbolic check (1-2 s, once per process):
    the fork server imports math-verify and exercises its parsers, then forks a first worker."""
    pool = _pool()
    pool.checkin(pool.checkout())


# ---------------------------------------------------------------------------------------------
# Verdict cache: GRPO groups repeat the same (gold, answer) pair a lot


class _VerdictCache:
    def __init__(self, size: int = 65536) -> None:
        self.size = size
        self.data: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> bool | None:
        with self.lock:
            value = self.data.get(key)
            if value is not None:
                self.data.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: bool) -> None:
        with self.lock:
            self.data[key] = value
            if len(self.data) > self.size:
                self.data.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()


_VERDICTS = _VerdictCache()
# How verdicts were reached since the last clear_caches(): fast paths, the verdict cache, math-verify
# workers, and deadlines hit. Read with stats(); benchmarks and logs use it.
_STATS = {"fast": 0, "cached": 0, "symbolic": 0, "timeouts": 0}
_STATS_LOCK = threading.Lock()


def _count(key: str, n: int = 1) -> None:
    with _STATS_LOCK:
        _STATS[key] += n


def stats() -> dict[str, int]:
    """Counts of verdicts by route since the last `clear_caches()`."""
    with _STATS_LOCK:
        return dict(_STATS)


def clear_caches() -> None:
    """Forget cached verdicts and prepared answers (benchmarks measure cold)."""
    _VERDICTS.clear()
    with _STATS_LOCK:
        for key in _STATS:
            _STATS[key] = 0
    _prepare_cached.cache_clear()
    _parseable_cached.cache_clear()


# ---------------------------------------------------------------------------------------------
# Public API


def is_equivalent(gold: str, predicted: str | None, *, timeout: float | None = None) -> bool:
    """Whether `predicted` is mathematically the same final answer as `gold`.

    Never raises; returns within `timeout` (default DEFAULT_TIMEOUT) seconds of symbolic work, on any
    thread and in any process. The first symbolic check of a process also starts the verifier
    (1-2 s, once; `warm_up()` pays it ahead). Unreadable or pathological input is not equal.
    """
    try:
        return verify_batch([gold], [predicted], timeout=timeout)[0]
    except Exception:  # noqa: BLE001 - a verdict, never an exception
        logger.debug("is_equivalent failed", exc_info=True)
        return False


def is_parseable(gold: str, *, timeout: float | None = None) -> bool:
    """Whether our verifier can read `gold`: a number, a short text answer, or something math-verify parses."""
    try:
        if not isinstance(gold, str) or not gold.strip():
            return isinstance(gold, (int, float, Fraction)) and not isinstance(gold, bool)
        if len(gold) > 2000:
            return False
        return _parseable_cached(gold, DEFAULT_TIMEOUT if timeout is None else timeout)
    except Exception:  # noqa: BLE001
        logger.debug("is_parseable failed", exc_info=True)
        return False


@lru_cache(maxsize=65536)
def _parseable_cached(gold: str, timeout: float) -> bool:
    g = _prepare(gold)
    if not g.key:
        return False
    if g.number is not None:
        return True
    if not g.symbolic_ok:
        return False
    if _TEXT_ANSWER.match(g.clean):
        return g.key not in _NOT_ANSWERS
    reply = _pool().ask({"op": "parseable", "gold": g.clean}, timeout)
    return bool(reply and reply.get("v"))


# Below this many symbolic pairs, one worker beats the cost of spreading work across processes.
MIN_PAIRS_PER_WORKER = 8


def verify_batch(
    golds: Sequence[str],
    predictions: Sequence[str | None],
    *,
    timeout: float | None = None,
    max_workers: int | None = None,
) -> list[bool]:
    """`is_equivalent` for many pairs: fast paths here, the rest on worker processes in parallel.

    Each distinct gold is prepared once and sent once per worker with all its predictions (a GRPO
    group), so math-verify parses it once. Predictions are final answers (see `extract_answer`).
    """
    if len(golds) != len(predictions):
        raise ValueError(f"verify_batch: {len(golds)} golds but {len(predictions)} predictions")
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    results: list[bool] = [False] * len(golds)
    pending: dict[str, dict[str, list[int]]] = {}  # gold clean -> pred clean -> indices
    golds_prepared: dict[object, _Prepared] = {}
    for i, (gold, pred) in enumerate(zip(golds, predictions, strict=True)):
        if pred is None or gold is None:
            continue
        try:
            gkey = gold if isinstance(gold, str) else repr(gold)
            g = golds_prepared.get(gkey)
            if g is None:
                g = golds_prepared[gkey] = _prepare(gold)
            p = _prepare(pred)
            if not g.key or not p.key:
                continue
            verdict = _fast_verdict(g, p)
            route = "fast"
            if verdict is None:
                verdict = _VERDICTS.get((g.clean, p.clean))
                route = "cached"
            if verdict is not None:
                results[i] = verdict
                _count(route)
            elif g.symbolic_ok and p.symbolic_ok:
                pending.setdefault(g.clean, {}).setdefault(p.clean, []).append(i)
        except Exception:  # noqa: BLE001 - one bad pair must not sink the batch
            logger.debug("verify_batch: pair %d failed", i, exc_info=True)
    if pending:
        _run_symbolic(pending, results, timeout, max_workers)
    return results


def _run_symbolic(
    pending: dict[str, dict[str, list[int]]], results: list[bool], timeout: float, max_workers: int | None
) -> None:
    groups = sorted(pending.items(), key=lambda item: -len(item[1]))
    total = sum(len(preds) for _, preds in groups)
    cpus = os.cpu_count() or 1
    n_workers = min(max_workers or cpus, len(groups), max(1, total // MIN_PAIRS_PER_WORKER))

    def run_group(item: tuple[str, dict[str, list[int]]]) -> None:
        gold, preds = item
        pred_list = list(preds)
        try:
            verdicts = _pool().verify(gold, pred_list, timeout)
        except VerifierUnavailable:
            logger.warning("math-verify worker unavailable: symbolic answers count as not equal")
            verdicts = [None] * len(pred_list)
        _count("symbolic", len(pred_list))
        for pred, verdict in zip(pred_list, verdicts, strict=True):
            if verdict is not None:  # a timeout may be load, not the pair: never cache it
                _VERDICTS.put((gold, pred), verdict)
            else:
                _count("timeouts")
            for i in preds[pred]:
                results[i] = bool(verdict)

    if n_workers <= 1:
        for item in groups:
            run_group(item)
    else:  # threads here only wait on sockets: the work runs in n_workers processes
        with ThreadPoolExecutor(n_workers) as executor:
            list(executor.map(run_group, groups))
