"""The public verdicts: `is_equivalent`, `verify_batch`, `is_parseable`, with a verdict cache and counts."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from functools import lru_cache

from utils.answers._compare import _NOT_ANSWERS, _TEXT_ANSWER, _fast_verdict, _prepare, _prepare_cached, _Prepared
from utils.answers._pool import VerifierUnavailable, _pool

logger = logging.getLogger(__name__)

# Per-answer deadline for the symbolic check (seconds), sized from measured check times: in a freshly
# forked worker the slowest corpus and MATH-500 checks took 0.53 s with the 2 cores loaded ~3x over
# (load average 6; 0.23 s in a reused worker), and 0.65-0.77 s were seen before the zygote warmed its
# parsers. 1.5 s is about 3x the worst measured, so a right answer does not turn on machine load; a
# check that still overruns is undecided (None), never "not equal". Kill, reply and a replacement
# fork add well under 0.5 s, so the worst single call stays under 2 s.
DEFAULT_TIMEOUT = 1.5



class _VerdictCache:
    def __init__(self, size: int = 65536) -> None:
        self.size = size
        self.data: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> bool | None:
        with self.lock:
            value = self.data.get(key)
            if value is not None:
                self.data.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: bool) -> None:
        with self.lock:
            self.data[key] = value
            if len(self.data) > self.size:
                self.data.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()


_VERDICTS = _VerdictCache()
# How verdicts were reached since the last clear_caches(): fast paths, the verdict cache, math-verify
# workers, and deadlines hit. Read with stats(); benchmarks and logs use it.
_STATS = {"fast": 0, "cached": 0, "symbolic": 0, "timeouts": 0}
_STATS_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time stays held forever in the child: replace them.
    global _STATS_LOCK
    _STATS_LOCK = threading.Lock()
    _VERDICTS.lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _count(key: str, n: int = 1) -> None:
    with _STATS_LOCK:
        _STATS[key] += n


def stats() -> dict[str, int]:
    """Counts of verdicts by route since the last `clear_caches()`."""
    with _STATS_LOCK:
        return dict(_STATS)


def clear_caches() -> None:
    """Forget cached verdicts and prepared answers (benchmarks measure cold)."""
    _VERDICTS.clear()
    with _STATS_LOCK:
        for key in _STATS:
            _STATS[key] = 0
    _prepare_cached.cache_clear()
    _parseable_cached.cache_clear()


# ---------------------------------------------------------------------------------------------
# Public API


def is_equivalent(gold: str, predicted: str | None, *, timeout: float | None = None) -> bool:
    """Whether `predicted` is mathematically the same final answer as `gold`.

    Never raises; returns within `timeout` (default DEFAULT_TIMEOUT) seconds of symbolic work, on any
    thread and in any process. The first symbolic check of a process also starts the verifier
    (1-2 s, once; `warm_up()` pays it ahead). Unreadable or pathological input is not equal, and so
    is an undecided check (see `verify` for the three-way answer).
    """
    return verify(gold, predicted, timeout=timeout) is True


def verify(gold: str, predicted: str | None, *, timeout: float | None = None) -> bool | None:
    """`is_equivalent` with a third answer: None when the check was not decided (it overran its
    deadline or its worker died), so a caller can skip the sample instead of calling it wrong."""
    try:
        return verify_all([gold], [predicted], timeout=timeout)[0]
    except Exception:  # noqa: BLE001 - a verdict, never an exception
        logger.debug("verify failed", exc_info=True)
        return None


def is_parseable(gold: str, *, timeout: float | None = None) -> bool:
    """Whether our verifier can read `gold`: a number, a short text answer, or something math-verify parses."""
    try:
        if not isinstance(gold, str) or not gold.strip():
            return isinstance(gold, (int, float, Fraction)) and not isinstance(gold, bool)
        if len(gold) > 2000:
            return False
        return _parseable_cached(gold, DEFAULT_TIMEOUT if timeout is None else timeout)
    except Exception:  # noqa: BLE001
        logger.debug("is_parseable failed", exc_info=True)
        return False


@lru_cache(maxsize=65536)
def _parseable_cached(gold: str, timeout: float) -> bool:
    g = _prepare(gold)
    if not g.key:
        return False
    if g.number is not None:
        return True
    if not g.symbolic_ok:
        return False
    if _TEXT_ANSWER.match(g.clean):
        return g.key not in _NOT_ANSWERS
    reply = _pool().ask({"op": "parseable", "gold": g.clean}, timeout)
    return bool(reply and reply.get("v"))


# Below this many symbolic pairs, one worker beats the cost of spreading work across processes.
MIN_PAIRS_PER_WORKER = 8


def verify_batch(
    golds: Sequence[str],
    predictions: Sequence[str | None],
    *,
    timeout: float | None = None,
    max_workers: int | None = None,
) -> list[bool]:
    """`is_equivalent` for many pairs (an undecided check is not equal); see `verify_all`."""
    return [v is True for v in verify_all(golds, predictions, timeout=timeout, max_workers=max_workers)]


def verify_all(
    golds: Sequence[str],
    predictions: Sequence[str | None],
    *,
    timeout: float | None = None,
    max_workers: int | None = None,
) -> list[bool | None]:
    """`verify` for many pairs: fast paths here, the rest on worker processes in parallel.

    Each distinct gold is prepared once and sent once per worker with all its predictions (a GRPO
    group), so math-verify parses it once. Predictions are final answers (see `extract_answer`).
    """
    if len(golds) != len(predictions):
        raise ValueError(f"verify_batch: {len(golds)} golds but {len(predictions)} predictions")
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    results: list[bool | None] = [False] * len(golds)
    pending: dict[str, dict[str, list[int]]] = {}  # gold clean -> pred clean -> indices
    golds_prepared: dict[object, _Prepared] = {}
    for i, (gold, pred) in enumerate(zip(golds, predictions, strict=True)):
        if pred is None or gold is None:
            continue
        try:
            gkey = gold if isinstance(gold, str) else repr(gold)
            g = golds_prepared.get(gkey)
            if g is None:
                g = golds_prepared[gkey] = _prepare(gold)
            p = _prepare(pred)
            if not g.key or not p.key:
                continue
            verdict = _fast_verdict(g, p)
            route = "fast"
            if verdict is None:
                verdict = _VERDICTS.get((g.clean, p.clean))
                route = "cached"
            if verdict is not None:
                results[i] = verdict
                _count(route)
            elif g.symbolic_ok and p.symbolic_ok:
                pending.setdefault(g.clean, {}).setdefault(p.clean, []).append(i)
        except Exception:  # noqa: BLE001 - one bad pair must not sink the batch
            logger.debug("verify_batch: pair %d failed", i, exc_info=True)
    if pending:
        _run_symbolic(pending, results, timeout, max_workers)
    return results


def _run_symbolic(
    pending: dict[str, dict[str, list[int]]], results: list[bool | None], timeout: float, max_workers: int | None
) -> None:
    groups = sorted(pending.items(), key=lambda item: -len(item[1]))
    total = sum(len(preds) for _, preds in groups)
    cpus = os.cpu_count() or 1
    n_workers = min(max_workers or cpus, len(groups), max(1, total // MIN_PAIRS_PER_WORKER))

    def run_group(item: tuple[str, dict[str, list[int]]]) -> None:
        gold, preds = item
        pred_list = list(preds)
        try:
            verdicts = _pool().verify(gold, pred_list, timeout)
        except VerifierUnavailable:
            logger.warning("math-verify worker unavailable: symbolic answers are undecided")
            verdicts = [None] * len(pred_list)
        _count("symbolic", len(pred_list))
        for pred, verdict in zip(pred_list, verdicts, strict=True):
            if verdict is not None:  # a timeout may be load, not the pair: never cache it
                _VERDICTS.put((gold, pred), verdict)
            else:
                _count("timeouts")
            for i in preds[pred]:
                results[i] = verdict  # None: undecided, never a silent "not equal"

    if n_workers <= 1:
        for item in groups:
            run_group(item)
    else:  # threads here only wait on sockets: the work runs in n_workers processes
        with ThreadPoolExecutor(n_workers) as executor:
            list(executor.map(run_group, groups))
