"""The learning signal: pass rates (scripts/pass_rate.py), the pass-rate filter and the curriculum.

Pass rates are planted through a generator injected at the generation seam: it answers right on a known number
of each problem's k samples, so every expected rate is known; the tiny Qwen2 runs the script end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from utils.config import recipe_from_dict
from utils.data import generate_problems, load_training_data, problem_key, read_pass_rates
from utils.errors import UserError
from utils.evaluation import Generated
from utils.training import PassRateJob, PassRateRequest, set_up_run

K = 4


class PlantedGenerator:
    """Completions right on `right(problem)` of each problem's k samples (the first ones), wrong on the rest."""

    name = "planted"

    def __init__(self, tokenizer, problems: dict[str, str], right, batch_size: int = 8) -> None:
        self.tokenizer, self.problems, self.right, self.batch_size = tokenizer, problems, right, batch_size
        self.prompts: list[str] = []  # every prompt generated, in order

    def generate_batch(self, texts, sampling):
        out, seen = [], {}
        for text in texts:
            self.prompts.append(text)
            problem, gold = next((p, a) for p, a in self.problems.items() if p in text)
            j = seen[text] = seen.get(text, -1) + 1
            answer = gold if j < self.right(problem) else "-987654321"
            out.append(Generated(f"So the answer is \\boxed{{{answer}}}.", 9, False))
        return out


def right_count(problem: str) -> int:
    """A planted number of right samples out of K, spread over 0..K."""
    return int(problem_key(problem, "")[:4], 16) % (K + 1)


def make_recipe(model_dir: Path, tmp_path: Path, **data) -> object:
    raw = {
        "model": {"name": str(model_dir), "backend": "hf", "max_seq_length": 1024},  # every prompt fits
        "data": {"dataset": "synthetic", "kind": "word", "level": [1, 2, 3], "n": 60, "validation": 10,
                 "cache_dir": str(tmp_path / "data-cache"), **data},
        "training": {"max_completion_length": 16, "temperature": 0.7, "num_generations": 2,
                     "per_device_train_batch_size": 2, "max_steps": 1},
        "eval": {"every_steps": 0},
        "output": {"dir": str(tmp_path / "runs")},
    }
    return recipe_from_dict(raw)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # .cache/pass_rates/ lands here
    return tmp_path


def planted(tiny_tokenizer) -> PlantedGenerator:
    """Right on right_count(problem) of the K samples of each problem make_recipe's data holds."""
    rows = generate_problems("word", 60, [1, 2, 3], seed=42)
    return PlantedGenerator(tiny_tokenizer, {r["problem"]: r["answer"] for r in rows}, right_count)


def training_data(recipe, tokenizer) -> object:
    """The data as a training run loads it: after set_up_run (which bounds prompt tokens), with its tokenizer."""
    return load_training_data(set_up_run(recipe).recipe, tokenizer)


def score(recipe, generator, **request) -> object:
    return PassRateJob(recipe, PassRateRequest(k=K, progress=False, **request), generator).run()


def test_pass_rates_are_the_share_of_right_samples(workdir, tiny_model_dir, tiny_tokenizer):
    recipe = make_recipe(tiny_model_dir, workdir)
    generator = planted(tiny_tokenizer)
    summary = score(recipe, generator)
    train = training_data(recipe, tiny_tokenizer).train
    assert summary.path.parent == Path(".cache/pass_rates") and summary.path.name.endswith(f"-k{K}.jsonl")
    records = {r["key"]: r for r in read_pass_rates(summary.path).records}
    expected = {problem_key(p, a): right_count(p) / K for p, a in zip(train["problem"], train["answer"], strict=True)}
    assert {key: r["pass_rate"] for key, r in records.items()} == expected
    assert all(r["k"] == K and r["decided"] == K for r in records.values())
    assert len(generator.prompts) == K * len(train)  # k samples of every training problem, no more
    values = list(expected.values())
    assert summary.problems == len(train) > 20
    assert summary.mean == pytest.approx(sum(values) / len(values))
    assert summary.at_zero == pytest.approx(values.count(0.0) / len(values))
    assert summary.at_one == pytest.approx(values.count(1.0) / len(values))
    assert summary.in_band == pytest.approx(sum(0.1 < v < 0.9 for v in values) / len(values))
    assert summary.png.stat().st_size > 0 and summary.png.name == summary.path.with_suffix(".png").name


