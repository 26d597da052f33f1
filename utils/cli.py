"""Entry-point wrapper shared by every script: user errors become one line and exit code 2."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import warnings
from collections.abc import Callable

from utils.errors import StopRequested, UserError


def quiet_libraries() -> None:
    """Silence library noise that says nothing to our users (it buries the plan and the progress bar)."""
    # bitsandbytes on CPU asks for an optional `kernels` package at import; the fallback works fine.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # TRL 1.16 still sets transformers' deprecated `gradient_checkpointing` itself.
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
    # accelerate, setting up a CPU process group, announces the thread count it chose (one warning per rank).
    warnings.filterwarnings("ignore", message="OMP_NUM_THREADS/MKL_NUM_THREADS unset", category=UserWarning)


def _stop(signum: int, frame: object) -> None:
    raise StopRequested(signal.Signals(signum).name)


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a script's main(); print UserError as a single line on stderr and exit 2, no traceback."""
    quiet_libraries()
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, _stop)  # a run replaces this with its graceful stop once it starts
    try:
        code = main(argv)
    except StopRequested as stop:
        print(f"stopped by {stop} before anything was saved")
        sys.exit(0)
    except UserError as err:
        message = " ".join(str(err).split())  # one line, whatever the message held
        if not getattr(err, "quiet", False):  # quiet: another process (the main one) prints it
            print(f"error: {message}", file=sys.stderr)
        sys.exit(UserError.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
