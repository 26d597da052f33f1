"""The synthetic problem source (`data: {dataset: synthetic, kind, n, level}`): answers checked by an independent
computation (sympy on the problem text), seeded reproducibility, graded difficulty, and the rows through the same
data path (OpenR1 adapter, default filters, split, cache); bad settings are one-line errors."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from fractions import Fraction

import pytest
import sympy

from tests.repo import OPENR1_COLUMNS, ROOT
from utils.answers import extract_answer
from utils.config import load_recipe, sections_from_dict
from utils.data import OUTPUT_COLUMNS, generate_problems, load_training_data
from utils.errors import UserError

KINDS = ("arithmetic", "fractions", "percentages", "linear", "word")
LEVELS = (1, 2, 3, 4, 5)


# ---------------------------------------------------------------------------------------------
# An independent reading of the problem texts (sympy and Fraction; nothing from the generator)


def _latex_to_sympy(text: str) -> sympy.Expr:
    text = re.sub(r"\\frac\{(-?\d+)\}\{(\d+)\}", r"((\1)/(\2))", text)
    text = text.replace("\\times", "*").replace("\\div", "/")
    text = re.sub(r"(\d)\s*([x(])", r"\1*\2", text)  # 3x, 2(x + 1)
    return sympy.sympify(text, locals={"x": sympy.Symbol("x")})


def _value(answer: str) -> sympy.Rational:
    return sympy.Rational(answer) if "\\frac" not in answer else sympy.Rational(_latex_to_sympy(answer))


def _percent_answer(problem: str) -> Fraction:
    single = re.fullmatch(r"What is (\d+)% of (\d+)\?", problem)
    if single:
        return Fraction(int(single[1]) * int(single[2]), 100)
    value = Fraction(int(re.search(r"starts at (\d+)\.", problem)[1]))
    for direction, p in re.findall(r"(increased|decreased) by (\d+)%", problem):
        value *= 1 + Fraction(int(p), 100) * (1 if direction == "increased" else -1)
    return value


_WORD_STEPS = re.compile(r"buys (\d+) packs of (\d+)|buys (\d+) more|gives away (\d+)|ends up with (\d+) times as many"
                         r"|splits them into (\d+) equal boxes and keeps one box")


def _word_answer(problem: str) -> Fraction:
    value = Fraction(int(re.match(r"\w+ has (\d+) ", problem)[1]))
    for packs, size, more, away, times, boxes in _WORD_STEPS.findall(problem):
        if packs:
            value += int(packs) * int(size)
        elif more or away:
            value += int(more) if more else -int(away)
        else:
            value = value * int(times) if times else value / int(boxes)
    return value


def independent_answer(kind: str, problem: str) -> sympy.Rational:
    if kind in ("arithmetic", "fractions"):
        return sympy.Rational(_latex_to_sympy(re.search(r"\$(.+)\$", problem)[1]))
    if kind == "linear":
        left, right = re.search(r"\$x\$: \$(.+)\$\.", problem)[1].split(" = ")
        (solution,) = sympy.solve(sympy.Eq(_latex_to_sympy(left), _latex_to_sympy(right)), sympy.Symbol("x"))
        return sympy.Rational(solution)
    computed = _percent_answer(problem) if kind == "percentages" else _word_answer(problem)
    return sympy.Rational(computed.numerator, computed.denominator)


# ---------------------------------------------------------------------------------------------
# Answers, reproducibility, levels


@pytest.mark.parametrize("kind", KINDS)
def test_answers_are_right_by_an_independent_computation(kind):
    for level in LEVELS:
        for row in generate_problems(kind, 40, level, seed=level):
            assert _value(row["answer"]) == independent_answer(kind, row["problem"]), row["problem"]
            # the worked solution ends in \boxed{answer}, which the project's extractor reads back
            assert row["solution"].endswith(f"The answer is $\\boxed{{{row['answer']}}}$.")
            assert extract_answer(row["solution"]) == row["answer"]


def test_same_seed_same_problems_different_seed_different_problems():
    first = generate_problems("mixed", 200, 3, seed=7)
    assert generate_problems("mixed", 200, 3, seed=7) == first
    assert generate_problems("mixed", 50, 3, seed=7) == first[:50]  # n does not change the first problems
    other = [r["problem"] for r in generate_problems("mixed", 200, 3, seed=8)]
    assert len(set(other) & {r["problem"] for r in first}) < 20
    assert len({r["problem"] for r in first}) == 200  # distinct
    assert len({r["uuid"] for r in first}) == 200


def test_problems_are_the_same_in_another_process_and_pinned():
    # string-seeded random.Random hashes with SHA-512: no dependence on PYTHONHASHSEED or the machine
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from utils.data import generate_problems; "
            "print(json.dumps([r['problem'] for r in generate_problems('mixed', 30, 2, 11)]))")
    outputs = [subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(hash_seed)}).stdout for hash_seed in (1, 2)]
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0]) == [r["problem"] for r in generate_problems("mixed", 30, 2, 11)]
    assert generate_problems("arithmetic", 1, 2, 0)[0]["problem"] == PINNED_ARITHMETIC_L2_SEED0


PINNED_ARITHMETIC_L2_SEED0 = "Compute $11 + 28 + 41$."


def _steps(row: dict) -> int:
    return len(row["solution"].splitlines()) - 1  # one line per step, then the boxed answer


def _largest_number(row: dict) -> int:
    return max(int(n) for n in re.findall(r"\d+", row["problem"]))


@pytest.mark.parametrize("kind", KINDS)
def test_levels_differ_in_steps_and_size_of_numbers(kind):
    by_level = {level: generate_problems(kind, 150, level, seed=3) for level in LEVELS}
    for level, rows in by_level.items():
        assert {_steps(r) for r in rows} == {level}  # a level-L problem takes L steps
    sizes = [statistics.median(_largest_number(r) for r in by_level[level]) for level in LEVELS]
    assert sizes == sorted(sizes) and sizes[-1] >= 2 * sizes[0], sizes


# ---------------------------------------------------------------------------------------------
# Through the data path


def synthetic_recipe(tmp_path, **data):
    return sections_from_dict({"data": {"dataset": "synthetic", "cache_dir": str(tmp_path / "cache"), **data}})


def test_rows_are_openr1_rows_that_pass_the_adapter_and_default_filters(tmp_path):
    rows = generate_problems("mixed", 300, 3, seed=42)
    assert all(list(r) == OPENR1_COLUMNS for r in rows)  # the 14 columns, in the dataset's order
    recipe = synthetic_recipe(tmp_path, kind="mixed", n=300, level=3, validation=30,
                              filters={"min_correctness_count": 1, "complete_reasoning_only": True})
    prepared = load_training_data(recipe)
    report = prepared.report
    assert report.format == "OpenR1-Math-220k" and report.gold_from == {"answer column": 300}
    assert report.source == "synthetic: 300 mixed problems, level 3, seed 42 (generated)"
    ran = {s.name: s.removed for s in report.steps if not s.skipped}
    assert ran == {"has_answer": 0, "question_types": 0, "min_correctness_count": 0, "complete_reasoning": 0,
                   "parseable_answer": 0, "dedupe": 0}
    assert (len(prepared.train), len(prepared.validation)) == (270, 30)
    assert prepared.train.column_names == OUTPUT_COLUMNS
    gold = {r["uuid"]: r["answer"] for r in rows}
    assert all(gold[row["id"]] == row["answer"] for row in prepared.train)
    assert set(prepared.train["problem_type"]) == {"Arithmetic", "Fractions", "Percentages", "Linear equations",
                                                   "Word problems"}


def test_a_recipe_with_dataset_synthetic_loads_and_caches(tmp_path):
    path = tmp_path / "synthetic.yaml"
    path.write_text(f"data:\n  dataset: synthetic\n  kind: fractions\n  n: 120\n  level: 1\n  validation: 20\n"
                    f"  cache_dir: {tmp_path / 'cache'}\n")
    recipe = load_recipe(path, ["data.level=2"])
    first = load_training_data(recipe)
    assert first.report.cache == "miss" and len(first.train) == 100
    assert set(first.train["source"]) == {"synthetic/fractions/level-2"}
    again = load_training_data(load_recipe(path, ["data.level=2"]))
    assert again.report.cache == "hit" and again.train["id"] == first.train["id"]
    other = load_training_data(load_recipe(path, ["data.level=2", "data.seed=1"]))
    assert other.report.cache == "miss" and set(other.train["problem"]) != set(first.train["problem"])


@pytest.mark.parametrize("data, message", [
    ({"dataset": "synthetic", "level": 0}, "recipe: data.level: must be 1 to 5 (1 easiest), got 0"),
    ({"dataset": "synthetic", "level": 6}, "recipe: data.level: must be 1 to 5 (1 easiest), got 6"),
    ({"dataset": "synthetic", "kind": "geometry"},
     "recipe: data.kind: 'geometry' is not one of arithmetic, fractions, percentages, linear, word, mixed"),
    ({"dataset": "synthetic", "n": 0}, "recipe: data.n: must be a positive number of problems, got 0"),
    ({"dataset": "data/openr1_sample.jsonl", "kind": "word"},
     "recipe: data.kind: only used with data.dataset: synthetic (the dataset is 'data/openr1_sample.jsonl'; "
     "remove data.kind)"),
    ({"dataset": "data/openr1_sample.jsonl", "level": 3},
     "recipe: data.level: only used with data.dataset: synthetic (the dataset is 'data/openr1_sample.jsonl'; "
     "remove data.level)"),
])
def test_bad_settings_are_one_line_errors(data, message):
    with pytest.raises(UserError) as info:
        sections_from_dict({"data": data})
    assert str(info.value) == message


def test_generator_refuses_what_it_cannot_make():
    with pytest.raises(UserError, match=r"^data\.level: must be 1 to 5 \(1 easiest\), got 0$"):
        generate_problems("word", 10, 0, 1)
    with pytest.raises(UserError, match=r"^data\.kind: 'algebra' is not one of "):
        generate_problems("algebra", 10, 1, 1)
    # level 1 fractions have a few hundred distinct problems: asking for more says so, in one line
    with pytest.raises(UserError) as info:
        generate_problems("fractions", 2000, 1, 1)
    assert re.fullmatch(r"data\.n: 2000 problems asked, but level 1 fractions gave only \d+ distinct ones "
                        r"\(lower data\.n or raise data\.level\)", str(info.value))


def test_explore_data_on_synthetic_problems(run_script, tmp_path):
    result = run_script("explore_data", "synthetic", "--set", "data.kind=word", "--set", "data.n=200",
                        "--set", "data.level=4", "--no-progress", "--samples", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "checkpoints" / "explore" / "synthetic-word-level4"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_loaded"] == 200 and summary["parse_rate"] == 1.0
    assert summary["distributions"]["source"] == {"synthetic/word/level-4": 200}
    result = run_script("explore_data", "synthetic", "--set", "data.level=0", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == (
        "error: explore_data: data.level: must be 1 to 5 (1 easiest), got 0")
