"""The Colab quick start: a valid notebook whose cells name only scripts, recipes and make targets that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")  # requirements-dev.txt; the extra environments may lack it

ROOT = Path(__file__).resolve().parents[1]
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
