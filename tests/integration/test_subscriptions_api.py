"""The subscriptions routes of ApiFunction against moto: secrets shown once, the SSRF guard
at registration (422 with the reason), rotation, the delivery log."""

import json
from datetime import date

import pytest

from local.lambdas import Context
from nps_sync import api as api_module
from nps_sync.aggregate_store import AggregatesStore
from nps_sync.customer_records import CustomerRecords
from nps_sync.ssrf import vet
from nps_sync.subscriptions import DeliveryRecord, SubscriptionsStore

TOKEN = "dev-token-change-me"
PUBLIC = {"hooks.example.com": ["93.184.215.14"], "internal.example.com": ["127.0.0.1"]}


@pytest.fixture
def store(world):
    return SubscriptionsStore("nps-sync-SubscriptionsTable", world.ddb)


@pytest.fixture
def call(world, store):
    app = api_module.resolver(
        lambda: api_module.Services(
            AggregatesStore(world.aggregates_table, world.ddb),
            CustomerRecords(world.records_table, world.ddb),
            world.dimensions,
            lambda: [TOKEN],
            today=lambda: date(2026, 1, 31),
            subscriptions=store,
            vet_url=lambda url: vet(url, resolver=lambda host, port: PUBLIC[host]),
        )
    )

    def call(method, path, body=None, token=TOKEN):
        event = {
            "version": "2.0",
            "routeKey": f"{method} {path}",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"authorization": f"Bearer {token}", "content-type": "application/json"},
            "requestContext": {
                "http": {"method": method, "path": path, "sourceIp": "127.0.0.1"},
                "stage": "$default",
                "domainName": "localhost",
                "requestId": "r",
            },
            "isBase64Encoded": False,
        }
        if body is not None:
            event["body"] = json.dumps(body)
        context = Context("ApiFunction", 512, 10, "req-1", "arn:aws:lambda:::function:ApiFunction")
        answer = app.resolve(event, context)
        return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None

    return call


def test_a_subscription_shows_its_secret_once(call):
    status, created = call(
        "POST",
        "/subscriptions",
        {
            "url": "https://hooks.example.com/nps",
            "events": ["detractor.alert"],
            "filter": {"plan": "enterprise"},
        },
    )
    assert status == 201
    assert created["id"].startswith("sub_") and created["secret"].startswith("whsec_")
    assert created["filter"] == {"plan": "enterprise"}

    status, listed = call("GET", "/subscriptions")
    assert status == 200 and [s["id"] for s in listed["subscriptions"]] == [created["id"]]
    status, one = call("GET", f"/subscriptions/{created['id']}")
    assert status == 200 and one["url"] == "https://hooks.example.com/nps"
    assert "secret" not in json.dumps(listed) and "secret" not in one


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://10.0.0.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://[::1]/hook", "loopback"),
        ("https://internal.example.com/hook", "loopback"),
        ("http://hooks.example.com/hook", "https"),
    ],
)
def test_blocked_urls_are_refused_at_registration(call, url, reason):
    status, answer = call("POST", "/subscriptions", {"url": url, "events": ["detractor.alert"]})
    assert status == 422 and answer["error"] == "blocked_url"
    assert reason in answer["message"]


def test_an_invalid_body_is_422_and_no_token_is_401(call):
    status, answer = call(
        "POST", "/subscriptions", {"url": "https://hooks.example.com/", "events": ["nope"]}
    )
    assert status == 422 and answer["error"] == "invalid_payload"
    status, _ = call("GET", "/subscriptions", token="wrong")
    assert status == 401


def test_rotation_returns_a_new_secret_and_keeps_the_old_one_for_a_day(call, store):
    _, created = call(
        "POST",
        "/subscriptions",
        {"url": "https://hooks.example.com/", "events": ["response.received"]},
    )
    status, rotated = call("POST", f"/subscriptions/{created['id']}/rotate")
    assert status == 200 and rotated["secret"] != created["secret"]
    assert "previous_secret_expires_at" in rotated
    stored = store.get(created["id"])
    assert stored.signing_secrets(store.clock()) == [rotated["secret"], created["secret"]]
    assert stored.signing_secrets(store.clock() + 24 * 3600 + 1) == [rotated["secret"]]


def test_deliveries_and_deletion(call, store):
    _, created = call(
        "POST",
        "/subscriptions",
        {"url": "https://hooks.example.com/", "events": ["response.received"]},
    )
    store.record(
        DeliveryRecord(
            created["id"], "evt_1", "response.received", "2026-01-15T10:00:00Z", "delivered", 2, 200
        )
    )
    status, log = call("GET", f"/subscriptions/{created['id']}/deliveries")
    assert status == 200
    [entry] = log["deliveries"]
    assert (entry["event_id"], entry["status"], entry["attempts"], entry["response_code"]) == (
        "evt_1",
        "delivered",
        2,
        200,
    )

    status, _ = call("DELETE", f"/subscriptions/{created['id']}")
    assert status == 204
    assert call("GET", f"/subscriptions/{created['id']}")[0] == 404
    assert call("DELETE", f"/subscriptions/{created['id']}")[0] == 404
    assert call("GET", f"/subscriptions/{created['id']}/deliveries")[0] == 404


def test_the_openapi_document_lists_the_subscription_routes(call):
    status, document = call("GET", "/openapi.json", token=None)
    assert status == 200
    assert {"/subscriptions", "/subscriptions/{subscription_id}/rotate"} <= set(document["paths"])
