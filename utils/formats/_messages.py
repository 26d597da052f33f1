"""Chat messages for a problem in a format: what the model is asked, and in which layout it should answer.

A prompt is a list of chat messages (system + user); TRL and our evaluation render it through the
tokenizer's chat template (utils.data), so the same messages work for any model.
"""

from __future__ import annotations

from utils.formats._formats import get_format

Message = dict[str, str]


def system_prompt(prompt_format: str, system: str | None = None) -> str:
    """The system prompt for a format: `system` when given (a recipe's override), else the format's own."""
    own = get_format(prompt_format).system_prompt
    return own if system is None else system


def build_messages(problem: str, prompt_format: str, system: str | None = None) -> list[Message]:
    """System + user chat messages asking `problem` in `prompt_format` (system prompt overridable).

    An empty `system` ("") leaves the system message out: some chat templates (or experiments) want none.
    """
    content = system_prompt(prompt_format, system)
    messages: list[Message] = []
    if content:
        messages.append({"role": "system", "content": content})
    messages.append({"role": "user", "content": problem.strip()})
    return messages
