"""A real ``bentoml serve serving.service:NERService`` subprocess, for the service tests and the
load benchmark (benchmarks/bench_service.py).

``ServiceProcess`` starts the server on a free 127.0.0.1 port in its own process group, waits for
``/readyz``, keeps its log in a file (``log_tail()`` puts it into assertion messages), and stops
the whole group (BentoML's arbiter and its workers) on exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENTOML = Path(sys.executable).with_name("bentoml")
# The server as `bentoml serve` runs it; `arabic-ner serve` (serving/cli.py) takes the same --host and --port.
SERVE_COMMAND = (str(BENTOML), "serve", "serving.service:NERService")


def same_result(got: dict, expected: dict, tolerance: float = 0.0) -> bool:
    """Two /tag results agree: same model, same entities, scores within ``tolerance``.

    Exact by default: adaptive batching runs a text in one padded batch with other requests'
    texts, and int8 activation scales are fixed at export (``training.quantize``), so a text's
    answer must not move by one bit with what it was merged with.
    """
    if got.get("model") != expected.get("model") or len(got.get("entities", [])) != len(expected["entities"]):
        return False
    return all(
        {k: v for k, v in a.items() if k != "score"} == {k: v for k, v in b.items() if k != "score"}
        and abs(a["score"] - b["score"]) <= tolerance
        for a, b in zip(got["entities"], expected["entities"], strict=True)
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    def __init__(
        self, model_dir: str | os.PathLike, log_path: Path, env: dict[str, str] | None = None, command: Sequence[str] = SERVE_COMMAND
    ) -> None:
        self.command = [*command, "--host", "127.0.0.1"]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "NER_MODEL_DIR": str(model_dir),
            "BENTOML_DO_NOT_TRACK": "true",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*self.command, "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with status {self.process.returncode} before it was ready\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"the service was not ready after {timeout:.0f} s\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # the group is ours: start_new_session=True
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "----- service log (tail) -----\n" + "\n".join(text.splitlines()[-lines:])

    def explain(self, response: httpx.Response) -> str:
        """An assertion message: the response, then the server's recent log."""
        return f"{response.request.method} {response.request.url.path} -> {response.status_code}: {response.text[:500]}\n{self.log_tail()}"

    def __enter__(self) -> ServiceProcess:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _served(tmp_path_factory, model_dir: Path, name: str, env: dict[str, str] | None = None):
    log_path = tmp_path_factory.mktemp(name) / "service.log"
    try:
        server = ServiceProcess(model_dir, log_path, env).__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ner_service(tiny_onnx_dir, tmp_path_factory):
    """The service over the tiny model, open (no API key), default limits."""
    env = {"NER_API_KEY": "", "NER_MAX_TEXT_CHARS": "", "NER_MAX_BATCH_SIZE": "", "NER_ONNX_THREADS": ""}  # empty: default
    yield from _served(tmp_path_factory, tiny_onnx_dir, "ner-service", env)


API_KEY = "test-key-not-a-secret"


@pytest.fixture(scope="session")
def ner_service_with_key(tiny_onnx_dir, tmp_path_factory):
    """The service over the tiny model with NER_API_KEY set to API_KEY, and small limits
    (NER_MAX_TEXT_CHARS=50, NER_MAX_BATCH_SIZE=3) to show they come from the environment."""
    env = {"NER_API_KEY": API_KEY, "NER_MAX_TEXT_CHARS": "50", "NER_MAX_BATCH_SIZE": "3"}
    yield from _served(tmp_path_factory, tiny_onnx_dir, "ner-service-key", env)
