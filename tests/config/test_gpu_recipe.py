"""Recipe checks for a user's own GPU, tested on CPU with fakes at the seams: the prompt + completion bound,
TRL's documented booleans, TRL's removed max_prompt_length, fast_inference on the hf backend, Unsloth's standby
switch set before Unsloth is imported, the Unsloth adapter's base name, TensorBoard logs, no tokens written."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.repo import ROOT
from utils.config import documents_bool, load_recipe, read_recipe
from utils.errors import UserError
from utils.models import VLLM_STANDBY_ENV, BackendChoice, Hardware, import_backend, restore_base

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"
CPU = Hardware(cuda=False, gpu_name=None, bf16=False, unsloth_installed=False, vllm_installed=False)
GPU = Hardware(cuda=True, gpu_name="T4", bf16=False, unsloth_installed=False, vllm_installed=True)


def recipe(tiny_model_dir: Path, out: Path, *extra: str):
    return load_recipe(SMOKE, [f"model.name={tiny_model_dir}", f"output.dir={out}", *extra])


@pytest.fixture
def set_up(monkeypatch):
    import utils.training._setup as setup

    monkeypatch.setattr(setup, "check_run_paths", lambda recipe: "rows")  # no data read here
    return setup.set_up_run


def test_prompt_bound_is_lowered_to_fit_beside_the_completions(tiny_model_dir, tmp_path, set_up):
    # smoke_cpu: 32 completion tokens; 90 + 32 > 100
    run = set_up(recipe(tiny_model_dir, tmp_path, "model.max_seq_length=100", "data.filters.max_prompt_tokens=90"), CPU)
    assert run.recipe.data.filters.max_prompt_tokens == 68
    assert any(line.startswith("data.filters.max_prompt_tokens: 90 -> 68 (prompt + training.max_completion_length 32 "
                               "must fit model.max_seq_length 100") for line in run.adjustments), run.adjustments
    fits = set_up(recipe(tiny_model_dir, tmp_path, "model.max_seq_length=100", "data.filters.max_prompt_tokens=50"), CPU)
    assert fits.recipe.data.filters.max_prompt_tokens == 50
    assert not [line for line in fits.adjustments if "max_prompt_tokens" in line]
    with pytest.raises(UserError, match="leaves no room for a prompt"):
        set_up(recipe(tiny_model_dir, tmp_path, "model.max_seq_length=32"), CPU)


def test_booleans_trl_documents_are_accepted_where_the_field_is_typed_str(tiny_model_dir, tmp_path):
    from utils.training import set_up_run

    built = recipe(tiny_model_dir, tmp_path, "training.scale_rewards=false")
    assert built.training["scale_rewards"] is False
    assert set_up_run(built, CPU).config.scale_rewards == "none"  # TRL's own mapping
    assert documents_bool("fsdp", "Pass `--fsdp` (or `fsdp=True`) to turn FSDP on.")
    # a field that only mentions another field's True is not a boolean
    assert not documents_bool("vllm_mode", "Mode to use when `use_vllm` is set to `True`. One of 'server'.")
    with pytest.raises(UserError, match="training.vllm_mode: expected str"):
        recipe(tiny_model_dir, tmp_path, "training.vllm_mode=true")


def test_max_prompt_length_points_to_its_replacement(tiny_model_dir, tmp_path):
    with pytest.raises(UserError) as err:
        recipe(tiny_model_dir, tmp_path, "training.max_prompt_length=512")
    message = str(err.value)
    assert "training.max_prompt_length" in message and "data.filters.max_prompt_tokens" in message
    assert "\n" not in message


def test_fast_inference_on_hf_is_trl_colocated_vllm_or_named_as_unused(tiny_model_dir, tmp_path, set_up):
    run = set_up(recipe(tiny_model_dir, tmp_path, "model.backend=hf", "model.fast_inference=true",
                        "model.gpu_memory_utilization=0.3"), GPU)
    assert run.config.use_vllm and run.config.vllm_mode == "colocate"
    assert run.config.vllm_gpu_memory_utilization == 0.3
    assert run.generation == "vLLM (TRL, colocate)"
    assert any(line.startswith("model.fast_inference: true -> training.use_vllm: true") for line in run.adjustments)

    off = set_up(recipe(tiny_model_dir, tmp_path, "model.backend=hf", "model.fast_inference=true",
                        "training.use_vllm=false"), GPU)
    assert not off.config.use_vllm
    assert "model.fast_inference: not used on the hf backend (training.use_vllm: false decides)" in off.adjustments
    no_vllm = Hardware(cuda=True, gpu_name="T4", bf16=False, unsloth_installed=False, vllm_installed=False)
    with pytest.raises(UserError, match="model.fast_inference: true on the hf backend .* vLLM is not installed"):
        set_up(recipe(tiny_model_dir, tmp_path, "model.backend=hf", "model.fast_inference=true"), no_vllm)


@pytest.fixture
def fake_unsloth(tmp_path, monkeypatch):
    """An `unsloth` package that records, when imported, the standby switch it would read."""
    package = tmp_path / "fake" / "unsloth"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"import os\nSTANDBY_AT_IMPORT = os.environ.get({VLLM_STANDBY_ENV!r})\n")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.delenv(VLLM_STANDBY_ENV, raising=False)
    monkeypatch.delitem(sys.modules, "unsloth", raising=False)
    yield lambda: sys.modules["unsloth"].STANDBY_AT_IMPORT
    sys.modules.pop("unsloth", None)
    os.environ.pop(VLLM_STANDBY_ENV, None)


def test_vllm_standby_is_set_before_unsloth_is_imported(fake_unsloth):
    import_backend(BackendChoice("unsloth", "test"), vllm_standby=True)
    assert fake_unsloth() == "1"


def test_vllm_standby_off_leaves_the_environment_alone(fake_unsloth):
    import_backend(BackendChoice("unsloth", "test"))
    assert fake_unsloth() is None


def test_vllm_standby_from_the_recipe_reaches_the_import(tiny_model_dir, tmp_path):
    source = read_recipe(SMOKE, [f"model.name={tiny_model_dir}", "model.fast_inference=true", "model.vllm_standby=true"])
    assert source.requested_vllm_standby
    assert not read_recipe(SMOKE).requested_vllm_standby
    with pytest.raises(UserError, match="model.vllm_standby: only used with model.fast_inference: true"):
        recipe(tiny_model_dir, tmp_path, "model.vllm_standby=true")


def test_unsloth_adapter_names_the_users_base_not_the_prequantized_repo(tmp_path):
    """A fake Unsloth save: the adapter config names the bnb-4bit repo Unsloth loaded instead."""
    from utils.models import find_adapter_base
    from utils.training import RecordedBase

    checkpoint, best = tmp_path / "run" / "checkpoint-2", tmp_path / "run" / "best"
    for folder in (checkpoint, best):
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(json.dumps(
            {"r": 8, "base_model_name_or_path": "unsloth/Qwen2.5-0.5B-Instruct-bnb-4bit"}))

    class Args:
        output_dir = str(tmp_path / "run")

    class State:
        global_step = 2

    RecordedBase("Qwen/Qwen2.5-0.5B-Instruct").on_save(Args(), State(), None)
    for folder in (checkpoint, best):
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == "Qwen/Qwen2.5-0.5B-Instruct"
        assert config["quantized_base_model_name_or_path"] == "unsloth/Qwen2.5-0.5B-Instruct-bnb-4bit"
        assert config["r"] == 8
        assert find_adapter_base(folder) == "Qwen/Qwen2.5-0.5B-Instruct"  # what merge and evaluation load
    assert not restore_base(checkpoint, "Qwen/Qwen2.5-0.5B-Instruct")  # already right: untouched


def test_tokens_in_the_environment_never_reach_the_recipe_or_plan(tiny_model_dir, tmp_path, set_up, monkeypatch):
    from utils.training import format_plan

    secrets = {"HF_TOKEN": "hf_secretTOKEN123", "WANDB_API_KEY": "wandbSECRET456", "HUGGING_FACE_HUB_TOKEN": "hf_x789"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    run = set_up(recipe(tiny_model_dir, tmp_path, "training.report_to=[wandb]"), CPU)
    written = "\n".join([format_plan(run), yaml.safe_dump(run.recipe.to_dict()), json.dumps(run.config.to_dict())])
    for value in secrets.values():
        assert value not in written
    with pytest.raises(UserError, match="training.hub_token: set HF_TOKEN in the environment"):
        recipe(tiny_model_dir, tmp_path, "training.hub_token=hf_abc")


def test_tensorboard_event_files_hold_the_runs_metrics(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from utils.training import run_training

    built = recipe(tiny_model_dir, tmp_path, "training.report_to=[tensorboard]", "training.max_steps=2",
                   "rewards.tests.grpo_helpers.varying_length_reward=1.0", "output.plots=false")
    outcome = run_training(built, progress=False, log=lambda line: None)
    events = sorted(outcome.run_dir.rglob("events.out.tfevents.*"))
    assert events, f"no event files under {outcome.run_dir}"
    tags = set()
    for path in events:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        tags |= set(accumulator.Tags().get("scalars", []))
    assert any(tag.endswith("loss") for tag in tags) and any("reward" in tag for tag in tags), tags