def test_a_rerun_scores_only_what_is_missing_and_drops_a_torn_line(workdir, tiny_model_dir, tiny_tokenizer):
    recipe = make_recipe(tiny_model_dir, workdir)
    first = planted(tiny_tokenizer)
    path = score(recipe, first, limit=5).path
    assert len(read_pass_rates(path).records) == 5 and len(first.prompts) == 5 * K
    with path.open("a") as f:
        f.write('{"key": "0123456789abcdef", "pass_ra')  # killed mid-line
    second = planted(tiny_tokenizer)
    summary = score(recipe, second, limit=12)
    assert len(second.prompts) == 7 * K  # the 5 already scored are not generated again
    lines = path.read_text().splitlines()
    assert len(lines) == 12 and all(json.loads(line)["key"] != "0123456789abcdef" for line in lines)
    assert summary.problems == 12 and summary.scored_now == 7
    third = planted(tiny_tokenizer)
    assert score(recipe, third, limit=12).scored_now == 0 and third.prompts == []


def test_the_filter_keeps_the_band_bounds_excluded_and_reports_its_counts(workdir, tiny_model_dir, tiny_tokenizer):
    score(make_recipe(tiny_model_dir, workdir), planted(tiny_tokenizer))
    plain = training_data(make_recipe(tiny_model_dir, workdir), tiny_tokenizer).train
    rates = {p: right_count(p) / K for p in plain["problem"]}
    # k=4: rates are 0, .25, .5, .75, 1; bounds are excluded, so [0.25, 0.75] keeps 0.5 only
    prepared = training_data(make_recipe(tiny_model_dir, workdir, filters={"pass_rate": [0.25, 0.75]}), tiny_tokenizer)
    kept = list(prepared.train["problem"])
    assert kept and all(rates[p] == 0.5 for p in kept)
    assert sorted(kept) == sorted(p for p in plain["problem"] if rates[p] == 0.5)
    report = prepared.report
    step = next(s for s in report.steps if s.name == "pass_rate")
    low = sum(v <= 0.25 for v in rates.values())
    high = sum(v >= 0.75 for v in rates.values())
    assert (step.removed, step.remaining) == (low + high, len(kept)) == (len(plain) - len(kept), report.train_rows)
    assert step.detail == {k: v for k, v in {"p <= 0.25": low, "p >= 0.75": high}.items() if v}
    assert "pass_rate" in str(report) and f"-> {len(kept)}" in str(report) and "Pass rates" in str(report)
    assert len(prepared.validation) == 10  # the validation split never depends on it
    # [0, 1] keeps exactly the problems whose samples disagree (a GRPO advantage)
    mixed = training_data(make_recipe(tiny_model_dir, workdir, filters={"pass_rate": [0, 1]}), tiny_tokenizer).train
    assert sorted(mixed["problem"]) == sorted(p for p in plain["problem"] if 0 < rates[p] < 1)


def test_a_missing_pass_rate_file_is_one_line_naming_the_command(workdir, tiny_model_dir):
    recipe = make_recipe(tiny_model_dir, workdir, filters={"pass_rate": [0.1, 0.9]})
    with pytest.raises(UserError, match=r"no pass rates for this recipe.*python scripts/pass_rate.py RECIPE --k 8"):
        load_training_data(recipe)
    with pytest.raises(UserError, match="pass_rate_file: nowhere.jsonl: no such file"):
        load_training_data(make_recipe(tiny_model_dir, workdir, filters={"pass_rate": [0.1, 0.9],
                                                                          "pass_rate_file": "nowhere.jsonl"}))


