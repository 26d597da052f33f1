"""A newcomer's faults, re-run: bad input and interrupted runs through `scripts/grpo_train.py` (tiny model),
then odd inputs to the scripts that come after training (bench/probe_inputs.py), and their output folders and
stops (bench/probe_scripts.py).

    .venv/bin/python bench/probe_runs.py [NAME ...]   (make probe; about 10 minutes on 2 cores)
    .venv/bin/python bench/probe_runs.py compare.py "relative base"     (only probes whose name holds one of these)

Every probe must end in exit 0 or 2, with exactly one `error:` line on stderr for 2 and no traceback, or in
130 / 143 for a stop; and leave a run folder that the plain command (or `--resume`, where a checkpoint exists),
with the probe's fix, then runs from. Prints one row per probe and exits 1 if any probe fails. NAMEs run only
the probes whose name contains one of them (`bench/probe_runs.py reward disk`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "grpo_train.py"
SMOKE = ROOT / "recipes" / "smoke_cpu.yaml"


@dataclass
class Probe:
    name: str
    sets: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    prepare: Callable[[Path], None] | None = None  # runs first, given the output dir
    signal_after_s: float | None = None  # SIGTERM this long after start (a stop while loading)
    expect: int = 0  # 143: stopped by SIGTERM
    fix: list[str] = field(default_factory=list)  # what the rerun adds: the user's fix after a fault
    small_disk_kib: int | None = None  # run on a tmpfs this small (a private mount namespace, unshare -rm)


def command(out: Path, model: Path, probe: Probe, *extra: str) -> list[str]:
    sets = [f"model.name={model}", f"output.dir={out}", "training.max_steps=2", "training.save_steps=1",
            "eval.every_steps=0", "output.plots=false", *probe.sets]
    return [sys.executable, str(SCRIPT), str(SMOKE), "--no-progress", *[a for s in sets for a in ("--set", s)],
            *probe.flags, *extra]


def run(cmd: list[str], signal_after_s: float | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if signal_after_s is not None:
        time.sleep(signal_after_s)
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def finished_run(model: Path) -> Callable[[Path], None]:
    def prepare(out: Path) -> None:
        run(command(out, model, Probe("setup")))
    return prepare


def damaged_last_checkpoint(model: Path) -> Callable[[Path], None]:
    def prepare(out: Path) -> None:
        run(command(out, model, Probe("setup")))
        optimizer = out / "smoke_cpu" / "checkpoint-2" / "optimizer.pt"
        optimizer.write_bytes(optimizer.read_bytes()[:64])
    return prepare


def can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                          capture_output=True).returncode == 0


def run_on_small_disk(cmd: list[str], out: Path, kib: int) -> subprocess.CompletedProcess:
    """`cmd` with `out` on a tmpfs of `kib` KiB; what it left is copied back to the real `out` afterwards (the
    tmpfs ends with the namespace), so the rerun continues from it at the same paths, with room."""
    stage = out.with_name(out.name + ".stage")
    stage.mkdir()
    script = (f"mount -t tmpfs -o size={kib}k tmpfs {out} || exit 99; {shlex.join(cmd)}; rc=$?; "
              f"cp -a {out}/. {stage}/; exit $rc")
    result = run(["unshare", "-rm", "sh", "-c", script])
    for path in stage.iterdir():
        shutil.move(str(path), out / path.name)
    stage.rmdir()
    return result


MISBEHAVES = "rewards.tests.custom_rewards.misbehaves"  # scores 0.5 at step 1, then fails as `how` says


def misbehaving_reward(how: str, skip: bool = False) -> Probe:
    """A custom reward that fails at step 2; fixed by scoring failures as None (raise, NaN, inf) or, for a
    wrong shape (a bug skip cannot cover), by a fixed reward (`from_step` past the run) and --force."""
    name = f"reward: {how}" + (", rewards_on_error: skip" if skip else "")
    sets = [f"{MISBEHAVES}={{weight: 1.0, how: {how}}}", *(["rewards_on_error=skip"] if skip else [])]
    fix = ["--set", "rewards_on_error=skip"] if how in ("raise", "nan", "inf") else \
        ["--force", "--set", f"{MISBEHAVES}={{weight: 1.0, how: {how}, from_step: 99}}"]
    return Probe(name, sets=sets, expect=0 if skip else 2, fix=[] if skip else fix)


def huge_problem_file(out: Path) -> None:
    rows = [json.loads(line) for line in (ROOT / "data" / "openr1_sample.jsonl").read_text().splitlines()]
    rows[0]["problem"] = "Compute 1 + 1. " * 7000
    (out / "huge.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def probes(model: Path, tmp: Path) -> list[Probe]:
    return [
        Probe("first run"),
        Probe("finished run, --resume", flags=["--resume"], prepare=finished_run(model)),
        Probe("--resume, another dataset", flags=["--resume"], prepare=finished_run(model),
              sets=["data.dataset=data/openr1_sample.jsonl", "prompt.format=xml"], expect=2),
        Probe("damaged complete checkpoint, --resume", flags=["--resume", "--set", "training.max_steps=3"],
              prepare=damaged_last_checkpoint(model)),
        Probe("SIGTERM while loading", signal_after_s=4.0, expect=143),
        Probe("negative learning rate", sets=["training.learning_rate=-1e-5"], expect=2),
        Probe("zero learning rate", sets=["training.learning_rate=0"], expect=2),
        Probe("output.dir is a file", sets=[f"output.dir={tmp / 'a-file'}"],
              prepare=lambda out: (tmp / "a-file").write_text("x"), expect=2),
        Probe("output.dir on a read-only filesystem", sets=["output.dir=/proc/grpo-probe"], expect=2),
        Probe("missing data file", sets=["data.dataset=nope.jsonl"], expect=2),
        Probe("missing decontamination file", sets=["data.filters.decontaminate=[nope.jsonl]"], expect=2),
        Probe("missing model folder", sets=["model.name=./no-such-model"], expect=2),
        Probe("100k-character problem", sets=["data.cache=false"], prepare=huge_problem_file),
        Probe("numeric run name", sets=["output.run_name=2024"]),
        Probe("stale lock of a dead run", prepare=lambda out: (out / "smoke_cpu").mkdir(parents=True)
              or (out / "smoke_cpu" / ".lock").write_text("999999\n")),
        # a 470 KiB disk holds checkpoint-1 (~300 KiB with the logs), not checkpoint-2: torch's writer fails
        Probe("disk fills during a checkpoint save", small_disk_kib=470, expect=2),
        *[misbehaving_reward(how) for how in ("raise", "short", "scalar", "nan", "inf")],
        misbehaving_reward("raise", skip=True),
    ]


def check(result: subprocess.CompletedProcess, expect: int) -> str | None:
    if result.returncode not in (0, 2, 130, 143):
        return f"exit {result.returncode}"
    if "Traceback" in result.stderr:
        return "traceback"
    if result.returncode != expect:
        return f"exit {result.returncode}, expected {expect}"
    errors = [line for line in result.stderr.strip().splitlines() if line]
    if expect == 2 and (len(errors) != 1 or not errors[0].startswith("error: ")):
        return f"{len(errors)} stderr lines"
    return None


def usable(out: Path, model: Path, probe: Probe) -> str | None:
    """The plain command runs from what the probe left (with --resume where a checkpoint exists)."""
    folder = out / ("2024" if "output.run_name=2024" in probe.sets else "smoke_cpu")
    fixed = Probe("rerun", sets=[s for s in probe.sets if not s.startswith(("output.dir", "training.learning_rate",
                                                                           "model.name", "data.dataset",
                                                                           "data.filters", "prompt"))])
    from utils.runs import last_complete_checkpoint  # main() put the repository on sys.path

    resume = ["--resume"] if last_complete_checkpoint(folder) else []
    again = run(command(out, model, fixed, *resume, *probe.fix))
    return None if again.returncode == 0 else f"rerun exit {again.returncode}: {again.stderr.strip()[-200:]}"


def chosen(name: str, only: list[str]) -> bool:
    return not only or any(text in name for text in only)


def main(only: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from probe_inputs import run_script_probe, script_probes
    from probe_scripts import guard_probes

    from utils.models import build_tiny_qwen2

    failures = ran = 0
    small_disk = can_mount_tmpfs()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = build_tiny_qwen2(tmp / "tiny")
        for i, probe in enumerate(probes(model, tmp)):
            if not chosen(probe.name, only):
                continue
            if probe.small_disk_kib and not small_disk:
                print(f"skip {probe.name:<48} (no private mount namespace here: unshare -rm)", flush=True)
                continue
            ran += 1
            out = tmp / f"probe{i}"
            out.mkdir()
            if probe.prepare:
                probe.prepare(out)
            started = time.perf_counter()
            if probe.small_disk_kib:
                result = run_on_small_disk(command(out, model, probe), out, probe.small_disk_kib)
            else:
                result = run(command(out, model, probe), probe.signal_after_s)
            problem = check(result, probe.expect) or usable(out, model, probe)
            failures += report(probe.name, result, problem, started)
        for i, script_probe in enumerate(script_probes(model)):
            if not chosen(script_probe.name, only):
                continue
            ran += 1
            folder = tmp / f"script{i}"
            folder.mkdir()
            started = time.perf_counter()
            result = run_script_probe(script_probe, folder)
            failures += report(script_probe.name, result, check(result, script_probe.expect), started)
        guarded = guard_probes(model, tmp, lambda name: chosen(name, only), check, report)
        ran, failures = ran + guarded[0], failures + guarded[1]
    print(f"{failures} of {ran} probes failed" if failures else f"all {ran} probes passed")
    return 1 if failures else 0


def report(name: str, result: subprocess.CompletedProcess, problem: str | None, started: float) -> int:
    """One row: ok or FAIL, the exit code, the time, and the last line the script said (or what is wrong)."""
    said = (result.stderr.strip().splitlines() or [""])[-1][:90] if result.returncode == 2 else \
        (result.stdout.strip().splitlines() or [""])[-1][:90]
    print(f"{'ok  ' if problem is None else 'FAIL'} {name:<48} exit {result.returncode} "
          f"({time.perf_counter() - started:4.1f} s)  {problem or said}", flush=True)
    return problem is not None


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
