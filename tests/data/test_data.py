"""The data layer on fixture rows in the exact OpenR1-Math-220k schema: loading every file kind, schema
adapters, each filter, seeded subsets and splits, prompts, the cache; then the real files in
../shared/data (skipped where absent); then the errors bad data must give."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.repo import OPENR1_COLUMNS, ROOT
from utils.answers import is_parseable
from utils.config import DataSection, FiltersSection, PromptSection, load_recipe
from utils.data import (
    OUTPUT_COLUMNS,
    NgramIndex,
    code_version,
    detect_format,
    load_adapted,
    load_training_data,
    normalized_words,
    prepare_data,
    prompt_token_counts,
    split_indices,
)
from utils.errors import UserError
from utils.formats import FORMATS, build_messages


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def section(path: Path | str, tmp_path: Path, **kwargs) -> DataSection:
    filters = kwargs.pop("filters", {})
    kwargs.setdefault("validation", 0)
    kwargs.setdefault("cache", False)
    return DataSection(dataset=str(path), cache_dir=str(tmp_path / "cache"), filters=FiltersSection(**filters), **kwargs)


def prepare(data: DataSection, prompt: PromptSection | None = None, tokenizer=None):
    return prepare_data(data, prompt or PromptSection(), tokenizer, progress=False)


def steps(prepared) -> dict[str, int]:
    return {s.name: s.removed for s in prepared.report.steps if not s.skipped}


def skipped(prepared) -> dict[str, str]:
    return {s.name: s.skipped for s in prepared.report.steps if s.skipped}


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def sample(tmp_path, openr1_rows) -> Path:
    return write_jsonl(tmp_path / "openr1.jsonl", openr1_rows)


# ---------------------------------------------------------------------------------------------
# Schema adapters


def test_detect_format():
    assert detect_format(OPENR1_COLUMNS) == "openr1"
    assert detect_format(["question", "answer"]) == "gsm8k"
    assert detect_format(["problem", "solution", "answer", "subject", "level", "unique_id"]) == "math"
    assert detect_format(["problem", "answer", "difficulty", "type"]) == "math"
    assert detect_format(["problem", "solution"]) == "math"
    assert detect_format(["text", "label"]) is None


def test_openr1_rows_adapt_and_ship_light_columns(sample, tmp_path, openr1_rows):
    loaded = load_adapted(section(sample, tmp_path), progress=False)
    assert loaded.adapter.format == "openr1" and loaded.raw_columns == OPENR1_COLUMNS
    assert "generations" not in loaded.features and "messages" not in loaded.features  # never read
    rows = loaded.rows
    assert rows["id"] == [r["uuid"] for r in openr1_rows]
    assert rows["answer"] == [r["answer"] for r in openr1_rows]
    assert set(rows["gold_from"]) == {"answer column"}
    assert rows["correctness_count"] == [r["correctness_count"] for r in openr1_rows]
    assert rows["reasoning_complete"] == [any(r["is_reasoning_complete"]) for r in openr1_rows]

    prepared = prepare(section(sample, tmp_path))
    assert prepared.train.column_names == OUTPUT_COLUMNS == prepared.validation.column_names
    row = prepared.train[0]
    assert row["prompt"] == build_messages(row["problem"], "think_boxed")
    assert all(isinstance(row[c], str) for c in OUTPUT_COLUMNS if c != "prompt")


def test_gold_answer_from_solution_when_answer_column_is_blank(tmp_path, openr1_rows):
    rows = copy.deepcopy(openr1_rows[:4])
    rows[0]["answer"] = ""  # solution ends in \boxed{84}
    rows[1]["answer"] = None
    rows[1]["solution"] = "Add them up.\n#### 100"
    rows[2]["answer"] = " "
    rows[2]["solution"] = "No final answer written here: 5 + 3 = 8"  # no \boxed / ####: no gold
    loaded = load_adapted(section(write_jsonl(tmp_path / "r.jsonl", rows), tmp_path), progress=False)
    assert loaded.rows["answer"][:3] == ["84", "100", ""]
    assert loaded.rows["gold_from"] == ["solution", "solution", "none", "answer column"]
    prepared = prepare(section(tmp_path / "r.jsonl", tmp_path))
    assert steps(prepared)["has_answer"] == 1 and "" not in prepared.train["answer"]


def test_gsm8k_adapter_reads_the_hash_answer(tmp_path):
    rows = [
        {"question": "Tom has 3 apples and buys 5. How many?", "answer": "3 + 5 = <<3+5=8>>8\n#### 8"},
        {"question": "A farm has 1,200 hens and 34 more. How many?", "answer": "1200+34=1234\n#### 1,234"},
    ]
    loaded = load_adapted(section(write_jsonl(tmp_path / "g.jsonl", rows), tmp_path), progress=False)
    assert loaded.adapter.format == "gsm8k"
    assert loaded.rows["answer"] == ["8", "1234"] and loaded.rows["gold_from"] == ["solution", "solution"]
    assert loaded.rows["solution"][0] == rows[0]["answer"] and loaded.rows["problem"][0] == rows[0]["question"]
    assert loaded.rows["id"] == ["g-0", "g-1"]  # no id column: file stem + row index


def test_math_adapter_answer_solution_types_and_ids(tmp_path):
    rows = [
        {"problem": "Find $x$ if $2x=6$.", "solution": "So $x=\\boxed{3}$.", "answer": "3", "subject": "Algebra",
         "unique_id": "test/algebra/1.json"},
        {"problem": "Compute $1/2+1/4$.", "solution": "We get $\\boxed{\\frac34}$.", "answer": None,
         "subject": "Prealgebra", "unique_id": "test/prealgebra/2.json"},
    ]
    loaded = load_adapted(section(write_jsonl(tmp_path / "m.jsonl", rows), tmp_path), progress=False)
    assert loaded.adapter.format == "math"
    assert loaded.rows["answer"][0] == "3" and loaded.rows["gold_from"] == ["answer column", "solution"]
    assert loaded.rows["answer"][1]  # from the box, as utils.answers reads it
    assert loaded.rows["problem_type"] == ["Algebra", "Prealgebra"]  # MATH's `subject`
    assert loaded.rows["id"] == ["test/algebra/1.json", "test/prealgebra/2.json"]


def test_numeric_answer_column_becomes_text(tmp_path):
    rows = [{"id": 0, "problem": "How far?", "answer": 27.0}, {"id": 1, "problem": "How many?", "answer": 2.5}]
    loaded = load_adapted(section(write_jsonl(tmp_path / "amc.jsonl", rows), tmp_path), progress=False)
    assert loaded.rows["answer"] == ["27", "2.5"] and loaded.rows["id"] == ["0", "1"]


def test_generic_adapter_with_recipe_columns(tmp_path):
    rows = [{"q": "What is 6 times 7?", "final": "42", "why": "6*7"}, {"q": "What is 2 cubed?", "final": "8", "why": ""}]
    path = write_jsonl(tmp_path / "custom.jsonl", rows)
    data = section(path, tmp_path, format="generic", columns={"problem": "q", "answer": "final", "solution": "why"})
    loaded = load_adapted(data, progress=False)
    assert loaded.adapter.format == "generic"
    assert loaded.rows["problem"] == ["What is 6 times 7?", "What is 2 cubed?"]
    assert loaded.rows["answer"] == ["42", "8"] and loaded.rows["solution"] == ["6*7", ""]
    # The same columns map a known format's roles too (AIME files carry `problem` and `question`).
    data = section(path, tmp_path, format="math", columns={"problem": "q", "answer": "final"})
    assert load_adapted(data, progress=False).rows["answer"] == ["42", "8"]


def test_question_column_with_bare_answers_is_read_by_content_not_taken_for_gsm8k(tmp_path):
    # aimo_validation_amc.jsonl's shape: a `question` column beside bare (float) answers, no `#### N`
    rows = [{"question": "What is the sum of 71 and 71?", "answer": 142.0},
            {"question": "Find $x$ if $x^2 = 2$ and $x > 0$.", "answer": "\\sqrt{2}"}]
    loaded = load_adapted(section(write_jsonl(tmp_path / "amc.jsonl", rows), tmp_path), progress=False)
    assert loaded.rows["answer"] == ["142", "\\sqrt{2}"] and loaded.rows["gold_from"] == ["answer column"] * 2
    assert loaded.rows["problem"] == [r["question"] for r in rows]
    assert loaded.adapter.roles() == "problem <- question, answer <- answer"
    # the reverse: a `problem` column whose `answer` holds GSM8K solutions gives the number after ####
    rows = [{"problem": "Tom has 3 apples and buys 5. How many?", "answer": "3 + 5 = 8\n#### 8"}]
    loaded = load_adapted(section(write_jsonl(tmp_path / "p.jsonl", rows), tmp_path), progress=False)
    assert loaded.rows["answer"] == ["8"] and loaded.adapter.roles() == "problem <- problem, solution <- answer"
    # a role the recipe names is the recipe's: no content check overrides it
    data = section(tmp_path / "amc.jsonl", tmp_path, columns={"solution": "answer"})
    assert load_adapted(data, progress=False).rows["gold_from"] == ["none", "none"]


def test_the_roles_chosen_are_in_the_data_report(tmp_path):
    rows = [{"question": f"What is {i} + {i}?", "answer": 2 * i} for i in range(6)]
    prepared = prepare(section(write_jsonl(tmp_path / "q.jsonl", rows), tmp_path))
    assert prepared.train["answer"][:1] and "columns: problem <- question, answer <- answer" in str(prepared.report)


# ---------------------------------------------------------------------------------------------
# File kinds


def _save_parquet(rows: list[dict], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("kind", ["jsonl", "json_array", "json_object", "jsonl_named_json", "parquet", "folder",
                                  "saved_dataset", "saved_dataset_dict"])
def test_every_file_kind_loads_the_same_rows(tmp_path, openr1_rows, kind):
    rows = openr1_rows
    if kind == "jsonl":
        path = write_jsonl(tmp_path / "d.jsonl", rows)
    elif kind == "json_array":
        path = tmp_path / "d.json"
        path.write_text(json.dumps(rows, indent=1))
    elif kind == "json_object":
        path = tmp_path / "d.json"
        path.write_text(json.dumps({"version": 1, "data": rows}))
    elif kind == "jsonl_named_json":
        path = write_jsonl(tmp_path / "d.json", rows)
    elif kind == "parquet":
        path = _save_parquet(rows, tmp_path / "d.parquet")
    elif kind == "folder":  # shards, read in name order
        path = tmp_path / "folder"
        write_jsonl(path / "train-00000.jsonl", rows[:20])
        _save_parquet(rows[20:], path / "train-00001.parquet")
    else:
        from datasets import Dataset, DatasetDict

        ds = Dataset.from_list(rows)
        path = tmp_path / "saved"
        (DatasetDict({"train": ds}) if kind == "saved_dataset_dict" else ds).save_to_disk(str(path))
    loaded = load_adapted(section(path, tmp_path), progress=False)
    assert loaded.adapter.format == "openr1"
    assert loaded.rows["problem"] == [r["problem"] for r in rows]
    assert loaded.rows["answer"] == [r["answer"] for r in rows]


def test_folder_splits_follow_file_names_and_own_validation_split(tmp_path, openr1_rows):
    folder = tmp_path / "ds"
    write_jsonl(folder / "train.jsonl", openr1_rows[:30])
    write_jsonl(folder / "test.jsonl", openr1_rows[30:38])
    write_jsonl(folder / "validation.jsonl", openr1_rows[38:])
    prepared = prepare(section(folder, tmp_path, validation=5))
    assert prepared.report.validation_from == "the source's validation split"
    assert set(prepared.validation["id"]) <= {r["uuid"] for r in openr1_rows[38:]}
    assert len(prepared.validation) == 5
    assert set(prepared.train["id"]) <= {r["uuid"] for r in openr1_rows[:30]}
    test = load_adapted(section(folder, tmp_path, split="test"), progress=False)
    assert test.rows["id"] == [r["uuid"] for r in openr1_rows[30:38]]


# ---------------------------------------------------------------------------------------------
# Filters


def test_default_filters_on_the_sample(sample, tmp_path, openr1_rows):
    prepared = prepare(section(sample, tmp_path))
    removed = steps(prepared)
    assert removed["question_types"] == 2  # the two proofs
    assert removed["dedupe"] == 1  # "Compute $17 + 26$." appears twice
    assert removed["has_answer"] == 0 and removed["parseable_answer"] == 0
    assert skipped(prepared) == {"problem_types": "all kept", "min_correctness_count": "off",
                                 "complete_reasoning": "off", "decontaminate": "no evaluation sets",
                                 "max_prompt_tokens": "off"}
    assert prepared.report.rows_after_filters == len(openr1_rows) - 3 == len(prepared.train)
    text = str(prepared.report)
    assert "question_types" in text and "-2" in text and "Kept       42 of 45 rows" in text


def test_question_types_filter_can_drop_mcq(sample, tmp_path):
    prepared = prepare(section(sample, tmp_path, filters={"drop_question_types": ["proof", "MCQ"]}))
    assert steps(prepared)["question_types"] == 4
    assert not {"proof", "MCQ"} & set(prepared.train["question_type"])
    prepared = prepare(section(sample, tmp_path, filters={"drop_question_types": []}))
    assert skipped(prepared)["question_types"] == "nothing to drop"


def test_problem_types_filter(sample, tmp_path, openr1_rows):
    prepared = prepare(section(sample, tmp_path, filters={"keep_problem_types": ["Geometry", "calculus"]}))
    expected = [r for r in openr1_rows if r["problem_type"] in ("Geometry", "Calculus")]
    assert sorted(prepared.train["id"]) == sorted(r["uuid"] for r in expected)


def test_min_correctness_count_filter(sample, tmp_path, openr1_rows):
    for minimum in (1, 2):
        prepared = prepare(section(sample, tmp_path, filters={"min_correctness_count": minimum}))
        expected = sum(1 for r in openr1_rows if r["correctness_count"] < minimum and r["question_type"] != "proof")
        assert steps(prepared)["min_correctness_count"] == expected > 0
        assert "How many positive divisors does 36 have?" not in prepared.train["problem"]


def test_complete_reasoning_filter(sample, tmp_path):
    prepared = prepare(section(sample, tmp_path, filters={"complete_reasoning_only": True}))
    assert steps(prepared)["complete_reasoning"] == 1  # the row whose traces are [False, False]
    assert "How many positive divisors does 36 have?" not in prepared.train["problem"]
    assert "Find the remainder when $2^{100}$ is divided by 7." in prepared.train["problem"]  # [False, True]


def test_parseable_answer_filter(tmp_path, openr1_rows):
    rows = copy.deepcopy(openr1_rows[:6])
    rows[0]["answer"] = "notfound"
    rows[1]["answer"] = "\\frac{1}{"
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    prepared = prepare(section(path, tmp_path))
    assert steps(prepared)["parseable_answer"] == 2
    assert all(is_parseable(a) for a in prepared.train["answer"])
    prepared = prepare(section(path, tmp_path, filters={"parseable_answer": False}))
    assert len(prepared.train) == 6 and skipped(prepared)["parseable_answer"] == "off"


def test_dedupe_keeps_the_first_and_ignores_whitespace(tmp_path, openr1_rows):
    rows = copy.deepcopy(openr1_rows[:5])
    twin = copy.deepcopy(rows[2])
    twin["problem"] = "  " + twin["problem"].replace(" ", "\n  ", 2) + "\n"
    twin["uuid"] = "the-twin"
    path = write_jsonl(tmp_path / "d.jsonl", [*rows, twin])
    prepared = prepare(section(path, tmp_path))
    assert steps(prepared)["dedupe"] == 1 and "the-twin" not in prepared.train["id"]
    assert rows[2]["uuid"] in prepared.train["id"]
    assert len(prepare(section(path, tmp_path, filters={"dedupe": False})).train) == 6


def test_ngram_index_long_short_and_normalisation():
    index = NgramIndex(5)
    index.add("Let $x$ be the SMALLEST positive integer such that x^2 ends in 44.", "eval")
    index.add("Compute $\\dbinom{16}{5}$.", "short")  # 4 words: whole-text key
    assert normalized_words("Compute $\\dbinom{16}{5}$.") == ["compute", "dbinom", "16", "5"]
    assert index.match("Now, let x be the smallest positive number.") == "eval"  # 5 shared words, other case
    assert index.match("let x be the biggest positive integer") is None  # no shared 5-gram
    assert index.match("  COMPUTE \\dbinom{16}{5} !") == "short"
    assert index.match("Compute $\\dbinom{16}{6}$.") is None
    assert index.match("") is None
    with pytest.raises(UserError, match="decontaminate_ngram"):
        NgramIndex(0)


def test_decontamination_against_sets_given_by_path(tmp_path, openr1_rows):
    long_eval = ("A rectangular garden is twice as long as it is wide and its perimeter is sixty meters; "
                 "what is the area of the garden in square meters?")
    evals = write_jsonl(tmp_path / "evals" / "mine.jsonl", [
        {"problem": long_eval, "answer": "200"},
        {"problem": openr1_rows[12]["problem"], "answer": "3/4"},  # short: "What is $\frac{1}{2} + ...$?"
    ])
    rows = copy.deepcopy(openr1_rows[:20])
    rows[3]["problem"] = "Problem 7. " + long_eval.replace("meters?", "metres?")  # reworded ends, 13-gram shared
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    prepared = prepare(section(path, tmp_path, filters={"decontaminate": [str(evals)]}))
    step = next(s for s in prepared.report.steps if s.name == "decontaminate")
    assert step.removed == 2 and step.detail == {"mine": 2}
    assert rows[3]["uuid"] not in prepared.train["id"] and rows[12]["uuid"] not in prepared.train["id"]
    prepared = prepare(section(path, tmp_path, filters={"decontaminate": [str(evals)], "decontaminate_ngram": 40}))
    assert steps(prepared)["decontaminate"] == 1  # only the whole-text short match is left at n=40


def test_prompt_token_filter_with_and_without_tokenizer(sample, tmp_path, tiny_tokenizer):
    data = section(sample, tmp_path, filters={"max_prompt_tokens": 10})
    assert skipped(prepare(data))["max_prompt_tokens"] == "no tokenizer given"
    before = prepare(section(sample, tmp_path))
    counts = prompt_token_counts([build_messages(p, "xml") for p in before.train["problem"]], tiny_tokenizer)
    limit = sorted(counts)[len(counts) // 2]
    data = section(sample, tmp_path, filters={"max_prompt_tokens": limit})
    prepared = prepare(data, PromptSection(format="xml"), tiny_tokenizer)
    assert steps(prepared)["max_prompt_tokens"] == sum(c > limit for c in counts) > 0
    kept = prompt_token_counts(prepared.train["prompt"], tiny_tokenizer)
    assert max(kept) <= limit and len(kept) == sum(c <= limit for c in counts)


def test_filters_without_their_column_are_skipped(tmp_path):
    rows = [{"question": f"Sam has {i} pens and buys 2. How many?", "answer": f"so\n#### {i + 2}"} for i in range(5)]
    data = section(write_jsonl(tmp_path / "g.jsonl", rows), tmp_path,
                   filters={"min_correctness_count": 1, "complete_reasoning_only": True,
                            "keep_problem_types": ["Algebra"]})
    prepared = prepare(data)
    assert skipped(prepared).items() >= {"question_types": "no question_type column",
                                         "min_correctness_count": "no correctness_count column",
                                         "complete_reasoning": "no is_reasoning_complete column",
                                         "problem_types": "no problem_type column"}.items()
    assert len(prepared.train) == 5


# ---------------------------------------------------------------------------------------------
# Subsets and validation


def test_split_indices_are_the_same_on_every_machine():
    # numpy's PCG64 stream is platform independent: these exact rows, wherever the tests run.
    assert split_indices(10, 3, None, 42) == ([0, 5, 6], [1, 2, 3, 4, 7, 8, 9])
    assert split_indices(10, 3, 4, 42) == ([0, 5, 6], [2, 3, 4, 7])
    assert split_indices(10, 3, 4, 7) != split_indices(10, 3, 4, 42)


def test_subset_and_validation_are_seeded_disjoint_and_nested(sample, tmp_path):
    a = prepare(section(sample, tmp_path, subset=20, validation=8, seed=3))
    b = prepare(section(sample, tmp_path, subset=20, validation=8, seed=3))
    assert a.train["id"] == b.train["id"] and a.validation["id"] == b.validation["id"]
    assert len(a.train) == 20 and len(a.validation) == 8
    assert not set(a.train["id"]) & set(a.validation["id"])
    other = prepare(section(sample, tmp_path, subset=20, validation=8, seed=4))
    assert other.train["id"] != a.train["id"]
    smaller = prepare(section(sample, tmp_path, subset=10, validation=8, seed=3))
    assert smaller.validation["id"] == a.validation["id"]  # the subset size never moves validation rows
    assert set(smaller.train["id"]) < set(a.train["id"])
    everything = prepare(section(sample, tmp_path, validation=8, seed=3))
    assert len(everything.train) + 8 == everything.report.rows_after_filters


def test_smoke_cpu_recipe_keeps_enough_rows(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "smoke_cpu.yaml", [f"data.cache_dir={tmp_path / 'cache'}"])
    prepared = load_training_data(recipe)
    assert len(prepared.validation) == 8 and len(prepared.train) >= 25
    assert prepared.train[0]["prompt"][0] == {"role": "system", "content": FORMATS["think_boxed"].system_prompt}


# ---------------------------------------------------------------------------------------------
# Cache


def test_cache_hit_and_invalidation(sample, tmp_path, tiny_tokenizer):
    data = section(sample, tmp_path, cache=True, validation=4, seed=1)
    first = prepare(data)
    assert first.report.cache == "miss" and Path(first.report.cache_path).is_dir()
    again = prepare(data)
    assert again.report.cache == "hit" and again.report.cache_path == first.report.cache_path
    assert again.train.to_list() == first.train.to_list() and again.validation["id"] == first.validation["id"]
    assert again.report.steps == first.report.steps

    def key(d=data, prompt=None, tokenizer=None) -> str:
        p = prepare(d, prompt, tokenizer)
        return p.report.cache + ":" + Path(p.report.cache_path).name

    base = Path(first.report.cache_path).name
    # the data section
    assert key(section(sample, tmp_path, cache=True, validation=4, seed=2)).startswith("miss")
    # the prompt section (the `prompt` column depends on it)
    assert key(prompt=PromptSection(format="xml")).startswith("miss")
    # the tokenizer matters only when the token filter is on
    assert key(tokenizer=tiny_tokenizer) == "hit:" + base
    # the source: same size, new mtime (an edited file)
    stat = sample.stat()
    os.utime(sample, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert key().startswith("miss") and key() != "hit:" + base  # a new entry, then hit


def test_cache_hits_without_a_validation_split(sample, tmp_path):
    # datasets cannot reload the empty split it saves for validation: 0; the cache must still hit
    data = section(sample, tmp_path, cache=True, validation=0)
    first, again = prepare(data), prepare(data)
    assert (first.report.cache, again.report.cache) == ("miss", "hit")
    assert again.train["id"] == first.train["id"] and len(again.validation) == 0
    assert again.validation.features == first.validation.features


def _copy_code(tmp_path: Path) -> Path:
    """A copy of utils/ (no bytecode) whose modules a test may edit."""
    utils_copy = tmp_path / "repo" / "utils"
    shutil.copytree(ROOT / "utils", utils_copy, ignore=shutil.ignore_patterns("__pycache__"))
    return utils_copy


def test_code_version_changes_with_every_data_and_answers_module(tmp_path):
    utils_copy = _copy_code(tmp_path)
    modules = sorted([*(utils_copy / "data").rglob("*.py"), *(utils_copy / "answers").rglob("*.py")])
    assert len(modules) >= 10  # both packages, every module (new ones are picked up by the glob)
    seen = {code_version(utils_copy)}
    for path in modules:
        path.write_text(path.read_text() + "\n# touched\n")
        seen.add(code_version(utils_copy))
    (utils_copy / "answers" / "_new_module.py").write_text("X = 1\n")
    seen.add(code_version(utils_copy))
    assert len(seen) == len(modules) + 2  # each edit, and the new module, gave a new version
    before = code_version(utils_copy)
    (utils_copy / "config" / "_sections.py").write_text("# not row-shaping code\n")
    assert code_version(utils_copy) == before


def test_cached_load_reruns_after_a_code_change(sample, tmp_path):
    # In a subprocess on a copy of the code: the cache key reads the modules of the code that runs.
    utils_copy = _copy_code(tmp_path)
    script = f"""
