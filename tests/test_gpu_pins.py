"""bench/check_gpu_pins.py (`make check-gpu-pins`): the GPU pins against each pinned package's declared requirements.

Offline: the published metadata is stood in for by NAME-VERSION.json files (--metadata); the real fetch through
pip runs in CI as `make check-gpu-pins`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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
