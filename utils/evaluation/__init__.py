"""Generation and accuracy on held-out problems."""

from utils.evaluation._accuracy import evaluate_accuracy
from utils.evaluation._generation import generate

__all__ = [
    "evaluate_accuracy",
    "generate",
]