import sys
sys.path.insert(0, {str(utils_copy.parent)!r})
from pathlib import Path
from utils.config import DataSection, PromptSection
from utils.data import prepare_data
data = DataSection(dataset={str(sample)!r}, validation=0, cache_dir={str(tmp_path / "cache")!r})
state = lambda: prepare_data(data, PromptSection(), progress=False).report.cache
first, second = state(), state()
answers = Path({str(utils_copy / "answers" / "__init__.py")!r})
answers.write_text(answers.read_text() + "# touched")
print(first, second, state(), state())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["miss", "hit", "miss", "hit"]


def test_cache_tracks_decontamination_files_and_survives_damage(sample, tmp_path):
    evals = write_jsonl(tmp_path / "e.jsonl", [{"problem": "Compute $17 + 26$.", "answer": "43"}])
    data = section(sample, tmp_path, cache=True, filters={"decontaminate": [str(evals)]})
    first = prepare(data)
    assert steps(first)["decontaminate"] == 1  # the duplicate was removed first by dedupe
    write_jsonl(evals, [{"problem": "Compute $64 + 36$.", "answer": "100"}, {"problem": "Compute $999 + 1$.", "answer": "1"}])
    second = prepare(data)
    assert second.report.cache == "miss" and steps(second)["decontaminate"] == 2
    (Path(second.report.cache_path) / "report.json").write_text("{broken")
    rebuilt = prepare(data)
    assert rebuilt.report.cache == "miss" and rebuilt.train["id"] == second.train["id"]


