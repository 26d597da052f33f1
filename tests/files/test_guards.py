"""Every script as careful as grpo_train.py (issue 24): an unwritable --out is one line and exit 2, a stop is
exit 130/143 with a true line and the command that continues, one evaluation at a time in a folder, a
stopped demo lets its running step save, and --help says what --force does."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.repo import ROOT
from utils.errors import UserError
from utils.evaluation import summarize, write_report


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


@pytest.fixture(params=["read-only", "under-a-file"])
def unwritable(request, tmp_path):
    """An --out that cannot be written, as root too (where chmod 0o500 stops nothing): a folder on a read-only
    tmpfs mount (root, where mounting is permitted), a 0o500 folder (not root), else a folder under /sys; or a
    path under a regular file."""
    if request.param == "under-a-file":
        (tmp_path / "a-file").write_text("x")
        yield tmp_path / "a-file" / "out"
        return
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        yield folder / "out"
        folder.chmod(0o700)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    yield folder / "out" if mounted else Path("/sys/grpo-math-test/out")
    if mounted:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture(scope="module")
def bench_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "sums.jsonl"
    path.write_text("".join(json.dumps({"problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                            for i in range(24)))
    return path


def plant_evaluation(folder: Path, model: str) -> Path:
    records = [{"id": f"p{i}", "sample": 0, "problem": f"{i} + {i}?", "completion": "...", "predicted": str(2 * i),
                "gold": str(2 * i), "correct": i % 2 == 0, "tokens": 3, "truncated": False} for i in range(4)]
    (folder / "sums").mkdir(parents=True)
    (folder / "sums" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "sums" / "summary.json").write_text(json.dumps(summarize(records, 1)))
    write_report(folder, model)
    return folder


# ---------------------------------------------------------------------------------------------
# Item 2: an unwritable --out


def test_evaluate_with_an_unwritable_out_is_one_line(unwritable, tiny_model_dir, bench_file, run_script):
    line = one_line_error(run_script("evaluate", tiny_model_dir, "--bench", bench_file, "--limit", "1",
                                     "--max-new-tokens", "2", "--no-progress", "--backend", "hf", "--out", unwritable))
    assert line.startswith("error: --out: ") and str(unwritable) in line


def test_compare_with_an_unwritable_out_is_one_line(unwritable, tmp_path, run_script):
    a, b = plant_evaluation(tmp_path / "a", "a"), plant_evaluation(tmp_path / "b", "b")
    line = one_line_error(run_script("compare", a, b, "--out", unwritable))
    assert line.startswith("error: --out: ") and str(unwritable) in line


def test_merge_lora_with_an_unwritable_out_is_one_line(unwritable, tiny_model_dir, tmp_path, run_script):
    from tests.eval_helpers import save_adapter

    adapter = save_adapter(tiny_model_dir, tmp_path / "adapter")
    line = one_line_error(run_script("merge_lora", adapter, "--no-verify", "--out", unwritable))
    assert line.startswith("error: --out: ") and str(unwritable) in line


def test_import_gguf_with_an_unwritable_out_is_one_line(unwritable, tiny_model_dir, tmp_path, run_script):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.export._gguf_out import write_gguf  # not public: a test builds its input with it

    gguf = write_gguf(AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir),
                      tiny_model_dir, tmp_path / "tiny.gguf", "f16")
    line = one_line_error(run_script("import_gguf", gguf, "--no-verify", "--out", unwritable))
    assert line.startswith("error: --out: ") and str(unwritable) in line


def test_not_enough_space_is_refused_naming_the_key(tmp_path):
    from utils.files import check_free_space

    with pytest.raises(UserError, match=rf"--out: not enough disk space for {tmp_path / 'out'} "):
        check_free_space(tmp_path / "out", 10**18, "--out", "the export")


# ---------------------------------------------------------------------------------------------
# Item 3: SIGTERM to evaluate.py mid-benchmark


def test_sigterm_mid_benchmark_keeps_the_samples_says_so_and_the_printed_command_continues(tiny_model_dir, bench_file,
                                                                                         tmp_path):
    out = tmp_path / "eval"
    args = [sys.executable, "scripts/evaluate.py", str(tiny_model_dir), "--bench", str(bench_file), "--batch-size",
            "1", "--max-new-tokens", "2", "--no-progress", "--backend", "hf", "--out", str(out), "--force"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples = out / "sums" / "samples.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (samples.exists() and samples.read_text().count("\n") >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    kept = samples.read_text().count("\n")
    assert proc.returncode == 143, output[-3000:]
    assert 2 <= kept < 24, "the signal should land mid-benchmark"
    assert "before anything was saved" not in output and f"stopped by SIGTERM with the samples so far kept in {out}" in output
    hint = next(line for line in output.splitlines() if line.startswith("continue with: "))
    command = shlex.split(hint.removeprefix("continue with: "))
    assert "--force" not in command  # it would throw the kept samples away
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    ids = [json.loads(line)["id"] for line in samples.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 24  # continued, nothing counted twice
    assert json.loads((out / "sums" / "summary.json").read_text())["generated_now"] == 24 - kept


def test_a_stop_says_nothing_was_saved_only_when_true_and_exits_128_plus_the_signal(tmp_path):
    script = tmp_path / "stopper.py"
    script.write_text(
        f"import os, signal, sys, time\nsys.path.insert(0, {str(ROOT)!r})\n"
        "from utils.cli import run_main, on_stop\n"
        # Python's own Ctrl-C handler, as a terminal gives it, whatever SIGINT disposition the test run inherited
        # (a background job's is "ignore")
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "def main(argv):\n"
        "    on_stop('python again.py', saved=lambda: 'with half of it kept' if len(sys.argv) > 2 else None)\n"
        "    os.kill(os.getpid(), getattr(signal, sys.argv[1]))\n"
        # not signal.pause(): a signal another thread took before pause() began would leave it waiting forever
        "    while True:\n"
        "        time.sleep(0.05)\n"
        "run_main(main)\n")
    for sig, code in (("SIGTERM", 143), ("SIGINT", 130)):
        for kept in (False, True):
            done = subprocess.run([sys.executable, str(script), sig, *(["kept"] if kept else [])], capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == code, done.stderr
            said = done.stdout + done.stderr
            assert "Traceback" not in said
            if kept:
                assert f"stopped by {sig} with half of it kept" in said and "continue with: python again.py" in said
            else:
                assert f"stopped by {sig} before anything was saved; start again with: python again.py" in said


# ---------------------------------------------------------------------------------------------
# Item 4: demo.py forwards a stop to its running step

FAKE_STEP = '''"""Stands in for one of the scripts demo.py runs: records its call; a fake training waits for SIGTERM,
then (like grpo_train.py) finishes its step, saves a complete checkpoint and exits 143."""
import json, signal, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
name = Path(sys.argv[0]).stem
with open("calls.jsonl", "a") as f:
    f.write(json.dumps([name, *sys.argv[1:]]) + "\\n")
if name == "grpo_train" and "--resume" not in sys.argv:
    from utils.config import load_recipe
    from utils.runs import mark_complete
    sets = [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--set"]
    run = load_recipe(sys.argv[1], sets).run_dir
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    Path("training.started").write_text("")
    while not stop:
        time.sleep(0.05)
    time.sleep(1.0)  # the rest of the step, then the save: a SIGKILL now would lose it
    (run / "checkpoint-1").mkdir(parents=True)
    (run / "checkpoint-1" / "trainer_state.json").write_text("{{}}")
    mark_complete(run / "checkpoint-1", 1)
    print("stopped by SIGTERM at step 1", flush=True)
    sys.exit(143)
if name == "compare":
    out = Path(sys.argv[sys.argv.index("--out") + 1])
    out.mkdir(parents=True, exist_ok=True)
    row = {{"problems": 64, "ci95": [0.0, 1.0]}}
    (out / "comparison.json").write_text(json.dumps({{"models": ["a", "b"], "benchmarks": {{"openr1-val": [
        {{**row, "model": "a", "pass@1": 0.1}}, {{**row, "model": "b", "pass@1": 0.2, "delta": 0.1,
        "delta_ci95": [-0.1, 0.3], "forgotten": [], "learned": []}}]}}}}))
'''


@pytest.fixture
def fake_tree(tmp_path) -> Path:
    """A working folder where demo.py's steps are fakes (scripts/NAME.py) and its model 'exists'."""
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    for name in ("evaluate", "grpo_train", "merge_lora", "compare"):
        (tree / "scripts" / f"{name}.py").write_text(FAKE_STEP.format(root=str(ROOT)))
    (tree / "recipes").mkdir()
    (tree / "recipes" / "demo.yaml").write_text((ROOT / "recipes" / "demo.yaml").read_text())
    model = tree / ".cache" / "models" / "SmolLM2-135M-Instruct"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    return tree


