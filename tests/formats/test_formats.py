"""utils.formats: each prompt format defined once, and everything that names a format agreeing with it.

A second definition creeping back (a tag or pattern written again in rewards, a name list in evaluation) shows
up here as a format whose own layout no longer earns its format reward, a name one place accepts and another
refuses, or a format literal in code outside utils/formats.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

from tests.repo import ROOT
from utils.answers import extract_answer
from utils.config import recipe_from_dict, sections_from_dict
from utils.errors import UserError
from utils.evaluation import EvalRequest, check_request
from utils.formats import FORMAT_NAMES, FORMATS, build_messages, get_format, system_prompt
from utils.rewards import REWARDS, accuracy, build_reward_functions, format_soft, format_strict, tag_count

UNKNOWN = "is not one of think_boxed, xml"


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_a_completion_in_the_layout_the_system_prompt_describes_earns_every_format_reward(name: str) -> None:
    fmt = get_format(name)
    assert all(tag in fmt.system_prompt for tag in fmt.tags), "the system prompt describes the format's tags"
    prompts = [build_messages("What is 12*7?", name)]  # its system prompt: the parroting guard reads it
    completion = [{"role": "assistant", "content": fmt.completion("12 * 7 = 84", "84")}]
    for reward in (format_strict, format_soft, tag_count):
        assert reward(prompts, [completion], prompt_format=name) == [1.0], reward.__name__
    assert accuracy(prompts, [completion], answer=["84"]) == [1.0]  # and the answer extractor reads its answer
    assert extract_answer(completion[0]["content"]) == "84"


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_each_format_is_accepted_everywhere_a_format_is_named(name: str) -> None:
    assert sections_from_dict({"prompt": {"format": name}}).prompt.format == name  # config
    check_request(EvalRequest(benchmarks=["gsm8k"], prompt_format=name))  # evaluate.py --prompt-format
    functions, _ = build_reward_functions({"format": 1.0}, name, 64)  # rewards
    assert functions[0].params["prompt_format"] == name
    assert build_messages("1+1?", name)[0]["content"] == FORMATS[name].system_prompt == system_prompt(name)  # data


def test_an_unknown_format_is_refused_everywhere_in_one_wording() -> None:
    with pytest.raises(UserError) as err:
        recipe_from_dict({"prompt": {"format": "json"}}, where="r.yaml")
    assert str(err.value) == f"r.yaml: prompt.format: 'json' {UNKNOWN}"
    with pytest.raises(UserError) as err:
        check_request(EvalRequest(benchmarks=["gsm8k"], prompt_format="json"))
    assert str(err.value) == f"--prompt-format: 'json' {UNKNOWN}"
    with pytest.raises(UserError) as err:
        build_reward_functions({"accuracy": 1.0}, "json", 64)
    assert str(err.value) == f"prompt.format: 'json' {UNKNOWN}"
    with pytest.raises(ValueError) as err:  # a library caller's bad argument: a ValueError too
        REWARDS["format"]([], [], prompt_format="json")
    assert str(err.value) == f"format_strict: prompt format: 'json' {UNKNOWN}"


def test_evaluate_refuses_an_unknown_prompt_format_in_one_line(run_script, tmp_path: Path) -> None:
    result = run_script("evaluate", tmp_path, "--bench", "gsm8k", "--prompt-format", "json")
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == f"error: --prompt-format: 'json' {UNKNOWN}"


def _format_literals(path: Path) -> list[str]:
    """Code strings (docstrings and comments aside) that spell a format's name, tag or system prompt."""
    tags = {tag for f in FORMATS.values() for tag in f.tags}
    tree = ast.parse(path.read_text())
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = re.sub(r"\(\?P<\w+>", "", node.value)  # a regex's named group is no tag
            if text in FORMAT_NAMES or any(tag in text for tag in tags):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:40]!r}")
    return found


# utils/answers sits below utils/formats: its extractor reads `<answer>` tags in any text, by its own rule.
# utils/export names the default format itself until it reads utils.formats (another branch moves that code).
ALLOWED = ("utils/formats/", "utils/answers/")


def test_no_format_name_or_tag_is_written_outside_utils_formats() -> None:
    files = sorted([*(ROOT / "utils").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")])
    found = [hit for path in files if not str(path.relative_to(ROOT)).startswith(ALLOWED)
             for hit in _format_literals(path)]
    assert found == []


def test_the_data_cache_follows_the_formats_code(tmp_path: Path) -> None:
    """Cached rows hold each format's system prompt: an edit to utils/formats must rebuild them."""
    from utils.data import code_version

    utils_copy = tmp_path / "utils"
    shutil.copytree(ROOT / "utils", utils_copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_version(utils_copy)
    module = utils_copy / "formats" / "_formats.py"
    module.write_text(module.read_text().replace("Respond in the following format", "Answer like this"))
    assert code_version(utils_copy) != before
