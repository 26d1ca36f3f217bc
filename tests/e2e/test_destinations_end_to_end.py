"""Write-back through the local runtime (`make run`): a signed survey answer reaches the
HubSpot contact's properties and the Stripe customer's metadata, read back through each
provider's own read endpoint on its stand-in; HubSpot's echo of our write changes nothing."""

import json
import time

import pytest
import requests

from local.seed import customers
from local.signer import credentials, signed_headers
from tests.e2e.client import AUTH, SECRETS

pytestmark = pytest.mark.e2e

HUBSPOT = {"Authorization": f"Bearer {credentials('hubspot')['access_token']}"}
STRIPE_KEY = SECRETS["destinations"]["stripe-dev"]


def _eventually(read, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def hubspot_contact(runtime, email: str) -> dict:
    """HubSpot's "retrieve a contact" by its e-mail (README "Write-back")."""
    answer = requests.get(
        f"{runtime.standins['hubspot']}/crm/v3/objects/contacts/{email}",
        params={"idProperty": "email", "properties": "nps_score,nps_category,nps_survey"},
        headers=HUBSPOT,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def stripe_customer(runtime, email: str) -> dict:
    answer = requests.get(
        f"{runtime.standins['stripe']}/v1/customers",
        params={"email": email, "limit": 1},
        headers={"Authorization": f"Bearer {STRIPE_KEY['api_key']}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    [customer] = answer.json()["data"]
    return customer


def test_a_survey_answer_is_written_to_hubspot_and_stripe_and_the_echo_is_ignored(runtime):
    email = customers(3)[2]["email"]  # a customer the stand-ins hold (make run's demo data)
    body = json.dumps(
        {
            "id": "e2e-destination-1",
            "customer": {"email": email},
            "score": 4,
            "submitted_at": "2026-03-02T10:15:00Z",
            "survey": "e2e-destinations",
        }
    ).encode()
    sent = time.monotonic()
    answer = requests.post(
        f"{runtime.url}/webhooks/survey/generic",
        data=body,
        headers=signed_headers("generic", body),
        timeout=10,
    )
    assert answer.status_code == 202, answer.text

    written = _eventually(lambda: hubspot_contact(runtime, email)["properties"]["nps_score"])
    assert written == "4", "HubSpot contact not written"
    contact = hubspot_contact(runtime, email)
    assert contact["properties"]["nps_category"] == "detractor"
    assert contact["properties"]["nps_survey"] == "e2e-destinations"
    metadata = _eventually(lambda: stripe_customer(runtime, email)["metadata"].get("nps_score"))
    assert metadata == "4", "Stripe metadata not written"
    assert time.monotonic() - sent < 20

    # HubSpot tells us of our own write: a propertyChange of nps_score on that contact
    url = f"{runtime.url}/webhooks/crm/hubspot"
    echo = json.dumps(
        [
            {
                "eventId": 991,
                "subscriptionId": 1,
                "portalId": 62515,
                "appId": 1,
                "occurredAt": int(time.time() * 1000),
                "subscriptionType": "contact.propertyChange",
                "attemptNumber": 0,
                "objectId": int(contact["id"]),
                "propertyName": "nps_score",
                "propertyValue": "4",
                "changeSource": "INTEGRATION",
            }
        ]
    ).encode()
    before = requests.get(f"{runtime.url}/customers/{email}", headers=AUTH, timeout=10).json()
    answer = requests.post(
        url, data=echo, headers=signed_headers("hubspot", echo, url=url), timeout=10
    )
    assert answer.status_code in (200, 202), answer.text
    assert answer.json().get("accepted", 0) == 0  # recognized: nothing to fetch or store
    time.sleep(3)  # an echo that was not recognized would have been fetched and stored by now
    after = requests.get(f"{runtime.url}/customers/{email}", headers=AUTH, timeout=10).json()
    assert after == before

    # Stripe tells us of our own write: customer.updated, only metadata changed
    customer = stripe_customer(runtime, email)
    event = json.dumps(
        {
            "id": "evt_e2e_echo_1",
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "type": "customer.updated",
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {
                "object": customer,
                "previous_attributes": {"metadata": {"nps_score": None}},
            },
        }
    ).encode()
    answer = requests.post(
        f"{runtime.url}/webhooks/billing/stripe",
        data=event,
        headers=signed_headers("stripe", event),
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["ignored"] == 1 and answer.json()["accepted"] == 0
    time.sleep(2)
    assert (
        requests.get(f"{runtime.url}/customers/{email}", headers=AUTH, timeout=10).json() == after
    )
