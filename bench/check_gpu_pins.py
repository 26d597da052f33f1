"""`make check-gpu-pins`: every pin in requirements-gpu.txt against what each pinned package declares (the
Requires-Dist of its published wheel), for the machines the set is for: Linux x86_64, CPython 3.11 and 3.12
(Colab's). No GPU and no install: pip reads the wheels' metadata only (PEP 658 files, not the wheels), cached in
.cache/gpu-pins/. Prints one line per conflict and exits 1; exit 2 for a file it cannot read.

    python bench/check_gpu_pins.py [--requirements requirements-gpu.txt] [--metadata DIR] [--resolve]

`--metadata DIR` reads `NAME-VERSION.json` files ({"requires_dist": [...]}) instead of asking pip (offline tests);
`--resolve` also has pip resolve the whole set with every transitive dependency (235 packages; about 4 minutes
per Python).
Beside the other maintainer tools in bench/ (probe_runs.py, report.py): scripts/ holds the jobs users run.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.errors import UserError  # noqa: E402 - the repo root is on sys.path now
from utils.models import PINNED_CUDA_MAJOR  # noqa: E402

PYTHONS = ("3.11", "3.12")
CACHE = ROOT / ".cache" / "gpu-pins"
# pip takes only the platform tags it is given: every manylinux a current x86_64 Linux accepts.
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(39, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]

# (name, version, python) -> the package's Requires-Dist lines, or None when no wheel fits that Python.
Fetch = Callable[[list[tuple[str, str]], str], dict[tuple[str, str], list[str] | None]]


def read_requirements(path: Path) -> dict[str, Requirement]:
    """The requirement lines of a pip requirements file, by canonical name (comments and options skipped)."""
    if not path.is_file():
        raise UserError(f"{path}: no such requirements file")
    found: dict[str, Requirement] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as err:
            raise UserError(f"{path}:{number}: not a requirement line ({err}): fix or comment it") from None
        found[canonicalize_name(req.name)] = req
    return found


def pinned_version(req: Requirement) -> str | None:
    """X for `name==X` (no wildcard), else None."""
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return specs[0].version
    return None


def environment(python: str, extra: str = "") -> dict[str, str]:
    env = default_environment()
    env.update(sys_platform="linux", platform_system="Linux", platform_machine="x86_64", os_name="posix",
               implementation_name="cpython", platform_python_implementation="CPython",
               python_version=python, python_full_version=f"{python}.0", extra=extra)
    return env


def applies(req: Requirement, python: str, extras: set[str]) -> bool:
    """Whether a Requires-Dist line is in force on Linux x86_64 with this Python and the extras asked for."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate(environment(python, extra)) for extra in {"", *extras})


def check(pins: dict[str, Requirement], fetch: Fetch, pythons: tuple[str, ...] = PYTHONS,
          source: str = "requirements-gpu.txt") -> list[str]:
    """One line per conflict between the pins and what the pinned packages declare, naming the Pythons it holds on."""
    exact = {name: version for name, req in pins.items() if (version := pinned_version(req))}
    found: dict[str, list[str]] = {}  # conflict -> the Pythons it shows on
    for python in pythons:
        metadata = fetch(sorted(exact.items()), python)
        wanted: dict[str, list[tuple[Requirement, str]]] = {}  # name -> (requirement, who asks)
        problems = []
        for name, version in sorted(exact.items()):
            requires = metadata.get((name, version))
            if requires is None:
                problems.append(f"{name}=={version}: no wheel for Linux x86_64")
                continue
            for line in requires:
                req = Requirement(line)
                if applies(req, python, set(pins[name].extras)):
                    wanted.setdefault(canonicalize_name(req.name), []).append((req, f"{name} {version}"))
        problems += _unmet(pins, exact, wanted, source) + _cuda_build(exact, metadata)
        for problem in problems:
            found.setdefault(problem, []).append(python)
    return [f"{problem} (Python {', '.join(on)})" for problem, on in found.items()]


def _unmet(pins: dict[str, Requirement], exact: dict[str, str], wanted: dict[str, list[tuple[Requirement, str]]],
           source: str) -> list[str]:
    """Each requirement a pin breaks, and each unpinned package two exact requirements disagree on."""
    problems = []
    for name, asks in sorted(wanted.items()):
        if name in exact:
            problems += [f"{who} needs {req.name}{req.specifier}; {source} pins {name}=={exact[name]}"
                         for req, who in asks
                         if not req.specifier.contains(exact[name], prereleases=True)]
            continue
        own = [(pins[name], source)] if name in pins else []
        for req, who in asks:  # an exact version someone requires must satisfy everyone else's range
            version = pinned_version(req)
            if version is None:
                continue
            problems += [f"{who} needs {name}=={version}, but {other} needs {name}{other_req.specifier}"
                         for other_req, other in own + asks
                         if not other_req.specifier.contains(version, prereleases=True)]
    return problems


