"""Generated math problems with exact answers, for offline runs: `data: {dataset: synthetic, kind, n, level}`.

Kinds: arithmetic, fractions, percentages, linear (equations), word (short word problems), or mixed.
Level 1-5 sets both the size of the numbers and the number of steps (a level-L problem takes L steps); a list
of levels gives graded difficulty (the `source` column names each row's level: synthetic/word/level-3).
Rows are in the OpenR1-Math-220k schema, so the same adapters, filters, split and cache run on them:
`answer` is the final answer a model should box, `solution` a worked solution ending in \\boxed{}, and
the solution doubles as the one "generation" (complete, verified correct: it is right by construction).

Seeded with random.Random over a string (hashed with SHA-512: the same problems on every machine and
Python process); the first n problems of a stream do not depend on n. Problems are distinct.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from utils.config import DataSection
from utils.errors import UserError
from utils.formats import DEFAULT_FORMAT, get_format

SYNTHETIC = "synthetic"  # the data.dataset value that selects this generator
# Kinds as the recipe accepts them (one list: DataSection's choices).
KINDS: tuple[str, ...] = next(f for f in dataclasses.fields(DataSection) if f.name == "kind").metadata["choices"]
PROBLEM_KINDS = tuple(k for k in KINDS if k != "mixed")
LEVELS = (1, 2, 3, 4, 5)
_MAX_NUMBER = {1: 20, 2: 50, 3: 100, 4: 1000, 5: 10000}  # operands, start values
_MAX_FACTOR = {1: 5, 2: 9, 3: 12, 4: 20, 5: 30}  # multipliers and divisors, kept small
_MAX_DENOMINATOR = {1: 6, 2: 8, 3: 10, 4: 12, 5: 16}
_TIMES, _DIV = "\\times", "\\div"
_OPS_BY_LEVEL = {1: "+-", 2: "+-*", 3: "+-*/", 4: "+-*/", 5: "+-*/"}
_MAX_TRIES_PER_ROW = 2000  # duplicates drawn in a row before the level's problems count as used up


@dataclass
class Problem:
    """A generated problem: its text, the worked steps (one line each) and the exact answer."""

    text: str
    steps: list[str]
    answer: Fraction
    kind: str
    decimal: bool = False  # answer written as a decimal (percentages) rather than a fraction


def latex_number(value: Fraction) -> str:
    """An exact value as a model should box it: 7, -3, \\frac{5}{6}, -\\frac{3}{2}."""
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def decimal_number(value: Fraction) -> str:
    """An exact value with a terminating decimal expansion, written out: 193.2, -0.125, 40."""
    sign, value = ("-" if value < 0 else ""), abs(value)
    whole, rest = divmod(value.numerator, value.denominator)
    digits = ""
    while rest and len(digits) < 12:  # denominators here are 2^a 5^b: the expansion ends
        rest *= 10
        digit, rest = divmod(rest, value.denominator)
        digits += str(digit)
    return f"{sign}{whole}" + (f".{digits}" if digits else "")


# ---------------------------------------------------------------------------------------------
# Chains of operations (arithmetic and fractions): left to right, parenthesised where precedence needs it


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else a}[op]


# leaf(op, value): the right operand for `value op leaf`, or None when there is none (an uneven division)
Leaf = Callable[[str, Fraction], "Fraction | None"]


def _chain(rng: random.Random, level: int, leaf: Leaf, fmt: Callable[[Fraction], str]) -> Problem:
    """`level` operations applied left to right to positive operands; the text parenthesised to match."""
    value = leaf("+", Fraction(0))
    assert value is not None
    text, additive = fmt(value), False  # additive: a + or - outside parentheses so far
    steps = []
    for _ in range(level):
        op = rng.choice(_OPS_BY_LEVEL[level])
        right = leaf(op, value)
        if right is None:
            op, right = "*", leaf("*", value)
        if op == "-" and level <= 2 and right > value:
            op = "+"  # no negative numbers at the first two levels
        assert right is not None
        new = _apply(op, value, right)
        symbol = {"+": "+", "-": "-", "*": _TIMES, "/": _DIV}[op]
        left = f"({text})" if op in "*/" and additive else text
        text, additive = f"{left} {symbol} {fmt(right)}", op in "+-"
        steps.append(f"{fmt(value)} {symbol} {fmt(right)} = {fmt(new)}")
        value = new
    return Problem(f"${text}$", steps, value, "")


def _arithmetic(rng: random.Random, level: int) -> Problem:
    def leaf(op: str, value: Fraction) -> Fraction | None:
        if op == "/":  # whole-number division comes out even
            divisors = [d for d in range(2, _MAX_FACTOR[level] + 1) if value and value.numerator % d == 0]
            return Fraction(rng.choice(divisors)) if divisors else None
        return Fraction(rng.randint(2, _MAX_FACTOR[level]) if op == "*" else rng.randint(1, _MAX_NUMBER[level]))

    problem = _chain(rng, level, leaf, latex_number)
    return dataclasses.replace(problem, text=f"Compute {problem.text}.", kind="arithmetic")


def _fractions(rng: random.Random, level: int) -> Problem:
    def leaf(op: str, value: Fraction) -> Fraction:
        den = rng.randint(2, _MAX_DENOMINATOR[level])
        num = rng.randint(1, den - 1 if level <= 2 else 2 * den)
        while num % den == 0:
            num = rng.randint(1, 2 * den)
        return Fraction(num, den)

    problem = _chain(rng, level, leaf, latex_number)
    return dataclasses.replace(problem, text=f"Compute {problem.text} and write the result in lowest terms.",
                               kind="fractions")


# ---------------------------------------------------------------------------------------------
# Percentages, linear equations, word problems


def _percentages(rng: random.Random, level: int) -> Problem:
    """p% of x (level 1); from level 2, `level` successive increases and decreases of a starting number."""
    if level == 1:
        p = rng.choice((5, 10, 20, 25, 30, 40, 50, 60, 75, 80, 90))
        unit = Fraction(100, p).numerator  # x a multiple of it: a whole result
        x = unit * rng.randint(1, 10 * _MAX_NUMBER[level] // unit)
        answer = Fraction(p * x, 100)
        return Problem(f"What is {p}% of {x}?", [f"{p}% of {x} = {p}/100 \\times {x} = {decimal_number(answer)}"],
                       answer, "percentages", decimal=True)
    # Steps of 10% from level 3 and a start of 10^(level-1) times 1-99: at most one or two decimals.
    start = 10 ** (level - 1) * rng.randint(1, 99)
    value, changes, steps = Fraction(start), [], []
    for _ in range(level):
        p, up = rng.randrange(5 if level == 2 else 10, 100, 5 if level == 2 else 10), rng.random() < 0.5
        factor = 1 + Fraction(p, 100) if up else 1 - Fraction(p, 100)
        changes.append(f"{'increased' if up else 'decreased'} by {p}%")
        steps.append(f"{decimal_number(value)} \\times {decimal_number(factor)} = {decimal_number(value * factor)}")
        value *= factor
    text = f"A number starts at {start}. It is " + ", then ".join(changes) + ". What is the result?"
    return Problem(text, steps, value, "percentages", decimal=True)


def _term(coef: int) -> str:
    return {1: "x", -1: "-x"}.get(coef, f"{coef}x")


def _side(coef: int, const: int) -> str:
    """`3x - 5`, `x`, `-2x + 7`, `4` (coef 0)."""
    if coef == 0:
        return str(const)
    return _term(coef) + (f" + {const}" if const > 0 else f" - {-const}" if const < 0 else "")


def _nonzero(rng: random.Random, top: int) -> int:
    return rng.choice([k for k in range(-top, top + 1) if k])


def _linear(rng: random.Random, level: int) -> Problem:
    """x + b = d (1), ax + b = d (2), ax + b = cx + d (3), a(x + b) = cx + d (4), a(x + b) - e(x - f) = cx + d (5)."""
    big, small = _MAX_NUMBER[level], _MAX_FACTOR[level]
    a = 1 if level == 1 else rng.randint(2, small)
    b = _nonzero(rng, small if level >= 4 else big)
    e, f = (rng.randint(2, small), rng.randint(1, small)) if level == 5 else (0, 0)
    coef, const = a - e, (a * b + e * f if level >= 4 else b)  # the left side, expanded
    c = rng.choice([k for k in range(-small, small + 1) if k and coef - k not in (0, 1)]) if level >= 3 else 0
    k = rng.randint(0 if level <= 2 else -big // 2, big // 2)
    x = Fraction(k, coef - c) if level == 5 else Fraction(k)  # level 5: fractions too
    d = int((coef - c) * x + const)
    right, steps = _side(c, d), []
    if level >= 4:
        inner = f"x + {b}" if b > 0 else f"x - {-b}"
        left = f"{a}({inner})" + (f" - {e}(x - {f})" if level == 5 else "")
        expanded = _side(a, a * b) + (f" - {e}x + {e * f}" if level == 5 else "")
        steps.append(f"Expand: {expanded} = {right}")
        if level == 5:
            steps.append(f"Collect the left side: {_side(coef, const)} = {right}")
    else:
        left = _side(a, b)
    if c:
        steps.append(f"Subtract {_term(c)} from both sides: {_side(coef - c, const)} = {d}")
    steps.append(f"Move the constant: {_term(coef - c)} = {d - const}")
    if coef - c != 1:
        steps.append(f"Divide by {coef - c}: x = {latex_number(x)}")
    return Problem(f"Solve for $x$: ${left} = {right}$.", steps, x, "linear")


_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia", "Kofi", "Lena")
_ITEMS = ("apples", "marbles", "stickers", "books", "pencils", "coins", "cards", "shells")


def _word(rng: random.Random, level: int) -> Problem:
    name, items = rng.choice(_NAMES), rng.choice(_ITEMS)
    value = rng.randint(2, _MAX_NUMBER[level])
    sentences, steps = [f"{name} has {value} {items}."], []
    ops = ("more", "away") if level == 1 else ("more", "away", "packs") if level == 2 else (
        "more", "away", "packs", "times", "boxes")
    for _ in range(level):
        op = rng.choice(ops)
        k = rng.randint(2, _MAX_FACTOR[level])
        if op == "boxes" and not [d for d in range(2, _MAX_FACTOR[level] + 1) if value % d == 0]:
            op = "times"
        if op == "away" and value < 2:
            op = "more"
        if op == "more":
            k = rng.randint(1, _MAX_NUMBER[level])
            sentence, new, step = f"Then {name} buys {k} more.", value + k, f"{value} + {k}"
        elif op == "away":
            k = rng.randint(1, value - 1)
            sentence, new, step = f"Then {name} gives away {k}.", value - k, f"{value} - {k}"
        elif op == "packs":
            m = rng.randint(2, _MAX_FACTOR[level])
            sentence, new, step = f"Then {name} buys {k} packs of {m} {items}.", value + k * m, f"{value} + {k} \\times {m}"
        elif op == "times":
            sentence, new, step = f"Then {name} ends up with {k} times as many.", value * k, f"{value} \\times {k}"
        else:
            k = rng.choice([d for d in range(2, _MAX_FACTOR[level] + 1) if value % d == 0])
            sentence, new, step = (f"Then {name} splits them into {k} equal boxes and keeps one box.", value // k,
                                   f"{value} \\div {k}")
        sentences.append(sentence)
        steps.append(f"{step} = {new}")
        value = new
    sentences.append(f"How many {items} does {name} have now?")
    return Problem(" ".join(sentences), steps, Fraction(value), "word")


_GENERATORS: dict[str, Callable[[random.Random, int], Problem]] = {
    "arithmetic": _arithmetic, "fractions": _fractions, "percentages": _percentages, "linear": _linear,
    "word": _word,
}
_TITLES = {"arithmetic": "Arithmetic", "fractions": "Fractions", "percentages": "Percentages",
           "linear": "Linear equations", "word": "Word problems"}


# ---------------------------------------------------------------------------------------------
# Rows


def _row(problem: Problem, level: int, rng: random.Random) -> dict[str, Any]:
    """One row in the OpenR1-Math-220k schema (its 14 columns)."""
    answer = decimal_number(problem.answer) if problem.decimal else latex_number(problem.answer)
    solution = "\n".join([*problem.steps, f"The answer is $\\boxed{{{answer}}}$."])
    # An R1 trace: the default format is R1's own layout (reasoning in think tags, then a boxed answer).
    generation = get_format(DEFAULT_FORMAT).completion("\n".join(problem.steps), answer)
    return {
        "problem": problem.text, "solution": solution, "answer": answer,
        "problem_type": _TITLES[problem.kind], "question_type": "math-word-problem",
        "source": f"synthetic/{problem.kind}/level-{level}", "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "is_reasoning_complete": [True], "generations": [generation], "correctness_math_verify": [True],
        "correctness_llama": [None], "finish_reasons": ["stop"], "correctness_count": 1,
        "messages": [{"role": "user", "content": problem.text}, {"role": "assistant", "content": generation}],
    }


def check_synthetic(kind: str, n: int, level: int | list[int]) -> None:
    """The one-line errors for settings the generator cannot honour."""
    if kind not in KINDS:
        raise UserError(f"data.kind: {kind!r} is not one of {', '.join(KINDS)}")
    levels = level if isinstance(level, list) else [level]
    if not levels or any(lv not in LEVELS for lv in levels):
        listed = ", or a list of them" if isinstance(level, list) else ""
        raise UserError(f"data.level: must be {LEVELS[0]} to {LEVELS[-1]} (1 easiest){listed}, got {level}")
    if n < len(levels):
        raise UserError(f"data.n: must be at least one problem per level ({len(levels)}), got {n}")


def level_counts(n: int, levels: list[int]) -> dict[int, int]:
    """n problems split evenly over the levels, the first levels taking one more where n does not divide."""
    share, extra = divmod(n, len(levels))
    return {level: share + (i < extra) for i, level in enumerate(levels)}


def generate_problems(kind: str, n: int, level: int | list[int], seed: int) -> list[dict[str, Any]]:
    """`n` distinct problems of `kind` (or mixed) at `level`, as OpenR1-Math-220k rows; seeded. A list of
    levels (graded difficulty, for a curriculum) splits n evenly over them, each level its own seeded stream
    (its problems are those a recipe with that level alone would get first); rows come level by level."""
    check_synthetic(kind, n, level)
    if isinstance(level, list):
        return [row for lv, count in level_counts(n, level).items() for row in _generate(kind, count, lv, seed)]
    return _generate(kind, n, level, seed)


def _generate(kind: str, n: int, level: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(f"{SYNTHETIC}:{kind}:{level}:{seed}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    misses = 0
    while len(rows) < n:
        problem = _GENERATORS[rng.choice(PROBLEM_KINDS) if kind == "mixed" else kind](rng, level)
        if problem.text in seen:
            misses += 1
            if misses > _MAX_TRIES_PER_ROW:
                raise UserError(f"data.n: {n} problems asked, but level {level} {kind} gave only {len(rows)} "
                                "distinct ones (lower data.n or raise data.level)")
            continue
        misses = 0
        seen.add(problem.text)
        rows.append(_row(problem, level, rng))
    return rows
