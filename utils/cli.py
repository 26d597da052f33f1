"""Entry-point wrapper shared by every script: user errors become one line and exit code 2; a stop (Ctrl-C,
SIGTERM) ends in a true line and exit code 130 / 143.

The stop guard: a script declares, as it goes, what a stop would leave and the command that continues
(`on_stop`); `run_main` prints "stopped by SIGTERM <what is kept>" and "continue with: <command>", or
"stopped by SIGTERM before anything was saved; start again with: <command>", and exits 128 + the signal.
`run_child` runs a step as its own process and passes a stop on to it, so it can end as it would alone.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from utils.errors import StopRequested, UserError

STOP_GRACE_S = 120.0  # how long a child step may take to end after a stop (a training step, then its save)


def quiet_libraries() -> None:
    """Silence library noise that says nothing to our users (it buries the plan and the progress bar)."""
    # bitsandbytes on CPU asks for an optional `kernels` package at import; the fallback works fine.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # TRL 1.16 still sets transformers' deprecated `gradient_checkpointing` itself.
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
    # accelerate, setting up a CPU process group, announces the thread count it chose (one warning per rank).
    warnings.filterwarnings("ignore", message="OMP_NUM_THREADS/MKL_NUM_THREADS unset", category=UserWarning)


# What a stop leaves now, as the running script last declared it.
_stop_note: dict[str, object] = {"command": None, "saved": None}


def on_stop(command: str | None, saved: str | Callable[[], str | None] | None = None) -> None:
    """Declare what a stop now leaves: `saved`, the words after "stopped by SIGTERM" that say what is kept (or a
    callable that finds them at the time of the stop; None: nothing), and the command that continues."""
    _stop_note.update(command=command, saved=saved)


def stop_message(signal_name: str) -> str:
    """The truthful line(s) for a stop by `signal_name`, from what the script declared."""
    saved = _stop_note["saved"]
    kept = saved() if callable(saved) else saved
    command = _stop_note["command"]
    if kept:
        return f"stopped by {signal_name} {kept}" + (f"\ncontinue with: {command}" if command else "")
    return f"stopped by {signal_name} before anything was saved" + (f"; start again with: {command}" if command else "")


def stop_exit_code(signal_name: str) -> int:
    """128 + the signal's number, as a shell reports a process the signal ended: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signal.Signals[signal_name].value


def rerun_command(*args: str) -> str:
    """This script run with `args`, as it can be pasted back: the same interpreter (the venv's) and script path."""
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    return shlex.join([str(python), sys.argv[0], *args])


def _stop(signum: int, frame: object) -> None:
    raise StopRequested(signal.Signals(signum).name)


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a script's main(); print UserError as a single line on stderr and exit 2, no traceback; a stop prints
    what is kept and the command that continues (on_stop), and exits 130 (SIGINT) or 143 (SIGTERM)."""
    quiet_libraries()
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, _stop)  # a run replaces this with its graceful stop once it starts
    try:
        code = main(argv)
    except (StopRequested, KeyboardInterrupt) as stop:
        _end_stopped(str(stop) if isinstance(stop, StopRequested) and str(stop) else "SIGINT")
    except UserError as err:
        message = " ".join(str(err).split())  # one line, whatever the message held
        if not getattr(err, "quiet", False):  # quiet: another process (the main one) prints it
            print(f"error: {message}", file=sys.stderr)
        sys.exit(UserError.exit_code)
    sys.exit(code or 0)


def _end_stopped(signal_name: str) -> NoReturn:
    with contextlib.suppress(ValueError):  # a second signal while saying so changes nothing
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    print(f"\n{stop_message(signal_name)}", flush=True)
    sys.exit(stop_exit_code(signal_name))


def run_child(command: list[str], capture: bool = False, grace_s: float = STOP_GRACE_S) -> subprocess.CompletedProcess:
    """Run `command` as a child; a stop here (Ctrl-C, SIGTERM) is passed on to it, and it gets `grace_s` to end
    as it would alone (a training finishes its step and saves) before it is killed, said on stderr. Then the
    stop goes on up as StopRequested, as it does when the child itself was stopped (exit 130/143).

    The child has its own process group: a terminal's Ctrl-C reaches it once, through us (twice would abort a
    training's save)."""
    proc = subprocess.Popen(command, text=True, stdout=subprocess.PIPE if capture else None, process_group=0)
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: no forwarding
        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        out = _wait(proc, received, grace_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stopped = received[0] if received else _stopped_by(proc.returncode)
    if stopped:
        raise StopRequested(signal.Signals(stopped).name)
    return subprocess.CompletedProcess(command, proc.returncode, out)


def _wait(proc: subprocess.Popen, received: list[int], grace_s: float) -> str | None:
    """The child's output once it ends; after a stop, at most `grace_s` more, then it is killed."""
    deadline = None
    while True:
        try:
            return proc.communicate(timeout=0.5)[0]
        except subprocess.TimeoutExpired:
            pass
        if received and deadline is None:
            deadline = time.monotonic() + grace_s
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            print(f"the step did not stop within {grace_s:g} s: killed (what it was writing is not kept)",
                  file=sys.stderr, flush=True)
            return proc.communicate()[0]


def _stopped_by(returncode: int) -> int | None:
    """The stop signal a child's exit code reports (it was stopped directly), else None."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if returncode in (-sig, 128 + sig):
            return sig
    return None
