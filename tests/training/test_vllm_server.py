"""TRL's vLLM server mode (training.vllm_mode: server): a missing, silent or dying server is one line within
its timeout, never a hang. Real sockets on 127.0.0.1: nothing listening, a listener that never answers,
and a /health endpoint that does answer.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import requests

from utils.errors import UserError
from utils.training import bound_requests, check_vllm_server, wait_for_server

BOUND = 30.0  # seconds: far above every timeout below, far below a hang; the machine may be busy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_server():
    """Accepts connections (the kernel's backlog) and never answers: a wedged or still-loading server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.fixture
def healthy_server():
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def server_config(url: str, timeout: float) -> SimpleNamespace:
    return SimpleNamespace(use_vllm=True, vllm_mode="server", vllm_server_base_url=url, vllm_server_host="unused",
                           vllm_server_port=0, vllm_server_timeout=timeout)


def test_no_server_on_the_port_is_one_line_after_the_timeout():
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        check_vllm_server(server_config(url, 2.0), cuda=True)
    waited = time.monotonic() - started
    message = str(caught.value)
    assert f"no vLLM server answers at {url}/health after 2 s (connection refused)" in message
    assert "\n" not in message and "trl vllm-serve" in message
    assert 2.0 <= waited < BOUND  # it waited out the timeout (the server may still be starting), then stopped


def test_a_server_that_never_answers_is_an_error_within_the_timeout_not_a_hang(silent_server):
    started = time.monotonic()
    with pytest.raises(UserError, match=r"after 2 s \(timed out\)"):
        wait_for_server(silent_server, 2.0)
    assert time.monotonic() - started < BOUND


def test_a_healthy_server_passes_at_once(healthy_server):
    started = time.monotonic()
    check_vllm_server(server_config(healthy_server, 60.0), cuda=True)
    assert time.monotonic() - started < BOUND / 2  # answered on the first poll, not after the 60 s timeout


def test_a_server_that_stops_answering_mid_run_times_out_the_request(silent_server):
    """TRL's client session posts with no timeout: against a wedged server it would wait for ever."""
    session = requests.Session()
    bound_requests(session, timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        session.post(f"{silent_server}/generate/", json={"prompts": []})
    assert time.monotonic() - started < BOUND


def test_server_mode_on_a_cpu_trainer_is_refused_before_anything_loads():
    with pytest.raises(UserError, match="vllm_mode: server needs a CUDA GPU for the trainer.*vllm_mode: colocate"):
        check_vllm_server(server_config("http://127.0.0.1:1", 1.0), cuda=False)


def test_colocated_or_no_vllm_contacts_no_server():
    check_vllm_server(SimpleNamespace(use_vllm=True, vllm_mode="colocate"), cuda=False)
    check_vllm_server(SimpleNamespace(use_vllm=False, vllm_mode="server"), cuda=True)


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (make setup-vllm)")
def test_grpo_train_in_server_mode_on_cpu_is_one_line_and_exit_2(run_script, tiny_model_dir, tmp_path):
    result = run_script("grpo_train", "recipes/smoke_cpu.yaml", "--dry-run", "--set", f"model.name={tiny_model_dir}",
                        "--set", f"output.dir={tmp_path}", "--set", "training.use_vllm=true",
                        "--set", "training.vllm_mode=server", "--set", f"training.vllm_server_port={free_port()}",
                        "--set", "training.vllm_server_host=127.0.0.1", "--set", "training.vllm_server_timeout=5")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "vllm_mode: server needs a CUDA GPU" in lines[0]
