"""The subscriptions routes of ApiFunction against moto: secrets shown once, the SSRF guard
at registration (422 with the reason), rotation, the delivery log."""

import json
import time
from datetime import date

import boto3
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from nps_sync.delivery.sender import signature_header
from nps_sync.delivery.ssrf import vet
from nps_sync.store.subscriptions import (
    MAX_PREVIOUS_SECRETS,
    ROTATION_GRACE_SECONDS,
    DeliveryRecord,
    SubscriptionsStore,
)

from .conftest import API_TOKEN, READ_TOKEN, api_resolver, call_api

PUBLIC = {"hooks.example.com": ["93.184.215.14"], "internal.example.com": ["127.0.0.1"]}


@pytest.fixture
def store(world):
    return SubscriptionsStore("nps-sync-SubscriptionsTable", world.ddb)


@pytest.fixture
def call(world, store):
    app = api_resolver(
        world,
        today=lambda: date(2026, 1, 31),
        subscriptions=store,
        vet_url=lambda url: vet(url, resolver=lambda host, port: PUBLIC[host]),
    )

    def call(method, path, body=None, token=API_TOKEN):
        return call_api(app.resolve, method, path, body=body, token=token)

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


def _verifies(secret: str, subscription, at: float) -> bool:
    """A subscriber verifying, with its secret, a delivery made at ``at`` (stamped now, the
    library checks the timestamp against its own clock)."""
    body, now = b'{"id":"evt_1"}', int(time.time())
    header = signature_header(subscription.signing_secrets(at), "evt_1", now, body)
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(now), "webhook-signature": header}
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def test_a_second_rotation_keeps_the_first_old_secret_until_it_expires(call, store):
    clock = [time.time()]
    store.clock = lambda: clock[0]
    _, created = call(
        "POST",
        "/subscriptions",
        {"url": "https://hooks.example.com/", "events": ["response.received"]},
    )
    _, first = call("POST", f"/subscriptions/{created['id']}/rotate")
    clock[0] += 3600  # an hour later, before the subscriber switched
    status, second = call("POST", f"/subscriptions/{created['id']}/rotate")
    assert status == 200

    stored = store.get(created["id"])
    now = clock[0]
    assert stored.signing_secrets(now) == [second["secret"], first["secret"], created["secret"]]
    for secret in (created["secret"], first["secret"], second["secret"]):
        assert _verifies(secret, stored, now)
    # each replaced secret signs for a day from its own replacement
    assert _verifies(created["secret"], stored, now + ROTATION_GRACE_SECONDS - 3601)
    assert not _verifies(created["secret"], stored, now + ROTATION_GRACE_SECONDS - 3599)
    assert _verifies(first["secret"], stored, now + ROTATION_GRACE_SECONDS - 1)
    assert stored.signing_secrets(now + ROTATION_GRACE_SECONDS) == [second["secret"]]
    assert second["previous_secret_expires_at"] > first["previous_secret_expires_at"]


def test_rotating_too_often_is_refused_without_dropping_a_secret(call, store):
    _, created = call(
        "POST",
        "/subscriptions",
        {"url": "https://hooks.example.com/", "events": ["response.received"]},
    )
    for _ in range(MAX_PREVIOUS_SECRETS):
        assert call("POST", f"/subscriptions/{created['id']}/rotate")[0] == 200
    status, answer = call("POST", f"/subscriptions/{created['id']}/rotate")

    assert status == 409 and answer["error"] == "conflict"
    assert _verifies(created["secret"], store.get(created["id"]), store.clock())


def test_a_rotation_that_loses_a_race_answers_409(call, store, world):
    _, created = call(
        "POST",
        "/subscriptions",
        {"url": "https://hooks.example.com/", "events": ["response.received"]},
    )
    rival = SubscriptionsStore(store.table_name, boto3.client("dynamodb"))
    raced = []

    def rotate_first(**kwargs):  # another request rotates between our read and our write
        if not raced:
            raced.append(rival.rotate(created["id"]))

    world.ddb.meta.events.register("before-call.dynamodb.UpdateItem", rotate_first)
    try:
        status, answer = call("POST", f"/subscriptions/{created['id']}/rotate")
    finally:
        world.ddb.meta.events.unregister("before-call.dynamodb.UpdateItem", rotate_first)

    assert status == 409 and answer["error"] == "conflict"
    assert store.get(created["id"]).secret == raced[0].secret  # the winner's secret stands
    assert call("POST", "/subscriptions/sub_nope/rotate")[0] == 404


def test_a_rotation_stored_before_several_were_kept_still_signs(store, world):
    created = store.create("https://hooks.example.com/", ["response.received"], {})
    until = int(store.clock()) + 3600
    world.ddb.update_item(  # the attributes a rotation wrote before previous_secrets
        TableName=store.table_name,
        Key={"pk": {"S": "SUB"}, "sk": {"S": created.id}},
        UpdateExpression="SET previous_secret = :s, previous_until = :u",
        ExpressionAttributeValues={":s": {"S": "whsec_b2xk"}, ":u": {"N": str(until)}},
    )
    rotated = store.rotate(created.id)

    assert store.get(created.id).signing_secrets(until - 1) == [
        rotated.secret,
        created.secret,
        "whsec_b2xk",
    ]
    item = world.ddb.get_item(
        TableName=store.table_name, Key={"pk": {"S": "SUB"}, "sk": {"S": created.id}}
    )["Item"]
    assert "previous_secret" not in item and len(item["previous_secrets"]["L"]) == 2


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


def test_a_read_token_may_not_subscribe_list_read_rotate_or_delete(call, store):
    """Subscriptions receive every e-mail and comment: they need the admin scope."""
    _, created = call(
        "POST",
        "/subscriptions",
        {"url": "https://hooks.example.com/", "events": ["detractor.alert"]},
    )
    one = f"/subscriptions/{created['id']}"
    new = {"url": "https://hooks.example.com/mine", "events": ["response.received"]}
    for method, path, body in (
        ("POST", "/subscriptions", new),
        ("GET", "/subscriptions", None),
        ("GET", one, None),
        ("GET", f"{one}/deliveries", None),
        ("POST", f"{one}/rotate", None),
        ("DELETE", one, None),
    ):
        status, answer = call(method, path, body, token=READ_TOKEN)
        assert (status, answer["error"]) == (403, "insufficient_scope"), (method, path)
    [kept] = store.all()
    assert (kept.id, kept.secret) == (created["id"], created["secret"])  # nothing changed
