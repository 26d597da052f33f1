"""Numbers without math-verify: exact rationals for plain numbers, and a float evaluator of constant
LaTeX expressions used only to disprove equality (never to prove it)."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from fractions import Fraction

from utils.answers._latex import MAX_NESTING

MAX_NUMBER_DIGITS = 400
# A plain decimal or scientific number as text: what recipes write for numbers (YAML 1.1 leaves `1e-5` a string).
NUMBER_PATTERN = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")



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


def _same_values(a: list[complex], b: list[complex]) -> bool:
    """Equal within any tolerance math-verify could apply (6 decimal places, float noise)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue  # also inf == inf
        if math.isinf(abs(x)) or math.isinf(abs(y)):
            return False  # one infinite, the other not
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
            if _astronomical(base, exponent):
                return math.inf  # 9^{9^{9}}: no finite answer equals it, and nothing need evaluate it
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


def _astronomical(base: complex, exponent: complex) -> bool:
    """A real power above 10^300 (it overflows a float): larger than any finite answer can be."""
    if isinstance(base, complex) or isinstance(exponent, complex) or base <= 1 or exponent <= 0:
        return False
    return exponent * math.log10(base) > 300


def _check_finite(value: complex) -> None:
    if not (abs(value) < _FLOAT_LIMIT):
        raise _NotConstant


