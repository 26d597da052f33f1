"""Prepared answers and the fast verdict: decide here what is certain, leave the rest to math-verify."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from utils.answers._latex import MAX_ANSWER_CHARS, MAX_NESTING, _is_bracketed, _split_top_level, _unbracket
from utils.answers._normalize import _key, clean_answer
from utils.answers._numbers import _nonconstant, _Number, _numbers_equal, _numeric_value, _parse_number, _same_values

MAX_SYMBOLIC_CHARS = 400
MAX_POWER_DEPTH = 2  # 9^{9^{9}} is depth 3: no real answer needs it, and it never finishes
MAX_EXPONENT_DIGITS = 5



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
    object, different constant values, an expression in x against a constant; and one rule where
    math-verify is wrong: a sequence that goes on (`1, 2, 3, \\ldots`) is not the finite list.
    """
    if g.key == p.key:
        return True
    if ("\\ldots" in g.key) != ("\\ldots" in p.key):
        return False
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



_TEXT_ANSWER = re.compile(r"^[A-Za-z][A-Za-z '\-]{0,39}$")
_NOT_ANSWERS = {"proof", "notfound", "not found"}  # OpenR1 puts these in `answer` for proof problems
