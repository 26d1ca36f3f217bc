"""Start the local runtime as `make run` does, on a free port, and stop it with Ctrl-C."""

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from local.aws import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    url: str
    aws_endpoint: str
    process: subprocess.Popen


@pytest.fixture(scope="session")
def runtime():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PORT=str(port), PYTHONUNBUFFERED="1", LOCAL_LOG_LEVEL="WARNING", SEED="0")
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        """Keep reading: a runtime writing into a full pipe would stop in the middle of a log."""
        for line in process.stdout:
            lines.append(line)
            if line.startswith("READY "):
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(60) or not any(line.startswith("READY ") for line in lines):
        process.kill()
        pytest.fail("the local runtime did not start:\n" + "".join(lines))
    aws = next(line.split()[1] for line in lines if line.startswith("AWS "))
    lines = [next(line for line in lines if line.startswith("READY "))]
    url = lines[-1].split()[1]
    assert url == f"http://127.0.0.1:{port}"
    yield Running(url, aws, process)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
