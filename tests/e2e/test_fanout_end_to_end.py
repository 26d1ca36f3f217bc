"""Fan-out through the local runtime: a subscription for a receiver on 127.0.0.1 (allowed in
local mode), a signed detractor response in, the signed detractor.alert out."""

import json
import time

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from local.signer import signed_headers
from tests.e2e.client import AUTH
from tests.fakes.receiver import Receiver

pytestmark = pytest.mark.e2e


def test_a_detractor_response_reaches_the_subscriber_within_seconds(runtime):
    receiver = Receiver().start()
    try:
        created = requests.post(
            f"{runtime.url}/subscriptions",
            # other e2e tests share the runtime: only this test's survey, so nothing else arrives
            json={
                "url": receiver.url,
                "events": ["detractor.alert"],
                "filter": {"survey": "e2e-fanout"},
            },
            headers=AUTH,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        subscription = created.json()
        body = json.dumps(
            {
                "id": "e2e-fanout-1",
                "customer": {"email": "fanout@example.com"},
                "score": 2,
                "submitted_at": "2026-03-02T10:15:00Z",
                "survey": "e2e-fanout",
                "comment": "support never answered",
            }
        ).encode()
        answer = requests.post(
            f"{runtime.url}/webhooks/survey/generic",
            data=body,
            headers=signed_headers("generic", body),
            timeout=10,
        )
        assert answer.status_code == 202, answer.text

        assert receiver.arrived.wait(timeout=15), "no delivery within 15 s"
        [received] = receiver.received
        event = Webhook(subscription["secret"]).verify(received.body, received.headers)
        assert event["type"] == "detractor.alert"
        assert event["data"]["comment"] == "support never answered"
        assert received.headers["webhook-id"] == event["id"]

        deadline = time.monotonic() + 5  # the log is written right after the answer
        while True:
            log = requests.get(
                f"{runtime.url}/subscriptions/{subscription['id']}/deliveries",
                headers=AUTH,
                timeout=10,
            ).json()["deliveries"]
            if log or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert log and log[0]["event_id"] == event["id"] and log[0]["status"] == "delivered"
    finally:
        receiver.stop()
