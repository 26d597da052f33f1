"""Learning-signal diagnostics: the per-step metrics, their plot, and the warnings (each when its condition holds
for STEPS steps, once per episode, and not otherwise)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from tests.repo import ROOT
from utils.training._diagnostics import (
    BASELINE_STEPS,
    CLIPPED,
    EXTRACTION,
    GROUP_STD,
    MEAN_LENGTH,
    STEPS,
    ZERO_STD,
    SignalWatch,
)


def warnings_at(key: str, values: list[float], **watch: bool) -> list[tuple[int, str]]:
    """(step, warning) for a planted sequence of one metric, steps numbered from 1."""
    w = SignalWatch(**watch)
    return [(step, line) for step, v in enumerate(values, 1) for line in w.observe({"step": step, key: v})]


def test_zero_advantage_warning_fires_after_n_steps_once_per_episode():
    assert warnings_at(ZERO_STD, [0.9] * (STEPS - 1)) == []
    fired = warnings_at(ZERO_STD, [1.0] * (STEPS + 3))
    assert [step for step, _ in fired] == [STEPS]  # once, not every step after
    # the episode ends when the fraction drops; a new one warns again
    again = warnings_at(ZERO_STD, [1.0] * STEPS + [0.5] + [1.0] * STEPS)
    assert [step for step, _ in again] == [STEPS, 2 * STEPS + 1]


def test_zero_advantage_warning_needs_consecutive_steps_above_the_threshold():
    assert warnings_at(ZERO_STD, [0.9, 0.9, 0.9, 0.9, 0.5] * 3) == []  # one good step in five resets the count
    assert warnings_at(ZERO_STD, [0.8] * (STEPS + 2)) == []  # at the threshold, not above it


def test_zero_advantage_warning_gives_concrete_advice():
    (_, line), = warnings_at(ZERO_STD, [1.0] * STEPS)
    for advice in ("data.level", "scripts/pass_rate.py", "data.filters.pass_rate", "training.max_completion_length",
                   "training.temperature", "dynamic_sampling.enabled: true"):
        assert advice in line
    assert "\n" not in line
    (_, on), = warnings_at(ZERO_STD, [1.0] * STEPS, dynamic_sampling=True)
    assert "dynamic sampling is making up for it" in on and "dynamic_sampling.enabled: true" not in on


def test_truncation_warning():
    (step, line), = warnings_at(CLIPPED, [0.95] * (STEPS + 2))
    assert step == STEPS and "max_completion_length" in line and "mask_truncated_completions" in line
    assert warnings_at(CLIPPED, [0.85] * (STEPS + 2)) == []


def test_collapse_to_bare_answers_warning():
    (step, line), = warnings_at(MEAN_LENGTH, [3.0] * STEPS)
    assert step == STEPS and "learning_rate" in line
    assert warnings_at(MEAN_LENGTH, [40.0] * (STEPS + 2)) == []


def test_extraction_warning_compares_with_the_starting_rate():
    start = [0.6] * BASELINE_STEPS
    (step, line), = warnings_at(EXTRACTION, start + [0.2] * STEPS)
    assert step == BASELINE_STEPS + STEPS and "answer format" in line
    assert warnings_at(EXTRACTION, start + [0.4] * (STEPS + 2)) == []  # lower, but not half
    assert warnings_at(EXTRACTION, [0.1] * BASELINE_STEPS + [0.0] * (STEPS + 2)) == []  # nothing much to lose


def test_records_without_the_metric_leave_the_count_alone():
    w = SignalWatch()
    fired = []
    for step in range(1, STEPS + 1):
        fired += w.observe({"step": step, ZERO_STD: 1.0})
        fired += w.observe({"step": step, "eval/accuracy": 0.0})  # an evaluation record between steps
    assert len(fired) == 1


def test_group_std_is_within_groups_and_skips_unscored_completions():
    from utils.training._group_rewards import group_std, has_spread

    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0,  # agrees inside, though the batch varies
                            1.0, 0.0, 1.0, 0.0,
                            1.0, math.nan, 1.0, 1.0,  # one unscored: the rest agree
                            math.nan, math.nan, math.nan, 2.0])  # one scored reward: no spread to speak of
    std = group_std(rewards.view(-1), 4)
    assert std[0] == pytest.approx(0.5774, abs=1e-4) and std[1] == pytest.approx(0.5774, abs=1e-4)
    assert std[2] == 0 and math.isnan(std[3])
    assert has_spread(group_std(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]), 4)).tolist() == [False, True]


def test_extraction_rate_is_counted_where_rewards_are_recorded():
    from utils.training import RewardRecorder

    recorder = RewardRecorder()
    reward_a, reward_b = recorder.wrap([lambda prompts, completions, **kw: [0.0] * len(completions),
                                        lambda prompts, completions, **kw: [1.0] * len(completions)])
    completions = [[{"content": "so \\boxed{3}"}], [{"content": "I am not sure"}], [{"content": "#### 5"}],
                   [{"content": "hmm"}]]
    for reward in (reward_a, reward_b):  # two reward functions on one batch: counted once
        reward(["p"] * 4, completions)
    assert recorder.take_extraction_rate() == 0.5
    assert recorder.take_extraction_rate() is None  # per step: the count starts again


def test_monitor_prints_a_warning_once_without_breaking_the_bar(tmp_path, capsys):
    from utils.training import RewardRecorder, RunMonitor

    monitor = RunMonitor(tmp_path, RewardRecorder(), completions_every=0, completions_sample=0, plots=False,
                         progress=False)
    state = SimpleNamespace(global_step=0, max_steps=10)
    monitor.on_train_begin(None, state, None)
    for step in range(1, 9):
        state.global_step = step
        monitor.on_log(None, state, None, logs={"loss": 0.0, ZERO_STD: 1.0, CLIPPED: 0.2})
    err = capsys.readouterr().err
    assert err.count("had all-equal rewards") == 1 and "truncat" not in err


def test_a_run_logs_the_diagnostics_plots_them_and_warns_when_nothing_can_be_learned(tiny_model_dir, tmp_path,
                                                                                        capsys):
    from utils.config import load_recipe
    from utils.training import prepare_training

    recipe = load_recipe(ROOT / "recipes" / "smoke_cpu.yaml", [
        f"model.name={tiny_model_dir}", f"output.dir={tmp_path}", "eval.every_steps=0", f"training.max_steps={STEPS}",
        "training.max_completion_length=8", "training.save_steps=100"])
    recipe.rewards = {"tests.signal_rewards.constant": 1.0}  # every group agrees: zero advantage every step
    run = prepare_training(recipe, progress=False)
    run.train()
    records = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert len(steps) == STEPS
    for m in steps:
        assert m[ZERO_STD] == 1 and m[GROUP_STD] == 0
        assert 0 <= m[CLIPPED] <= 1 and 0 <= m[EXTRACTION] <= 1 and m[MEAN_LENGTH] > 0
        assert not any(k.startswith("dynamic_sampling/") for k in m)  # off unless the recipe asks
    assert (run.run_dir / "plots" / "learning_signal.png").stat().st_size > 0
    err = capsys.readouterr().err
    assert err.count("had all-equal rewards") == 1 and f"for {STEPS} steps in a row (step {STEPS}" in err
