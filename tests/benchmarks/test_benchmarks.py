"""utils.benchmarks: each benchmark defined once, the data folder found one way, and every name read the same way
by decontamination and evaluation: the data folder's copy (given by --data-dir, $GRPO_MATH_DATA_DIR or beside
the repository), else the hub dataset (a local file stands in for the hub here: no network)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import utils.benchmarks._folder as folder_module
import utils.benchmarks._registry as registry_module
from tests.repo import ROOT
from utils.benchmarks import BENCHMARKS, DATA_DIR_ENV, canonical_name, find_data_dir, locate_benchmark
from utils.config import DataSection, FiltersSection, PromptSection, load_recipe
from utils.data import prepare_data
from utils.errors import UserError
from utils.evaluation import load_benchmark

MODES = ("--data-dir", "env", "beside the repository", "absent")


def planted(name: str) -> str:
    return (f"Planted {name} problem: a jar holds seventeen red marbles and twenty blue marbles, and then "
            "three more are added; how many marbles are in the jar altogether?")


def bench_rows(name: str) -> list[dict]:
    """Two rows in the benchmark's own schema (as the local copies and hub datasets have it)."""
    rows = []
    for i, problem in enumerate((planted(name), f"A filler {name} problem: what is two plus forty?")):
        if name == "gsm8k":
            rows.append({"question": problem, "answer": f"Add them.\n#### {40 + i}"})
        elif name == "math500":
            rows.append({"problem": problem, "solution": f"$\\boxed{{{40 + i}}}$", "answer": str(40 + i),
                         "subject": "Algebra", "level": "3", "unique_id": f"test/algebra/{i}.json"})
        else:  # aime24, amc23
            rows.append({"id": str(i), "problem": problem, "solution": "Count.", "answer": str(40 + i),
                         "url": "https://example.org", "question": problem})
    return rows


def write_data_folder(folder: Path) -> Path:
    for name, spec in BENCHMARKS.items():
        path = folder / spec.local
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in bench_rows(name)))
    return folder


@pytest.fixture
def hub_reads(monkeypatch) -> list[tuple]:
    """The data package's hub loading, with local rows standing in for each hub dataset; records each read."""
    from datasets import Dataset

    by_hub = {spec.hub: name for name, spec in BENCHMARKS.items()}
    reads: list[tuple] = []

    def fake_load_hub(source):
        reads.append((source.name, source.config, source.split))
        return Dataset.from_list(bench_rows(by_hub[source.name]))

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # any real hub call would fail
    monkeypatch.setattr("utils.data._sources.load_hub", fake_load_hub)
    return reads


def place_data_folder(mode: str, tmp_path: Path, monkeypatch) -> tuple[str | None, Path | None]:
    """Make `mode` the way the data folder is found; returns (the --data-dir argument, the folder expected)."""
    folder = write_data_folder(tmp_path / "data")
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(folder_module, "BESIDE_REPO", tmp_path / "no-shared-data")
    if mode == "--data-dir":
        return str(folder), folder
    if mode == "env":
        monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    elif mode == "beside the repository":
        monkeypatch.setattr(folder_module, "BESIDE_REPO", folder)
    return None, (None if mode == "absent" else folder)


# ---------------------------------------------------------------------------------------------
# The data folder and where a name is read from


def test_data_folder_order_is_flag_then_variable_then_beside_the_repository(tmp_path, monkeypatch):
    flag, env, beside = (tmp_path / d for d in ("flag", "env", "beside"))
    for d in (flag, env, beside):
        d.mkdir()
    monkeypatch.setattr(folder_module, "BESIDE_REPO", beside)
    monkeypatch.setenv(DATA_DIR_ENV, str(env))
    assert find_data_dir(str(flag)) == flag
    assert find_data_dir() == env
    monkeypatch.setenv(DATA_DIR_ENV, "")  # set but empty: as unset
    assert find_data_dir() == beside
    monkeypatch.setattr(folder_module, "BESIDE_REPO", tmp_path / "absent")
    assert find_data_dir() is None  # no folder: every named benchmark comes from the hub


def test_a_named_folder_that_does_not_exist_is_one_line_naming_where_it_came_from(tmp_path, monkeypatch):
    with pytest.raises(UserError) as err:
        find_data_dir(str(tmp_path / "typo"))
    assert str(err.value) == f"--data-dir {tmp_path / 'typo'}: no such folder"
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "gone"))
    with pytest.raises(UserError) as err:
        find_data_dir()
    assert str(err.value) == (f"${DATA_DIR_ENV} {tmp_path / 'gone'}: no such folder (unset it to read the "
                              "benchmarks from the hub)")


