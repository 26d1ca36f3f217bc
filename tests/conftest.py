"""Shared fixtures: settings, template-defined tables in moto, signed requests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# What Lambda's environment (template Globals) sets before any handler module is imported:
# the powertools singletons read it when they are created.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "nps-sync")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "NpsSync")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

from local import moto_speed
from local.signer import signed_headers
from nps_sync.core.settings import Settings, settings
from nps_sync.ingest.receive import WebhookRequest
from nps_sync.store import secrets

# moto as the local runtime runs it: same answers, faster (tests/integration/test_moto_speed.py).
moto_speed.install()

ROOT = Path(__file__).resolve().parent.parent
BODIES = ROOT / "events" / "bodies"
DEV_SECRETS = ROOT / "local" / "dev-secrets.json"
LOCAL_PARAMETERS = json.loads((ROOT / "local" / "settings.json").read_text())["parameters"]


def fresh_python(code: str, *args: str, cwd: Path, path: list[Path]) -> dict:
    """``code`` run in a new interpreter, as a cold Lambda container imports (no state of this
    process, only ``path`` on sys.path): the JSON it prints last."""
    out = subprocess.run(  # noqa: S603 - our own code
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env={
            "PYTHONPATH": ":".join(map(str, path)),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def body_of(kind: str, name: str) -> bytes:
    """A sample body from events/bodies, re-serialized compactly as providers send it."""
    return json.dumps(
        json.loads((BODIES / kind / name).read_text()), separators=(",", ":")
    ).encode()


def signed(provider: str, body: bytes, now: int | None = None, **extra) -> WebhookRequest:
    return WebhookRequest(body=body, headers={**signed_headers(provider, body, now=now), **extra})


@pytest.fixture
def test_settings() -> Settings:
    return Settings.of(
        {
            "RECORDS_TABLE": "nps-sync-RecordsTable",
            "NPS_SYNC_SECRETS_FILE": str(DEV_SECRETS),
            "NPS_QUESTIONS": LOCAL_PARAMETERS["NpsQuestions"],
            "COMMENT_QUESTIONS": LOCAL_PARAMETERS["CommentQuestions"],
        }
    )


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch):
    """Settings and secrets are cached per container; every test is a new container."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings.cache_clear()
    secrets.clear_cache()
    yield
    settings.cache_clear()
    secrets.clear_cache()


@pytest.fixture(scope="session")
def template():
    from local.template import load

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return load(overrides=LOCAL_PARAMETERS)


@pytest.fixture
def aws(template):
    """moto, with every table, queue, secret and bus of template.yaml created from its own
    properties (so test tables cannot drift from the deployed ones)."""
    from moto import mock_aws

    from local.aws import Emulator, Stack

    with mock_aws():
        emulator = Emulator()
        emulator.endpoint = None
        stack = Stack(template, emulator).provision()
        yield stack


@pytest.fixture
def function_env(aws, template, monkeypatch):
    """The environment Lambda would give the functions, resolved against the moto stack."""
    for function in template.functions.values():
        for name, value in function.environment.items():
            resolved = aws.resolve(value)
            if resolved is not None:
                monkeypatch.setenv(name, str(resolved))
    monkeypatch.setenv("NPS_SYNC_SECRETS_FILE", str(DEV_SECRETS))
    return aws