def calls(tree: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tree / "calls.jsonl").read_text().splitlines()]


def test_sigterm_to_demo_lets_the_training_step_save_and_the_printed_command_continues_it(fake_tree):
    demo = [sys.executable, str(ROOT / "scripts" / "demo.py"), "--name", "stopped"]
    proc = subprocess.Popen(demo, cwd=fake_tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (fake_tree / "training.started").exists():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output[-3000:]
    run = fake_tree / "checkpoints" / "stopped"
    assert (run / "checkpoint-1" / "checkpoint.complete").is_file()  # the step was let finish, not killed
    assert "before anything was saved" not in output
    assert f"stopped by SIGTERM in 3. GRPO training with checkpoint {Path('checkpoints/stopped/checkpoint-1')}" in output
    hint = next(line for line in output.splitlines() if line.startswith("continue with: "))
    command = shlex.split(hint.removeprefix("continue with: "))
    assert command[-1] == "--resume" and "--name" in command

    again = subprocess.run(command, cwd=fake_tree, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, (again.stdout[-3000:], again.stderr[-3000:])
    trainings = [c for c in calls(fake_tree) if c[0] == "grpo_train"]
    assert "--force" in trainings[0] and "--resume" in trainings[1] and "--force" not in trainings[1]


def test_a_step_that_does_not_stop_in_time_is_killed_and_said_so(tmp_path):
    child = tmp_path / "stubborn.py"
    child.write_text("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                     "open('started', 'w').close()\ntime.sleep(60)\n")
    driver = tmp_path / "driver.py"
    driver.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom utils.cli import run_child, run_main\n"
                      f"run_main(lambda argv: run_child([sys.executable, {str(child)!r}], grace_s=1.0).returncode)\n")
    proc = subprocess.Popen([sys.executable, str(driver)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "started").exists():
        time.sleep(0.05)
    started = time.time()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.time() - started < 30, output
    assert "did not stop within 1 s: killed" in output


# ---------------------------------------------------------------------------------------------
# Item 5: one evaluation at a time in an output folder


def test_a_second_evaluation_into_the_same_out_is_refused_naming_the_holder(tiny_model_dir, bench_file, tmp_path,
                                                                             run_script):
    from utils.runs import FolderLock

    out = tmp_path / "eval"
    with FolderLock(out):
        line = one_line_error(run_script("evaluate", tiny_model_dir, "--bench", bench_file, "--limit", "1",
                                         "--max-new-tokens", "2", "--no-progress", "--backend", "hf", "--out", out))
    assert f"{out} is in use by an evaluation in progress (pid {os.getpid()})" in line
    assert not (out / "sums").exists()


# ---------------------------------------------------------------------------------------------
# Item 11: --help tells the truth about --force


def test_help_says_what_force_does_alone_and_with_resume(run_script):
    result = run_script("grpo_train", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    force = text[text.index("options:"):][text[text.index("options:"):].index("--force"):]
    assert "start over" in force and "with --resume" in force and "recipe changed" in force