def test_cache_off_writes_nothing(sample, tmp_path):
    prepared = prepare(section(sample, tmp_path, cache=False))
    assert prepared.report.cache == "off" and not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------------------------------
# Real files (../shared/data)


@pytest.mark.parametrize("name, fmt, rows", [
    ("gsm8k/train.jsonl", "gsm8k", 7473), ("gsm8k/test.jsonl", "gsm8k", 1319),
    ("math500/math500.jsonl", "math", 500), ("competition/aime24.jsonl", "math", 30),
    ("competition/amc23.jsonl", "math", 40),
])
def test_real_files_load_with_every_gold_answer(shared_data, tmp_path, name, fmt, rows):
    loaded = load_adapted(section(shared_data / name, tmp_path), progress=False)
    assert loaded.adapter.format == fmt and len(loaded.rows) == rows
    assert all(loaded.rows["answer"]) and "none" not in loaded.rows["gold_from"]  # 100% extracted
    raw = [json.loads(line) for line in (shared_data / name).read_text().splitlines()]
    if fmt == "gsm8k":  # the gold is the number after ####, as written (less thousands separators)
        assert loaded.rows["answer"] == [r["answer"].split("####")[-1].strip().replace(",", "") for r in raw]
    else:
        # as written; AMC's float answers (27.0) as the integers they are
        written = [str(int(r["answer"])) if isinstance(r["answer"], float) else r["answer"] for r in raw[:3]]
        assert loaded.rows["answer"][:3] == written


