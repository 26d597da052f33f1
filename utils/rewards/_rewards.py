"""GRPO reward functions with TRL's calling convention, and the registry recipes weight by name.

Every reward is `f(prompts, completions, **kwargs) -> list[float | None]`. TRL passes the dataset
columns as keyword arguments (`answer=[...]`, `problem=[...]`), plus `completion_ids` and
`trainer_state`. Completions are strings or `[{"role": "assistant", "content": ...}]`. None skips a
sample: rewards that need the gold answer return None where the gold itself cannot be read, rather
than rewarding or punishing the model for the dataset's fault.

Parameters (format, lengths, penalties) are keyword-only arguments with defaults; a recipe sets them
with `rewards: {overlong: {weight: 1.0, buffer: 256}}` and `build_reward_functions` binds them.

| name | what it rewards |
|---|---|
| accuracy | 1 when the extracted final answer is mathematically equal to `answer`, else 0 |
| format / format_strict | 1 when the completion has exactly the prompt format's layout, else 0 |
| format_soft | 1 when the format's tags appear in order anywhere, else 0 |
| tag_count | partial credit (0-1) per well-placed tag, so the format is learnable early |
| length | cosine-scaled by correctness ("Demystifying Long CoT"): short right answers best, long wrong ones least bad |
| overlong | DAPO soft overlong punishment: 0 up to max - buffer tokens, then linear down to -1 at max |
| repetition | minus the share of repeated word n-grams (0 = no repeats, -1 = all repeats) |
| reasoning_steps | min(1, steps / target) for "Step 1:", "1.", bullets, "First," "Next," "Finally," |
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from utils.answers import extract_answer, is_parseable, verify_batch
from utils.errors import UserError

RewardFunction = Callable[..., list[float | None]]
PROMPT_FORMATS = ("think_boxed", "xml")


# ---------------------------------------------------------------------------------------------
# Helpers


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or the assistant message(s) of a conversational one."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, (list, tuple)):
        parts = [
            str(m.get("content") or "")
            for m in completion
            if isinstance(m, dict) and m.get("role", "assistant") == "assistant"
        ]
        return "".join(parts)
    return str(completion)


def _texts(completions: Sequence[Any]) -> list[str]:
    return [completion_text(c) for c in completions]


def _golds(kwargs: dict[str, Any], n: int, reward: str) -> list[Any]:
    golds = kwargs.get("answer")
    if golds is None:
        raise ValueError(f"the {reward} reward needs the dataset's 'answer' column (gold final answers)")
    if isinstance(golds, (str, int, float)):
        golds = [golds] * n
    if len(golds) != n:
        raise ValueError(f"the {reward} reward got {len(golds)} answers for {n} completions")
    return list(golds)


def correctness(completions: Sequence[Any], golds: Sequence[Any]) -> list[bool | None]:
    """Per completion: whether its final answer equals the gold; None where the gold is unreadable."""
    texts = _texts(completions)
    readable = {}
    for gold in golds:
        key = gold if isinstance(gold, str) else repr(gold)
        if key not in readable:
            readable[key] = is_parseable(gold if isinstance(gold, str) else str(gold))
    keys = [g if isinstance(g, str) else repr(g) for g in golds]
    idx = [i for i, k in enumerate(keys) if readable[k]]
    verdicts = verify_batch(
        [golds[i] if isinstance(golds[i], str) else str(golds[i]) for i in idx],
        [extract_answer(texts[i]) for i in idx],
    )
    out: list[bool | None] = [None] * len(texts)
    for i, verdict in zip(idx, verdicts, strict=True):
        out[i] = verdict
    return out


def _token_lengths(kwargs: dict[str, Any], texts: list[str], reward: str) -> list[int]:
    ids = kwargs.get("completion_ids")
    if ids is None:
        raise ValueError(f"the {reward} reward needs completion_ids (token ids; TRL passes them)")
    if len(ids) != len(texts):
        raise ValueError(f"the {reward} reward got {len(ids)} completion_ids for {len(texts)} completions")
    return [len(x) for x in ids]


# ---------------------------------------------------------------------------------------------
# Correctness


def accuracy(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
    """1.0 when the completion's final answer equals the gold `answer`, 0.0 otherwise, None for unreadable golds."""
    verdicts = correctness(completions, _golds(kwargs, len(completions), "accuracy"))
    return [None if v is None else float(v) for v in verdicts]


