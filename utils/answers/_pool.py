"""The client side of the math-verify worker pool: a fork server (`_worker.py`) and workers the
caller kills when they outlive their deadline."""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

# Starting the verifier process (imports sympy + math-verify) happens once per process; bounded too.
STARTUP_TIMEOUT = 30.0
_WORKER_SCRIPT = Path(__file__).with_name("_worker.py")



class VerifierUnavailable(RuntimeError):
    """The symbolic verifier process could not be started."""


class _Worker:
    """One forked verifier process, spoken to over a socket with newline-delimited JSON."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self.buf = bytearray()

    def send(self, obj: dict) -> None:
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv(self, deadline: float) -> dict | None:
        """The next message, or None at the deadline. EOFError when the worker died."""
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("verifier worker exited")
            self.buf += chunk
        line, _, rest = bytes(self.buf).partition(b"\n")
        self.buf = bytearray(rest)
        return json.loads(line)

    def kill(self) -> None:
        try:
            os.kill(self.pid, 9)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class _Pool:
    """Client of the verifier zygote: hands out workers, kills those that overrun their deadline."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.owner_pid = os.getpid()
        self.max_workers = max_workers or max(4, 2 * (os.cpu_count() or 1))
        self.cond = threading.Condition()
        self.zygote_lock = threading.Lock()
        self.idle: list[_Worker] = []
        self.live = 0
        self.proc: subprocess.Popen | None = None
        self.ctrl: socket.socket | None = None
        self.warm = False
        self.failed_at = 0.0

    # -- zygote
    def start(self) -> None:
        with self.zygote_lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self.proc is not None and self.proc.poll() is None and self.ctrl is not None:
            return
        if time.monotonic() - self.failed_at < 5.0:
            raise VerifierUnavailable("verifier failed to start moments ago")
        self._stop_zygote_locked()
        parent, child = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(_WORKER_SCRIPT), str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=None if os.environ.get("GRPO_MATH_VERIFIER_DEBUG") else subprocess.DEVNULL,
                env={**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"},
            )
        finally:
            child.close()
        ready, _, _ = select.select([parent], [], [], STARTUP_TIMEOUT)
        if not ready or parent.recv(1) != b"R":
            parent.close()
            self.proc.kill()
            self.proc = None
            self.failed_at = time.monotonic()
            raise VerifierUnavailable("the math-verify worker did not start (is math-verify installed?)")
        self.ctrl = parent
        self.warm = False

    def _wait_warm_locked(self) -> None:
        """Wait until the fork server has exercised math-verify (its `W`), so every worker starts warm.

        A worker forked earlier pays 50-400 ms for its first parse of each kind of answer, which
        on a loaded machine can overrun the deadline and turn a right answer into a timeout.
        """
        if self.warm or self.ctrl is None:
            return
        ready, _, _ = select.select([self.ctrl], [], [], STARTUP_TIMEOUT)
        if ready and self.ctrl.recv(1) == b"W":
            self.warm = True
        else:
            self.warm = True  # never wait twice; workers will warm up as they go
            logger.warning("math-verify fork server did not finish warming up")

    def _stop_zygote_locked(self) -> None:
        if self.ctrl is not None:
            try:
                self.ctrl.close()
            except OSError:
                pass
            self.ctrl = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def _fork_worker(self) -> _Worker:
        for attempt in range(2):
            with self.zygote_lock:
                self._start_locked()
                self._wait_warm_locked()
                mine, theirs = socket.socketpair()
                try:
                    socket.send_fds(self.ctrl, [b"F"], [theirs.fileno()])  # type: ignore[arg-type]
                except OSError:
                    mine.close()
                    self._stop_zygote_locked()  # the zygote died: start a new one and retry
                    if attempt:
                        raise
                    continue
                finally:
                    theirs.close()
            worker = _Worker(mine, pid=-1)
            try:
                hello = worker.recv(time.monotonic() + STARTUP_TIMEOUT)
            except (EOFError, OSError, ValueError):
                hello = None
            if hello and "pid" in hello:
                worker.pid = int(hello["pid"])
                return worker
            mine.close()
            with self.zygote_lock:
                self._stop_zygote_locked()
        raise VerifierUnavailable("could not fork a verifier worker")

    # -- workers
    def checkout(self) -> _Worker:
        with self.cond:
            while not self.idle and self.live >= self.max_workers:
                self.cond.wait()
            if self.idle:
                return self.idle.pop()
            self.live += 1
        try:
            return self._fork_worker()
        except BaseException:
            with self.cond:
                self.live -= 1
                self.cond.notify()
            raise

    def checkin(self, worker: _Worker) -> None:
        with self.cond:
            self.idle.append(worker)
            self.cond.notify()

    def discard(self, worker: _Worker) -> None:
        worker.kill()
        with self.cond:
            self.live -= 1
            self.cond.notify()

    # -- requests
    def verify(self, gold: str, preds: Sequence[str], timeout: float) -> list[bool | None]:
        """math-verify verdicts for one gold against many predictions, each within `timeout` seconds.

        None marks a prediction whose check overran its deadline or killed its worker.
        """
        results: list[bool | None] = []
        while len(results) < len(preds):
            worker = self.checkout()
            try:
                worker.send({"op": "verify", "gold": gold, "preds": list(preds[len(results) :])})
                while len(results) < len(preds):
                    reply = worker.recv(time.monotonic() + timeout)
                    if reply is None:  # overran its deadline: kill it, the rest go to a fresh worker
                        logger.debug("verifier timeout after %.2fs", timeout)
                        results.append(None)
                        self.discard(worker)
                        worker = None
                        break
                    results.append(bool(reply.get("v")))
            except (EOFError, OSError, ValueError):  # died on this item (e.g. out of memory)
                results.append(None)
                if worker is not None:
                    self.discard(worker)
                worker = None
            if worker is not None:
                self.checkin(worker)
        return results

    def ask(self, request: dict, timeout: float) -> dict | None:
        worker = self.checkout()
        try:
            worker.send(request)
            reply = worker.recv(time.monotonic() + timeout)
        except (EOFError, OSError, ValueError):
            reply = None
            self.discard(worker)
            return None
        if reply is None:
            self.discard(worker)
        else:
            self.checkin(worker)
        return reply

    def close(self) -> None:
        with self.cond:
            idle, self.idle = self.idle, []
            self.live -= len(idle)
        for worker in idle:
            worker.kill()
        with self.zygote_lock:
            self._stop_zygote_locked()

    def forget(self) -> None:
        """In a forked child: drop the parent's sockets without touching the parent's processes."""
        for worker in self.idle:
            try:
                worker.sock.close()
            except OSError:
                pass
        if self.ctrl is not None:
            try:
                self.ctrl.close()
            except OSError:
                pass


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> _Pool:
    global _POOL
    pool = _POOL
    if pool is not None and pool.owner_pid == os.getpid():
        return pool
    with _POOL_LOCK:
        if _POOL is None or _POOL.owner_pid != os.getpid():
            _POOL = _Pool()
        return _POOL


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time stays held forever in the child: replace them all.
    global _POOL, _POOL_LOCK
    if _POOL is not None:
        _POOL.forget()
    _POOL = None
    _POOL_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def shutdown() -> None:
    """Stop the verifier processes (they also stop by themselves when this process exits)."""
    global _POOL
    pool = _POOL
    if pool is not None and pool.owner_pid == os.getpid():
        pool.close()
    _POOL = None


def warm_up() -> None:
    """Start the verifier now instead of at the first symbolic check (1-2 s, once per process):
    the fork server imports math-verify and exercises its parsers, then forks a first worker."""
    pool = _pool()
    pool.checkin(pool.checkout())