def test_real_gsm8k_folder_uses_the_train_split(shared_data, tmp_path):
    loaded = load_adapted(section(shared_data / "gsm8k", tmp_path), progress=False)
    assert len(loaded.rows) == 7473 and loaded.validation_rows is None  # test.jsonl is a benchmark, not validation


def test_decontamination_finds_planted_math500_problems(shared_data, tmp_path, openr1_rows):
    math500 = [json.loads(line) for line in (shared_data / "math500" / "math500.jsonl").read_text().splitlines()]
    rows = copy.deepcopy(openr1_rows)
    planted = {0: math500[10]["problem"],  # verbatim
               5: "Solve the following. " + math500[200]["problem"].replace("  ", " "),  # with a preamble
               9: math500[499]["problem"].upper()}  # other case
    for i, problem in planted.items():
        rows[i]["problem"] = problem
    path = write_jsonl(tmp_path / "planted.jsonl", rows)
    prepared = prepare(section(path, tmp_path, filters={"decontaminate": ["math500", "gsm8k", "aime24", "amc23"]}))
    step = next(s for s in prepared.report.steps if s.name == "decontaminate")
    assert step.removed == 3 and step.detail == {"math500": 3}
    assert not {rows[i]["uuid"] for i in planted} & set(prepared.train["id"])