def length(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    max_len: int = 1024,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    **kwargs: Any,
) -> list[float | None]:
    """Cosine length scaling by correctness (Yeo et al. 2025, "Demystifying Long Chain-of-Thought").

    A right answer earns max_value_correct at length 0, falling along a half cosine to
    min_value_correct at max_len tokens; a wrong one earns min_value_wrong at length 0 rising to
    max_value_wrong at max_len (thinking longer is less bad when wrong). Lengths are token counts
    from completion_ids where TRL passes them, else whitespace words.
    """
    texts = _texts(completions)
    verdicts = correctness(completions, _golds(kwargs, len(completions), "length"))
    ids = kwargs.get("completion_ids")
    lengths = [len(x) for x in ids] if ids is not None else [len(t.split()) for t in texts]
    out: list[float | None] = []
    for verdict, n in zip(verdicts, lengths, strict=True):
        if verdict is None:
            out.append(None)
            continue
        progress = min(1.0, n / max(1, max_len))
        cosine = math.cos(progress * math.pi)
        # correct: start (L=0) at max_value_correct; wrong: start at min_value_wrong
        start, end = (max_value_correct, min_value_correct) if verdict else (min_value_wrong, max_value_wrong)
        out.append(end + 0.5 * (start - end) * (1.0 + cosine))
    return out


# ---------------------------------------------------------------------------------------------
# Format

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_THINK_STRICT = re.compile(r"^\s*<think>\n(?P<think>.*?)\n</think>\n(?P<answer>.*)$", re.S)
_XML_STRICT = re.compile(r"^\s*<reasoning>\n.*?\n</reasoning>\n<answer>\n(?P<answer>.*?)\n</answer>\s*$", re.S)
_THINK_SOFT = re.compile(r"<think>.*?</think>(?P<answer>.*)$", re.S)
_XML_SOFT = re.compile(r"<reasoning>.*?</reasoning>\s*<answer>(?P<answer>.*?)</answer>", re.S)


def _check_format(prompt_format: str) -> None:
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt format {prompt_format!r}; expected one of {', '.join(PROMPT_FORMATS)}")


def _strict_ok(text: str, prompt_format: str) -> bool:
    if prompt_format == "think_boxed":
        m = _THINK_STRICT.match(text)
        if not m or "<think>" in m.group("think") or "</think>" in m.group("answer") or "<think>" in m.group("answer"):
            return False
        boxes = list(_BOX.finditer(m.group("answer")))
        return len(boxes) == 1 and _matching_brace(m.group("answer"), boxes[0].end() - 1) is not None
    m = _XML_STRICT.match(text)
    if not m:
        return False
    inner = m.group("answer")
    return bool(inner.strip()) and "<answer>" not in inner and text.count("<reasoning>") == 1


def _soft_ok(text: str, prompt_format: str) -> bool:
    if prompt_format == "think_boxed":
        m = _THINK_SOFT.search(text)
        return bool(m and _BOX.search(m.group("answer")))
    m = _XML_SOFT.search(text)
    return bool(m and m.group("answer").strip())


def format_strict(
    prompts: Sequence[Any], completions: Sequence[Any], *, prompt_format: str = "think_boxed", **kwargs: Any
) -> list[float | None]:
    """1.0 for exactly the format's layout, else 0.0.

    think_boxed: `<think>\\n...\\n</think>\\n` then an answer section with exactly one `\\boxed{}`.
    xml: `<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>` and nothing after.
    """
    _check_format(prompt_format)
    return [1.0 if _strict_ok(t, prompt_format) else 0.0 for t in _texts(completions)]


def format_soft(
    prompts: Sequence[Any], completions: Sequence[Any], *, prompt_format: str = "think_boxed", **kwargs: Any
) -> list[float | None]:
    """1.0 when the format's parts appear in order anywhere (think block then a box; reasoning then answer)."""
    _check_format(prompt_format)
    return [1.0 if _soft_ok(t, prompt_format) else 0.0 for t in _texts(completions)]


