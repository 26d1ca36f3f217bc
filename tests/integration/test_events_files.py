"""Every committed event in events/ is accepted by its function's real handler code, with the
dev secrets, at the moment it was signed; the timestamped ones expire five minutes later."""

import json
from pathlib import Path

import pytest

from billing_providers import ADAPTERS as BILLING
from crm_providers import ADAPTERS as CRM
from local.lambdas import Context
from nps_sync.web.receivers import resolver
from survey_providers import ADAPTERS as SURVEY

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = {"survey": SURVEY, "crm": CRM, "billing": BILLING}
EVENTS = sorted(
    path.relative_to(ROOT / "events")
    for kind in ADAPTERS
    for path in (ROOT / "events" / kind).glob("*.json")
)
TOLERANCE = 300  # SIGNATURE_TOLERANCE_SECONDS' default


def signed_at(event: dict) -> tuple[float, bool]:
    """When the event was signed, read from its own signature; and whether it says so."""
    headers = event["headers"]
    if "webhook-timestamp" in headers:  # Standard Webhooks
        return float(headers["webhook-timestamp"]), True
    if "stripe-signature" in headers:  # t=<seconds>,v1=<hex>
        parts = dict(p.split("=", 1) for p in headers["stripe-signature"].split(","))
        return float(parts["t"]), True
    if "x-hubspot-request-timestamp" in headers:  # milliseconds
        return int(headers["x-hubspot-request-timestamp"]) / 1000, True
    return event["requestContext"]["timeEpoch"] / 1000, False  # untimed: when it was built


def answer_at(event: dict, kind: str, clock: float) -> tuple[int, str]:
    app = resolver(kind, ADAPTERS[kind], clock=lambda: clock)
    context = Context("f", 512, 10, "req-1", "arn:aws:lambda:::function:f")
    answer = app.resolve(json.loads(json.dumps(event)), context)
    return answer["statusCode"], answer["body"]


def test_there_is_an_event_for_every_provider_of_every_function():
    providers = {(path.parts[0], path.stem.split("-", 1)[0]) for path in EVENTS}
    assert providers == {(kind, p) for kind, adapters in ADAPTERS.items() for p in adapters}


@pytest.mark.parametrize("name", EVENTS, ids=[str(e) for e in EVENTS])
def test_each_event_verifies_at_its_signing_time_and_timed_ones_expire(function_env, name):
    kind = name.parts[0]
    event = json.loads((ROOT / "events" / name).read_text())
    at, timed = signed_at(event)
    assert event["requestContext"]["timeEpoch"] == at * 1000, "received when it was signed"

    status, body = answer_at(event, kind, at)

    assert status in (200, 202), body
    if status == 202:
        assert json.loads(body)["accepted"] >= 1
    late_status, late = answer_at(event, kind, at + TOLERANCE + 1)
    if timed:
        assert (late_status, json.loads(late)["error"]) == (401, "invalid_signature")
    else:  # no timestamp to expire: re-delivered, it is a duplicate (Salesforce: its Ack again)
        assert late_status in (200, 202), late