def test_known_eval_set_missing_names_the_file(tmp_path, sample, monkeypatch):
    monkeypatch.setenv("GRPO_MATH_DATA_DIR", str(tmp_path / "nowhere"))
    message = error_of(prepare, section(sample, tmp_path, filters={"decontaminate": ["aime24"]}))
    assert message == f"$GRPO_MATH_DATA_DIR {tmp_path / 'nowhere'}: no such folder (unset it to read the benchmarks " \
                      "from the hub)"  # a typo in the variable is not silently taken for "use the hub"
    monkeypatch.delenv("GRPO_MATH_DATA_DIR")
    message = error_of(prepare, section(sample, tmp_path, filters={"decontaminate": ["mystery"]}))
    assert "'mystery': unknown benchmark and no such file (known: gsm8k, math500, aime24, amc23;" in message


# ---------------------------------------------------------------------------------------------
# Bad data: one-line UserErrors naming the file, line, columns or counts


def test_missing_file(tmp_path):
    assert error_of(prepare, section(tmp_path / "nope.jsonl", tmp_path)) == (
        f"{tmp_path / 'nope.jsonl'}: file not found "
        "(data.dataset: a local .jsonl/.json/.parquet file or folder, or a hub id)"
    )


def test_corrupt_jsonl_names_the_line(tmp_path, openr1_rows):
    path = write_jsonl(tmp_path / "bad.jsonl", openr1_rows[:3])
    with path.open("a") as f:
        f.write('{"problem": "x", "answer": \n')
    message = error_of(prepare, section(path, tmp_path))
    assert message.startswith(f"{path}: line 4: invalid JSON (Expecting value at column 28)")
    path.write_text("\n{oops}\n")
    assert error_of(prepare, section(path, tmp_path)).startswith(f"{path}: line 2: invalid JSON")
    path.write_text('["a list per line"]\n')
    assert "line 1: expected one JSON object per line, got list" in error_of(prepare, section(path, tmp_path))


