"""Schema adapters: OpenR1-Math-220k, GSM8K, MATH-style and generic (recipe column names) rows become our
columns (problem, gold answer, solution, light metadata). The schema is told from the column names, then the
answer and solution roles from what the columns hold (settle_roles): a `question` column beside bare answers is
no GSM8K file, and an `answer` column of worked `#### N` solutions is no answer column."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from utils.answers import extract_answer
from utils.config import DataSection
from utils.data._cache import stable_hash
from utils.errors import UserError

# Columns the adapters produce before filtering; the last two only feed filters.
ADAPTED_COLUMNS = ["problem", "answer", "gold_from", "solution", "problem_type", "question_type", "source", "id",
                   "correctness_count", "reasoning_complete"]

# role -> default source column, per format. `problem` and a gold answer are what every format needs.
ADAPTER_COLUMNS: dict[str, dict[str, str]] = {
    "openr1": {
        "problem": "problem", "answer": "answer", "solution": "solution", "problem_type": "problem_type",
        "question_type": "question_type", "source": "source", "id": "uuid",
        "correctness_count": "correctness_count", "reasoning_complete": "is_reasoning_complete",
    },
    # GSM8K's `answer` column is a worked solution ending in `#### N`: the gold answer comes from it.
    "gsm8k": {"problem": "question", "solution": "answer"},
    "math": {"problem": "problem", "answer": "answer", "solution": "solution", "problem_type": "type",
             "id": "unique_id"},
    "generic": {},
}
ADAPTER_TITLES = {"openr1": "OpenR1-Math-220k", "gsm8k": "GSM8K", "math": "MATH-style", "generic": "generic"}
# Fallbacks for optional roles when the default column is absent (MATH-500 says `subject`, others `id`).
_ALTERNATIVES = {"problem_type": ("subject", "type", "problem_type"), "id": ("unique_id", "id", "uuid")}
_OPENR1_MARKERS = {"generations", "correctness_count", "question_type", "problem_type", "is_reasoning_complete"}
ROLES = ("problem", "answer", "solution", "problem_type", "question_type", "source", "id",
         "correctness_count", "reasoning_complete")
SHOWN_ROLES = ("problem", "answer", "solution")  # what `columns: problem <- question, ...` lines say
CONTENT_SAMPLE = 32  # values looked at to tell a column of final answers from one of worked solutions
_HASH_LINE = re.compile(r"(?m)^\s*####\s*\S")


@dataclass
class Adapter:
    """How one schema maps onto our columns: role -> source column (only columns present)."""

    format: str
    mapping: dict[str, str]

    @property
    def title(self) -> str:
        return ADAPTER_TITLES[self.format]

    @property
    def source_columns(self) -> list[str]:
        return list(dict.fromkeys(self.mapping.values()))

    def roles(self) -> str:
        """Which column plays which role, e.g. `problem <- question, answer <- answer`."""
        return ", ".join(f"{role} <- {self.mapping[role]}" for role in SHOWN_ROLES if role in self.mapping)


def detect_format(columns: Iterable[str]) -> str | None:
    """Which known schema these columns are (None when none fits)."""
    cols = set(columns)
    if {"problem", "answer", "solution"} <= cols and cols & _OPENR1_MARKERS:
        return "openr1"
    if {"question", "answer"} <= cols and "problem" not in cols:
        return "gsm8k"
    if "problem" in cols and cols & {"answer", "solution"}:
        return "math"
    return None


def _expected_columns(fmt: str, overrides: dict[str, str]) -> list[str]:
    roles = {**ADAPTER_COLUMNS[fmt], **overrides}
    if fmt == "openr1":
        return [roles["problem"], roles["solution"], roles["answer"]]
    if fmt == "generic":
        return [roles.get("problem", "problem")] + [roles[r] for r in ("answer", "solution") if r in roles]
    if fmt == "gsm8k":
        return [roles["problem"], roles["solution"]]
    return [roles["problem"], f"{roles['answer']} and/or {roles['solution']}"]


def parse_columns(text: str | None, key: str = "--columns") -> dict[str, str]:
    """`problem=question,answer=answer` -> {"problem": "question", "answer": "answer"}; roles are checked."""
    columns: dict[str, str] = {}
    for item in (part.strip() for part in (text or "").split(",")):
        role, sep, column = (s.strip() for s in item.partition("="))
        if not item:
            continue
        if not sep or not role or not column:
            raise UserError(f"{key}: {item!r} is not ROLE=COLUMN (e.g. {key} problem=question,answer=answer)")
        columns[role] = column
    unknown = sorted(set(columns) - set(ROLES))
    if unknown:
        raise UserError(f"{key}: unknown role(s) {', '.join(unknown)} (roles: {', '.join(ROLES)})")
    return columns


def _columns_hint(key: str) -> str:
    if key == "data.columns":
        return "or set data.format: generic with data.columns {problem: COL, answer: COL}"
    return f"or say which column is which: {key} problem=COL,answer=COL"


def make_adapter(columns: Sequence[str], data: DataSection, where: str, key: str = "data.columns") -> Adapter:
    """Pick (format auto) or check (format given) the schema adapter for `columns`; errors list both sides.
    `key` is where the user names columns (a recipe's data.columns, evaluate.py's --columns)."""
    found = list(columns)
    unknown_roles = sorted(set(data.columns) - set(ROLES))
    if unknown_roles:
        raise UserError(f"{key}: unknown role(s) {', '.join(unknown_roles)} (roles: {', '.join(ROLES)})")
    fmt = data.format
    if fmt == "auto":
        named = "problem" in data.columns and bool({"answer", "solution"} & set(data.columns))
        fmt = detect_format(found) or ("generic" if named else "")
        if not fmt:
            raise UserError(
                f"{where}: cannot tell the data's schema (found columns: {', '.join(found)}); expected "
                "OpenR1-Math-220k (problem, solution, answer, problem_type, question_type, ...), "
                "GSM8K (question, answer with '#### N'), MATH-style (problem, answer and/or solution), "
                + _columns_hint(key)
            )
    wanted = {**ADAPTER_COLUMNS[fmt], **data.columns}
    present = set(found)
    mapping = {role: col for role, col in wanted.items() if col in present}
    for role, alternatives in _ALTERNATIVES.items():
        if role not in mapping and role not in data.columns:
            for col in alternatives:
                if col in present:
                    mapping[role] = col
                    break
    required_ok = "problem" in mapping and ("answer" in mapping or "solution" in mapping)
    if fmt == "openr1":
        required_ok = required_ok and {"answer", "solution"} <= set(mapping)
    if fmt == "gsm8k":
        required_ok = required_ok and "solution" in mapping
    explicit_missing = [col for role, col in data.columns.items() if col not in present]
    if not required_ok or explicit_missing:
        expected = _expected_columns(fmt, data.columns)
        missing = explicit_missing or [c for c in expected if c.split(" and/or ")[0] not in present]
        raise UserError(
            f"{where}: missing required column(s) {', '.join(missing)} for data.format {fmt} "
            f"(found: {', '.join(found)}; expected: {', '.join(expected)})"
        )
    return Adapter(fmt, mapping)


def looks_like_solution(value: Any) -> bool:
    """A worked solution the gold answer is read from (a GSM8K `#### N` line, or a \\boxed{} inside a longer
    text), as opposed to a bare final answer (a number, a short LaTeX expression)."""
    if not isinstance(value, str):
        return False  # a number is an answer
    text = value.strip()
    if _HASH_LINE.search(text):
        return True
    return ("\\boxed" in text or "\\fbox" in text) and ("\n" in text or len(text) > 80)


def holds_solutions(values: Sequence[Any]) -> bool:
    """Whether most of the first CONTENT_SAMPLE non-blank values of a column are worked solutions."""
    sample = [v for v in values if v is not None and v != ""][:CONTENT_SAMPLE]
    return bool(sample) and 2 * sum(map(looks_like_solution, sample)) > len(sample)


def settle_roles(adapter: Adapter, raw: Any, data: DataSection) -> Adapter:
    """With data.format auto, the answer and solution roles follow what their column holds: the names alone
    cannot tell GSM8K's `answer` (solutions ending in `#### N`) from a bare-answer column beside a `question`.
    A role named in data.columns (--columns) stays where the user put it; `raw` holds the adapter's columns."""
    if data.format != "auto":
        return adapter
    mapping = dict(adapter.mapping)
    head = raw[:CONTENT_SAMPLE]  # column -> its first values
    for role, other in (("answer", "solution"), ("solution", "answer")):
        column = mapping.get(role)
        if column is None or role in data.columns or other in mapping:
            continue
        if holds_solutions(head[column]) != (role == "solution"):
            mapping[other] = mapping.pop(role)
    fmt = "math" if adapter.format == "gsm8k" and "solution" not in mapping else adapter.format
    return Adapter(fmt, mapping)


