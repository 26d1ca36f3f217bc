"""Through `make run`'s runtime over HTTP: signed webhooks in, records in the emulated table."""

import json
import re
import subprocess
import time

import boto3
import pytest
import requests

from local.process import LocalRuntime, start_runtime
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


def wait_for(runtime: LocalRuntime, pattern: str, seconds: float = 120) -> str:
    """The first line of its terminal matching ``pattern``; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = next((line for line in list(runtime.lines) if re.search(pattern, line)), None)
        if found is not None:
            return found
        assert runtime.poll() is None, runtime.terminal()
        time.sleep(0.1)
    pytest.fail(f"no line matching {pattern!r} in:\n{runtime.terminal()}")


def post_typeform(runtime: LocalRuntime) -> None:
    body = body_of("survey", "typeform.json")
    answer = requests.post(
        f"{runtime.url}/webhooks/survey/typeform",
        data=body,
        headers=signed_headers("typeform", body),
        timeout=10,
    )
    assert answer.status_code == 202


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def children(runtime: LocalRuntime) -> list[int]:
    """The processes the runtime started: `python -m local.aws`, and the seeder if it runs."""
    command = ["pgrep", "-P", str(runtime.pid)]
    found = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    return [int(pid) for pid in found.stdout.split()]


def ended(pids: list[int], seconds: float = 5) -> bool:
    def running(pid: int) -> bool:
        command = ["ps", "-o", "stat=", "-p", str(pid)]
        state = subprocess.run(command, capture_output=True, check=False)  # noqa: S603
        return bool(state.stdout.strip()) and not state.stdout.startswith(b"Z")

    deadline = time.monotonic() + seconds
    while any(running(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_the_terminal_shows_the_bar_then_one_line_per_request_and_the_file_the_logs(tmp_path):
    log = tmp_path / "local.log"
    runtime = start_runtime(log=log, PORT="0", SEED="1", SEED_CUSTOMERS="10")
    try:
        summary = wait_for(runtime, r"^\d+ requests while seeding \(\d+ x 202\), one line each in ")
        ready = next(i for i, text in enumerate(runtime.lines) if text.startswith("READY "))
        seeding = runtime.lines[ready + 1 : runtime.lines.index(summary)]

        post_typeform(runtime)
        line = wait_for(runtime, r"POST /webhooks/survey/\{provider\} -> ")
        deadline = time.monotonic() + 60  # the stream's function, behind its batching window
        while '"batch aggregated"' not in runtime.logged() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        code = runtime.stop()

    assert runtime.log == log and f"LOG {log}\n" in runtime.lines
    assert any(text.startswith("seeding [") for text in seeding)  # the bar drew
    assert not [text for text in seeding if " -> " in text]  # and owned the terminal
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d POST /webhooks/survey/\{provider\} -> 202 SurveyWebhookFunction"
        r" \(\d+ ms\)\n",
        line,
    )
    assert json_lines(runtime.terminal()) == []  # no function log, no metric line
    logged = json_lines(runtime.logged())
    messages = {entry.get("message") for entry in logged}
    assert {"webhook received", "batch aggregated"} <= messages  # receivers' and aggregator's
    assert any("_aws" in entry for entry in logged)  # EMF metrics
    assert "local.runtime INFO POST /webhooks/crm/{provider} -> 202" in runtime.logged()
    assert code == 0


def test_log_stdout_puts_everything_on_the_terminal(tmp_path):
    runtime = start_runtime(log="stdout", PORT="0", SEED="0")
    try:
        post_typeform(runtime)
        wait_for(runtime, r"local.runtime INFO POST /webhooks/survey/\{provider\} -> 202")
        wait_for(runtime, r'^\{"level":"INFO".*"message":"webhook received"')
    finally:
        runtime.stop()

    assert runtime.log is None and not [line for line in runtime.lines if line.startswith("LOG ")]
    assert any("_aws" in entry for entry in json_lines(runtime.terminal()))


def test_ctrl_c_stops_the_runtime_cleanly(tmp_path):
    runtime = start_runtime(log=tmp_path / "local.log", PORT="0", SEED="0", own_group=True)
    emulator = children(runtime)

    code = runtime.stop()  # SIGINT to the group, as a terminal's Ctrl-C

    assert code == 0
    assert "Traceback" not in runtime.terminal(), runtime.terminal()
    assert len(emulator) == 1 and ended(emulator)


def test_ctrl_c_while_seeding_stops_the_seeder_the_runtime_and_the_emulator(tmp_path):
    runtime = start_runtime(
        log=tmp_path / "local.log", PORT="0", SEED="1", SEED_CUSTOMERS="200", own_group=True
    )
    wait_for(runtime, r"^seeding \[")
    emulator_and_seeder = children(runtime)

    code = runtime.stop()

    output = runtime.terminal()
    assert "seeded 200 customers" not in output  # it was stopped while sending
    assert re.search(r"^seeding stopped after \d+/\d+ requests$", output, re.MULTILINE), output
    assert code == 0
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert len(emulator_and_seeder) == 2 and ended(emulator_and_seeder)


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