def test_corrupt_json_array_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"problem": "1+1", "answer": "2"},\n  {"problem": "2+2" "answer": "4"}\n]\n')
    assert error_of(prepare, section(path, tmp_path)) == (
        f"{path}: invalid JSON at line 3, column 21: Expecting ',' delimiter"
    )


def test_missing_required_columns_lists_found_and_expected(tmp_path, openr1_rows):
    rows = [{k: v for k, v in r.items() if k != "answer"} for r in openr1_rows[:3]]
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    message = error_of(prepare, section(path, tmp_path, format="openr1"))
    found = ", ".join(c for c in OPENR1_COLUMNS if c != "answer")
    assert message == (f"{path}: missing required column(s) answer for data.format openr1 "
                       f"(found: {found}; expected: problem, solution, answer)")
    path = write_jsonl(tmp_path / "q.jsonl", [{"text": "1+1", "label": "2"}])
    message = error_of(prepare, section(path, tmp_path))
    assert message.startswith(f"{path}: cannot tell the data's schema (found columns: text, label); expected")
    message = error_of(prepare, section(path, tmp_path, format="generic", columns={"problem": "text", "answer": "gold"}))
    assert "missing required column(s) gold for data.format generic (found: text, label; expected: text, gold)" in message


def test_empty_after_filtering_gives_per_filter_counts(sample, tmp_path):
    message = error_of(prepare, section(sample, tmp_path, filters={"keep_problem_types": ["Topology"]}))
    assert message == (f"{sample}: no rows left after filtering 45 rows (has_answer -0, question_types -2, "
                       "problem_types -43, parseable_answer -0, dedupe -0): loosen data.filters")


