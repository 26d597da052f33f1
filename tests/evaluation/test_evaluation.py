"""Evaluation on CPU with the tiny model: metrics against hand-computed values, benchmarks by name, batch-size
invariance, resumption, adapter and run-folder loading, reports, and evaluate.py's one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.eval_helpers import save_adapter
from tests.repo import ROOT
from utils.config import sections_from_dict
from utils.errors import UserError
from utils.evaluation import (
    BenchmarkRun,
    HfGenerator,
    Sampling,
    difference_interval,
    load_benchmark,
    load_eval_model,
    majority_correct,
    paired_difference_interval,
    pass_at_k,
    read_samples,
    resolve_model,
    summarize,
    wilson_interval,
    write_report,
)

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"


# ---------------------------------------------------------------------------------------------
# Metrics, against values computed by hand


def test_wilson_interval_matches_hand_computation():
    # p = 0.7, n = 10: centre (0.7 + 1.96^2/20) / (1 + 1.96^2/10) = 0.64449, half-width 0.24772
    lo, hi = wilson_interval(7, 10)
    assert lo == pytest.approx(0.39677, abs=1e-4) and hi == pytest.approx(0.89222, abs=1e-4)
    assert wilson_interval(0, 20) == (0.0, pytest.approx(0.16113, abs=1e-4))  # never below 0, unlike Wald
    assert wilson_interval(20, 20)[1] == 1.0


def test_difference_interval_is_newcombes():
    lo, hi = difference_interval(0.5, (0.3, 0.7), 0.6, (0.4, 0.8))
    assert lo == pytest.approx(0.1 - (0.2**2 + 0.2**2) ** 0.5) and hi == pytest.approx(0.1 + 0.08**0.5)


def test_paired_interval_reduces_to_the_independent_one_without_correlation_and_uses_it_when_there_is():
    # both*neither == forgotten*learned: no correlation, so the paired interval is the independent one
    uncorrelated = paired_difference_interval(2, 2, 2, 2)
    assert uncorrelated == pytest.approx(difference_interval(0.5, wilson_interval(4, 8), 0.5, wilson_interval(4, 8)))
    # nothing flipped among 64 problems: the change is known to be 0 far more tightly than two separate
    # accuracies would say
    lo, hi = paired_difference_interval(16, 0, 0, 48)
    wide = difference_interval(0.25, wilson_interval(16, 64), 0.25, wilson_interval(16, 64))
    assert lo < 0 < hi and hi - lo < (wide[1] - wide[0]) / 3


def test_paired_interval_covers_the_true_change_95_percent_of_the_time():
    import random

    rng = random.Random(0)
    cells = ("both", "forgotten", "learned", "neither")
    probs = (0.25, 0.05, 0.20, 0.50)  # before 30%, after 45%: true change +15 points
    paired = independent = 0
    trials = 2000
    for _ in range(trials):
        drawn = rng.choices(cells, probs, k=64)
        both, forgotten, learned, neither = (drawn.count(c) for c in cells)
        lo, hi = paired_difference_interval(both, forgotten, learned, neither)
        paired += lo <= 0.15 <= hi
        before, after = both + forgotten, both + learned
        lo, hi = difference_interval(before / 64, wilson_interval(before, 64), after / 64, wilson_interval(after, 64))
        independent += lo <= 0.15 <= hi
    assert 0.92 <= paired / trials <= 0.97  # nominal coverage (method 10 runs a little under at n = 64)
    assert independent / trials > 0.985  # the independent interval is too wide for paired answers


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (5, 2, 1, 0.4),  # pass@1 = c/n
    (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
    (5, 0, 3, 0.0),
    (4, 3, 2, 1.0),  # fewer than k wrong samples: some draw of k always holds a right one
    (10, 3, 4, 1 - 35 / 210),  # 1 - C(7,4)/C(10,4)
])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_majority_vote_ignores_missing_answers_and_breaks_ties_by_first_seen():
    def s(predicted, correct):
        return {"predicted": predicted, "correct": correct}

    assert majority_correct([s("5", False), s("3", True), s("5", False), s(None, False), s(None, False)]) is False
    assert majority_correct([s("3", True), s("5", False)]) is True  # tie: the first seen wins
    assert majority_correct([s(None, False)]) is False


def test_summary_of_planted_samples():
    # p1: 3 of 4 right (majority right); p2: 1 of 4 right, majority wrong; p3: none right, one truncated
    plan = {"p1": [1, 1, 0, 1], "p2": [0, 1, 0, 0], "p3": [0, 0, 0, 0]}
    records = []
    for pid, verdicts in plan.items():
        for j, v in enumerate(verdicts):
            predicted = "7" if v else ("9" if pid != "p3" else None)
            records.append({"id": pid, "sample": j, "predicted": predicted, "correct": bool(v), "tokens": 10 + j,
                            "truncated": pid == "p3" and j == 0, "level": "Level 1" if pid == "p1" else "Level 2"})
    s = summarize(records, k=4, breakdown=["level"])
    assert s["problems"] == 3 and s["pass@1"] == pytest.approx((0.75 + 0.25 + 0) / 3)
    assert s["maj@4"] == pytest.approx(1 / 3)
    assert s["pass@2"] == pytest.approx((1 + (1 - 3 / 6) + 0) / 3)  # p1: one wrong only; p2: 1 - C(3,2)/C(4,2)
    assert s["pass@4"] == pytest.approx(2 / 3)
    assert s["ci95"] == list(wilson_interval(1.0, 3))
    assert s["extraction_rate"] == pytest.approx(8 / 12) and s["truncation_rate"] == pytest.approx(1 / 12)
    assert s["mean_tokens"] == pytest.approx(11.5)
    assert s["by_level"]["Level 1"]["pass@1"] == 0.75 and s["by_level"]["Level 2"]["problems"] == 2


# ---------------------------------------------------------------------------------------------
# Benchmarks by name


def test_named_benchmarks_read_the_local_copies(shared_data):
    sizes = {"gsm8k": 1319, "math500": 500, "aime24": 30, "amc23": 40}
    for name, size in sizes.items():
        bench = load_benchmark(name, "think_boxed", data_dir=shared_data)
        assert len(bench.rows) == size and bench.source.startswith(str(shared_data))
        assert len({r["id"] for r in bench.rows}) == size
    math500 = load_benchmark("math500", "xml", data_dir=shared_data, limit=5)
    row = math500.rows[0]
    assert row["subject"] == "Precalculus" and row["level"] == "2" and row["answer"].startswith("\\left( 3")
    assert row["prompt"][0]["content"].startswith("Respond in the following format")  # the xml system prompt
    assert load_benchmark("amc23", "think_boxed", data_dir=shared_data).rows[0]["answer"] == "27"  # 27.0 in the file
    assert load_benchmark("gsm8k", "think_boxed", data_dir=shared_data, limit=3).rows[0]["answer"] == "18"


def test_unknown_benchmark_names_the_closest(tmp_path):
    with pytest.raises(UserError, match="gsm8x: unknown benchmark .*did you mean 'gsm8k'"):
        load_benchmark("gsm8x", "think_boxed", data_dir=tmp_path)
    with pytest.raises(UserError, match="openr1-val: needs a training run"):
        load_benchmark("openr1-val", "think_boxed")


def test_benchmark_columns_are_read_by_content_overridable_and_printed(tiny_model_dir, tmp_path, run_script):
    from utils.evaluation import EvalRequest, load_benchmarks

    amc = tmp_path / "aimo_validation_amc.jsonl"  # its shape: `question` and bare float answers
    amc.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": 2.0 * i}) + "\n" for i in (71, 3)))
    bench = load_benchmark(str(amc), "think_boxed")
    assert [r["answer"] for r in bench.rows] == ["142", "6"] and bench.roles == "problem <- question, answer <- answer"

    odd = tmp_path / "odd.jsonl"  # column names no schema knows: the user says which is which
    odd.write_text(json.dumps({"q": "What is 2 + 2?", "gold": "4"}) + "\n")
    with pytest.raises(UserError, match="cannot tell the data's schema.*--columns"):
        load_benchmark(str(odd), "think_boxed")
    spec = resolve_model(str(tiny_model_dir))
    loaded = load_benchmarks(spec, EvalRequest([str(odd)], columns={"problem": "q", "answer": "gold"}))
    assert loaded[0].rows[0]["answer"] == "4" and loaded[0].rows[0]["problem"] == "What is 2 + 2?"

    out = tmp_path / "eval"
    result = run_script("evaluate", tiny_model_dir, "--bench", odd, "--columns", "problem=q,answer=gold",
                        "--max-new-tokens", "2", "--out", out, "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "odd: columns: problem <- q, answer <- gold" in result.stdout
    bad = run_script("evaluate", tiny_model_dir, "--bench", odd, "--columns", "problme=q")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr[-2000:]
    assert "--columns: unknown role(s) problme" in bad.stderr


def test_openr1_val_is_the_recipes_validation_split(tiny_model_dir):
    from utils.config import load_recipe
    from utils.data import load_training_data

    recipe = load_recipe(SMOKE, [f"model.name={tiny_model_dir}", "data.cache=false"])
    bench = load_benchmark("openr1-val", "xml", recipe=recipe)
    validation = load_training_data(recipe).validation
    assert [r["problem"] for r in bench.rows] == validation["problem"]
    assert bench.rows[0]["prompt"] == validation[0]["prompt"]  # the run's own prompt format (think_boxed)
    assert bench.max_new_tokens == recipe.eval.max_new_tokens


# ---------------------------------------------------------------------------------------------
# Generation and runs


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, tmp_path_factory):
    """The tiny model with larger random weights: its greedy text depends on the prompt (the stock one's small
    initial weights answer every prompt with the same newlines, which would make comparisons toothless)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    folder = tmp_path_factory.mktemp("tiny-varied")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return load_eval_model(resolve_model(str(folder)))