def test_the_dry_run_checks_the_pass_rate_file(workdir, tiny_model_dir, run_script_here):
    (workdir / "r.yaml").write_text(
        f"model: {{name: {tiny_model_dir}, backend: hf, max_seq_length: 256}}\n"
        "data: {dataset: synthetic, kind: word, n: 30, validation: 5, filters: {pass_rate: [0.1, 0.9]}}\n"
        "training: {max_completion_length: 16, num_generations: 2, per_device_train_batch_size: 2}\n"
        "eval: {every_steps: 0}\n")
    code, _, err = run_script_here("grpo_train", "r.yaml", "--dry-run", cwd=workdir)
    assert code == 2, err
    assert err.strip().splitlines() == [
        "error: data.filters.pass_rate: no pass rates for this recipe's model, data, prompt and sampling in "
        ".cache/pass_rates/ (make them with: python scripts/pass_rate.py r.yaml --k 8, with the same --set options)"]


# ---------------------------------------------------------------------------------------------
# Curriculum


def _levels(rows) -> list[str]:
    return [s.rsplit("-", 1)[1] for s in rows["source"]]


def test_the_curriculum_is_the_order_trls_sampler_yields(workdir, tiny_model_dir, tiny_tokenizer):
    from trl import GRPOTrainer

    def sampled_levels(recipe) -> list[str]:
        setup = set_up_run(recipe)
        train = load_training_data(setup.recipe, tiny_tokenizer).train  # as the trainer loads it
        trainer = GRPOTrainer(model=str(tiny_model_dir), reward_funcs=setup.reward_funcs, args=setup.config,
                              train_dataset=train, processing_class=tiny_tokenizer)
        indices = list(trainer._get_train_sampler())  # what TRL's dataloader draws, in order
        return [_levels(train)[i] for i in indices[::setup.config.num_generations]]

    easy = sampled_levels(make_recipe(tiny_model_dir, workdir, curriculum={"by": "level"}))
    assert easy == sorted(easy) and easy[0] == "1" and easy[-1] == "3" and len(easy) > 20
    hard = sampled_levels(make_recipe(tiny_model_dir, workdir, curriculum={"by": "level", "order": "hard_first"}))
    assert hard == sorted(hard, reverse=True)
    shuffled = sampled_levels(make_recipe(tiny_model_dir, workdir))  # no curriculum: TRL shuffles
    assert shuffled != sorted(shuffled) and sorted(shuffled) == sorted(easy)


def test_curriculum_by_pass_rate_and_by_source(workdir, tiny_model_dir, tiny_tokenizer):
    score(make_recipe(tiny_model_dir, workdir), planted(tiny_tokenizer))
    prepared = training_data(make_recipe(tiny_model_dir, workdir, curriculum={"by": "pass_rate"}), tiny_tokenizer)
    rates = [right_count(p) / K for p in prepared.train["problem"]]
    assert rates == sorted(rates, reverse=True)  # easy first: the most often solved first
    assert prepared.report.order.startswith("by pass rate, easy first: p=1.00 (")
    hard = training_data(make_recipe(tiny_model_dir, workdir, filters={"pass_rate": [0, 1]},
                                     curriculum={"by": "pass_rate", "order": "hard_first"}), tiny_tokenizer).train
    hard_rates = [right_count(p) / K for p in hard["problem"]]
    assert hard_rates == sorted(hard_rates) and 0 < hard_rates[0] and hard_rates[-1] < 1
    by_source = training_data(make_recipe(
        tiny_model_dir, workdir, curriculum={"by": "source", "sources": ["synthetic/word/level-3",
                                                                        "synthetic/word/level-1"]}), tiny_tokenizer)
    levels = _levels(by_source.train)
    n1, n3 = levels.count("1"), levels.count("3")
    assert levels == ["3"] * n3 + ["1"] * n1 + ["2"] * levels.count("2")  # unlisted sources last
    assert by_source.report.order == (f"by source, easy first: synthetic/word/level-3 ({n3}), "
                                      f"synthetic/word/level-1 ({n1}), unlisted ({levels.count('2')})")


