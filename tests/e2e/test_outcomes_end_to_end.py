"""Revenue outcomes over HTTP: signed generic billing and survey webhooks into the local
runtime, then GET /outcomes shows the churned detractor and the at-risk listing loses it."""

import time

import pytest

from tests.e2e.client import AUTH, post_generic, request

PLAN = "e2e-outcomes"

pytestmark = pytest.mark.e2e


def post(base, kind, message_id, payload):
    status, receipt = post_generic(base, kind, payload)
    assert status == 202 and receipt["accepted"] == 1, receipt


def eventually(fetch, done, seconds=15):
    deadline = time.monotonic() + seconds
    while True:
        found = fetch()
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_churned_detractor_shows_in_outcomes(runtime):
    base, customer = runtime.url, {"email": "e2e-churn@example.com"}
    billing = {"customer": customer, "plan": PLAN, "mrr": {"amount": 4900, "currency": "EUR"}}
    post(
        base,
        "billing",
        "msg_o1",
        {**billing, "id": "o-1", "status": "active", "updated_at": "2026-03-01T00:00:00Z"},
    )
    post(
        base,
        "survey",
        "msg_o2",
        {
            "id": "o-resp-1",
            "customer": customer,
            "score": 2,
            "submitted_at": "2026-03-05T10:00:00Z",
            "comment": "slow",
        },
    )
    query = f"{base}/outcomes?dimension=plan&value={PLAN}"
    at_risk = eventually(
        lambda: request(
            "GET", f"{query.replace('/outcomes?', '/outcomes/at-risk?')}", headers=AUTH
        )[1],
        lambda page: bool(page.get("accounts")),
    )
    assert at_risk["accounts"][0]["customer_key"] == "e2e-churn@example.com"
    assert at_risk["accounts"][0]["mrr"] == {"amount": 4900, "currency": "EUR"}

    post(
        base,
        "billing",
        "msg_o3",
        {
            **billing,
            "id": "o-2",
            "status": "canceled",
            "mrr": {"amount": 0, "currency": "EUR"},
            "updated_at": "2026-03-20T00:00:00Z",
        },
    )
    url = f"{query}&granularity=month&from=2026-03-01&to=2026-03-31"
    status, body = eventually(
        lambda: request("GET", url, headers=AUTH),
        lambda answer: answer[1]["buckets"][0]["categories"]["detractor"]["churned"] == 1,
    )
    assert status == 200
    march = body["buckets"][0]["categories"]["detractor"]
    assert march == {"churned": 1, "at_risk": 1, "churn_rate": 100.0, "renewals": 0}
    assert body["mrr_at_risk"] == {"customers": 0, "mrr": []}
    _, page = request("GET", f"{base}/outcomes/at-risk?dimension=plan&value={PLAN}", headers=AUTH)
    assert page["accounts"] == []
