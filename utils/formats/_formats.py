"""The prompt formats, each defined once: name, system prompt, tags, and the layouts the format rewards check.

- `think_boxed`: reason inside <think>...</think>, then the final answer in \\boxed{} (the layout of
  OpenR1-Math-220k's DeepSeek-R1 traces, and what our answer extractor reads first);
- `xml`: <reasoning>...</reasoning><answer>...</answer> (the layout a GSM8K-GRPO checkpoint was trained on).

Strict and soft patterns name their groups `reasoning` (strict only) and `answer` (what follows the
reasoning, or what the answer tags hold), so a reward reads every format the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from utils.errors import UserError

# A box opening, as the format rewards count it: `\boxed{` or `\fbox{`.
BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")


@dataclass(frozen=True)
class PromptFormat:
    """One answer layout: what the system prompt asks for and the patterns its format rewards check."""

    name: str
    system_prompt: str
    reasoning: tuple[str, str]  # open and close tag around the reasoning
    answer: tuple[str, str] | None  # open and close tag around the answer; None: the answer is boxed (BOX)
    strict: re.Pattern[str]  # exactly the layout (matched from the start)
    soft: re.Pattern[str]  # the parts in order, anywhere (searched)

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag of the layout, in the order a completion writes them."""
        return (*self.reasoning, *(self.answer or ()))

    def completion(self, reasoning: str, answer: str) -> str:
        """A completion written in this layout (synthetic traces, tests)."""
        final = f"The answer is $\\boxed{{{answer}}}$." if self.answer is None else (
            f"{self.answer[0]}\n{answer}\n{self.answer[1]}")
        return f"{self.reasoning[0]}\n{reasoning}\n{self.reasoning[1]}\n{final}"


_THINK_BOXED = PromptFormat(
    name="think_boxed",
    system_prompt=(
        "You are a helpful assistant that solves math problems. First think through the problem step by step "
        "inside <think> </think> tags. Then, after </think>, give a short answer with the final result "
        "written as \\boxed{ANSWER}."
    ),
    reasoning=("<think>", "</think>"),
    answer=None,
    strict=re.compile(r"^\s*<think>\n(?P<reasoning>.*?)\n</think>\n(?P<answer>.*)$", re.S),
    soft=re.compile(r"<think>.*?</think>(?P<answer>.*)$", re.S),
)
_XML = PromptFormat(
    name="xml",
    # The wording of the widely used GSM8K GRPO recipes, so a checkpoint trained on it sees what it knows.
    system_prompt="Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>",
    reasoning=("<reasoning>", "</reasoning>"),
    answer=("<answer>", "</answer>"),
    strict=re.compile(r"^\s*<reasoning>\n(?P<reasoning>.*?)\n</reasoning>\n<answer>\n(?P<answer>.*?)\n</answer>\s*$",
                      re.S),
    soft=re.compile(r"<reasoning>.*?</reasoning>\s*<answer>(?P<answer>.*?)</answer>", re.S),
)

FORMATS: dict[str, PromptFormat] = {f.name: f for f in (_THINK_BOXED, _XML)}
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)
DEFAULT_FORMAT = _THINK_BOXED.name


class UnknownFormatError(UserError, ValueError):
    """A format name that is none of FORMAT_NAMES: a user's mistake (scripts exit 2) and, to a library
    caller, a bad argument."""


def get_format(name: str, key: str = "prompt.format") -> PromptFormat:
    """The format called `name`; `key` names where the name came from (a recipe key, a flag) in the error."""
    if name not in FORMATS:
        raise UnknownFormatError(f"{key}: {name!r} is not one of {', '.join(FORMAT_NAMES)}")
    return FORMATS[name]
