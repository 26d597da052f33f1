"""Dynamic sampling (DAPO): a step trains on groups whose rewards disagree, refilled from further prompts, up to
its cap; the recipe section that turns it on; the batch merge it relies on."""

from __future__ import annotations

import pytest
import torch

from tests.grpo_helpers import GROUP, SMOKE, tiny_recipe, train_watching_batches
from utils.config import load_recipe
from utils.errors import UserError


def test_batches_hold_only_groups_that_disagree_when_prompts_allow(tiny_model_dir, tmp_path):
    # two prompts a step, generated at once and trained on in two accumulated micro-batches (TRL buffers the
    # generation batch: steps_per_generation); the prompts, extra ones included, are seeded, and some agree
    recipe = tiny_recipe(tiny_model_dir, tmp_path, "half_constant", "training.max_steps=2",
                         "training.gradient_accumulation_steps=2",
                         "dynamic_sampling.enabled=true", "dynamic_sampling.max_extra_batches=10")
    batches, steps = train_watching_batches(recipe)
    assert len(batches) == 2 and len(steps) == 2
    assert all(groups.shape == (2, GROUP) for groups in batches)
    for groups in batches:  # every group trained on has an advantage to follow
        assert (groups.abs().amax(dim=1) > 0).all(), groups
    assert all(m["dynamic_sampling/filled_fraction"] == 0 and m["dynamic_sampling/cap_hit"] == 0 for m in steps)
    # half the problems agree: some were generated, dropped, and replaced by extra rounds, which are logged
    assert any(m["dynamic_sampling/kept_fraction"] < 1 for m in steps)
    assert sum(m["dynamic_sampling/extra_batches"] for m in steps) >= 1
    assert all(m["dynamic_sampling/extra_seconds"] > 0 for m in steps if m["dynamic_sampling/extra_batches"])


def test_the_cap_bounds_extra_generation_and_the_step_trains_on_what_it_has(tiny_model_dir, tmp_path):
    recipe = tiny_recipe(tiny_model_dir, tmp_path, "constant", "training.max_steps=1",
                         "dynamic_sampling.enabled=true", "dynamic_sampling.max_extra_batches=2")
    batches, steps = train_watching_batches(recipe)
    assert len(batches) == 1 and batches[0].shape == (1, GROUP)  # the batch keeps its size
    assert len(steps) == 1
    for m in steps:  # exactly the cap, then the step goes on, and the metrics say so
        assert m["dynamic_sampling/extra_batches"] == 2
        assert m["dynamic_sampling/cap_hit"] == 1 and m["dynamic_sampling/filled_fraction"] == 1
        assert m["dynamic_sampling/kept_fraction"] == 0
        assert m["frac_reward_zero_std"] == 1


def test_oversampling_generates_larger_rounds_and_trains_on_the_batch_size(tiny_model_dir, tmp_path):
    # one prompt a step (4 rows); each round generates 3 prompts (12 rows): TRL's, then two drawn at random
    recipe = tiny_recipe(tiny_model_dir, tmp_path, "half_constant", "training.max_steps=3",
                         "dynamic_sampling.enabled=true", "dynamic_sampling.max_extra_batches=10",
                         "dynamic_sampling.oversample=2.5")
    rounds: list[int] = []
    batches, steps = train_watching_batches(recipe, rounds)
    assert rounds and set(rounds) == {3 * GROUP}
    assert len(batches) == 3 and all(groups.shape == (1, GROUP) for groups in batches)  # the batch keeps its size
    assert all((groups.abs().amax(dim=1) > 0).all() for groups in batches)  # and holds a group that disagrees
    assert all(m["dynamic_sampling/cap_hit"] == 0 for m in steps)


@pytest.mark.slow  # a third tiny run, for the test's own teeth; the metrics above show groups were dropped
def test_without_dynamic_sampling_agreeing_groups_are_trained_on(tiny_model_dir, tmp_path):
    """The planted reward does what the tests above rely on: without the filter, all-agree groups reach the update."""
    recipe = tiny_recipe(tiny_model_dir, tmp_path, "half_constant", "training.max_steps=2",
                         "training.gradient_accumulation_steps=2")  # the first test's steps, unfiltered
    batches, steps = train_watching_batches(recipe)
    assert any((groups.abs().amax(dim=1) == 0).any() for groups in batches)
    assert not any(k.startswith("dynamic_sampling/") for m in steps for k in m)


def test_extra_prompts_are_drawn_again_the_same_after_a_resume():
    """Seeded by (seed, step, round): a resumed run refills its batch from the same problems."""
    from types import SimpleNamespace

    from utils.training._dynamic_sampling import DynamicSampler

    rows = [{"prompt": f"problem {i}"} for i in range(50)]

    def sampler(step: int) -> DynamicSampler:
        trainer = SimpleNamespace(train_dataset=rows, num_generations=2, args=SimpleNamespace(seed=7),
                                  state=SimpleNamespace(global_step=step), _generate_and_score_completions=None)
        return DynamicSampler(trainer, None, 3)

    first = sampler(5).extra_inputs(4, 1)
    assert first == sampler(5).extra_inputs(4, 1)
    assert [r["prompt"] for r in first[::2]] == [r["prompt"] for r in first[1::2]]  # each problem once per generation
    assert len(first) == 8 and first != sampler(6).extra_inputs(4, 1) and first != sampler(5).extra_inputs(4, 2)


