"""TRL's vLLM server mode (`training.vllm_mode: server`): generation on a `trl vllm-serve` process, most
often on its own GPU, while the trainer runs on the others.

What TRL 1.16 does badly here, wrapped:
- Waiting for the server. `VLLMClient.check_server` polls /health with `requests.get(url)` and no timeout
  per request: a server that accepts the connection but never answers (still loading, wedged, a firewall
  that drops packets) hangs it for ever, whatever `vllm_server_timeout` says. We poll /health ourselves
  with bounded requests, before any model loads, and make a missing server one line.
- A server that dies or hangs mid-run. The client's session posts with no timeout (a hung server hangs the
  run) and retries a refused connection for about a minute before a traceback. `bound_requests` gives
  every request a timeout; `server_failure` turns what then fails into one line that names the server
  and says how to resume.
- No GPU. TRL pushes the new weights to the server over NCCL (vLLM's weight-transfer engine): its
  `init_communicator` refuses a CPU trainer after the model has loaded. Refused at set-up instead.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from utils.errors import UserError, first_line

REQUEST_TIMEOUT_S = 10.0  # one /health request; the whole wait is bounded by training.vllm_server_timeout
POLL_INTERVAL_S = 1.0
# Generous on purpose: a server generating a large batch of long completions answers in minutes, not seconds.
GENERATION_TIMEOUT_S = 1800.0


def uses_vllm_server(config: Any) -> bool:
    return bool(getattr(config, "use_vllm", False)) and getattr(config, "vllm_mode", "") == "server"


def server_url(config: Any) -> str:
    """Where TRL will look for the server: vllm_server_base_url, else host and port."""
    if getattr(config, "vllm_server_base_url", None):
        return str(config.vllm_server_base_url).rstrip("/")
    return f"http://{config.vllm_server_host}:{config.vllm_server_port}"


def check_vllm_server(config: Any, cuda: bool) -> None:
    """Server mode only: a CUDA trainer (TRL's weight sync) and a server that answers /health within
    training.vllm_server_timeout seconds; else one line, before anything loads."""
    if not uses_vllm_server(config):
        return
    if not cuda:
        raise UserError("training.vllm_mode: server needs a CUDA GPU for the trainer: TRL pushes new weights to the "
                        "server over NCCL, which has no CPU path; on this machine use training.vllm_mode: colocate")
    wait_for_server(server_url(config), float(config.vllm_server_timeout))


def wait_for_server(url: str, timeout_s: float) -> None:
    """Poll {url}/health until it answers 200; a UserError after `timeout_s` seconds, never a hang."""
    import requests

    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        try:
            response = requests.get(f"{url}/health", timeout=max(0.1, min(REQUEST_TIMEOUT_S, left)))
            if response.status_code == 200:
                return
            why = f"HTTP {response.status_code}"
        except requests.exceptions.RequestException as err:
            why = _short_reason(err)
        left = deadline - time.monotonic()
        if left <= 0:
            raise UserError(f"training.vllm_mode: server: no vLLM server answers at {url}/health after {timeout_s:g} s "
                            f"({why}): start one first (trl vllm-serve --model MODEL --host HOST --port PORT) or "
                            "check training.vllm_server_host / vllm_server_port / vllm_server_timeout")
        time.sleep(min(POLL_INTERVAL_S, left))


def _short_reason(err: BaseException) -> str:
    """'connection refused' or 'timed out' rather than urllib3's nested repr of the same."""
    text = first_line(err).lower()
    for reason in ("connection refused", "timed out", "name or service not known", "connection reset"):
        if reason in text:
            return reason
    return type(err).__name__


def bound_requests(session: Any, timeout_s: float = GENERATION_TIMEOUT_S) -> None:
    """Give every request of a requests.Session a timeout unless the caller set one (TRL's set none)."""
    request = session.request

    @functools.wraps(request)
    def bounded(method: str, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout_s)
        if kwargs["timeout"] is None:
            kwargs["timeout"] = timeout_s
        return request(method, url, **kwargs)

    session.request = bounded


def server_failure(err: BaseException, url: str, step: int) -> UserError | None:
    """The one-line error for a server that stopped answering mid-run, or None if `err` is something else."""
    import requests

    if not isinstance(err, (requests.exceptions.RequestException, ConnectionError)):
        return None
    return UserError(f"training.vllm_mode: server: the vLLM server at {url} stopped answering during step {step + 1} "
                     f"({_short_reason(err)}): restart it, then rerun with --resume (from the last complete checkpoint)")