def tag_count(
    prompts: Sequence[Any], completions: Sequence[Any], *, prompt_format: str = "think_boxed", **kwargs: Any
) -> list[float | None]:
    """Partial credit, 0.25 per well-placed part, so the format is learnable before it is exact.

    think_boxed: one `<think>` at the start, one `</think>`, one `\\boxed{}` after it, nothing but
    punctuation after the box. xml: one each of `<reasoning>\\n`, `\\n</reasoning>\\n`, `\\n<answer>\\n`,
    `\\n</answer>`, less a little for text trailing after `</answer>` (as in the GSM8K GRPO recipe).
    """
    _check_format(prompt_format)
    return [_tag_score(t, prompt_format) for t in _texts(completions)]


def _tag_score(text: str, prompt_format: str) -> float:
    score = 0.0
    if prompt_format == "think_boxed":
        if text.count("<think>") == 1 and text.lstrip().startswith("<think>"):
            score += 0.25
        if text.count("</think>") == 1:
            score += 0.25
            after = text.split("</think>", 1)[1]
            boxes = [m.start() for m in _BOX.finditer(after)]
            if len(boxes) == 1:
                score += 0.25
                tail = after[boxes[0] :]
                closing = _matching_brace(tail, tail.index("{"))
                if closing is not None and not re.sub(r"[\s$.\\\])]", "", tail[closing + 1 :]):
                    score += 0.25
        return score
    if text.count("<reasoning>\n") == 1:
        score += 0.25
    if text.count("\n</reasoning>\n") == 1:
        score += 0.25
    if text.count("\n<answer>\n") == 1:
        score += 0.25
    if text.count("\n</answer>") == 1:
        score += 0.25
        score -= min(0.25, len(text.split("\n</answer>")[-1].strip()) * 0.001)
    return max(0.0, score)


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    for i in range(start, min(len(text), start + 4000)):
        c = text[i]
        if c == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif c == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return i
    return None


# ---------------------------------------------------------------------------------------------
# Length and quality shaping


def overlong(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    max_completion_length: int = 1024,
    buffer: int | None = None,
    penalty: float = 1.0,
    **kwargs: Any,
) -> list[float | None]:
    """DAPO soft overlong punishment (Yu et al. 2025) from completion token counts.

    0 up to max_completion_length - buffer tokens, then linear down to -penalty at
    max_completion_length (a truncated completion), -penalty beyond. buffer defaults to a fifth of
    the maximum (DAPO: 4096 of 20480).
    """
    texts = _texts(completions)
    lengths = _token_lengths(kwargs, texts, "overlong")
    cache = buffer if buffer is not None else max(1, max_completion_length // 5)
    cache = max(1, min(cache, max_completion_length))
    expected = max_completion_length - cache
    out: list[float | None] = []
    for n in lengths:
        if n <= expected:
            out.append(0.0)
        elif n <= max_completion_length:
            out.append(penalty * (expected - n) / cache)
        else:
            out.append(-penalty)
    return out


def repetition(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    *,
    ngram_size: int = 3,
    max_penalty: float = -1.0,
    **kwargs: Any,
) -> list[float | None]:
    """N-gram repetition penalty ("Demystifying Long CoT"): max_penalty x the share of repeated word n-grams."""
    out: list[float | None] = []
    for text in _texts(completions):
        words = text.lower().split()
        if len(words) < ngram_size or ngram_size < 1:
            out.append(0.0)
            continue
        grams = [tuple(words[i : i + ngram_size]) for i in range(len(words) - ngram_size + 1)]
        repeated = 1.0 - len(set(grams)) / len(grams)
        out.append(repeated * max_penalty)
    return out


_STEP = re.compile(r"(?:Step \d+[:.)]|^\s*\d+[.)]\s|^\s*[-*]\s|\bFirst,|\bSecond,|\bThird,|\bNext,|\bThen,|\bFinally,)", re.M)


def reasoning_steps(
    prompts: Sequence[Any], completions: Sequence[Any], *, target: int = 3, **kwargs: Any
) -> list[float | None]:
    """min(1, steps / target): rewards laying reasoning out in explicit steps (as in open-r1)."""
    return [min(1.0, len(_STEP.findall(t)) / max(1, target)) for t in _texts(completions)]


# ---------------------------------------------------------------------------------------------
# Registry and recipe binding

REWARDS: dict[str, RewardFunction] = {
    "accuracy": accuracy,
    "format": format_strict,
    "format_strict": format_strict,
    "format_soft": format_soft,
    "tag_count": tag_count,
    "length": length,
    "overlong": overlong,
    "repetition": repetition,
    "reasoning_steps": reasoning_steps,
}
# Parameters the builder fills in from the recipe, not the user.
_BOUND_FROM_RECIPE = {"prompt_format", "max_completion_length"}


def reward_params(name: str) -> dict[str, Any]:
    """A reward's settable parameters and their defaults."""
    sig = inspect.signature(REWARDS[name])
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _BOUND_FROM_RECIPE
    }