def test_groups_with_a_spread_come_first_then_agreeing_ones_fill_the_batch():
    from utils.training._dynamic_sampling import choose_groups

    assert choose_groups([[False, True], [True, True]], 2) == ([[1], [0]], 0)
    assert choose_groups([[False, True], [False, False]], 2) == ([[1, 0], []], 1)
    assert choose_groups([[False, False]], 2) == ([[0, 1]], 2)


def test_merged_batches_are_repadded_and_recounted():
    from utils.training._dynamic_sampling import merge_rows

    short = {"prompt_ids": torch.tensor([[0, 5], [6, 7]]), "prompt_mask": torch.tensor([[0, 1], [1, 1]]),
             "completion_ids": torch.tensor([[8], [9]]), "completion_mask": torch.tensor([[1], [1]]),
             "advantages": torch.tensor([0.5, -0.5]), "num_items_in_batch": torch.tensor(2)}
    long = {"prompt_ids": torch.tensor([[1, 2, 3], [4, 5, 6]]), "prompt_mask": torch.ones(2, 3, dtype=torch.long),
            "completion_ids": torch.tensor([[1, 2, 3], [4, 0, 0]]),
            "completion_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
            "advantages": torch.tensor([1.0, -1.0]), "num_items_in_batch": torch.tensor(4)}
    merged = merge_rows([short, long], [[1], [0, 1]], pad_id=0)
    assert merged["prompt_ids"].tolist() == [[0, 6, 7], [1, 2, 3], [4, 5, 6]]  # prompts stay left-padded
    assert merged["prompt_mask"].tolist() == [[0, 1, 1], [1, 1, 1], [1, 1, 1]]
    assert merged["completion_ids"].tolist() == [[9, 0, 0], [1, 2, 3], [4, 0, 0]]  # completions right-padded
    assert merged["completion_mask"].tolist() == [[1, 0, 0], [1, 1, 1], [1, 0, 0]]
    assert merged["advantages"].tolist() == [-0.5, 1.0, -1.0]
    assert int(merged["num_items_in_batch"]) == 5  # the loss's token count: the rows kept, not the rows generated


def test_recipe_section_is_checked(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match=r"dynamic_sampling.max_extra_batches: must be >= 1"):
        load_recipe(SMOKE, ["dynamic_sampling.max_extra_batches=0"])
    with pytest.raises(UserError, match=r"dynamic_sampling.enable: unknown key \(did you mean 'enabled'\?\)"):
        load_recipe(SMOKE, ["dynamic_sampling.enable=true"])
    with pytest.raises(UserError, match=r"dynamic_sampling.oversample: must be between 1 and 16 .*got 0.5"):
        load_recipe(SMOKE, ["dynamic_sampling.oversample=0.5"])
    recipe = load_recipe(SMOKE, ["dynamic_sampling.enabled=true", "dynamic_sampling.max_extra_batches=4"])
    assert recipe.dynamic_sampling.enabled and recipe.dynamic_sampling.max_extra_batches == 4
    assert load_recipe(SMOKE).dynamic_sampling.enabled is False  # off unless asked for


@pytest.mark.parametrize(("processes", "aggregation", "refused"), [
    (1, "sum_then_normalize", None),
    (2, "sum_then_normalize", "works with one training process for now"),
    (1, "normalize_then_sum", "needs training.multi_objective_aggregation: sum_then_normalize"),
])
def test_settings_it_cannot_honour_are_refused_in_one_line(processes, aggregation, refused):
    from types import SimpleNamespace

    from utils.training._dynamic_sampling import check_dynamic_sampling

    config = SimpleNamespace(multi_objective_aggregation=aggregation)
    if refused is None:
        check_dynamic_sampling(True, processes, config)
        return
    with pytest.raises(UserError, match=refused) as err:
        check_dynamic_sampling(True, processes, config)
    assert "\n" not in str(err.value)
    check_dynamic_sampling(False, processes, config)  # off: nothing to refuse


def test_plan_names_dynamic_sampling(tiny_model_dir, tmp_path):
    from utils.training import format_plan, set_up_run

    on = tiny_recipe(tiny_model_dir, tmp_path, "constant", "dynamic_sampling.enabled=true")
    assert "Sampling   dynamic: groups whose rewards all agree are dropped" in format_plan(set_up_run(on))
    larger = tiny_recipe(tiny_model_dir, tmp_path, "constant", "dynamic_sampling.enabled=true",
                         "dynamic_sampling.oversample=2")
    assert "a step; each generates 2x the prompts trained on" in format_plan(set_up_run(larger))
    off = tiny_recipe(tiny_model_dir, tmp_path, "constant")
    assert "Sampling" not in format_plan(set_up_run(off))


def test_a_run_may_resume_with_dynamic_sampling_turned_on():
    """What the zero-advantage warning advises; a run saved before the section existed resumes too."""
    from utils.training._run_dir import decisive_changes

    before = load_recipe(SMOKE).to_dict()
    after = load_recipe(SMOKE, ["dynamic_sampling.enabled=true"]).to_dict()
    assert decisive_changes(before, after) == []
    del before["dynamic_sampling"]
    assert decisive_changes(before, after) == []
    assert decisive_changes(before, load_recipe(SMOKE, ["training.learning_rate=0.1"]).to_dict()) != []