def _as_text(value: Any) -> str | None:
    """A cell as text: numbers as written (27.0 -> '27'), lists/dicts as JSON, blanks as None."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    text = text.strip()
    return text or None


def gold_from_solution(solution: str | None) -> str | None:
    """The gold answer written in a reference solution: its last \\boxed{} or `#### N` (nothing else)."""
    if not solution or ("\\boxed" not in solution and "\\fbox" not in solution and "####" not in solution):
        return None  # the extractor's looser fallbacks (last number, ...) are no way to read a gold answer
    return extract_answer(solution)


def _adapt_batch(batch: dict[str, list[Any]], indices: list[int], mapping: dict[str, str], id_prefix: str) -> dict[str, list[Any]]:
    n = len(indices)

    def col(role: str) -> list[Any]:
        return batch[mapping[role]] if role in mapping else [None] * n

    problems, answers, solutions = col("problem"), col("answer"), col("solution")
    out: dict[str, list[Any]] = {c: [] for c in ADAPTED_COLUMNS}
    for i in range(n):
        solution = _as_text(solutions[i])
        gold = _as_text(answers[i])
        origin = "answer column" if gold else ""
        if not gold:
            gold = gold_from_solution(solution)
            origin = "solution" if gold else "none"
        out["problem"].append(_as_text(problems[i]) or "")
        out["answer"].append(gold or "")
        out["gold_from"].append(origin)
        out["solution"].append(solution or "")
        out["id"].append(_as_text(col("id")[i]) or f"{id_prefix}-{indices[i]}")
    for role in ("problem_type", "question_type", "source"):
        out[role] = [_as_text(v) or "" for v in col(role)]
    counts = col("correctness_count")
    out["correctness_count"] = [int(v) if isinstance(v, (int, float)) else None for v in counts]
    complete = col("reasoning_complete")
    # OpenR1: a list with one flag per R1 generation; complete when any generation finished its reasoning.
    out["reasoning_complete"] = [any(v) if isinstance(v, list) else (bool(v) if v is not None else None)
                                 for v in complete]
    return out


def adapted_features() -> Any:
    """Fixed types for adapted rows: a column that is all null in one source still has its type."""
    from datasets import Features, Value

    types = {"correctness_count": Value("int64"), "reasoning_complete": Value("bool")}
    return Features({name: types.get(name, Value("string")) for name in ADAPTED_COLUMNS})


def adapt(raw: Any, adapter: Adapter, id_prefix: str) -> Any:
    """Raw rows -> our columns (problem, answer, solution, metadata); batched, kept in memory."""
    return raw.map(
        _adapt_batch, batched=True, with_indices=True, input_columns=None,
        fn_kwargs={"mapping": adapter.mapping, "id_prefix": id_prefix},
        remove_columns=raw.column_names, keep_in_memory=True, load_from_cache_file=False,
        features=adapted_features(),
        try_original_type=False,  # else an `answer` column read as float64 turns "27" back into 27.0
        new_fingerprint=stable_hash([raw._fingerprint, adapter.mapping, id_prefix, "adapt"]),
        desc="Adapting rows",
    )

