"""The GPU set without a GPU: bench/check_gpu_pins.py (`make check-gpu-pins`) holding the pins to each pinned
package's declared requirements, the machine check before installing (scripts/check_gpu.py), and `make gpu-check`
refusing a machine without a GPU.

Offline: the published metadata is stood in for by NAME-VERSION.json files (--metadata); the real fetch through
pip runs in CI as `make check-gpu-pins`. nvidia-smi is stood in for by a function returning its CSV."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.repo import ROOT

_spec = importlib.util.spec_from_file_location("check_gpu_pins", ROOT / "bench" / "check_gpu_pins.py")
check_gpu_pins = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_gpu_pins)

CUDA13 = 'cuda-toolkit[cudart]==13.0.3; platform_system == "Linux"'
METADATA = {
    "vllm-0.31.0": ["torch==2.13.0", "transformers<5.18.0,>=5.10.4", 'pywin32; sys_platform == "win32"',
                    'flashinfer-python==0.7.0.post1; platform_machine == "aarch64"'],  # not on x86_64: not checked
    "torch-2.13.0": [CUDA13, 'triton==3.7.1; platform_system == "Linux"'],
    "torch-2.14.0": [CUDA13],
    "transformers-5.17.0": ["tokenizers<0.24.0,>=0.23.1"],
    "unsloth-2026.10.9": ["transformers<=5.17.0", 'trl<=1.15.0; extra == "huggingface"'],
    "trl-1.16.0": ['vllm<=0.31.0,>=0.22.0; extra == "vllm"'],
    "triton-3.7.1": [],
}


def run(tmp_path: Path, capsys, *lines: str, metadata: dict | None = None) -> tuple[int, list[str]]:
    folder = tmp_path / "metadata"
    folder.mkdir(exist_ok=True)
    for stem, requires in (metadata or METADATA).items():
        (folder / f"{stem}.json").write_text(json.dumps({"requires_dist": requires}))
    requirements = tmp_path / "requirements-gpu.txt"
    requirements.write_text("# pins\n" + "\n".join(lines) + "\n")
    code = check_gpu_pins.main(["--requirements", str(requirements), "--metadata", str(folder)])
    return code, capsys.readouterr().out.splitlines()


def test_a_consistent_set_passes(tmp_path, capsys):
    code, out = run(tmp_path, capsys, "vllm==0.31.0", "torch==2.13.0", "transformers==5.17.0", "triton==3.7.1",
                    "unsloth==2026.10.9", "trl==1.16.0", "pyyaml>=6")
    # unsloth's trl bound is in its `huggingface` extra only, trl's vllm bound in its `vllm` extra: not asked for
    assert code == 0, out
    assert out[-1].endswith("6 pins checked against their published requirements (Linux x86_64, Python 3.11, "
                            "3.12): no conflict")


def test_a_deliberately_conflicting_pin_fails_with_one_line(tmp_path, capsys):
    code, out = run(tmp_path, capsys, "vllm==0.31.0", "torch==2.14.0", "transformers==5.17.0")
    assert code == 1
    assert out[:-1] == ["conflict: vllm 0.31.0 needs torch==2.13.0; requirements-gpu.txt pins torch==2.14.0 "
                        "(Python 3.11, 3.12)"]
    assert out[-1].endswith(": 1 conflicts")


def test_an_extra_asked_for_is_checked(tmp_path, capsys):
    code, out = run(tmp_path, capsys, "unsloth[huggingface]==2026.10.9", "transformers==5.17.0", "trl==1.16.0")
    assert code == 1 and "conflict: unsloth 2026.10.9 needs trl<=1.15.0; requirements-gpu.txt pins trl==1.16.0" in out[0]


def test_two_packages_disagreeing_on_an_unpinned_one(tmp_path, capsys):
    metadata = {"a-1.0": ["c==2.0"], "b-1.0": ["c<2"]}
    code, out = run(tmp_path, capsys, "a==1.0", "b==1.0", metadata=metadata)
    assert code == 1 and out[0] == "conflict: a 1.0 needs c==2.0, but b 1.0 needs c<2 (Python 3.11, 3.12)"


def test_a_pin_without_a_wheel_and_a_torch_of_another_cuda(tmp_path, capsys):
    metadata = {"torch-2.13.0": ['nvidia-cudnn-cu12==9.1.0.70; platform_system == "Linux"']}
    code, out = run(tmp_path, capsys, "torch==2.13.0", "vllm==0.99.0", metadata=metadata)
    assert code == 1
    assert "conflict: vllm==0.99.0: no wheel for Linux x86_64 (Python 3.11, 3.12)" in out
    assert any("torch 2.13.0 is a CUDA 12 build, but utils/models/_gpu.py checks drivers for CUDA 13" in line
               for line in out)


def test_an_unreadable_file_is_exit_2(tmp_path, capsys):
    assert check_gpu_pins.main(["--requirements", str(tmp_path / "nope.txt"), "--metadata", str(tmp_path)]) == 2
    assert "no such requirements file" in capsys.readouterr().err


def test_the_shipped_gpu_set_pins_every_package_the_stack_shares():
    pins = check_gpu_pins.read_requirements(ROOT / "requirements-gpu.txt")
    exact = {name for name, req in pins.items() if check_gpu_pins.pinned_version(req)}
    assert {"torch", "transformers", "trl", "datasets", "unsloth", "unsloth-zoo", "vllm", "bitsandbytes", "xformers",
            "peft", "accelerate", "triton", "torchvision"} <= exact


@pytest.mark.parametrize(("python", "marker", "applies"), [
    ("3.12", 'python_version >= "3.12"', True),
    ("3.11", 'python_version >= "3.12"', False),
    ("3.12", 'sys_platform == "darwin"', False),
])
def test_markers_are_read_for_linux_x86_64(python, marker, applies):
    from packaging.requirements import Requirement

    assert check_gpu_pins.applies(Requirement(f"x; {marker}"), python, set()) is applies


def smi(*rows: str):
    return lambda args: "\n".join(rows) + "\n"


@pytest.mark.parametrize(("rows", "said"), [
    ((), "no NVIDIA GPU found"),
    (("Tesla T4, 550.54.15, 7.5, 15360",), "NVIDIA driver 550.54.15 is older than 580, which the pinned torch"),
    (("Tesla V100-SXM2-16GB, 580.95.05, 7.0, 16384",), "compute capability 7.0: CUDA 13 runs on 7.5"),
    (("Tesla T4, 580.82.07, 7.5, 15360",), None),
    (("NVIDIA H100 80GB HBM3, 590.48.01, 9.0, 81559", "NVIDIA H100 80GB HBM3, 590.48.01, 9.0, 81559"), None),
])
def test_the_gpu_and_driver_are_read_before_installing(rows, said):
    from utils.models import MIN_COMPUTE_CAPABILITY, MIN_DRIVER, gpu_problem, query_gpus

    assert MIN_DRIVER == 580 and MIN_COMPUTE_CAPABILITY == (7, 5)  # CUDA 13.0, the pinned torch's build
    gpus = query_gpus(smi(*rows))
    assert len(gpus) == len(rows)
    problem = gpu_problem(gpus)
    assert (problem is None) if said is None else said in problem


def test_a_t4_has_no_vllm_backend_but_an_l4_does():
    from utils.models import query_gpus, vllm_runs_on

    t4, l4 = query_gpus(smi("Tesla T4, 580.82.07, 7.5, 15360", "NVIDIA L4, 580.82.07, 8.9, 23034"))
    assert t4.compute_capability == (7, 5) and not vllm_runs_on(t4.compute_capability)
    assert vllm_runs_on(l4.compute_capability) and vllm_runs_on(None)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA GPU")
@pytest.mark.parametrize("command", [["scripts/check_gpu.py"], ["bench/gpu_check.py", "--steps", "1"]])
def test_without_a_gpu_each_says_so_in_one_line_and_exits_2(command):
    benchmarks = ROOT / "docs" / "BENCHMARKS.md"
    before = benchmarks.stat().st_mtime_ns
    result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ("no NVIDIA GPU found" in lines[0] or "needs a CUDA GPU" in lines[0]), lines
    assert benchmarks.stat().st_mtime_ns == before  # nothing measured, nothing written
