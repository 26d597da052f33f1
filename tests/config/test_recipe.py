"""Recipes: every shipped recipe validates; bad recipes fail with one precise message."""

from pathlib import Path

import pytest
import yaml

from tests.repo import ROOT
from utils.config import deep_merge, load_recipe, parse_override
from utils.errors import UserError

RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path, overrides=()) -> str:
    with pytest.raises(UserError) as info:
        load_recipe(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    recipe = load_recipe(path)
    assert recipe.run_name and recipe.rewards
    assert recipe.model.trust_remote_code is False


def test_expected_recipes_ship():
    assert {p.stem for p in RECIPES} >= {"subset10k", "full", "gsm8k", "colab_t4", "smoke_cpu"}


def test_subset10k_values():
    recipe = load_recipe(RECIPES[0].parent / "subset10k.yaml")
    assert recipe.data.dataset == "open-r1/OpenR1-Math-220k" and recipe.data.subset == 10_000
    assert recipe.model.load_in_4bit and recipe.model.fast_inference and recipe.lora.enabled
    assert recipe.training["learning_rate"] == 5e-6
    assert recipe.dynamic_sampling.enabled and recipe.dynamic_sampling.max_extra_batches == 2  # issue #25's bench


def test_extends_overrides_and_inherits():
    full = load_recipe(RECIPES[0].parent / "full.yaml")
    t4 = load_recipe(RECIPES[0].parent / "colab_t4.yaml")
    assert full.data.subset is None and full.data.dataset == "open-r1/OpenR1-Math-220k"
    assert full.training["learning_rate"] == 5e-6 and full.training["save_steps"] == 250
    assert "fp16" not in t4.training and "bf16" not in t4.training and t4.lora.r == 16  # the machine decides
    assert t4.run_name == "colab_t4"
    assert t4.dynamic_sampling.enabled and t4.dynamic_sampling.max_extra_batches == 1  # bounded for a T4
    assert not full.dynamic_sampling.enabled  # launched on several processes, which dynamic sampling refuses


def test_deep_merge_none_restores_default():
    merged = deep_merge({"data": {"subset": 10, "seed": 1}}, {"data": {"subset": None}})
    assert merged == {"data": {"seed": 1}}


def test_overrides_are_typed_like_yaml(tmp_path):
    path = write(tmp_path, "r.yaml", "data: {subset: 10}\n")
    recipe = load_recipe(path, ["training.learning_rate=1e-5", "data.subset=2000", "lora.enabled=false",
                                "output.dir=" + str(tmp_path / "runs")])
    assert recipe.training["learning_rate"] == pytest.approx(1e-5) and isinstance(recipe.training["learning_rate"], float)
    assert recipe.data.subset == 2000 and recipe.lora.enabled is False
    assert recipe.run_dir == tmp_path / "runs" / "r"


def test_run_name_defaults_to_file_name(tmp_path):
    recipe = load_recipe(write(tmp_path, "my_experiment.yaml", "prompt: {format: xml}\n"))
    assert recipe.run_dir == Path("checkpoints") / "my_experiment"


def test_resolved_recipe_round_trips(tmp_path):
    recipe = load_recipe(RECIPES[0].parent / "colab_t4.yaml", ["data.subset=123"])
    out = recipe.dump(tmp_path / "run" / "recipe.resolved.yaml")
    data = yaml.safe_load(out.read_text())
    assert "extends" not in data and data["data"]["subset"] == 123
    again = load_recipe(out)
    assert again.to_dict() == recipe.to_dict()


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: recipe file not found"


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "bad.yaml", "model:\n  name: x\n  backend: [hf\ndata: {}\n")
    message = error_of(path)
    assert "invalid YAML at line" in message and str(path) in message


def test_unknown_top_level_key_suggests(tmp_path):
    message = error_of(write(tmp_path, "r.yaml", "modle: {name: x}\n"))
    assert "modle: unknown key (did you mean 'model'?)" in message


def test_unknown_section_key_suggests(tmp_path):
    message = error_of(write(tmp_path, "r.yaml", "lora: {rank: 8}\n"))
    assert "lora.rank: unknown key (valid keys: enabled, r, alpha, dropout, target_modules)" in message


def test_unknown_nested_key_suggests(tmp_path):
    message = error_of(write(tmp_path, "r.yaml", "data: {filters: {dedup: true}}\n"))
    assert "data.filters.dedup: unknown key (did you mean 'dedupe'?)" in message


