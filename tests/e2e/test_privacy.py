"""No e-mail, comment or person name anywhere in what the pipeline writes out (docs/security.md).

The local runtime runs with every logger at DEBUG (LOCAL_LOG_LEVEL, POWERTOOLS_LOG_LEVEL and
AWS_LAMBDA_LOG_LEVEL, Lambda's own log-level control, which powertools honours first), its
terminal and its log file captured. Every provider sample of events/bodies is sent signed,
plus a probe whose values appear nowhere else; customers are read and erased over the API;
reconcile runs as a command on a damaged outcome state (so it has customers to report) and
repairs it. The personal values are taken from the samples themselves, so a new sample is
covered too.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from local.aws import free_port
from local.events import target, wire_body
from local.process import LocalRuntime, NotStarted, start_runtime
from local.signer import signed_headers

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BODIES = ROOT / "events" / "bodies"
TOKEN = "dev-token-change-me"
PROBE_EMAIL = "Privacy.Probe-7f3a@Example.org"
PROBE_COMMENT = "Probe comment 7f3a: the invoice screen froze"
PERSONAL_KEYS = {"email", "customer_email", "comment", "text", "first_name", "last_name"}
XML_PERSONAL = re.compile(r"<sf:(?:Email|FirstName|LastName|Name)>([^<]+)<")
# What the runtime counts (template default; local/settings.json does not override it).
DIMENSIONS = re.search(
    r"AggregateDimensions:\n\s+Type: String\n\s+Default: (\S+)",
    (ROOT / "template.yaml").read_text(),
)[1]


def personal_values(node, found: set[str]) -> set[str]:
    """E-mails, comments, answer texts and names of people (a ``name`` beside an ``email``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and value.strip():
                an_email = "@" in value and "." in value.split("@")[-1]
                if key in PERSONAL_KEYS or an_email or (key == "name" and "email" in node):
                    found.add(value.strip())
            personal_values(value, found)
        if node.get("propertyName") == "email" and node.get("propertyValue"):
            found.add(node["propertyValue"])
    elif isinstance(node, list):
        for value in node:
            personal_values(value, found)
    return found


def samples() -> list[tuple[str, str, bytes]]:
    out = []
    for path in sorted(BODIES.glob("*/*.*")):
        out.append((path.parent.name, path.stem.split("-", 1)[0], wire_body(path)))
    probe = {
        "id": "privacy-probe-1",
        "customer": {"email": PROBE_EMAIL},
        "score": 2,
        "submitted_at": "2026-03-03T09:00:00Z",
        "comment": PROBE_COMMENT,
    }
    out.append(("survey", "generic", json.dumps(probe).encode()))
    return out


def accounts(node, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "account" and isinstance(value, str):
                found.add(value)
            accounts(value, found)
    elif isinstance(node, list):
        for value in node:
            accounts(value, found)
    return found


def needles(sent: list[tuple[str, str, bytes]]) -> set[str]:
    """The personal values of the samples. A company that is also a CRM account (Stripe's
    customer name "Acme GmbH") is a segment value, not a person (docs/security.md)."""
    found: set[str] = set()
    companies: set[str] = set()
    for _kind, _provider, body in sent:
        if body.lstrip().startswith(b"<"):
            found.update(XML_PERSONAL.findall(body.decode()))
        else:
            personal_values(json.loads(body), found)
            accounts(json.loads(body), companies)
    return {value for value in found - companies if len(value) >= 4}


@pytest.fixture(scope="module")
def debug_runtime(tmp_path_factory):
    """The runtime at DEBUG, all it writes kept: its terminal (stdout and stderr, in ``lines``)
    and its log file (the functions' JSON logs and EMF lines, every runtime record)."""
    port = free_port()
    log = tmp_path_factory.mktemp("privacy") / "local.log"
    try:
        process = start_runtime(
            log=log,
            PORT=str(port),
            SEED="0",
            LOCAL_LOG_LEVEL="DEBUG",
            POWERTOOLS_LOG_LEVEL="DEBUG",
            AWS_LAMBDA_LOG_LEVEL="DEBUG",
        )
    except NotStarted as error:
        pytest.fail(str(error))
    assert process.log == log
    yield f"http://127.0.0.1:{port}", process.aws_endpoint, process
    process.stop()


def request(method: str, url: str, body: bytes | None = None, headers=None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=15) as answer:  # noqa: S310 - loopback
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def aws_env(aws: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=aws,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # the emulator's dummy
        AWS_DEFAULT_REGION="us-east-1",
        RECORDS_TABLE="nps-sync-RecordsTable",
        AGGREGATES_TABLE="nps-sync-AggregatesTable",
        AGGREGATE_DIMENSIONS=DIMENSIONS,
        PYTHONPATH=str(ROOT / "layers" / "common"),
    )
    return env


def run_reconcile(aws: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "nps_sync.cli.reconcile", *args],
        cwd=ROOT,
        env=aws_env(aws),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def emulated_dynamodb(aws: str):
    import boto3

    return boto3.client(
        "dynamodb",
        endpoint_url=aws,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # the emulator's dummy
    )


def written(runtime: LocalRuntime) -> tuple[int, int]:
    return len(runtime.lines), runtime.log.stat().st_size


def settled(runtime: LocalRuntime, idle: float = 1.5, seconds: float = 20) -> bool:
    """The runtime has written nothing for ``idle`` seconds, to its terminal or its log file:
    the stream and queues are drained (an idle runtime logs nothing, even at DEBUG)."""
    deadline = time.monotonic() + seconds
    seen, since = written(runtime), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if written(runtime) != seen:
            seen, since = written(runtime), time.monotonic()
        elif time.monotonic() - since >= idle:
            return True
    return False


def drained(aws: str, seconds: float = 60) -> bool:
    """Reconcile finds nothing to repair: every record on the stream has been counted. (A
    quiet log alone is not proof: on a loaded machine a batch can wait out its batching
    window and its own work for longer than the quiet period.)"""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if run_reconcile(aws).returncode == 0:
            return True
        time.sleep(0.5)
    return False


def test_no_email_comment_or_name_in_any_output(debug_runtime):
    url, aws, runtime = debug_runtime
    sent = samples()
    personal = needles(sent)
    assert PROBE_EMAIL in personal and PROBE_COMMENT in personal
    assert {"Ben Ortiz", "Okafor", "Exports keep timing out."} <= personal  # names, answers

    # signed webhooks of every sample
    for kind, provider, body in sent:
        full = url + target(kind, provider)
        headers = signed_headers(provider, body, url=full.split("?")[0])
        status, answer = request("POST", full, body, headers)
        assert status in (200, 202), (kind, provider, status, answer)

    # the API: views (as stored and as the provider spelled it), erasure of two customers
    auth = {"authorization": f"Bearer {TOKEN}"}
    emails = sorted(v for v in personal if "@" in v)
    for email in emails:
        request("GET", f"{url}/customers/{quote(email)}", headers=auth)
    assert request("DELETE", f"{url}/customers/{quote(PROBE_EMAIL)}", headers=auth)[0] == 202
    assert request("DELETE", f"{url}/customers/Ben.Okafor%40Example.com", headers=auth)[0] == 202
    assert request("DELETE", f"{url}/customers/{quote(PROBE_EMAIL)}", headers=auth)[0] == 404

    # reconcile, once the stream is quiet, on a damaged outcome state: it reports customers
    assert settled(runtime) and drained(aws), "the stream did not drain"
    ddb = emulated_dynamodb(aws)
    damaged = ddb.update_item(
        TableName="nps-sync-RecordsTable",
        Key={"pk": {"S": "CUST#ana@example.com"}, "sk": {"S": "PROFILE"}},
        UpdateExpression="REMOVE outcome",
        ConditionExpression="attribute_exists(billing_updated_at)",
        ReturnValues="ALL_OLD",
    )
    assert "outcome" in damaged["Attributes"]
    found = run_reconcile(aws)
    assert found.returncode == 1 and '"outcome": "state"' in found.stdout, found.stderr
    repaired = run_reconcile(aws, "--fix", "--settle", "0.2")
    assert "outcomes_fixed" in repaired.stderr
    assert settled(runtime, idle=0.5)  # the stream's last lines: the repair moving the counters
    logged = runtime.logged()
    output = runtime.terminal() + logged + "".join(p.stdout + p.stderr for p in (found, repaired))
    assert " DEBUG " in logged  # the capture is at DEBUG: the runtime's records
    # and the functions' powertools JSON lines, the receivers' and the stream's
    assert '"message":"webhook received"' in logged and '"message":"batch aggregated"' in logged
    assert "GET /customers/{key} -> 200" in output  # the gateway logs the route template
    leaked = sorted(v for v in personal if v.lower() in output.lower())
    assert leaked == [], [
        line for line in output.splitlines() if any(v.lower() in line.lower() for v in leaked)
    ][:10]
