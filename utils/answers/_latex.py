"""LaTeX structure shared by extraction, cleaning and comparison: input hygiene, boxes, brackets, lists.

Size limits live here too: every rule that reads user text is bounded by them.
"""

from __future__ import annotations

import re

# Extraction reads any length (linear regexes); rules that search backwards for prose patterns look at
# the last TAIL_CHARS only. Symbolic checks refuse bigger or deeper inputs.
TAIL_CHARS = 10_000
MAX_BOX_CHARS = 4_000
MAX_ANSWER_CHARS = 10_000
MAX_NESTING = 25



def _sanitize(text: str) -> str:
    """Drop NUL and other control bytes and lone surrogates: they only come from broken decoding."""
    if not isinstance(text, str):
        text = bytes(text).decode("utf-8", "replace") if isinstance(text, (bytes, bytearray)) else str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "ignore").decode("utf-8")
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    return text


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_BOX_START = re.compile(r"\\(?:boxed|fbox)\b")


def _box_content(text: str, start: int) -> tuple[str, int] | None:
    """Content and end of the box whose command starts at `start`; None when it never closes."""
    i = _BOX_START.match(text, start).end()  # type: ignore[union-attr]
    n = len(text)
    while i < n and text[i] in " \t":
        i += 1
    if i >= n:
        return None
    if text[i] != "{":  # `\boxed 5`: one token
        m = re.match(r"[^\s$]+", text[i:])
        return (m.group(0), i + m.end()) if m else None
    depth = 0
    limit = min(n, i + MAX_BOX_CHARS)
    j = i
    while j < limit:
        c = text[j]
        if c == "\\":
            j += 2  # an escaped brace (`\{`) is content, not structure
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j], j + 1
        j += 1
    return None


def _is_bracketed(s: str) -> bool:
    """Whether one bracket pair encloses all of `s`: (1,2), [0,1), \\{1,2\\}; not (a+5)(b+2)."""
    t = s.replace("\\{", "(").replace("\\}", ")")
    if len(t) < 2 or t[0] not in "([{" or t[-1] not in ")]}":
        return False
    depth = 0
    for i, c in enumerate(t):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and i < len(t) - 1:
                return False
    return depth == 0


def _split_top_level(body: str) -> list[str]:
    out, depth, start = [], 0, 0
    t = body.replace("\\{", "(\x00").replace("\\}", "\x00)")  # same length per brace pair
    for i, c in enumerate(t):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(body[start:i])
            start = i + 1
    out.append(body[start:])
    return out


def _unbracket(key: str) -> str:
    if _is_bracketed(key):
        return key[2:-2] if key.startswith("\\{") else key[1:-1]
    return key
