"""The Colab quick start: a valid notebook whose cells name only scripts, recipes and make targets that exist."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.repo import ROOT

nbformat = pytest.importorskip("nbformat")  # requirements-dev.txt; the extra environments may lack it


NOTEBOOK = ROOT / "notebooks" / "colab_quickstart.ipynb"


def code_lines() -> list[str]:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    return [line for cell in notebook.cells if cell.cell_type == "code" for line in cell.source.splitlines()]


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def test_notebook_is_valid_and_names_only_what_exists():
    lines = code_lines()
    scripts = {m for line in lines for m in re.findall(r"scripts/[\w]+\.py", line)}
    recipes = {m for line in lines for m in re.findall(r"recipes/[\w/]+\.yaml", line)}
    targets = {m for line in lines for m in re.findall(r"\bmake ([\w-]+)", line)}
    assert {"scripts/grpo_train.py", "scripts/evaluate.py", "scripts/merge_lora.py"} <= scripts
    assert recipes and targets
    for path in scripts | recipes:
        assert (ROOT / path).is_file(), f"the notebook names {path}, which does not exist"
    assert targets <= make_targets(), f"unknown make targets: {targets - make_targets()}"


def test_notebook_commands_are_the_readmes():
    """Its cells use only the README's commands: every script it runs is documented there."""
    readme = (ROOT / "README.md").read_text()
    for line in code_lines():
        for script in re.findall(r"scripts/\w+\.py", line):
            assert script in readme, f"{script} is run by the notebook but not in the README"


def cell_text(cell) -> str:
    return "".join(out.get("text", "") + "".join(out.get("data", {}).get("text/plain", ""))
                   for out in cell.get("outputs", []))


@pytest.mark.notebook
@pytest.mark.timeout(900)  # about 4 minutes on 2 cores: seven script runs, each importing torch
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="runs the notebook's CPU path (SMOKE)")
def test_notebook_runs_end_to_end_on_cpu(tmp_path):
    """Every cell executed, as Colab would, with the parameters switched to SMOKE (the tiny random model, the bundled
    sample problems, two steps): the GPU-only and Colab-only cells skip with their line, the others must succeed."""
    nbclient = pytest.importorskip("nbclient")  # requirements-dev.txt
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    runs = tmp_path / "runs"
    injected = f"SMOKE = True\nREPO_URL = {str(ROOT)!r}\nRUNS_DIR = {str(runs)!r}"  # papermill's convention
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(injected, metadata={"tags": ["injected-parameters"]}))
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "gpu-only" in tags:
            assert "skipped: needs a CUDA GPU" in cell_text(cell), cell.source
        if "colab-only" in tags:
            assert "skipped: not on Colab" in cell_text(cell), cell.source
    compare = runs / "eval" / "compare"
    assert (compare / "report.md").is_file() and (compare / "retention.png").is_file()
    assert (runs / "smoke_cpu" / "checkpoint-2" / "checkpoint.complete").is_file()
    assert (runs / "smoke_cpu-merged" / "config.json").is_file()


@pytest.mark.parametrize(("url", "said"), [
    ("https://github.com/YOUR-NAME/grpo-math", "STOP: REPO_URL is still the placeholder: put your repository's"),
    ("https://127.0.0.1:9/nobody/grpo-math.git", "STOP: cannot reach https://127.0.0.1:9/nobody/grpo-math.git ("),
    ("/no/such/folder", "STOP: /no/such/folder: no grpo-math folder there"),
])
def test_the_repository_cell_stops_with_one_line_before_cloning(tmp_path, url, said):
    """A placeholder, unreachable or wrong REPO_URL stops Run all at the first cell with what to do; nothing is cloned."""
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    notebook.cells = [cells[0], nbformat.v4.new_code_cell(f"REPO_URL = {url!r}"), cells[1]]  # settings, the repo
    with pytest.raises(nbclient.exceptions.CellExecutionError) as stopped:
        nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = [line for line in str(stopped.value).splitlines() if line.startswith("STOP:")]
    assert len(shown) == 1 and shown[0].startswith(said), str(stopped.value)[-2000:]
    assert not (tmp_path / "grpo-math").exists()
