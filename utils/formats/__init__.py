"""Prompt formats, each defined once: its name, system prompt, tags and the layouts the format rewards check.

    get_format("xml").system_prompt            # the one lookup; an unknown name fails with one wording
    build_messages(problem, "think_boxed")     # system + user chat messages (rendering: utils.data)

Everything that names a format reads it here: the recipe's `prompt.format` choices (utils.config, which
validates it), the training and benchmark prompts (utils.data), the format rewards (utils.rewards) and
evaluate.py's `--prompt-format`. Imports only utils.errors.
"""

from utils.formats._formats import (
    BOX,
    DEFAULT_FORMAT,
    FORMAT_NAMES,
    FORMATS,
    PromptFormat,
    UnknownFormatError,
    get_format,
)
from utils.formats._messages import Message, build_messages, system_prompt

__all__ = [
    "BOX",
    "DEFAULT_FORMAT",
    "FORMATS",
    "FORMAT_NAMES",
    "Message",
    "PromptFormat",
    "UnknownFormatError",
    "build_messages",
    "get_format",
    "system_prompt",
]