def check_reward(name: str, spec: Any) -> str | None:
    """The problem with one `rewards:` entry as 'rewards.NAME...: message', or None when it is fine."""
    if name not in REWARDS:
        close = difflib.get_close_matches(name, list(REWARDS), n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (choose from {', '.join(REWARDS)})"
        return f"rewards.{name}: unknown reward{hint}"
    if isinstance(spec, dict):
        params = reward_params(name)
        for key, value in spec.items():
            if key == "weight":
                continue
            if key not in params:
                close = difflib.get_close_matches(str(key), list(params), n=1, cutoff=0.6)
                if close:
                    hint = f" (did you mean '{close[0]}'?)"
                else:
                    hint = f" ({name} takes {', '.join(params)})" if params else f" ({name} takes no parameters)"
                return f"rewards.{name}.{key}: unknown parameter{hint}"
            if not _number_like(value, params[key]):
                return f"rewards.{name}.{key}: expected a number, got {value!r}"
    return None


def _number_like(value: Any, default: Any) -> bool:
    if isinstance(value, bool):
        return False
    if value is None:
        return default is None
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        return _NUMBER.match(value.strip()) is not None
    return isinstance(value, (int, float))


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _as_number(value: Any, default: Any) -> Any:
    if isinstance(value, str):
        value = float(value)
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def build_reward_functions(
    spec: dict[str, float | dict], prompt_format: str, max_completion_length: int
) -> tuple[list[Callable], list[float]]:
    """Reward functions and weights from a recipe's `rewards:` section, for GRPOTrainer + reward_weights.

    Each function carries `__name__` = the reward's name, so TRL logs `rewards/<name>/mean` apart.
    """
    if prompt_format not in PROMPT_FORMATS:
        raise UserError(f"prompt.format: unknown format {prompt_format!r} (choose from {', '.join(PROMPT_FORMATS)})")
    if not isinstance(spec, dict) or not spec:
        raise UserError(f"rewards: expected a mapping of reward name -> weight, got {spec!r}")
    functions: list[Callable] = []
    weights: list[float] = []
    for name, entry in spec.items():
        problem = check_reward(str(name), entry)
        if problem:
            raise UserError(problem)
        if isinstance(entry, dict):
            if "weight" not in entry or not _number_like(entry["weight"], 0.0):
                raise UserError(f"rewards.{name}: a reward given as a mapping needs a numeric 'weight'")
            weight = float(entry["weight"])
            defaults = reward_params(str(name))
            params = {k: _as_number(v, defaults[k]) for k, v in entry.items() if k != "weight"}
        elif _number_like(entry, 0.0):
            weight, params = float(entry), {}
        else:
            raise UserError(f"rewards.{name}: expected a weight (number), got {entry!r}")
        accepted = inspect.signature(REWARDS[name]).parameters
        if "prompt_format" in accepted:
            params["prompt_format"] = prompt_format
        if "max_completion_length" in accepted:
            params["max_completion_length"] = max_completion_length
        if name == "length" and "max_len" not in params:
            params["max_len"] = max_completion_length  # the cosine spans the whole generation budget
        functions.append(_bind(str(name), REWARDS[name], params))
        weights.append(weight)
    return functions, weights


def _bind(name: str, fn: RewardFunction, params: dict[str, Any]) -> Callable:
    return BoundReward(name, fn, params)


class BoundReward:
    """A registry reward with its recipe parameters bound; picklable, named for TRL's per-reward logs."""

    def __init__(self, name: str, fn: RewardFunction, params: dict[str, Any]) -> None:
        self.__name__ = name
        self.fn = fn
        self.params = dict(params)
        self.__doc__ = fn.__doc__

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        # recipe parameters win over same-named dataset columns
        return self.fn(prompts, completions, **{**kwargs, **self.params})

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"<reward {self.__name__}({params})>"
