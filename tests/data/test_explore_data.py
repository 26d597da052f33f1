"""scripts/explore_data.py: the report and charts it writes, and one-line errors (exit 2) on bad data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.repo import SAMPLE_OPENR1
from utils.data import answer_kind

PNG = b"\x89PNG\r\n\x1a\n"


def run_ok(run_script, *args):
    result = run_script("explore_data", *args, "--no-progress")
    assert result.returncode == 0, result.stderr
    return result


def test_answer_kinds():
    kinds = {g: answer_kind(g) for g in ["84", "-3", "1,000", "0.25", "\\frac{3}{4}", "3/4", "A", "(2,3)",
                                          "[1,\\infty)", "\\{-3,3\\}", "x^2+2x+1", "-\\ln 2", "y=2x", "proof",
                                          "the perpendicular bisector", ""]}
    assert kinds == {
        "84": "integer", "-3": "integer", "1,000": "integer", "0.25": "decimal", "\\frac{3}{4}": "fraction",
        "3/4": "fraction", "A": "choice letter", "(2,3)": "tuple / interval", "[1,\\infty)": "tuple / interval",
        "\\{-3,3\\}": "set", "x^2+2x+1": "expression", "-\\ln 2": "expression", "y=2x": "equation",
        "proof": "proof / none", "the perpendicular bisector": "text", "": "missing",
    }


def test_explore_sample_writes_report_and_charts(run_script, tmp_path):
    out = tmp_path / "report"
    result = run_ok(run_script, SAMPLE_OPENR1, "--out", out, "--set", "data.filters.min_correctness_count=1",
                    "--samples", "2")
    assert f"report: {out / 'report.md'}" in result.stdout and "OpenR1-Math-220k, 45 rows" in result.stdout
    report = (out / "report.md").read_text()
    for heading in ("## Schema", "## Split sizes", "## Filters", "## Gold answers",
                    "## problem_type", "## question_type", "## source", "## Lengths (characters",
                    "## Sample prompts", "## Charts"):
        assert heading in report, heading
    assert "| `correctness_count` | `Value('int64')` |" in report and "| `generations` |" not in report
    assert "14 columns: `problem`, `solution`, `answer`" in report
    assert "| min_correctness_count | `>= 1` | 1 |" in report  # sequential count
    assert "Parse rate (utils.answers.is_parseable): **95.56%** of 45" in report  # the 2 proofs
    assert report.count("gold answer `") == 2 and "[system]" in report and "<think>" in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_loaded"] == 45 and summary["split_sizes"] == {"train": 45}
    assert summary["distributions"]["question_type"] == {"math-word-problem": 41, "MCQ": 2, "proof": 2}
    filters = {f["name"]: f for f in summary["filters"]}
    assert filters["question_types"]["removed"] == 2 and filters["dedupe"]["removed_alone"] == 1
    assert filters["parseable_answer"]["removed"] == 0 and filters["parseable_answer"]["removed_alone"] == 2
    charts = sorted(p.name for p in out.glob("*.png"))
    assert charts == ["answer_kind.png", "problem_length.png", "problem_type.png", "question_type.png",
                      "solution_length.png", "source.png"]
    assert all((out / c).read_bytes().startswith(PNG) for c in charts)


def test_default_report_folder_is_named_after_the_last_path_part(run_script_here, tmp_path):
    # `explore_data.py ../shared/data/gsm8k` wrote to checkpoints/explore/.._shared_data_gsm8k (hidden by ls)
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "train.jsonl").write_text(SAMPLE_OPENR1.read_text())
    work = tmp_path / "work"
    work.mkdir()
    for target, name in (("../gsm8k", "gsm8k"), ("../gsm8k/", "gsm8k"), ("../gsm8k/train.jsonl", "train")):
        code, out, err = run_script_here("explore_data", target, "--no-progress", "--samples", "0", cwd=work)
        assert code == 0, err
        assert f"report: {Path('checkpoints') / 'explore' / name / 'report.md'}" in out
    assert sorted(p.name for p in (work / "checkpoints" / "explore").iterdir()) == ["gsm8k", "train"]


def test_explore_recipe_with_tokenizer(run_script, tmp_path, tiny_model_dir):
    out = tmp_path / "r"
    run_ok(run_script, "recipes/smoke_cpu.yaml", "--out", out, "--tokenizer", tiny_model_dir,
           "--set", "data.filters.max_prompt_tokens=180", "--set", f"data.cache_dir={tmp_path / 'c'}")
    report = (out / "report.md").read_text()
    assert "## Lengths (tokens" in report and "<|im_start|>system" in report
    # the axis label (was "problem length (tokens,)")
    assert Image.open(out / "problem_length.png").text["Description"] == "problem length (tokens)"
    assert "| validation (held out, seed 42) | 8 |" in report
    summary = json.loads((out / "summary.json").read_text())
    steps = {f["name"]: f for f in summary["filters"]}
    assert steps["max_prompt_tokens"]["skipped"] is None and steps["max_prompt_tokens"]["removed"] > 0


def test_explore_real_gsm8k_folder(run_script, tmp_path, shared_data):
    out = tmp_path / "g"
    run_ok(run_script, shared_data / "gsm8k", "--out", out, "--samples", "1")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split_sizes"] == {"train": 7473, "test": 1319}
    assert summary["gold_from"] == {"solution": 7473} and summary["parse_rate"] == 1.0
    assert summary["answer_kinds"]["integer"] > 7000
    assert "skipped: no question_type column" in (out / "report.md").read_text()


def _bad(run_script, tmp_path, *args) -> str:
    result = run_script("explore_data", *args, "--out", tmp_path / "out")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_bad_data_missing_file(run_script, tmp_path):
    line = _bad(run_script, tmp_path, tmp_path / "missing.jsonl")
    assert line == f"error: {tmp_path / 'missing.jsonl'}: file not found " \
                   "(data.dataset: a local .jsonl/.json/.parquet file or folder, or a hub id)"


def test_bad_data_corrupt_jsonl(run_script, tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = SAMPLE_OPENR1.read_text().splitlines()
    path.write_text("\n".join(lines[:6] + [lines[6][:-40]] + lines[7:]) + "\n")
    line = _bad(run_script, tmp_path, path)
    assert line.startswith(f"error: {path}: line 7: invalid JSON (")


def test_bad_data_missing_columns(run_script, tmp_path):
    path = tmp_path / "cols.jsonl"
    path.write_text(json.dumps({"question_text": "1+1?", "gold": "2"}) + "\n")
    line = _bad(run_script, tmp_path, path, "--set", "data.format=gsm8k")
    assert line == (f"error: {path}: missing required column(s) question, answer for data.format gsm8k "
                    "(found: question_text, gold; expected: question, answer)")


def test_bad_data_empty_after_filtering(run_script, tmp_path):
    line = _bad(run_script, tmp_path, SAMPLE_OPENR1, "--set", "data.filters.keep_problem_types=[Topology]")
    assert "no rows left after filtering 45 rows (has_answer -0, question_types -2, problem_types -43" in line


def test_bad_data_subset_larger_than_data(run_script, tmp_path):
    line = _bad(run_script, tmp_path, SAMPLE_OPENR1, "--set", "data.subset=1000", "--set", "data.validation=8")
    assert line.startswith("error: data.subset: 1000 problems asked, but only 34 remain after filters and the "
                           "8-problem validation split")


def test_hub_id_offline(run_script, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = _bad(run_script, tmp_path, "open-r1/OpenR1-Math-220k")
    assert "the hub is out of reach (HF_HUB_OFFLINE is set): give a local path" in line


@pytest.mark.parametrize("override", ["training.learning_rate=1e-5", "data.filters.dedup=false"])
def test_bad_overrides_on_a_bare_dataset(run_script, tmp_path, override):
    line = _bad(run_script, tmp_path, Path(SAMPLE_OPENR1), "--set", override)
    assert line.startswith("error: ")
