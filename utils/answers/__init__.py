"""Final answers: extract what a completion commits to, and decide math equivalence with a gold answer.

The pieces, cheapest first:
- `extract_answer(text)` (`_extract.py`): rules linear in the text, by order of evidence (last
  `\\boxed{}`, `<answer>` tags, `####`, "the answer is", the last complete math expression); never
  a fragment of an expression, None for a completion cut off inside a box.
- `clean_answer(s)` (`_normalize.py`): strips what never changes the value (`$`, `\\left`, `\\text{}`
  units, degrees, thousands separators of a single number, trailing punctuation) and reads decimal
  commas, percent words and lists written with "and" or semicolons, so equal answers usually
  become equal strings.
- Fast paths in this process: normalised string equality, and exact rational comparison of numbers
  (integers, decimals, fractions, percentages, mixed numbers, scientific notation).
- Everything else goes to math-verify in a worker process (`_worker.py`) that the caller
  kills when it outlives its deadline. That is the only hard bound: math-verify's own timeout uses
  signal.alarm (main thread only) and a huge power evaluates in C where no signal lands.
  A killed check is undecided: `verify` / `verify_all` say None (the rewards skip the sample),
  `is_equivalent` / `verify_batch` say False.

Tolerance rules for numbers (written down because they decide rewards):
- Exact forms (integers, fractions, mixed numbers `2\\frac{1}{2}`, terminating decimals) compare as
  exact rationals: `0.75` = `\\frac{3}{4}`, `2.50` = `2.5`.
- When the values differ and either side is written as a decimal, they are equal iff both round to
  the same 6 decimal places (math-verify's float_rounding): `0.333333` = `\\frac{1}{3}`, but `0.333`,
  `0.33` != `\\frac{1}{3}`.
- A percentage `p%` equals `p/100` and also `p`: `50\\%` = `0.5` = `50`, the way graders read
  "what percent" answers. Nothing else is scaled: `0.5` != `50`.
- Signs, order and bracket kinds matter: `2` != `-2`, `(1,2)` != `(2,1)`, `(1,2)` != `[1,2]`.
- A sequence that goes on is not a finite list: `1, 2, 3, \\ldots` != `1, 2, 3`.
"""

from utils.answers._extract import extract_answer
from utils.answers._latex import MAX_ANSWER_CHARS, MAX_BOX_CHARS
from utils.answers._normalize import clean_answer
from utils.answers._numbers import NUMBER_PATTERN
from utils.answers._pool import shutdown, warm_up
from utils.answers._verifier import (
    DEFAULT_TIMEOUT,
    clear_caches,
    is_equivalent,
    is_parseable,
    stats,
    verify,
    verify_all,
    verify_batch,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_ANSWER_CHARS",
    "MAX_BOX_CHARS",
    "NUMBER_PATTERN",
    "clean_answer",
    "clear_caches",
    "extract_answer",
    "is_equivalent",
    "is_parseable",
    "shutdown",
    "stats",
    "verify",
    "verify_all",
    "verify_batch",
    "warm_up",
]
