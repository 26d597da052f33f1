"""Symbolic verification server for utils.answers: a fork server ("zygote") and its workers.

Run as `python _worker.py FD`, where FD is a Unix socket to the client (utils.answers).
The zygote imports math-verify once, says it is ready, then forks one worker per request; the
client hands it one end of a fresh socketpair for each worker (SCM_RIGHTS). A worker answers
newline-delimited JSON requests on its socket until the client closes it.

Why this shape: math-verify can hang (huge powers evaluate in C, where no signal reaches) and
its own timeout uses signal.alarm, which only works on a main thread. A process the client can
SIGKILL is the only hard bound; forking from a pre-imported zygote makes a replacement cost a
few milliseconds instead of the ~0.7 s import, and works from threads and daemonic processes.

This file must stay importable without the repo on sys.path: it imports only the stdlib and
math-verify.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import resource
import select
import signal
import socket
import sys
from collections import OrderedDict
from typing import Any

# A worker may grow this much beyond the zygote's address space before MemoryError (a 10^(10^9)
# integer would otherwise take the machine's memory with it).
WORKER_EXTRA_ADDRESS_SPACE = 2 * 2**30
PARSE_CACHE_SIZE = 4096


def _quiet() -> None:
    # math-verify warns once that we disabled its signal timeout: we enforce our own.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def lookup(self, key: str) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        return None

    def store(self, key: str, value: Any) -> None:
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)


class Checker:
    """math-verify with parse caches (a gold is parsed once per worker) and a cheap numeric disproof."""

    def __init__(self) -> None:
        import sympy
        from math_verify import parse, verify

        self.sympy = sympy
        self.parse_fn = parse
        self.verify_fn = verify
        self.cache: _LRU = _LRU(PARSE_CACHE_SIZE)
        self.parses = 0  # math-verify parse calls (cache misses), for tests

    def parse(self, text: str) -> list:
        hit = self.cache.lookup(text)
        if hit is not None:
            return hit
        self.parses += 1
        try:
            # `$...$` reads a bare answer as LaTeX (normalised units, \text, degrees by math-verify)
            parsed = self.parse_fn(f"${text}$", parsing_timeout=None)
        except Exception:  # noqa: BLE001 - a parse failure is a verdict, not an error
            parsed = []
        self.cache.store(text, parsed)
        return parsed

    def parseable(self, text: str) -> bool:
        return any(not isinstance(p, str) for p in self.parse(text))

    def verify(self, gold: str, pred: str) -> bool:
        g = self.parse(gold)
        p = self.parse(pred)
        if not g or not p:
            return False
        g_exprs = [x for x in g if not isinstance(x, str)]
        p_exprs = [x for x in p if not isinstance(x, str)]
        if g_exprs and p_exprs and self.numerically_different(g_exprs[0], p_exprs[0]):
            return False
        try:
            # allow_set_relation_comp: `(2, \infty)` and `x > 2` are the same set, whichever is the gold
            return bool(self.verify_fn(g, p, timeout_seconds=None, allow_set_relation_comp=True))
        except Exception:  # noqa: BLE001
            return False

    def numerically_different(self, a: Any, b: Any) -> bool:
        """True only when two plain expressions surely differ: saves sympy's simplify on most mismatches.

        Constants are evaluated to 30 digits; expressions in the same free symbols at two random
        points. Differences must exceed math-verify's own float tolerance (rounding to 6 places)
        by a wide margin, so this never turns a math-verify True into False.
        """
        sympy = self.sympy
        try:
            if not (isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr)):
                return False
            if a.has(sympy.UnevaluatedExpr) or b.has(sympy.UnevaluatedExpr):
                return False  # percentages: math-verify has special rules for them
            syms_a, syms_b = a.free_symbols, b.free_symbols
            if syms_a != syms_b:
                return False  # x vs e, abc vs a*b*c...: leave naming rules to math-verify
            syms = sorted(syms_a, key=str)
            rng = random.Random(1234)
            points = [{}] if not syms else [{s: rng.uniform(0.3, 1.7) for s in syms} for _ in range(2)]
            for point in points:
                va = complex(a.evalf(30, subs=point))
                vb = complex(b.evalf(30, subs=point))
                if not all(math.isfinite(v) for v in (va.real, va.imag, vb.real, vb.imag)):
                    return False
                scale = max(1.0, abs(va), abs(vb))
                if abs(va - vb) <= 1e-4 * scale:
                    return False
            return True
        except Exception:  # noqa: BLE001 - anything odd: let math-verify decide
            return False


def _serve_worker(sock: socket.socket) -> None:
    checker = Checker()
    reader = sock.makefile("rb")
    writer = sock.makefile("wb")

    def send(obj: Any) -> None:
        writer.write(json.dumps(obj).encode() + b"\n")
        writer.flush()

    send({"pid": os.getpid()})
    for line in reader:
        try:
            request = json.loads(line)
        except ValueError:
            return
        op = request.get("op")
        if op == "verify":
            gold = request["gold"]
            for pred in request["preds"]:
                try:
                    verdict = checker.verify(gold, pred)
                except MemoryError:
                    verdict = False
                send({"v": verdict})
        elif op == "parses":
            send({"v": checker.parses})
        elif op == "parseable":
            send({"v": checker.parseable(request["gold"])})
        elif op == "sleep":  # tests: a request that outlives any deadline
            import time

            time.sleep(float(request.get("seconds", 60)))
            send({"v": True})
        else:
            send({"error": f"unknown op {op!r}"})


def _limit_memory() -> None:
    try:
        with open("/proc/self/statm") as f:
            vm_bytes = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = vm_bytes + WORKER_EXTRA_ADDRESS_SPACE
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (OSError, ValueError):
        pass


def main(fd: int) -> None:
    _quiet()
    ctrl = socket.socket(fileno=fd)
    checker = Checker()  # import math-verify + sympy once, here, so every fork starts with them
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished workers
    ctrl.sendall(b"R")
    warm_queue = list(_WARM_PAIRS)
    children: list[int] = []
    try:
        while True:
            # While no one asks for a worker, exercise math-verify one pair at a time: later forks
            # inherit the warmed parser caches; a fork request never waits for more than one pair.
            if warm_queue and not select.select([ctrl], [], [], 0)[0]:
                checker.verify(*warm_queue.pop(0))
                if not warm_queue:
                    checker.cache.clear()
                    ctrl.sendall(b"W")  # warm_up() may wait for this
                continue
            try:
                msg, fds, _flags, _addr = socket.recv_fds(ctrl, 16, 1)
            except OSError:
                break
            if not msg or not fds:
                break  # the client is gone
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                ctrl.close()
                _limit_memory()
                code = 0
                try:
                    _serve_worker(socket.socket(fileno=fds[0]))
                except BaseException:  # noqa: BLE001 - a worker dies quietly; the client sees EOF
                    code = 1
                os._exit(code)
            os.close(fds[0])
            children = [c for c in children if _alive(c)] + [pid]
    finally:
        for child in children:  # workers stuck in a long computation must not outlive the client
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass


# One of each kind of answer: the first parse of a kind compiles regexes, builds ANTLR's caches and
# imports sympy submodules (50-130 ms each); done in the zygote, later workers inherit the result.
_WARM_PAIRS = [
    ("\\frac{\\sqrt{3}}{2}", "\\sqrt{3}/2"), ("x^2+2x+1", "(x+1)^2"), ("(1, 2)", "[1, 2]"),
    ("(-\\infty, 2) \\cup (3, \\infty)", "x<2"), ("\\{1, 2\\}", "1,2"), ("x \\in [-2,7]", "[-2,7]"),
    ("y = 2x + 3", "2x+3"), ("6+9i", "6 + 9i"), ("50\\%", "0.5"), ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "(1,2)"),
    ("\\text{east}", "east"), ("30^\\circ", "\\frac{\\pi}{6}"), ("\\cot x", "\\frac{\\cos x}{\\sin x}"),
    ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}"), ("2\\pi", "6.283185"), ("\\log_2 8", "3"),
]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main(int(sys.argv[1]))