def test_wrong_type_names_key_value_and_type(tmp_path):
    message = error_of(write(tmp_path, "r.yaml", "lora: {r: big}\n"))
    assert "lora.r: expected int, got 'big' (str)" in message
    message = error_of(write(tmp_path, "r2.yaml", "model: {load_in_4bit: 1}\n"))
    assert "model.load_in_4bit: expected bool, got 1" in message


def test_bad_choice(tmp_path):
    message = error_of(write(tmp_path, "r.yaml", "model: {backend: tpu}\n"))
    assert "model.backend: 'tpu' is not one of auto, unsloth, hf" in message


def test_training_key_unknown_to_trl_suggests(tmp_path):
    message = error_of(write(tmp_path, "r.yaml", "training: {learnin_rate: 1.0e-5}\n"))
    assert "training.learnin_rate: not a field of TRL's GRPOConfig (did you mean 'learning_rate'?)" in message


def test_training_wrong_type(tmp_path):
    message = error_of(write(tmp_path, "r.yaml", "training: {num_generations: eight}\n"))
    assert "training.num_generations: expected int or null, got 'eight'" in message


def test_training_output_dir_is_ours(tmp_path):
    message = error_of(write(tmp_path, "r.yaml", "training: {output_dir: /tmp/x}\n"))
    assert "output.dir" in message


def test_extends_cycle(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    message = error_of(tmp_path / "a.yaml")
    assert "extends cycle: a.yaml -> b.yaml -> a.yaml" in message


def test_extends_missing_parent(tmp_path):
    message = error_of(write(tmp_path, "a.yaml", "extends: gone.yaml\n"))
    assert "extends:" in message and "gone.yaml: recipe file not found" in message


@pytest.mark.parametrize("override", ["training.learning_rate", "=3", "data..subset=1", "data.subset=[1"])
def test_malformed_set(tmp_path, override):
    message = error_of(write(tmp_path, "r.yaml", "data: {}\n"), [override])
    assert message.startswith(f"--set {override}:")


def test_set_unknown_key_is_blamed_on_the_override(tmp_path):
    message = error_of(write(tmp_path, "r.yaml", "data: {}\n"), ["data.subsett=5"])
    assert message == "--set data.subsett=5: data.subsett: unknown key (did you mean 'subset'?)"


def test_set_through_a_value_is_an_error(tmp_path):
    message = error_of(write(tmp_path, "r.yaml", "data: {subset: 4}\n"), ["data.subset.x=1"])
    assert "data.subset is a value, not a section" in message


def test_empty_and_non_mapping_recipes(tmp_path):
    assert "recipe is empty" in error_of(write(tmp_path, "e.yaml", ""))
    assert "a recipe is a mapping" in error_of(write(tmp_path, "l.yaml", "- a\n- b\n"))


def test_parse_override_types():
    assert parse_override("a.b=3") == ("a.b", 3)
    assert parse_override("a.b=[x, y]") == ("a.b", ["x", "y"])
    assert parse_override("a.b=null") == ("a.b", None)


@pytest.mark.parametrize(("override", "expected"), [
    ("training.learning_rate=0", "training.learning_rate: must be > 0, got 0.0"),
    ("training.learning_rate=-1e-5", "training.learning_rate: must be > 0, got -1e-05"),
    ("training.num_generations=1", "training.num_generations: must be >= 2, got 1"),
    ("training.max_completion_length=0", "training.max_completion_length: must be > 0, got 0"),
    ("training.temperature=0", "training.temperature: must be > 0, got 0.0"),
    ("training.max_steps=0", "training.max_steps: 0 trains nothing"),
])
def test_values_trl_accepts_but_cannot_train_with_are_refused_at_load(tmp_path, override, expected):
    """TRL takes these and crashes (or learns nothing) at the first step, after the model has loaded."""
    message = error_of(write(tmp_path, "r.yaml", "model: {name: x}\n"), [override])
    assert message == f"--set {override}: {expected}" or expected in message


def test_a_numeric_name_is_text(tmp_path):
    recipe = load_recipe(write(tmp_path, "r.yaml", "output: {run_name: 2024}\n"), ["model.name=1234"])
    assert recipe.output.run_name == "2024" and recipe.run_dir.name == "2024" and recipe.model.name == "1234"