@pytest.fixture(scope="module")
def gsm8k16(shared_data):
    return load_benchmark("gsm8k", "think_boxed", data_dir=shared_data, limit=16)


def run_bench(tiny, bench, out: Path, batch_size: int, **kwargs) -> dict:
    generator = HfGenerator(*tiny, batch_size=batch_size)
    return BenchmarkRun(generator, bench, out, Sampling(24), 1, "tiny", progress=False, **kwargs).run()


def test_greedy_completions_are_identical_at_batch_size_1_and_16(tiny, gsm8k16, tmp_path):
    one = run_bench(tiny, gsm8k16, tmp_path / "b1", batch_size=1)
    sixteen = run_bench(tiny, gsm8k16, tmp_path / "b16", batch_size=16)
    a = sorted(read_samples(tmp_path / "b1" / "gsm8k" / "samples.jsonl"), key=lambda r: r["id"])
    b = sorted(read_samples(tmp_path / "b16" / "gsm8k" / "samples.jsonl"), key=lambda r: r["id"])
    assert len(a) == len(b) == 16
    assert [r["completion"] for r in a] == [r["completion"] for r in b]
    assert [r["tokens"] for r in a] == [r["tokens"] for r in b]
    assert len({r["completion"] for r in a}) > 1  # the prompts really produced different text
    assert one["pass@1"] == sixteen["pass@1"] and one["extraction_rate"] == sixteen["extraction_rate"]