def test_a_benchmark_is_its_local_copy_when_the_folder_has_it_else_its_hub_dataset(tmp_path):
    folder = write_data_folder(tmp_path / "data")
    (folder / BENCHMARKS["aime24"].local).unlink()
    assert locate_benchmark("math500", folder).dataset == str(folder / "math500" / "math500.jsonl")
    aime = locate_benchmark("aime24", folder)
    assert (aime.local, aime.dataset, aime.config) == (None, "HuggingFaceH4/aime_2024", None)
    gsm8k = locate_benchmark("gsm8k", None)
    assert (gsm8k.dataset, gsm8k.config, gsm8k.benchmark.split) == ("openai/gsm8k", "main", "test")


def test_the_old_name_gsm8k_test_works_with_a_note_printed_once(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(registry_module, "_noted", set())
    assert canonical_name("gsm8k_test") == "gsm8k" and canonical_name("gsm8k_test") == "gsm8k"
    assert canonical_name("math500") == "math500"
    notes = capsys.readouterr().err.strip().splitlines()
    assert notes == ["note: benchmark 'gsm8k_test' is now called 'gsm8k'; the old name still works (rename it)"]
    recipe = tmp_path / "old.yaml"
    recipe.write_text("extends: " + str(ROOT / "recipes" / "smoke_cpu.yaml") + "\n"
                      "data: {filters: {decontaminate: [gsm8k_test]}}\n"
                      "eval: {benchmarks: [{name: gsm8k_test}], best_by: gsm8k_test}\n")
    loaded = load_recipe(recipe)
    assert loaded.data.filters.decontaminate == ["gsm8k"]
    assert [e["name"] for e in loaded.eval.watched()] == ["gsm8k"] and loaded.eval.best_name == "gsm8k"
    assert capsys.readouterr().err == ""  # once per process, not once per use


# ---------------------------------------------------------------------------------------------
# Every name in both places, the folder given each way


def decontaminated(name: str, rows: list[dict], tmp_path: Path):
    train = tmp_path / "train.jsonl"
    rows = copy.deepcopy(rows)
    rows[0]["problem"] = "Problem 3. " + planted(name)
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = DataSection(dataset=str(train), validation=0, cache=False,
                       filters=FiltersSection(decontaminate=[name]))
    prepared = prepare_data(data, PromptSection(), progress=False)
    step = next(s for s in prepared.report.steps if s.name == "decontaminate")
    return step, rows[0]["uuid"] not in prepared.train["id"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_name_reads_the_same_in_decontamination_and_evaluation(
        name, mode, tmp_path, monkeypatch, hub_reads, openr1_rows):
    flag, folder = place_data_folder(mode, tmp_path, monkeypatch)
    spec = BENCHMARKS[name]
    bench = load_benchmark(name, "think_boxed", data_dir=find_data_dir(flag))  # as evaluate.py resolves it
    assert [r["problem"] for r in bench.rows][0] == planted(name) and len(bench.rows) == 2
    if mode != "--data-dir":  # training has no flag: the variable, the folder beside the repository, or the hub
        step, removed = decontaminated(name, openr1_rows, tmp_path)
        assert step.detail == {name: 1} and removed
    if folder is None:
        assert bench.source == f"{spec.hub} [{spec.hub_config or 'default'}] split={spec.split} (hub)"
        assert set(hub_reads) == {(spec.hub, spec.hub_config, spec.split)}
    else:
        assert bench.source == str(folder / spec.local) and hub_reads == []


def test_offline_without_a_data_folder_says_where_the_file_goes(tmp_path, monkeypatch, openr1_rows):
    place_data_folder("absent", tmp_path, monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        load_benchmark("gsm8k", "think_boxed")
    assert str(err.value) == ("openai/gsm8k: no such local file or folder, and the hub is out of reach (HF_HUB_OFFLINE "
                              "is set): --bench gsm8k needs gsm8k/test.jsonl in a data folder (--data-dir, "
                              "$GRPO_MATH_DATA_DIR or ../shared/data)")
    with pytest.raises(UserError, match="data.filters.decontaminate: 'aime24' needs competition/aime24.jsonl in a"):
        decontaminated("aime24", openr1_rows, tmp_path)


@pytest.mark.slow  # two evaluate.py processes; find_data_dir's flag / variable / default order is tested above
def test_evaluate_script_reads_the_folder_from_the_flag_and_from_the_variable(tiny_model_dir, tmp_path, run_script,
                                                                               monkeypatch):
    folder = write_data_folder(tmp_path / "data")
    common = ["--bench", "gsm8k", "--limit", "1", "--max-new-tokens", "2", "--batch-size", "1", "--no-progress"]
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "gone"))  # the flag wins over the variable
    result = run_script("evaluate", tiny_model_dir, *common, "--data-dir", folder, "--out", tmp_path / "flag")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "flag" / "gsm8k" / "summary.json").read_text())
    assert summary["source"] == str(folder / "gsm8k" / "test.jsonl")
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    result = run_script("evaluate", tiny_model_dir, *common, "--out", tmp_path / "env")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "env" / "gsm8k" / "summary.json").read_text())
    assert summary["source"] == str(folder / "gsm8k" / "test.jsonl")
