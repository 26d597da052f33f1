"""utils.runs: a run folder read back by evaluation and export (no model needed)."""

from __future__ import annotations

import os

import pytest
import yaml

from utils.errors import UserError
from utils.runs import FolderLock, find_run_dir, model_step, run_recipe


def write_run(run, **sections):
    run.mkdir(parents=True)
    (run / "recipe.resolved.yaml").write_text(yaml.safe_dump({"model": {"name": "some/model"}, **sections}))
    return run


def test_the_runs_recipe_is_validated_with_the_recipe_defaults_and_keeps_what_the_run_trained_with(tmp_path):
    run = write_run(tmp_path / "run", data={"dataset": "problems.jsonl"}, prompt={"format": "xml"},
                    rewards={"my_rewards.shaped": 1.0},  # a custom reward this process cannot import
                    training={"learning_rate": 1e-5, "a_key_of_another_trl": 3})
    recipe = run_recipe(run)
    assert recipe.prompt.format == "xml" and recipe.data.validation == 500 and recipe.lora.r == 32
    assert recipe.rewards == {"my_rewards.shaped": 1.0}
    assert recipe.training == {"learning_rate": 1e-5, "a_key_of_another_trl": 3}


def test_a_saved_recipe_that_no_longer_validates_is_one_line_naming_file_and_key(tmp_path):
    run = write_run(tmp_path / "run", lora={"r": 0})
    with pytest.raises(UserError, match=r"run/recipe\.resolved\.yaml: lora\.r: must be positive"):
        run_recipe(run)


def test_a_checkpoint_or_best_folder_knows_its_run(tmp_path):
    run = write_run(tmp_path / "run")
    for inside in ("checkpoint-4", "best"):
        (run / inside).mkdir()
        assert find_run_dir(run / inside) == run
    assert find_run_dir(run) == run and find_run_dir(tmp_path) is None
    (run / "best" / "best.json").write_text('{"step": 3, "accuracy": 0.5}')
    assert model_step(run / "best") == 3 and model_step(run / "checkpoint-4") == 4 and model_step(tmp_path) is None


def test_a_second_writer_is_refused_with_the_callers_hint(tmp_path):
    with FolderLock(tmp_path, "an evaluation", "or pass another --out"):
        with pytest.raises(UserError, match=rf"in use by an evaluation in progress \(pid {os.getpid()}\): wait for it, "
                                            "or pass another --out"):
            FolderLock(tmp_path, "an evaluation", "or pass another --out").__enter__()
    with FolderLock(tmp_path):  # released at the end of the block
        pass
