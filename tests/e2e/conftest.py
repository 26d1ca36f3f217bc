"""Start the local runtime as `make run` does, on a free port, and stop it with Ctrl-C."""

from pathlib import Path

import pytest

from local.aws import free_port
from local.process import NotStarted, start_runtime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def runtime(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("runtime") / "local.log"
    try:
        process = start_runtime(log=log, PORT=str(port), LOCAL_LOG_LEVEL="WARNING", SEED="0")
    except NotStarted as error:
        pytest.fail(str(error))
    assert process.url == f"http://127.0.0.1:{port}"
    yield process
    process.stop()