def test_progress_bar_shows_the_decoding_step_inside_a_long_batch(tiny, gsm8k16, tmp_path, capsys):
    generator = HfGenerator(*tiny, batch_size=16)
    BenchmarkRun(generator, gsm8k16, tmp_path, Sampling(24), 1, "tiny", progress=True).run()
    shown = capsys.readouterr().err
    assert "token=8/24" in shown and "token=16/24" in shown  # the one batch of 16 shows its steps
    assert "16/16" in shown and "acc=" in shown
    assert generator.on_token is None  # the generator is left as it was (in-training evaluation reuses it)


class StopAfter:
    """A generator that raises KeyboardInterrupt (Ctrl-C) at its n-th batch."""

    def __init__(self, inner: HfGenerator, batches: int) -> None:
        self.inner, self.left = inner, batches
        self.name, self.tokenizer, self.batch_size = inner.name, inner.tokenizer, inner.batch_size
        self.dtype = inner.dtype  # part of the settings a resumed folder must match

    def generate_batch(self, texts, sampling):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.inner.generate_batch(texts, sampling)


def test_an_interrupted_run_resumes_to_the_same_summary(tiny, gsm8k16, tmp_path):
    full = run_bench(tiny, gsm8k16, tmp_path / "full", batch_size=4)
    stopper = StopAfter(HfGenerator(*tiny, batch_size=4), batches=2)
    with pytest.raises(KeyboardInterrupt):
        BenchmarkRun(stopper, gsm8k16, tmp_path / "cut", Sampling(24), 1, "tiny", progress=False).run()
    samples = tmp_path / "cut" / "gsm8k" / "samples.jsonl"
    assert len(read_samples(samples)) == 8  # two whole batches, every line complete
    with samples.open("a") as f:
        f.write('{"id": "test-99", "sam')  # and a line torn by a kill mid-write
    resumed = run_bench(tiny, gsm8k16, tmp_path / "cut", batch_size=4)
    assert resumed["generated_now"] == 8
    volatile = {"seconds", "generated_now"}
    assert {k: v for k, v in resumed.items() if k not in volatile} == {k: v for k, v in full.items() if k not in volatile}
    assert sorted(r["completion"] for r in read_samples(samples)) == sorted(
        r["completion"] for r in read_samples(tmp_path / "full" / "gsm8k" / "samples.jsonl"))


