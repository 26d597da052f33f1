"""Final answers: extraction, normalisation, exact numbers and the bounded math-verify verifier."""

from utils.answers._answers import (
    DEFAULT_TIMEOUT,
    MAX_ANSWER_CHARS,
    MAX_BOX_CHARS,
    clean_answer,
    clear_caches,
    extract_answer,
    is_equivalent,
    is_parseable,
    shutdown,
    stats,
    verify_batch,
    warm_up,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_ANSWER_CHARS",
    "MAX_BOX_CHARS",
    "clean_answer",
    "clear_caches",
    "extract_answer",
    "is_equivalent",
    "is_parseable",
    "shutdown",
    "stats",
    "verify_batch",
    "warm_up",
]