def _cuda_build(exact: dict[str, str], metadata: dict) -> list[str]:
    """The pinned torch's CUDA major (from its own requirements) is the one utils/models/_gpu.py checks drivers for."""
    requires = metadata.get(("torch", exact.get("torch", "")))
    if not requires:
        return []
    majors = {int(m) for line in requires for m in re.findall(r"(?:-cu|cuda-toolkit.*==)(\d+)", line)}
    if majors and majors != {PINNED_CUDA_MAJOR}:
        return [f"torch {exact['torch']} is a CUDA {'/'.join(map(str, sorted(majors)))} build, but "
                f"utils/models/_gpu.py checks drivers for CUDA {PINNED_CUDA_MAJOR} (PINNED_CUDA_MAJOR, MIN_DRIVER): "
                "update them"]
    return []


def directory_fetch(folder: Path) -> Fetch:
    """Metadata from `NAME-VERSION.json` files ({"requires_dist": [...]}); a missing file is a missing wheel."""

    def fetch(pins: list[tuple[str, str]], python: str) -> dict[tuple[str, str], list[str] | None]:
        found = {}
        for name, version in pins:
            path = folder / f"{name}-{version}.json"
            found[(name, version)] = (json.loads(path.read_text()).get("requires_dist") or []) if path.is_file() else None
        return found

    return fetch


def _pip_report(specs: list[str], python: str, deps: bool = False) -> dict | None:
    """pip's dry-run install report for these specs on Linux x86_64 with this Python; None when pip refuses."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                   *[arg for platform in PLATFORMS for arg in ("--platform", platform)],
                   "--target", str(Path(tmp) / "target"), "--report", str(report), *([] if deps else ["--no-deps"]),
                   *specs]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not report.is_file():
            return None
        return json.loads(report.read_text())


def pip_fetch(cache: Path = CACHE) -> Fetch:
    """Published metadata through pip (wheel METADATA only), cached per package, version and Python."""

    def fetch(pins: list[tuple[str, str]], python: str) -> dict[tuple[str, str], list[str] | None]:
        def cached(name: str, version: str) -> Path:
            return cache / f"{name}-{version}-py{python}.json"

        # ===: the published version itself, never a local build such as torch 2.13.0+cpu in a local wheel folder
        missing = [f"{n}==={v}" for n, v in pins if not cached(n, v).is_file()]
        if missing:
            report = _pip_report(missing, python)
            # pip refuses the whole batch for one unavailable pin: then ask one by one to learn which
            reports = [report] if report else [_pip_report([spec], python) for spec in missing]
            cache.mkdir(parents=True, exist_ok=True)
            for item in (i for r in reports if r for i in r["install"]):
                meta = item["metadata"]
                path = cached(canonicalize_name(meta["name"]), meta["version"])
                path.write_text(json.dumps({"requires_dist": meta.get("requires_dist") or []}))
        return {pin: json.loads(cached(*pin).read_text())["requires_dist"] if cached(*pin).is_file() else None
                for pin in pins}

    return fetch


def resolve_all(path: Path, pythons: tuple[str, ...] = PYTHONS) -> list[str]:
    """pip's own full resolution of the file (every transitive dependency), one line per Python it fails on."""
    return [f"pip cannot resolve {path.name} for Linux x86_64 Python {python}"
            for python in pythons if _pip_report(["-r", str(path)], python, deps=True) is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requirements", type=Path, default=ROOT / "requirements-gpu.txt")
    parser.add_argument("--metadata", type=Path, help="NAME-VERSION.json files instead of pip (offline)")
    parser.add_argument("--resolve", action="store_true", help="also resolve the whole set with pip (minutes)")
    args = parser.parse_args(argv)
    try:
        pins = read_requirements(args.requirements)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    fetch = directory_fetch(args.metadata) if args.metadata else pip_fetch()
    problems = check(pins, fetch, source=args.requirements.name)
    problems += resolve_all(args.requirements) if args.resolve else []
    for line in problems:
        print(f"conflict: {line}")
    exact = sum(1 for req in pins.values() if pinned_version(req))
    print(f"{args.requirements.name}: {exact} pins checked against their published requirements "
          f"(Linux x86_64, Python {', '.join(PYTHONS)}): " + (f"{len(problems)} conflicts" if problems else "no conflict"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