def test_subset_or_validation_larger_than_the_data(sample, tmp_path):
    message = error_of(prepare, section(sample, tmp_path, subset=40, validation=8))
    assert message == "data.subset: 40 problems asked, but only 34 remain after filters and the 8-problem validation split"
    message = error_of(prepare, section(sample, tmp_path, validation=42))
    assert message == ("data.validation: 42 problems asked, but only 42 remain after filters "
                       "(lower data.validation or loosen data.filters)")


def test_unsupported_or_empty_sources(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("problem,answer\n1+1,2\n")
    assert "unsupported file type '.csv'" in error_of(prepare, section(csv, tmp_path))
    (tmp_path / "empty").mkdir()
    assert "folder has no .jsonl, .json or .parquet files" in error_of(prepare, section(tmp_path / "empty", tmp_path))
    write_jsonl(tmp_path / "ds" / "train.jsonl", [{"problem": "1+1", "answer": "2"}])
    assert "no 'validation' split in this folder (data.split); found: train" in error_of(
        prepare, section(tmp_path / "ds", tmp_path, split="validation"))
    (tmp_path / "blank.jsonl").write_text("\n\n")
    assert "file is empty" in error_of(prepare, section(tmp_path / "blank.jsonl", tmp_path))
    (tmp_path / "bad.parquet").write_text("not parquet")
    assert "not a readable parquet file" in error_of(prepare, section(tmp_path / "bad.parquet", tmp_path))


def test_hub_id_offline_fails_fast_suggesting_a_local_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    message = error_of(prepare, section("open-r1/OpenR1-Math-220k", tmp_path, cache=True))
    assert time.monotonic() - start < 5
    assert message == ("open-r1/OpenR1-Math-220k: no such local file or folder, and the hub is out of reach "
                       "(HF_HUB_OFFLINE is set): give a local path in data.dataset (a .jsonl/.json/.parquet file, "
                       "a folder of them, or a saved datasets folder)")
    message = error_of(prepare, section("open-r1/OpenR1-Math-220k", tmp_path, config="small"))
    assert message == "data.config: 'small' is not one of default, extended, all for open-r1/OpenR1-Math-220k"


def test_downloaded_hub_folder_follows_its_dataset_card(tmp_path, openr1_rows):
    # The layout `huggingface-cli download open-r1/OpenR1-Math-220k --repo-type dataset` leaves.
    root = tmp_path / "OpenR1-Math-220k"
    _save_parquet(openr1_rows[:20], root / "data" / "train-00000-of-00002.parquet")
    _save_parquet(openr1_rows[20:30], root / "data" / "train-00001-of-00002.parquet")
    _save_parquet(openr1_rows[30:], root / "extended" / "train-00000-of-00001.parquet")
    (root / "README.md").write_text(
        "---\nlicense: apache-2.0\nconfigs:\n"
        "- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"
        "- config_name: extended\n  data_files:\n  - split: train\n    path: extended/train-*\n"
        "---\n# OpenR1-Math-220k\n"
    )
    ids = {config: load_adapted(section(root, tmp_path, config=config), progress=False).rows["id"]
           for config in ("default", "extended", "all")}
    assert ids["default"] == [r["uuid"] for r in openr1_rows[:30]]
    assert ids["extended"] == [r["uuid"] for r in openr1_rows[30:]]
    assert ids["all"] == [r["uuid"] for r in openr1_rows]
    message = error_of(load_adapted, section(root, tmp_path, config="small"), progress=False)
    assert message == f"{root}: no config 'small' in its README.md (data.config); found: default, extended"
