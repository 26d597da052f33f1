"""Where things are, for every test: the repository root, the bundled OpenR1-schema sample, the test fixtures.
Tests import these from here (`from tests.repo import ROOT`), and helpers as `tests.<module>`, one way."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"  # the answer corpora (TSV)
SAMPLE_OPENR1 = ROOT / "data" / "openr1_sample.jsonl"
OPENR1_COLUMNS = [
    "problem", "solution", "answer", "problem_type", "question_type", "source", "uuid",
    "is_reasoning_complete", "generations", "correctness_math_verify", "correctness_llama",
    "finish_reasons", "correctness_count", "messages",
]
