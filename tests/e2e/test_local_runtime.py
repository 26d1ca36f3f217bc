"""Through `make run`'s runtime over HTTP: signed webhooks in, records in the emulated table."""

import json
import signal
import subprocess
import sys

import boto3
import pytest
import requests

from local.signer import signed_headers
from nps_sync.store.records import RecordsStore
from tests.conftest import body_of
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

EXPECTED = {
    "typeform": [("a3a12ec67a1365927098a606107fac15", 4)],
    "delighted": [("58201771", 9)],
    "formbricks": [("cm8x1v2ab0003l20fa1b2c3d4", 7)],
    "generic": [("resp-81", 10), ("resp-82", 3)],
}


def records(runtime) -> RecordsStore:
    client = boto3.client(
        "dynamodb",
        endpoint_url=runtime.aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return RecordsStore("nps-sync-RecordsTable", client)


@pytest.mark.parametrize("provider", sorted(EXPECTED))
def test_signed_webhook_is_stored_in_the_emulated_table(runtime, provider):
    body = body_of("survey", f"{provider}.json")
    url = f"{runtime.url}/webhooks/survey/{provider}"

    first = requests.post(url, data=body, headers=signed_headers(provider, body), timeout=10)
    again = requests.post(url, data=body, headers=signed_headers(provider, body), timeout=10)

    count = len(EXPECTED[provider])
    assert (first.status_code, first.json()["accepted"]) == (202, count)
    assert (again.status_code, again.json()["duplicates"]) == (202, count)
    store = records(runtime)
    for response_id, score in EXPECTED[provider]:
        stored = store.get_response(provider, response_id)
        assert stored is not None and stored.score == score


def test_http_errors_come_back_as_json(runtime):
    forged = requests.post(
        f"{runtime.url}/webhooks/survey/typeform",
        data=b"{}",
        headers={"typeform-signature": "sha256=AAAA"},
        timeout=10,
    )
    missing = requests.get(f"{runtime.url}/no/such/route", timeout=10)

    assert (forged.status_code, forged.json()["error"]) == (401, "invalid_signature")
    assert missing.status_code == 404


def test_ctrl_c_stops_the_runtime_cleanly(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "local", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in process.stdout:
        if line.startswith("READY"):
            break
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=15)  # reads what is left, so a full pipe cannot block it
    assert process.returncode == 0


def test_events_files_are_valid_api_gateway_events():
    for path in sorted((ROOT / "events" / "survey").glob("*.json")):
        event = json.loads(path.read_text())
        assert event["version"] == "2.0" and event["routeKey"].startswith("POST /webhooks/")
        assert event["pathParameters"]["provider"] == path.stem


PROFILE_BODIES = sorted(
    (kind, path.name)
    for kind in ("crm", "billing")
    for path in (ROOT / "events" / "bodies" / kind).glob("*.*")
)


@pytest.mark.parametrize(("kind", "name"), PROFILE_BODIES)
def test_crm_and_billing_samples_are_accepted_over_http(runtime, kind, name):
    from local.events import target, wire_body

    path = ROOT / "events" / "bodies" / kind / name
    provider = path.stem.split("-", 1)[0]
    body, url = wire_body(path), f"{runtime.url}{target(kind, provider)}"
    headers = signed_headers(provider, body, url=url)

    answer = requests.post(url, data=body, headers=headers, timeout=10)

    assert answer.status_code in (200, 202), answer.text
    if provider == "salesforce":
        assert "<Ack>true</Ack>" in answer.text


def test_billing_profile_shows_on_the_customer(runtime):
    from local.events import wire_body

    for name in ("stripe-customer.subscription.updated.json", "stripe-customer.updated.json"):
        body = wire_body(ROOT / "events" / "bodies" / "billing" / name)
        requests.post(
            f"{runtime.url}/webhooks/billing/stripe",
            data=body,
            headers=signed_headers("stripe", body),
            timeout=10,
        )

    customer = requests.get(
        f"{runtime.url}/customers/ana@example.com",
        timeout=10,
        headers={"authorization": "Bearer dev-token-change-me"},
    )

    assert customer.status_code == 200
    assert customer.json()["profile"]["plan"] == "Pro monthly"
