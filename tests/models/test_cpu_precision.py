"""bf16 on CPU only where the CPU computes it natively (issue #23): the probe, the one decision taken from it
for training, sampling and evaluation, what the plan says, and recipes that choose for themselves."""

from __future__ import annotations

import logging
import platform
from pathlib import Path

import pytest

from tests.repo import ROOT
from utils.config import load_recipe
from utils.errors import UserError

SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"


def set_up(tiny_model_dir, tmp_path, hw, *sets: str):
    from utils.training import set_up_run

    recipe = load_recipe(SMOKE, [f"model.name={tiny_model_dir}", f"output.dir={tmp_path}", *sets])
    return set_up_run(recipe, hw)


@pytest.mark.parametrize(("capability", "native", "forced", "bf16"), [
    ("AVX512", True, None, True),
    ("AVX2", False, None, False),  # bf16 matmuls would fall to PyTorch's scalar GEMM
    ("AVX512", True, "0", False),  # the override decides, either way
    ("AVX2", False, "1", True),
])
def test_probe_reads_torch_and_the_override_forces_the_decision(cpu_kind, capability, native, forced, bf16):
    hw = cpu_kind(capability, native, forced)
    assert (hw.cpu.capability, hw.cpu.native_bf16, hw.cpu.bf16) == (capability, native, bf16)


def test_a_bad_override_is_a_user_error(cpu_kind):
    with pytest.raises(UserError, match=r"GRPO_MATH_CPU_BF16='maybe': expected 1 .* or 0"):
        cpu_kind("AVX2", False, "maybe")


@pytest.mark.parametrize(("native", "sets", "bf16", "copy"), [
    (True, [], True, "bf16"),  # the machine decides: bf16 autocast, sampling from a bf16 copy
    (False, [], False, "fp32"),  # fp32 training, sampling from an fp32 copy
    (True, ["training.bf16=false"], False, "fp32"),  # the recipe's choice, and the copy follows training
    (False, ["training.bf16=true"], True, "bf16"),
    (True, ["model.cpu_bf16_generation=false"], True, "fp32"),
    (False, ["model.cpu_bf16_generation=true"], False, "bf16"),
    (False, ["training.bf16=true", "model.cpu_bf16_generation=false"], True, "fp32"),
])
def test_precision_is_the_machine_s_unless_the_recipe_sets_it(tiny_model_dir, tmp_path, cpu_kind, native, sets,
                                                              bf16, copy):
    hw = cpu_kind("AVX512" if native else "AVX2", native)
    setup = set_up(tiny_model_dir, tmp_path, hw, *sets)
    assert bool(setup.config.bf16) is bf16 and setup.config.use_cpu
    assert setup.cpu_generation_copy == copy


def test_evaluation_s_auto_dtype_takes_the_same_decision(cpu_kind):
    from utils.evaluation import eval_dtype

    assert eval_dtype("auto", cpu_kind("AVX512", True)) == "bfloat16"
    assert eval_dtype("auto", cpu_kind("AVX2", False)) == "float32"
    assert eval_dtype("auto", cpu_kind("AVX512", True, forced="0")) == "float32"
    assert eval_dtype("bfloat16", cpu_kind("AVX2", False)) == "bfloat16"  # asked for: kept


@pytest.mark.parametrize(("native", "machine", "adjusted"), [
    (False, "CPU AVX2, no native bf16: training in fp32, sampling from an fp32 copy",
     "training.bf16: false, model.cpu_bf16_generation: false (CPU AVX2, no native bf16: bf16 matmuls would run "
     "through PyTorch's scalar GEMM, ~10x slower than fp32; set them in the recipe to choose)"),
    (True, "CPU AVX512 with native bf16 (AMX): training in bf16 autocast, sampling from a bf16 copy",
     "training.bf16: true, model.cpu_bf16_generation: true (CPU AVX512 with native bf16 (AMX): bf16 is the fastest "
     "CPU setting measured where the CPU computes it; set them in the recipe to choose)"),
])
def test_plan_names_the_capability_and_the_choice(tiny_model_dir, tmp_path, cpu_kind, native, machine, adjusted):
    from utils.training import format_plan

    plan = format_plan(set_up(tiny_model_dir, tmp_path, cpu_kind("AVX512" if native else "AVX2", native)))
    assert f"Machine    {machine}\n" in plan
    assert f"           {adjusted}\n" in plan or f"Adjusted   {adjusted}\n" in plan
    assert ("  bf16 " in plan) is not native  # the GRPOConfig diff: TRL's use_cpu default is bf16


def test_plan_of_a_forced_decision_says_so(tiny_model_dir, tmp_path, cpu_kind):
    from utils.training import format_plan

    plan = format_plan(set_up(tiny_model_dir, tmp_path, cpu_kind("AVX512", True, forced="0")))
    assert ("Machine    CPU AVX512 with native bf16 (AMX), decided as without it (GRPO_MATH_CPU_BF16=0): "
            "training in fp32, sampling from an fp32 copy\n") in plan


@pytest.mark.parametrize(("native", "sets", "warned"), [
    (False, ["training.bf16=true"], "training.bf16"),
    (False, ["model.cpu_bf16_generation=true"], "model.cpu_bf16_generation"),
    (False, ["training.bf16=true", "model.cpu_bf16_generation=true"], "training.bf16 and model.cpu_bf16_generation"),
    (False, ["training.bf16=false"], None),  # fp32 asked for: nothing to warn about
    (False, [], None),
    (True, ["training.bf16=true"], None),  # native bf16: the recipe asks for the fast setting
])
def test_bf16_asked_of_a_cpu_without_it_warns_once(tiny_model_dir, tmp_path, cpu_kind, caplog, native, sets,
                                                  warned):
    hw = cpu_kind("AVX512" if native else "AVX2", native)
    with caplog.at_level(logging.WARNING, logger="utils.training"):
        set_up(tiny_model_dir, tmp_path, hw, *sets)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("utils.training")]
    if warned is None:
        assert lines == []
    else:
        assert len(lines) == 1 and "\n" not in lines[0]
        assert lines[0].startswith(f"warning: {warned}: true, as the recipe says, on a CPU AVX2, no native bf16: ")


def test_grpo_train_warns_once_in_one_line_and_still_obeys(run_script, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GRPO_MATH_CPU_BF16", "0")  # the decision of a CPU without native bf16, on any CPU
    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", "--set", f"model.name={tiny_model_dir}",
                        "--set", f"output.dir={tmp_path}", "--set", "training.bf16=true", "--dry-run")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "training.bf16: true, as the recipe says" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert ": training in bf16 autocast, sampling from a bf16 copy" in result.stdout


def _has_avx2() -> bool:
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not _has_avx2(), reason="needs an x86 CPU with AVX2 to run torch as an AVX2-only CPU")
def test_an_avx2_only_cpu_is_read_from_torch_itself_and_trains_in_fp32(run_script, tiny_model_dir, tmp_path,
                                                                      monkeypatch):
    """Nothing monkeypatched: a new process whose torch, oneDNN and MKL are limited to AVX2 (as on such a CPU,
    or any x86 CPU run as one) reads no native bf16 from torch and plans fp32."""
    from utils.models import AVX2_ONLY_ENV, CPU_BF16_ENV

    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    for key, value in AVX2_ONLY_ENV.items():
        monkeypatch.setenv(key, value)
    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", "--set", f"model.name={tiny_model_dir}",
                        "--set", f"output.dir={tmp_path}", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Machine    CPU AVX2, no native bf16: training in fp32, sampling from an fp32 copy\n" in result.stdout
