"""Issue 12's corpora: answers read out of prose, list and number forms, each verdict against math-verify 0.9.0.

tests/fixtures/extraction_cases.tsv holds completions (newlines written as ⏎); tests/fixtures/equivalence_cases.tsv
holds bare answers. Both note the rows where math-verify is wrong, and why.
"""

from __future__ import annotations

import logging

import pytest

from tests.repo import FIXTURES
from utils import answers
from utils.answers import extract_answer, verify, verify_all

CORPUS = FIXTURES / "equivalence_cases.tsv"
CORRECTNESS_TIMEOUT = 10.0  # correctness, not speed: the default deadline is tested under load in test_answers.py

EXTRACTION = FIXTURES / "extraction_cases.tsv"


def _extraction_cases() -> list[tuple[str, str, str, bool, str]]:
    rows = []
    for line in EXTRACTION.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        kind, gold, text, expected, note = line.split("\t")
        rows.append((kind, gold, text.replace("⏎", "\n"), expected == "1", note))
    return rows


@pytest.mark.parametrize("kind, gold, text, expected, note", _extraction_cases(), ids=lambda v: str(v)[:40])
def test_issue12_extraction_cases(kind: str, gold: str, text: str, expected: bool, note: str) -> None:
    assert verify(gold, extract_answer(text), timeout=CORRECTNESS_TIMEOUT) is expected, (extract_answer(text), note)


@pytest.mark.parametrize(
    "text, answer",
    [
        (r"Therefore $\frac{1}{3}$.", r"\frac{1}{3}"),
        (r"$[0,1)$", "[0,1)"),
        (r"we get $x \geq 5$ as the solution.", r"x \geq 5"),
        ("AZYUK2A", None),
        ("The result: 11 6/6", r"11\frac{6}{6}"),
        (r"First \boxed{5}. Then \boxed{", None),
        (r"\boxed{(2,12) \cup (12,102)}", r"(2,12) \cup (12,102)"),
        (r"\boxed{(1,2),(3,456)}", "(1,2),(3,456)"),
        (r"\boxed{3} and \boxed{7}. The final answer is $10,455$", "10455"),
        (r"$\boxed{2} \quad \text{and} \quad \boxed{3}$", "2, 3"),
        (r"\boxed{0,111}", "0.111"),
        (r"\boxed{1000,99}", "1000.99"),
        (r"\boxed{28 percentage}", "28%"),
        (r"$1$ and $2$ and $3$", "1, 2, 3"),
        (r"\boxed{-12;-11;-10}", "-12, -11, -10"),
        (r"\boxed{14 {, }916}", "14916"),
        (r"\boxed{1, 2, 3, ...}", r"1, 2, 3, \ldots"),
    ],
)
def test_issue12_extracted_forms(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


@pytest.fixture(scope="module")
def math_verify_verdicts() -> dict[str, list[tuple[str, bool, bool, bool | None, str]]]:
    """Per corpus: (class, expected, math-verify's verdict, ours, note) for every row."""
    logging.disable(logging.WARNING)  # math-verify logs what it cannot parse
    from math_verify import parse
    from math_verify import verify as mv_verify

    try:
        answers.clear_caches()
        equivalence = _corpus_with_notes()
        golds, preds = [g for _, g, _, _, _ in equivalence], [p for _, _, p, _, _ in equivalence]
        ours = verify_all(golds, preds, timeout=CORRECTNESS_TIMEOUT)
        out = {"equivalence": [
            (k, e, bool(mv_verify(parse(f"${g}$"), parse(f"${p}$"))), o, note)
            for (k, g, p, e, note), o in zip(equivalence, ours, strict=True)
        ]}
        extraction = _extraction_cases()
        golds, preds = [g for _, g, _, _, _ in extraction], [extract_answer(t) for _, _, t, _, _ in extraction]
        ours = verify_all(golds, preds, timeout=CORRECTNESS_TIMEOUT)
        out["extraction"] = [
            (k, e, bool(mv_verify(parse(f"${g}$"), parse(t))), o, note)
            for (k, g, t, e, note), o in zip(extraction, ours, strict=True)
        ]
        return out
    finally:
        logging.disable(logging.NOTSET)


def _corpus_with_notes() -> list[tuple[str, str, str, bool, str]]:
    rows = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        kind, gold, pred, expected, *note = line.split("\t")
        rows.append((kind, gold, pred, expected == "1", note[0] if note else ""))
    return rows


@pytest.mark.parametrize("corpus", ["equivalence", "extraction"])
def test_corpus_says_where_math_verify_is_wrong(math_verify_verdicts: dict, corpus: str) -> None:
    """Expected verdicts agree with math-verify except where the note says it is wrong (and why); a row whose
    math-verify verdict depends on load (its own 5 s timeout) says "math-verify varies"."""
    rows = [row for row in math_verify_verdicts[corpus] if "math-verify varies" not in row[4]]
    unexplained = [(k, note) for k, e, mv, _, note in rows if (mv != e) != ("math-verify wrong" in note)]
    assert unexplained == []


@pytest.mark.parametrize("corpus", ["equivalence", "extraction"])
def test_ours_at_least_as_right_as_math_verify_by_class(math_verify_verdicts: dict, corpus: str) -> None:
    by_class: dict[str, list[int]] = {}
    for kind, expected, mv, ours, _ in math_verify_verdicts[corpus]:
        tally = by_class.setdefault(kind, [0, 0, 0, 0])  # right: ours, math-verify; false "equal": ours, math-verify
        tally[0] += ours is expected
        tally[1] += mv is expected
        tally[2] += ours is True and not expected
        tally[3] += mv is True and not expected
    worse = {k: t for k, t in by_class.items() if t[0] < t[1] or t[2] > t[3]}
    assert worse == {}
    assert sum(t[2] for t in by_class.values()) == 0  # no false "equal" at all: no reward for a wrong answer
