"""utils.rewards: each reward on plain and conversational completions, the registry, recipe binding, TRL."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest

from tests.repo import ROOT
from utils.config import load_recipe, recipe_from_dict
from utils.errors import UserError
from utils.rewards import (
    REWARDS,
    accuracy,
    build_reward_functions,
    completion_text,
    format_soft,
    format_strict,
    length,
    overlong,
    reasoning_steps,
    repetition,
    tag_count,
)

THINK_OK = "<think>\n12 * 7 = 84\n</think>\nThe answer is $\\boxed{84}$."
XML_OK = "<reasoning>\n12 * 7 = 84\n</reasoning>\n<answer>\n84\n</answer>"


def conv(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


PROMPTS = [[{"role": "user", "content": "What is 12*7?"}]]


# ---------------------------------------------------------------------------------------------
# accuracy


def test_accuracy_plain_and_conversational() -> None:
    completions = [THINK_OK, "so 12*7 = 85", "\\boxed{\\frac{168}{2}}", "", XML_OK]
    expected = [1.0, 0.0, 1.0, 0.0, 1.0]
    answer = ["84"] * len(completions)
    assert accuracy(PROMPTS * 5, completions, answer=answer) == expected
    assert accuracy(PROMPTS * 5, [conv(c) for c in completions], answer=answer) == expected


def test_accuracy_skips_unreadable_golds() -> None:
    completions = [THINK_OK] * 4
    assert accuracy(PROMPTS * 4, completions, answer=["84", "proof", "", "\\frac{1}{2"]) == [1.0, None, None, None]


def test_accuracy_skips_undecided_checks() -> None:
    """A check that overruns its deadline is undecided: the sample is skipped (None) and counted, never 0."""
    from utils import answers

    answers.clear_caches()
    completions = [r"\boxed{9^{2^{999}}}", THINK_OK, "so it is 85"]  # equal to 3^{2^{1000}}; no check finishes
    assert accuracy(PROMPTS * 3, completions, answer=["3^{2^{1000}}", "84", "84"]) == [None, 1.0, 0.0]
    assert answers.stats()["timeouts"] == 1


def test_accuracy_pays_no_fragment() -> None:
    """Issue 12: fragments of a fraction, a radical or a word no longer earn the reward."""
    completions = [r"Therefore $\frac{1}{3}$.", r"This simplifies to $\sqrt3$", "AZYUK2A", r"First \boxed{3}. Then \boxed{"]
    assert accuracy(PROMPTS * 4, completions, answer=["3", "3", "2", "3"]) == [0.0, 0.0, 0.0, 0.0]


def test_accuracy_needs_answers() -> None:
    with pytest.raises(ValueError, match="answer"):
        accuracy(PROMPTS, [THINK_OK])


def test_completion_text_forms() -> None:
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]) == "ab"
    assert completion_text({"role": "assistant", "content": "c"}) == "c"
    assert completion_text(None) == ""


# ---------------------------------------------------------------------------------------------
# format and tag_count


@pytest.mark.parametrize(
    "text, strict, soft",
    [
        (THINK_OK, 1.0, 1.0),
        ("<think>\nhmm\n</think>\n\\boxed{3}", 1.0, 1.0),
        ("<think>hmm</think> \\boxed{3}", 0.0, 1.0),  # no newlines: soft only
        ("Let me think. <think>\nx\n</think>\n\\boxed{3}", 0.0, 1.0),  # text before the think block
        ("<think>\nx\n</think>\n\\boxed{3} or \\boxed{4}", 0.0, 1.0),  # two boxes: hedging
        ("<think>\nx\n</think>\nThe answer is 3.", 0.0, 0.0),  # no box
        ("\\boxed{3}", 0.0, 0.0),  # no think block
        ("<think>\nx\n</think>\n\\boxed{3", 0.0, 1.0),  # unclosed box
        ("<think>\nx\n</think>\n<think>\ny\n</think>\n\\boxed{3}", 0.0, 1.0),
    ],
)
def test_format_think_boxed(text: str, strict: float, soft: float) -> None:
    assert format_strict(PROMPTS, [text]) == [strict]
    assert format_soft(PROMPTS, [conv(text)]) == [soft]


@pytest.mark.parametrize(
    "text, strict, soft",
    [
        (XML_OK, 1.0, 1.0),
        (XML_OK + "\n", 1.0, 1.0),
        ("<reasoning>x</reasoning><answer>84</answer>", 0.0, 1.0),
        (XML_OK + "\nextra words", 0.0, 1.0),
        ("<reasoning>\nx\n</reasoning>\n<answer>\n\n</answer>", 0.0, 0.0),  # empty answer
        ("<answer>\n84\n</answer>", 0.0, 0.0),
        (THINK_OK, 0.0, 0.0),
    ],
)
def test_format_xml(text: str, strict: float, soft: float) -> None:
    assert format_strict(PROMPTS, [text], prompt_format="xml") == [strict]
    assert format_soft(PROMPTS, [text], prompt_format="xml") == [soft]


@pytest.mark.parametrize("prompt_format", ["think_boxed", "xml"])
def test_a_layout_parroted_from_the_system_prompt_earns_no_format_reward(prompt_format: str) -> None:
    """SmolLM2-135M under GRPO learned to echo the system prompt, whose layout example has a placeholder box
    (reward 0.2 from format_soft on every completion, accuracy 0): copies of the prompt's placeholders count
    as no answer, in every format reward; the same layout with a real answer still scores."""
    from utils.formats import build_messages, system_prompt

    prompts = [build_messages("What is 12*7?", prompt_format)]
    echoed = "1. " + system_prompt(prompt_format)
    real = THINK_OK if prompt_format == "think_boxed" else XML_OK
    for reward in (format_strict, format_soft, tag_count):
        assert reward(prompts, [conv(echoed)], prompt_format=prompt_format) == [0.0], reward.__name__
        assert reward(prompts, [conv(real)], prompt_format=prompt_format) == [1.0], reward.__name__
    assert format_soft(prompts, [conv(echoed + "\n" + real)], prompt_format=prompt_format) == [1.0]  # an answer after it
    if prompt_format == "think_boxed":  # as SmolLM2 said it: reworded, one tag dropped
        said = ("1. Think through the problem step by step inside <think> tags. Then, after </think>, give a short "
                "answer with the final result written as \\boxed{ANSWER}.")
        assert [r(prompts, [conv(said)]) for r in (format_strict, format_soft, tag_count)] == [[0.0]] * 3


def test_format_unknown_prompt_format() -> None:
    with pytest.raises(ValueError, match="prompt format"):
        format_strict(PROMPTS, [THINK_OK], prompt_format="markdown")


def test_tag_count_gives_partial_credit() -> None:
    think = [THINK_OK, "<think>\nx\n</think>\nno box", "x\n</think>\n\\boxed{1}", "nothing", "<think>\nx\n</think>\n\\boxed{1} and more text"]
    assert tag_count(PROMPTS * 5, think) == [1.0, 0.5, 0.75, 0.0, 0.75]
    xml = [XML_OK, "<reasoning>\nx\n</reasoning>\n", XML_OK + "\n" + "z" * 100, "nothing"]
    scores = tag_count(PROMPTS * 4, [conv(t) for t in xml], prompt_format="xml")
    assert scores[0] == 1.0 and scores[1] == 0.5 and 0.85 < scores[2] < 1.0 and scores[3] == 0.0


# ---------------------------------------------------------------------------------------------
# length, overlong, repetition, reasoning steps


def test_length_is_cosine_scaled_by_correctness() -> None:
    completions = ["\\boxed{84}", "\\boxed{84}", "\\boxed{85}", "\\boxed{85}", "\\boxed{84}"]
    ids = [[0] * 0, [0] * 100, [0] * 0, [0] * 100, [0] * 50]
    out = length(PROMPTS * 5, completions, answer=["84"] * 5, completion_ids=ids, max_len=100)
    assert out[0] == pytest.approx(1.0) and out[1] == pytest.approx(0.5)  # right: short best
    assert out[2] == pytest.approx(-1.0) and out[3] == pytest.approx(-0.5)  # wrong: long least bad
    assert out[4] == pytest.approx(0.75)  # halfway along the cosine
    assert length(PROMPTS, ["\\boxed{84}"], answer=["proof"], completion_ids=[[1]]) == [None]


def test_overlong_is_dapo_soft_punishment() -> None:
    ids = [[0] * n for n in (10, 80, 90, 100, 120)]
    out = overlong(PROMPTS * 5, ["x"] * 5, completion_ids=ids, max_completion_length=100, buffer=20)
    assert out == pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0])
    default_buffer = overlong(PROMPTS, ["x"], completion_ids=[[0] * 90], max_completion_length=100)
    assert default_buffer == pytest.approx([-0.5])  # buffer defaults to a fifth: 80..100
    with pytest.raises(ValueError, match="completion_ids"):
        overlong(PROMPTS, ["x"])


def test_repetition_penalty() -> None:
    fresh = "the cat sat on a mat while the dog ran to the park"
    loop = "I am stuck. " * 30
    out = repetition(PROMPTS * 3, [fresh, conv(loop), "too short"])
    assert out[0] == 0.0 and out[1] < -0.9 and out[2] == 0.0
    assert repetition(PROMPTS, [loop], max_penalty=-0.5)[0] == pytest.approx(out[1] / 2)


def test_reasoning_steps() -> None:
    steps = "Step 1: read.\nStep 2: add.\nStep 3: check."
    out = reasoning_steps(PROMPTS * 3, [steps, "First, add. Finally, check.", "just 84"])
    assert out == pytest.approx([1.0, 2 / 3, 0.0])


# ---------------------------------------------------------------------------------------------
# Registry and binding


def test_registry_names() -> None:
    assert {"accuracy", "format", "format_strict", "format_soft", "tag_count", "length", "overlong",
            "repetition", "reasoning_steps"} <= set(REWARDS)
    for name, fn in REWARDS.items():
        out = fn(PROMPTS, [THINK_OK], answer=["84"], completion_ids=[[1, 2, 3]], trainer_state=None)
        assert isinstance(out, list) and len(out) == 1, name


def test_build_reward_functions_binds_names_weights_and_params() -> None:
    spec = {"accuracy": 1.0, "format": 0.25, "tag_count": 0.25, "overlong": {"weight": 0.5, "buffer": 10},
            "length": {"weight": 0.1, "min_value_correct": "5e-1"}}
    functions, weights = build_reward_functions(spec, "xml", max_completion_length=100)
    assert [f.__name__ for f in functions] == list(spec)
    assert weights == [1.0, 0.25, 0.25, 0.5, 0.1]
    by_name = {f.__name__: f for f in functions}
    kwargs = {"answer": ["84"], "completion_ids": [[0] * 95], "trainer_state": None}
    assert by_name["format"](PROMPTS, [XML_OK], **kwargs) == [1.0]  # the xml format was bound
    assert by_name["format"](PROMPTS, [THINK_OK], **kwargs) == [0.0]
    assert by_name["overlong"](PROMPTS, [XML_OK], **kwargs) == pytest.approx([-0.5])  # buffer=10, max=100
    halfway_down = 0.5 + 0.25 * (1 + math.cos(0.95 * math.pi))  # right answer, 95 of max_len=100 tokens
    assert by_name["length"](PROMPTS, [XML_OK], **kwargs) == pytest.approx([halfway_down])
    assert pickle.loads(pickle.dumps(by_name["overlong"]))(PROMPTS, [XML_OK], **kwargs) == pytest.approx([-0.5])


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"acuracy": 1.0}, "rewards.acuracy: unknown reward (did you mean 'accuracy'?)"),
        ({"overlong": {"weight": 1, "bufer": 5}}, "rewards.overlong.bufer: unknown parameter (did you mean 'buffer'?)"),
        ({"format": {"weight": 1, "strict": True}}, "rewards.format.strict: unknown parameter (format takes no parameters)"),
        ({"overlong": {"weight": 1, "buffer": "big"}}, "rewards.overlong.buffer: expected a number, got 'big'"),
        ({"accuracy": {"weight": "x"}}, "rewards.accuracy.weight: expected float, got 'x' (str)"),
    ],
)
def test_reward_spec_errors_at_recipe_load(spec: dict, message: str) -> None:
    """Checked once, when the recipe loads; build_reward_functions then trusts the validated section."""
    with pytest.raises(UserError) as err:
        recipe_from_dict({"rewards": spec}, where="r.yaml")
    assert str(err.value) == f"r.yaml: {message}"


def test_build_reward_functions_rejects_unknown_prompt_format() -> None:
    with pytest.raises(UserError, match="prompt.format"):
        build_reward_functions({"accuracy": 1.0}, "markdown", 100)


def test_recipe_rejects_unknown_reward_at_load(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rewards: {acuracy: 1}\n")
    with pytest.raises(UserError) as err:
        load_recipe(path)
    assert "rewards.acuracy: unknown reward (did you mean 'accuracy'?)" in str(err.value)
    with pytest.raises(UserError, match=r"rewards.length.max_lenght: unknown parameter \(did you mean 'max_len'\?\)"):
        recipe_from_dict({"rewards": {"length": {"weight": 1, "max_lenght": 5}}})


def test_wrong_signed_parameters_are_refused_at_load() -> None:
    # a positive max_penalty used to turn the repetition penalty into a bonus (+0.75)
    with pytest.raises(UserError, match=r"rewards.repetition.max_penalty: must be <= 0 .*got 0.75"):
        recipe_from_dict({"rewards": {"repetition": {"weight": 1, "max_penalty": 0.75}}})
    with pytest.raises(UserError, match=r"rewards.overlong.penalty: must be >= 0"):
        recipe_from_dict({"rewards": {"overlong": {"weight": 1, "penalty": -1}}})
    with pytest.raises(UserError, match=r"rewards.repetition.ngram_size: must be a whole number >= 1"):
        recipe_from_dict({"rewards": {"repetition": {"weight": 1, "ngram_size": 0}}})
    with pytest.raises(UserError, match=r"rewards.length.min_value_wrong: must not exceed max_value_wrong"):
        recipe_from_dict({"rewards": {"length": {"weight": 1, "min_value_wrong": 0.5, "max_value_wrong": -0.5}}})
    recipe_from_dict({"rewards": {"repetition": {"weight": 1, "max_penalty": -0.5}}})  # the right sign loads


# ---------------------------------------------------------------------------------------------
# Custom rewards by import path (tests/custom_rewards.py)

CUSTOM = "tests.custom_rewards.brevity"


def test_custom_reward_by_import_path_through_a_recipe(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(f"rewards:\n  accuracy: 1.0\n  {CUSTOM}: {{weight: 0.2, target_words: 2}}\n")
    recipe = load_recipe(path)
    functions, weights = build_reward_functions(recipe.rewards, recipe.prompt.format, 64)
    assert [f.__name__ for f in functions] == ["accuracy", CUSTOM]  # TRL logs rewards/<full path>/mean
    assert weights == [1.0, 0.2]
    out = functions[1](PROMPTS * 3, ["two words", "now three words", conv("four words right here")], answer=["1"] * 3)
    assert out == [1.0, 0.5, 0.0]  # target_words=2 reached the function


def test_custom_reward_weight_and_registry_params_by_set(tmp_path: Path) -> None:
    path = tmp_path / "base.yaml"
    path.write_text("rewards: {accuracy: 1.0, overlong: {weight: 0.5}}\n")
    recipe = load_recipe(path, [f"rewards.{CUSTOM}=0.3", "rewards.overlong.buffer=16"])
    assert recipe.rewards[CUSTOM] == 0.3  # one key with dots, not rewards: {tests: {custom_rewards: ...}}
    assert recipe.rewards["overlong"] == {"weight": 0.5, "buffer": 16}  # a registry reward's parameter
    functions, _ = build_reward_functions(recipe.rewards, recipe.prompt.format, 64)
    assert functions[-1].__name__ == CUSTOM and functions[-1](PROMPTS, ["a b"]) == [1.0]


@pytest.mark.parametrize(
    "name, message",
    [
        ("my_pkg.nope", "rewards.my_pkg.nope: cannot import 'my_pkg' (No module named 'my_pkg')"),
        ("tests.custom_rewards.nope", "rewards.tests.custom_rewards.nope: 'tests.custom_rewards' has no attribute 'nope'"),
        ("tests.custom_rewards.NOT_A_FUNCTION",
         "rewards.tests.custom_rewards.NOT_A_FUNCTION: 'tests.custom_rewards.NOT_A_FUNCTION' is not callable (it is a int)"),
    ],
)
def test_custom_reward_wrong_paths_fail_at_load(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"rewards: {{accuracy: 1.0, {name}: 0.5}}\n")
    with pytest.raises(UserError) as err:
        load_recipe(path)
    assert str(err.value).endswith(message) and "\n" not in str(err.value)


def test_custom_reward_unknown_parameter() -> None:
    with pytest.raises(UserError, match=rf"rewards.{CUSTOM}.target: unknown parameter \(did you mean 'target_words'\?\)"):
        recipe_from_dict({"rewards": {CUSTOM: {"weight": 1, "target": 3}}})


def test_shipped_recipes_build_their_rewards() -> None:
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        recipe = load_recipe(path)
        max_len = recipe.training.get("max_completion_length", 512)
        functions, weights = build_reward_functions(recipe.rewards, recipe.prompt.format, max_len)
        assert len(functions) == len(weights) == len(recipe.rewards), path.name


# ---------------------------------------------------------------------------------------------
# TRL: each reward is logged under its own name


def test_grpo_trainer_logs_each_reward(tiny_model_dir: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    rows = [
        {"prompt": [{"role": "user", "content": f"What is {a}+{b}?"}], "answer": str(a + b), "problem": f"{a}+{b}"}
        for a, b in [(1, 2), (3, 4)]
    ]
    functions, weights = build_reward_functions(
        {"accuracy": 1.0, "format": 0.25, "overlong": {"weight": 0.5, "buffer": 4}, CUSTOM: 0.1}, "think_boxed", 8
    )
    config = GRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, max_steps=1, per_device_train_batch_size=4,
        num_generations=2, max_completion_length=8, logging_steps=1, report_to=[], save_strategy="no",
        reward_weights=weights, gradient_checkpointing=False,
    )
    trainer = GRPOTrainer(model=str(tiny_model_dir), reward_funcs=functions, args=config, train_dataset=Dataset.from_list(rows))
    trainer.train()
    logged = {k for entry in trainer.state.log_history for k in entry}
    for name in ("accuracy", "format", "overlong", CUSTOM):
        assert f"rewards/{name}/mean" in logged, sorted(logged)


# ---------------------------------------------------------------------------------------------
# Every call checked: a reward's bug is one line naming it (registry and custom rewards alike)

MISBEHAVES = "tests.custom_rewards.misbehaves"


def bound(how: str, on_error: str = "stop"):
    functions, _ = build_reward_functions({MISBEHAVES: {"weight": 1.0, "how": how}}, "think_boxed", 64, on_error)
    return functions[0]


@pytest.mark.parametrize("how, said", [
    ("raise", "raised ZeroDivisionError (division by zero): fix the reward, or set rewards_on_error: skip"),
    ("short", "returned 1 rewards for 2 completions: return one reward per completion (a number, or None"),
    ("scalar", "returned 0.5 (a float), not a list of 2 rewards: return one reward per completion"),
    ("nan", "returned nan for completion 0: fix the reward (None skips a completion), or set rewards_on_error"),
    ("-inf", "returned -inf for completion 0: fix the reward (None skips a completion)"),
])
def test_a_misbehaving_reward_call_is_one_line_naming_it(how: str, said: str) -> None:
    with pytest.raises(UserError) as err:
        bound(how)(PROMPTS * 2, ["a", "b"])
    assert str(err.value).startswith(f"rewards.{MISBEHAVES} {said}") and "\n" not in str(err.value)


def test_reward_values_must_be_numbers_or_none_and_come_back_as_floats() -> None:
    reward = build_reward_functions({"accuracy": 1.0}, "think_boxed", 64)[0][0]
    reward.fn = lambda prompts, completions, **kw: [1, None, "0.5"]
    with pytest.raises(UserError, match=r"rewards.accuracy returned '0.5' \(a str\) for completion 2"):
        reward(PROMPTS * 3, ["a", "b", "c"])
    reward.fn = lambda prompts, completions, **kw: (1, None, True)
    assert reward(PROMPTS * 3, ["a", "b", "c"]) == [1.0, None, 1.0]
    assert pickle.loads(pickle.dumps(bound("nan"))).on_error == "stop"


def test_skip_scores_a_failing_call_as_none_warns_once_and_counts(capsys: pytest.CaptureFixture) -> None:
    logged: list[tuple[str, float]] = []
    reward = bound("raise", "skip")
    for _ in range(3):
        assert reward(PROMPTS * 2, ["a", "b"], log_metric=lambda k, v: logged.append((k, v))) == [None, None]
    nan = bound("nan", "skip")
    assert nan(PROMPTS * 2, ["a", "b"]) == [None, 0.5]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2 and "raised ZeroDivisionError" in warnings[0] and "returned nan" in warnings[1]
    assert reward.skipped == 6 and nan.skipped == 1
    assert logged == [(f"rewards/{MISBEHAVES}/skipped", 2.0)] * 3
    with pytest.raises(UserError, match="not a list of 2 rewards"):  # a wrong shape is a bug: never skipped
        bound("scalar", "skip")(PROMPTS * 2, ["a", "b"])


def test_rewards_on_error_is_a_checked_recipe_key() -> None:
    assert recipe_from_dict({}).rewards_on_error == "stop"
    recipe = recipe_from_dict({"rewards_on_error": "skip"})
    assert recipe.rewards_on_error == "skip" and recipe.to_dict()["rewards_on_error"] == "skip"
    with pytest.raises(UserError, match=r"recipe: rewards_on_error: 'ignore' is not one of stop, skip"):
        recipe_from_dict({"rewards_on_error": "ignore"})
    with pytest.raises(UserError, match=r"rewards_on_eror: unknown key \(did you mean 'rewards_on_error'\?\)"):
        recipe_from_dict({"rewards_on_eror": "skip"})
