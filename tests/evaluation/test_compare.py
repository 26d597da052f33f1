"""compare.py on planted evaluation folders: deltas with intervals, flips both ways, the chart, the errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from utils.errors import UserError
from utils.evaluation import (
    difference_interval,
    paired_difference_interval,
    summarize,
    wilson_interval,
    write_comparison,
    write_report,
)


def plant(folder: Path, model: str, results: dict[str, list[int]]) -> Path:
    """An evaluation folder as evaluate.py writes it: per benchmark, samples.jsonl and summary.json."""
    for bench, verdicts in results.items():
        records = [{"id": f"{bench}-{i}", "sample": 0, "problem": f"Problem {i} of {bench}: what is {i} + {i}?",
                    "completion": "...", "predicted": str(2 * i if v else 2 * i + 1), "gold": str(2 * i),
                    "correct": bool(v), "tokens": 5, "truncated": False} for i, v in enumerate(verdicts)]
        (folder / bench).mkdir(parents=True, exist_ok=True)
        (folder / bench / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (folder / bench / "summary.json").write_text(json.dumps(summarize(records, 1)))
    write_report(folder, model)
    return folder


BASE = {"gsm8k": [1, 1, 1, 1, 0, 0, 0, 0, 1, 1], "math500": [0, 0, 1, 1]}
STAGE1 = {"gsm8k": [1, 0, 0, 1, 1, 0, 0, 0, 1, 0], "math500": [0, 1, 1, 1]}  # forgets 1, 2, 9; learns 4
STAGE2 = {"gsm8k": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}  # evaluated on gsm8k only


def test_retention_report_from_planted_results(tmp_path):
    a = plant(tmp_path / "base", "base", BASE)
    b = plant(tmp_path / "stage1", "stage1", STAGE1)
    c = plant(tmp_path / "stage2", "stage2", STAGE2)
    result = write_comparison([str(a), str(b), str(c)], tmp_path / "cmp")
    assert result["models"] == ["base", "stage1", "stage2"]
    first, second, third = result["benchmarks"]["gsm8k"]
    assert first["pass@1"] == 0.6 and "delta" not in first
    assert second["delta"] == pytest.approx(0.4 - 0.6)
    # the same ten problems, answered once each: the paired interval (3 both right, 3 forgotten, 1 learned,
    # 3 neither), narrower than treating the two accuracies as independent samples
    assert second["delta_method"] == "paired"
    assert second["delta_ci95"] == pytest.approx(list(paired_difference_interval(3, 3, 1, 3)))
    independent = difference_interval(0.6, wilson_interval(6, 10), 0.4, wilson_interval(4, 10))
    assert independent[0] < second["delta_ci95"][0] < -0.2 < second["delta_ci95"][1] < independent[1]
    assert [f["id"] for f in second["forgotten"]] == ["gsm8k-1", "gsm8k-2", "gsm8k-9"]
    assert [f["id"] for f in second["learned"]] == ["gsm8k-4"]
    assert second["forgotten"][0] == {"id": "gsm8k-1", "problem": "Problem 1 of gsm8k: what is 1 + 1?", "gold": "2",
                                      "before": "2", "after": "3"}
    assert [f["id"] for f in third["learned"]] == ["gsm8k-4", "gsm8k-5", "gsm8k-6", "gsm8k-7"] and not third["forgotten"]
    assert result["benchmarks"]["math500"][2] is None  # stage2 has no math500: a gap, not an error

    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "| gsm8k | 60.0 [31.3, 83.2] | 40.0 [16.8, 68.7]; Δ -20.0 [" in report
    assert "- stage1: 3 forgotten (right -> wrong), 1 learned (wrong -> right)" in report
    assert "`gsm8k-1`: Problem 1 of gsm8k: what is 1 + 1? (gold `2`; before `2`, after `3`)" in report
    assert "`gsm8k-6`" in report and "`gsm8k-7`" not in report  # stage2 learned four: three examples shown
    png = (tmp_path / "cmp" / "retention.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["models"] == result["models"]


def test_compare_cli_finds_a_runs_evaluation_and_names_what_is_missing(tmp_path, run_script, tiny_model_dir):
    a = plant(tmp_path / "base", "base", BASE)
    b = plant(tmp_path / "stage1", "stage1", STAGE1)
    result = run_script("compare", a, b, "--out", tmp_path / "cmp")
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"gsm8k: base 60\.0%, stage1 40\.0% \(-20\.0 \[-\d+\.\d, \+\d+\.\d\], within noise\)",
                     result.stdout), result.stdout
    assert (tmp_path / "cmp" / "retention.png").is_file()

    missing = run_script("compare", a, tiny_model_dir, "--out", tmp_path / "cmp2")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert f"{tiny_model_dir}: no evaluation found" in missing.stderr and "evaluate.py" in missing.stderr
    with pytest.raises(UserError, match="at least two"):
        write_comparison([str(a)], tmp_path / "cmp3")


def test_different_problem_sets_are_refused_unless_intersection_is_asked(tmp_path, run_script):
    a = plant(tmp_path / "base", "base", BASE)  # gsm8k: 10 problems
    b = plant(tmp_path / "short", "short", {"gsm8k": STAGE1["gsm8k"][:4], "math500": STAGE1["math500"]})
    with pytest.raises(UserError) as err:
        write_comparison([str(a), str(b)], tmp_path / "cmp")
    message = str(err.value)
    assert "gsm8k" in message and "base: 10" in message and "short: 4" in message and "--intersection" in message
    assert not (tmp_path / "cmp").exists()

    result = write_comparison([str(a), str(b)], tmp_path / "cmp", intersection=True)
    first, second = result["benchmarks"]["gsm8k"]
    assert first["problems"] == second["problems"] == 4 and first["pass@1"] == 1.0  # base's first four: all right
    assert second["pass@1"] == 0.5 and [f["id"] for f in second["forgotten"]] == ["gsm8k-1", "gsm8k-2"]
    assert second["delta_method"] == "paired"
    assert result["intersection"]["gsm8k"] == {"shared": 4, "evaluated": {"base": 10, "short": 4}}
    assert "math500" not in result["intersection"]  # the same problems there: nothing to say
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "gsm8k: compared on the 4 problems every evaluation shares (base evaluated 10, short 4)" in report

    refused = run_script("compare", a, b, "--out", tmp_path / "cmp2")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr[-2000:]
    done = run_script("compare", a, b, "--out", tmp_path / "cmp3", "--intersection")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gsm8k: compared on the 4 problems every evaluation shares" in done.stdout


def test_an_unfinished_evaluation_is_named_as_such(tmp_path, run_script):
    a = plant(tmp_path / "base", "base", BASE)
    stopped = tmp_path / "stopped"  # evaluate.py stopped mid-benchmark: samples, no summaries yet
    plant(stopped, "stopped", STAGE1)
    for summary in [stopped / "summary.json", *stopped.glob("*/summary.json")]:
        summary.unlink()
    result = run_script("compare", a, stopped, "--out", tmp_path / "cmp")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert f"{stopped}: unfinished evaluation" in result.stderr and "rerun the evaluate.py command" in result.stderr
    assert "not a model folder" not in result.stderr

    short = plant(tmp_path / "short", "short", STAGE1)  # a summary, but samples lost for some problems
    samples = short / "gsm8k" / "samples.jsonl"
    samples.write_text("".join(samples.read_text().splitlines(keepends=True)[:6]))
    with pytest.raises(UserError, match=r"short.*unfinished evaluation \(gsm8k: 6 of 10 problems"):
        write_comparison([str(a), str(short)], tmp_path / "cmp2")


def test_evaluations_in_different_precisions_are_named(tmp_path, run_script):
    """A 16-bit "before" against a 4-bit "after": the report says part of the change may be quantization."""
    a = plant(tmp_path / "base", "base", BASE)
    b = plant(tmp_path / "qlora", "qlora", STAGE1)
    for folder, fields in ((a, {"dtype": "bfloat16"}), (b, {"dtype": "float16", "quantization": "4-bit NF4"})):
        for bench in BASE:
            path = folder / bench / "summary.json"
            path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))
        write_report(folder, folder.name)
    note = "evaluations differ in precision: bfloat16 vs 4-bit NF4: part of the change may be quantization, not training"
    done = run_script("compare", a, b, "--out", tmp_path / "cmp")
    assert done.returncode == 0, done.stderr[-2000:]
    assert note in done.stdout
    assert note in (tmp_path / "cmp" / "report.md").read_text()

    c = plant(tmp_path / "again", "again", STAGE1)
    for bench in BASE:
        path = c / bench / "summary.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "dtype": "bfloat16"}))
    write_report(c, "again")
    write_comparison([str(a), str(c)], tmp_path / "cmp3")
    assert "differ in precision" not in (tmp_path / "cmp3" / "report.md").read_text()  # the same weights: no note


def test_an_evaluation_records_its_weights_quantization():
    from types import SimpleNamespace

    from utils.evaluation import HfGenerator

    def generator(quantization_config):
        return HfGenerator(SimpleNamespace(config=SimpleNamespace(quantization_config=quantization_config)), None)

    assert generator({"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}).quantization == "4-bit NF4"
    assert generator({"load_in_8bit": True}).quantization == "8-bit"
    assert generator(None).quantization is None  # plain weights: only the dtype is recorded