def test_a_level_list_generates_graded_problems():
    rows = generate_problems("word", 10, [1, 3], seed=5)
    assert [r["source"] for r in rows] == ["synthetic/word/level-1"] * 5 + ["synthetic/word/level-3"] * 5
    assert rows[:5] == generate_problems("word", 5, 1, seed=5)  # each level: the stream a one-level recipe gets


# ---------------------------------------------------------------------------------------------
# Bad keys


@pytest.mark.parametrize(("data", "message"), [
    ({"filters": {"pass_rate": [0.9, 0.1]}}, "data.filters.pass_rate: expected [low, high] with 0 <= low < high <= 1"),
    ({"filters": {"pass_rate": [0, 1.5]}}, "data.filters.pass_rate: expected [low, high]"),
    ({"filters": {"pass_rate": [0.2]}}, "data.filters.pass_rate: expected [low, high]"),
    ({"filters": {"pass_rate": 0.5}}, "data.filters.pass_rate: expected list of float or null, got 0.5"),
    ({"filters": {"pass_rate_file": "x.jsonl"}}, "data.filters.pass_rate_file: only read with data.filters.pass_rate"),
    ({"curriculum": {"by": "difficulty"}}, "data.curriculum.by: 'difficulty' is not one of none, pass_rate, level"),
    ({"curriculum": {"order": "random"}}, "data.curriculum.order: 'random' is not one of easy_first, hard_first"),
    ({"curriculum": {"by": "source"}}, "data.curriculum.sources: by: source needs the source column's values"),
    ({"curriculum": {"sources": ["a"]}}, "data.curriculum.sources: only used with by: source"),
    ({"curriculum": {"by": "level", "stages": 2}}, "data.curriculum.stages: unknown key"),
    ({"level": [1, 7]}, "data.level: must be 1 to 5 (1 easiest), or a list of them, got [1, 7]"),
    ({"level": [2, 2]}, "data.level: [2, 2] names a level twice"),
])
def test_bad_keys_are_one_line_errors(data, message):
    raw = {"data": {"dataset": "synthetic", **data}}
    with pytest.raises(UserError) as err:
        recipe_from_dict(raw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_shuffling_a_curriculum_away_is_refused():
    with pytest.raises(UserError, match="training.shuffle_dataset: true would shuffle away data.curriculum's order"):
        recipe_from_dict({"data": {"curriculum": {"by": "level"}}, "training": {"shuffle_dataset": True}})


def test_the_script_end_to_end_with_the_tiny_model(workdir, tiny_model_dir, run_script, run_script_here):
    (workdir / "r.yaml").write_text(
        f"model: {{name: {tiny_model_dir}, backend: hf, max_seq_length: 256}}\n"
        "data: {dataset: synthetic, kind: word, n: 30, validation: 5}\n"
        "training: {max_completion_length: 8, temperature: 0.7}\n")
    result = run_script("pass_rate", "r.yaml", "--k", "2", "--limit", "3", "--backend", "hf", "--no-progress",
                        cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "3 problems, k=2: mean pass rate" in result.stdout
    [path] = (workdir / ".cache" / "pass_rates").glob("*-k2.jsonl")
    assert len(path.read_text().splitlines()) == 3 and path.with_suffix(".png").is_file()
    # refusals end before a model loads: in this process, through the same run_main
    code, _, err = run_script_here("pass_rate", "r.yaml", "--set", "data.filters.pass_rate=[1, 0]", cwd=workdir)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "data.filters.pass_rate: expected [low, high]" in err
    code, _, err = run_script_here("pass_rate", "r.yaml", "--set", "training.top_k=20", cwd=workdir)
    assert code == 2 and "training.top_k: 20: pass_rate.py samples with temperature" in err