def test_resuming_with_other_settings_is_refused(tiny, shared_data, tmp_path):
    small = load_benchmark("gsm8k", "think_boxed", data_dir=shared_data, limit=2)
    run_bench(tiny, small, tmp_path, batch_size=2)
    generator = HfGenerator(*tiny, batch_size=2)
    with pytest.raises(UserError, match="other settings \\(max_new_tokens: 24 there, 8 now\\)"):
        BenchmarkRun(generator, small, tmp_path, Sampling(8), 1, "tiny", progress=False).run()


def test_k_samples_give_pass_at_k_and_a_report(tiny, shared_data, tmp_path):
    bench = load_benchmark("gsm8k", "think_boxed", data_dir=shared_data, limit=3)
    generator = HfGenerator(*tiny, batch_size=8)
    sampling = Sampling(12, do_sample=True, temperature=1.0, seed=3)
    s = BenchmarkRun(generator, bench, tmp_path, sampling, 4, "tiny", progress=False).run()
    records = read_samples(tmp_path / "gsm8k" / "samples.jsonl")
    assert sorted((r["id"], r["sample"]) for r in records) == sorted((r["id"], j) for r in bench.rows for j in range(4))
    assert {"maj@4", "pass@2", "pass@4"} <= s.keys()
    assert len({r["completion"] for r in records if r["id"] == records[0]["id"]}) > 1  # samples differ
    summary = write_report(tmp_path, "tiny")
    assert summary["benchmarks"]["gsm8k"]["samples_per_problem"] == 4
    report = (tmp_path / "report.md").read_text()
    assert "| gsm8k | 3 |" in report and "maj@4" in report
    assert json.loads((tmp_path / "summary.json").read_text())["model"] == "tiny"


# ---------------------------------------------------------------------------------------------
# What MODEL may be


def logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer("What is 2 + 3? The answer is 5.", return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


def test_adapter_folder_loads_merged_on_its_base(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = save_adapter(tiny_model_dir, tmp_path / "adapter")
    spec = resolve_model(str(adapter))
    assert spec.base == str(tiny_model_dir) and spec.run_dir is None
    model, tokenizer = load_eval_model(spec)
    assert not hasattr(model, "peft_config")  # merged: plain weights generate faster than LoRA layers
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert torch.allclose(logits(model, tokenizer), logits(reference, tokenizer), atol=1e-4)
    assert not torch.allclose(logits(model, tokenizer), logits(base, tokenizer), atol=1e-2)


def fake_run(tiny_model_dir: Path, run: Path, prompt_format: str = "xml") -> Path:
    """A run folder as grpo_train.py leaves it: resolved recipe, a complete checkpoint holding an adapter."""
    recipe = sections_from_dict({"model": {"name": str(tiny_model_dir)}, "prompt": {"format": prompt_format},
                                 "data": {"dataset": str(ROOT / "data" / "openr1_sample.jsonl"), "validation": 4,
                                          "cache": False}})
    recipe.dump(run / "recipe.resolved.yaml")
    checkpoint = save_adapter(tiny_model_dir, run / "checkpoint-2")
    (checkpoint / "trainer_state.json").write_text("{}")
    (checkpoint / "checkpoint.complete").write_text('{"step": 2}')
    return run


def test_run_folder_resolves_to_best_else_last_complete_checkpoint(tiny_model_dir, tmp_path):
    from utils.export import find_source

    run = fake_run(tiny_model_dir, tmp_path / "run")
    (run / "best").mkdir()  # a best/ without weights (left behind) is passed over, by evaluation and export alike
    spec = resolve_model(str(run))
    assert spec.path == str(run / "checkpoint-2") and spec.run_dir == run
    assert spec.recipe.prompt.format == "xml" and spec.default_out == run / "eval" / "checkpoint-2"
    assert find_source(run).adapter_dir == run / "checkpoint-2"
    save_adapter(tiny_model_dir, run / "best")
    assert resolve_model(str(run)).path == str(run / "best") and find_source(run).adapter_dir == run / "best"
    inside = resolve_model(str(run / "checkpoint-2"))  # a checkpoint still knows its run
    assert inside.run_dir == run and inside.recipe is not None
    (run / "best" / "adapter_config.json").unlink()
    (run / "checkpoint-2" / "checkpoint.complete").unlink()
    with pytest.raises(UserError, match="without best/ or a complete checkpoint"):
        resolve_model(str(run))


def test_evaluating_a_run_uses_its_prompt_format_and_writes_inside_it(tiny_model_dir, tmp_path, run_script):
    run = fake_run(tiny_model_dir, tmp_path / "run")
    result = run_script("evaluate", run, "--bench", "openr1-val,gsm8k", "--limit", "2", "--max-new-tokens", "8",
                        "--no-progress", "--backend", "hf")
    assert result.returncode == 0, result.stderr[-2000:]
    out = run / "eval" / "checkpoint-2"
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["benchmarks"]) == ["gsm8k", "openr1-val"] and summary["model"] == "run/checkpoint-2"
    from utils.evaluation import eval_dtype

    assert summary["benchmarks"]["gsm8k"]["dtype"] == eval_dtype("auto")  # recorded with the results
    records = read_samples(out / "gsm8k" / "samples.jsonl")
    assert len(records) == 2 and all("<reasoning>" in r["prompt"] for r in records)  # the run's xml format
    assert (out / "report.md").is_file() and "| openr1-val | 2 |" in result.stdout


@pytest.mark.parametrize(("native_bf16", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_is_bf16_only_where_the_cpu_computes_it_natively(cpu_kind, native_bf16, expected):
    from utils.evaluation import eval_dtype

    cpu_kind("AVX512" if native_bf16 else "AVX2", native_bf16)  # what torch's own checks report
    assert eval_dtype("auto") == expected
    assert eval_dtype("float32") == "float32"  # asked for: kept


@pytest.mark.parametrize(("args", "message"), [
    (["--bench", "gsm8x"], "--bench gsm8x: unknown benchmark and no such file (did you mean 'gsm8k'?"),
    (["--bench", "gsm8k", "--data-dir", "/nonexistent/data"], "--data-dir /nonexistent/data: no such folder"),
    (["--bench", "missing.jsonl"], "--bench missing.jsonl: unknown benchmark"),
    (["--bench", "gsm8k", "--samples", "0"], "--samples: must be at least 1"),
    (["--bench", "gsm8k", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["--bench", "gsm8k", "--dtype", "fp8"], "--dtype: 'fp8' is not one of auto, float32, bfloat16"),
])
def test_bad_benchmarks_are_one_line_and_exit_2(tiny_model_dir, run_script, args, message):
    result = run_script("evaluate", tiny_model_dir, *args)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_bad_models_are_one_line_and_exit_2_before_loading(tiny_model_dir, tmp_path, run_script):
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    adapter = save_adapter(base, tmp_path / "adapter")
    shutil.rmtree(base)
    cases = [(adapter, f"{adapter}: LoRA adapter whose base model {base} is missing"),
             (tmp_path / "nothing", "no such folder"),
             (tmp_path, "not a model folder")]
    for model, message in cases:
        result = run_script("evaluate", model, "--bench", "gsm8k")
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1 and "Loading weights" not in result.stderr


# ---------------------------------------------------------------------------------------------
# Retention during training: several benchmarks watched by the eval callback


@pytest.mark.parametrize(("eval_section", "message"), [
    ({"benchmarks": [{"name": "gsm8x", "samples": 8}]}, "eval: gsm8x: unknown benchmark and no such file (did you mean"),
    ({"benchmarks": [{"name": "gsm8k", "samples": 8, "n": 2}]}, "eval.benchmarks[0].n: unknown key"),
    ({"benchmarks": [{"samples": 3}]}, "eval.benchmarks[0]: expected {name: BENCHMARK, samples: N (optional)}"),
    ({"benchmark": "gsm8k", "benchmarks": [{"name": "openr1-val"}]}, "eval.benchmark: not used with eval.benchmarks"),
    ({"benchmarks": [{"name": "gsm8k", "samples": 0}]}, "eval: gsm8k: samples and max_new_tokens must be positive"),
    ({"benchmarks": [{"name": "gsm8k", "samples": 2}, {"name": "gsm8k", "samples": 3}]}, "gsm8k is listed twice"),
    ({"best_by": "gsm8k"}, "eval.best_by: 'gsm8k' is not a watched benchmark (openr1-val)"),
])
def test_eval_section_mistakes_are_named(eval_section, message):
    with pytest.raises(UserError) as err:
        sections_from_dict({"eval": eval_section})
    assert message in str(err.value)


def test_eval_section_keeps_the_single_benchmark_form():
    single = sections_from_dict({"eval": {"benchmark": "openr1-val", "samples": 50, "max_new_tokens": 64}}).eval
    assert single.watched() == [{"name": "openr1-val", "samples": 50, "max_new_tokens": 64}]
    assert single.best_name == "openr1-val"
    listed = sections_from_dict({"eval": {"benchmarks": [{"name": "openr1-val"},
                                                         {"name": "gsm8k", "samples": 4, "max_new_tokens": 16}],
                                          "best_by": "gsm8k", "samples": 8}}).eval
    assert [(w["name"], w["samples"], w["max_new_tokens"]) for w in listed.watched()] == [
        ("openr1-val", 8, 1024), ("gsm8k", 4, 16)]  # the section's samples and budget where an entry has none
    assert listed.best_name == "gsm8k"


def test_subset10k_watches_gsm8k_while_training_on_openr1():
    from utils.config import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "subset10k.yaml")
    assert [w["name"] for w in recipe.eval.watched()] == ["openr1-val", "gsm8k"]
    assert recipe.eval.best_name == "openr1-val"
    colab = load_recipe(ROOT / "recipes" / "colab_t4.yaml")  # its samples: 100 applies to both benchmarks
    assert [(w["samples"], w["max_new_tokens"]) for w in colab.eval.watched()] == [(100, 768), (100, 512)]


def test_training_logs_and_plots_every_watched_benchmark(tiny_model_dir, tmp_path, shared_data, monkeypatch):
    import matplotlib.axes

    from utils.config import load_recipe
    from utils.training import run_training

    labels: list[str] = []
    plot = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot",
                        lambda self, *a, **k: (labels.append(k.get("label")), plot(self, *a, **k))[1])
    recipe = load_recipe(SMOKE, [
        f"model.name={tiny_model_dir}", f"output.dir={tmp_path}", "training.max_steps=2", "data.cache=false",
        "eval.benchmarks=[{name: openr1-val, samples: 4}, {name: gsm8k, samples: 3, max_new_tokens: 8}]",
        "eval.best_by=gsm8k"])
    outcome = run_training(recipe, progress=False)
    metrics = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in metrics if "eval/seconds" in m]
    assert [m["step"] for m in evals] == [0, 2]
    for m in evals:
        assert m["eval/openr1-val/total"] == 4 and m["eval/gsm8k/total"] == 3
        assert m["eval/accuracy"] == m["eval/gsm8k/accuracy"]  # best_by: gsm8k picks best/
    assert json.loads((outcome.run_dir / "best" / "best.json").read_text())["step"] == 0
    assert (outcome.run_dir / "plots" / "accuracy.png").is_file()
    assert {"eval/openr1-val/accuracy", "eval/gsm8k/accuracy"} <= set(labels)


class FakeColocatedGeneration:
    """TRL's VLLMGeneration as far as in-training evaluation touches it: mode, llm and sync_weights."""

    def __init__(self, mode="colocate", enable_sleep_mode=False, tensor_parallel_size=1):
        self.mode, self.enable_sleep_mode, self.tensor_parallel_size = mode, enable_sleep_mode, tensor_parallel_size
        self.llm, self.syncs = object(), 0

    def sync_weights(self):
        self.syncs += 1


@pytest.mark.parametrize(("settings", "used"), [
    ({}, True), ({"mode": "server"}, False), ({"enable_sleep_mode": True}, False),
    ({"tensor_parallel_size": 2}, False)])
def test_in_training_eval_takes_the_colocated_engine_with_weights_pushed_once_a_step(settings, used):
    from types import SimpleNamespace

    from utils.training._eval_engine import colocated_eval_engine

    generation = FakeColocatedGeneration(**settings)
    trainer = SimpleNamespace(vllm_generation=generation, state=SimpleNamespace(global_step=3),
                              _last_loaded_step=2, processing_class="tokenizer")
    engine = colocated_eval_engine(trainer)
    assert (engine is not None) == used
    assert colocated_eval_engine(SimpleNamespace(state=trainer.state)) is None  # no vLLM: transformers' generate
    if not used:
        return
    first = engine()
    engine()  # the same step again: nothing to push
    assert first.llm is generation.llm and first.tokenizer == "tokenizer"
    assert generation.syncs == 1 and trainer._last_loaded_step == 3  # pushed once; TRL's next generation skips it
    trainer.state.global_step = 4
    engine()
    assert generation.syncs == 2


def test_eval_callback_scores_what_its_engine_generates(tiny_model_dir, tmp_path):
    """Given an engine, the callback's accuracy is that engine's (here one that answers every problem right),
    not transformers' generate on the random tiny model (which answers none)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.evaluation import Generated, WatchedSet
    from utils.training._callbacks import EvalCallback, RewardRecorder, RunMonitor

    class AnswersRight:
        batch_size, calls = 64, 0

        def generate_batch(self, texts, sampling):
            self.calls += 1
            return [Generated(f"<think>\n...\n</think>\n\\boxed{{{gold[t]}}}", 9, False) for t in texts]

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}], "answer": str(2 * i)} for i in range(3, 8)]
    from utils.data import render_prompts

    gold = dict(zip(render_prompts([r["prompt"] for r in rows], tokenizer), (r["answer"] for r in rows), strict=True))
    monitor = RunMonitor(tmp_path, RewardRecorder(), 0, 1, plots=False, progress=False, writes=True)
    callback = EvalCallback([WatchedSet("sums", rows, 8)], 1, 4, tmp_path, tokenizer, monitor)
    assert callback.evaluate(model, 0) < 1.0  # no engine: the random tiny model's own generate
    engine = AnswersRight()
    callback.engine = lambda: engine
    assert callback.evaluate(model, 1) == 1.0 and engine.calls == 1
