"""Synthetic rows in the exact OpenR1-Math-220k schema, with realistic sizes, for the data benchmark.

The hub is out of reach here, so the benchmark builds its own stand-in: problems of a few hundred
characters, a worked solution ending in \\boxed{}, two R1-style generations of several thousand
characters each (plus the `messages` copy of one), answers of many kinds, ~1% exact duplicate problems
and the metadata columns in the real proportions' ballpark. Seeded: the same rows on every machine.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OPENR1_COLUMNS = [
    "problem", "solution", "answer", "problem_type", "question_type", "source", "uuid",
    "is_reasoning_complete", "generations", "correctness_math_verify", "correctness_llama",
    "finish_reasons", "correctness_count", "messages",
]
PROBLEM_TYPES = [("Algebra", 30), ("Geometry", 18), ("Number Theory", 15), ("Combinatorics", 12),
                 ("Inequalities", 7), ("Calculus", 5), ("Logic and Puzzles", 5), ("Other", 8)]
SOURCES = [("olympiads", 45), ("cn_contest", 15), ("aops_forum", 12), ("amc_aime", 8), ("olympiads_ref", 5),
           ("inequalities", 4), ("number_theory", 4), ("cn_k12", 7)]
_WORDS = (
    "let find the value of sum product number integer positive real such that every each triangle circle "
    "point line angle side length area prove show determine how many ways there are given compute smallest "
    "largest possible function equation satisfies all solutions pairs digits divisible by remainder when "
    "is divided sequence term first second third with and or if then therefore hence we get so from which "
    "it follows consider case suppose assume contradiction since because note that"
).split()
_LATEX = [r"$x^2+y^2$", r"$\frac{a}{b}$", r"$\sqrt{n}$", r"$a_{n+1}=2a_n+1$", r"$\angle ABC$", r"$f(x)$",
          r"$\sum_{k=1}^{n} k$", r"$n!$", r"$\binom{n}{k}$", r"$x \in \mathbb{R}$", r"$|x-1|<2$", r"$\pi r^2$"]


def _weighted(rng: random.Random, table: list[tuple[str, int]]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def _corpus(seed: int, n_chars: int = 1 << 21) -> str:
    """A ~2 MB pool of math-flavoured prose; long texts are slices of it (fast to build, not constant)."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < n_chars:
        token = rng.choice(_LATEX) if rng.random() < 0.12 else rng.choice(_WORDS)
        if rng.random() < 0.08:
            token = str(rng.randint(0, 999))
        parts.append(token)
        size += len(token) + 1
    return " ".join(parts)


def _slice(rng: random.Random, corpus: str, length: int) -> str:
    start = rng.randrange(0, len(corpus) - length - 1)
    return corpus[start:start + length]


def _answer(rng: random.Random, question_type: str) -> str:
    """Answers of the kinds OpenR1 has: mostly numbers, then fractions, radicals, tuples, expressions."""
    if question_type == "proof":
        return "proof"
    if question_type == "MCQ":
        return rng.choice("ABCDE")
    r = rng.random()
    if r < 0.55:
        return str(rng.randint(0, 30) if rng.random() < 0.5 else rng.randint(-50, 2024))
    if r < 0.70:
        return rf"\frac{{{rng.randint(1, 60)}}}{{{rng.randint(2, 60)}}}"
    if r < 0.76:
        return f"{rng.randint(1, 12)}\\sqrt{{{rng.choice([2, 3, 5, 6, 7, 10, 11])}}}"
    if r < 0.81:
        return f"({rng.randint(-12, 12)},{rng.randint(-12, 12)})"
    if r < 0.85:
        return f"x^{rng.randint(2, 4)}+{rng.randint(1, 12)}x"
    if r < 0.88:
        return f"[{rng.randint(-9, 0)},{rng.randint(1, 9)}]"
    if r < 0.93:
        return f"{rng.randint(0, 99)}.{rng.randint(1, 99)}"
    if r < 0.97:
        return rf"\frac{{{rng.randint(1, 5)}\pi}}{{{rng.randint(2, 12)}}}"
    return r"\text{no solution}"


def generate_rows(n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Yield `n` rows with OpenR1-Math-220k's 14 columns, in its column order."""
    rng = random.Random(seed)
    corpus = _corpus(seed)
    recent: list[str] = []
    for i in range(n):
        question_type = rng.choices(["math-word-problem", "MCQ", "proof", "cloze"], weights=[84, 8, 6, 2])[0]
        if recent and rng.random() < 0.01:  # OpenR1 has some exact duplicates across sources
            problem = rng.choice(recent)
        else:
            body = _slice(rng, corpus, rng.randint(150, 650)).split(" ", 1)[-1].strip()  # start on a whole word
            problem = f"{i + 1}. {body[:1].upper()}{body[1:]}?"
            recent = (recent + [problem])[-50:]
        answer = _answer(rng, question_type)
        solution = _slice(rng, corpus, rng.randint(400, 2500)) + f"\n\nThe answer is $\\boxed{{{answer}}}$."
        n_gen = 2
        complete = [rng.random() < 0.93 for _ in range(n_gen)]
        correct = [c and rng.random() < 0.8 for c in complete]
        generations = [
            "<think>\n" + _slice(rng, corpus, rng.randint(3000, 7000)) + "\n</think>\n\n"
            + _slice(rng, corpus, rng.randint(200, 800)) + f" So the answer is $\\boxed{{{answer}}}$."
            for _ in range(n_gen)
        ]
        yield {
            "problem": problem,
            "solution": solution,
            "answer": answer,
            "problem_type": _weighted(rng, PROBLEM_TYPES),
            "question_type": question_type,
            "source": _weighted(rng, SOURCES),
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "is_reasoning_complete": complete,
            "generations": generations,
            "correctness_math_verify": correct,
            "correctness_llama": [None if rng.random() < 0.7 else c for c in correct],
            "finish_reasons": ["stop" if c else "length" for c in complete],
            "correctness_count": sum(correct),
            "messages": [{"role": "user", "content": problem}, {"role": "assistant", "content": generations[0]}],
        }


def arrow_schema():
    """OpenR1-Math-220k's parquet schema (as the hub serves it)."""
    import pyarrow as pa

    message = pa.struct([("content", pa.string()), ("role", pa.string())])
    return pa.schema([
        ("problem", pa.string()), ("solution", pa.string()), ("answer", pa.string()),
        ("problem_type", pa.string()), ("question_type", pa.string()), ("source", pa.string()),
        ("uuid", pa.string()), ("is_reasoning_complete", pa.list_(pa.bool_())),
        ("generations", pa.list_(pa.string())), ("correctness_math_verify", pa.list_(pa.bool_())),
        ("correctness_llama", pa.list_(pa.bool_())), ("finish_reasons", pa.list_(pa.string())),
        ("correctness_count", pa.int64()), ("messages", pa.list_(message)),
    ])


def write_parquet(path: Path, n: int, seed: int = 0, chunk: int = 2000) -> Path:
    """Write `n` rows as parquet (the format the hub serves), in chunks to keep memory flat."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    schema = arrow_schema()
    rows: list[dict[str, Any]] = []
    with pq.ParquetWriter(path, schema) as writer:
        for row in generate_rows(n, seed):
            rows.append(row)
            if len(rows) == chunk:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                rows = []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    return path


def write_jsonl(path: Path, n: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in generate_rows(n, seed):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
