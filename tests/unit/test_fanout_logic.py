"""Pure parts of the fan-out: event ids and derivation, the SSRF guard, back-off, signatures."""

import ipaddress
import time

import pytest
from standardwebhooks.webhooks import Webhook

from nps_sync.core.errors import BlockedUrl
from nps_sync.delivery.events import (
    EVENT_TYPES,
    customer_change,
    matches,
    response_events,
)
from nps_sync.delivery.sender import (
    MAX_ATTEMPTS,
    QUEUE_VISIBILITY_SECONDS,
    VISIBILITY_LIMIT_SECONDS,
    Answer,
    Delivery,
    backoff,
    maximum_span,
    minimum_span,
    signature_header,
    visibility_allowance,
)
from nps_sync.delivery.ssrf import refusal, vet
from nps_sync.store.subscriptions import Subscription, new_secret


def response(score, updated="2026-01-15T10:00:00.000000Z", submitted=None, pk="RESP#g#r1", **more):
    image = {
        "pk": {"S": pk},
        "sk": {"S": "RESP"},
        "response_id": {"S": pk.rsplit("#", 1)[1]},
        "customer_key": {"S": "ana@example.com"},
        "score": {"N": str(score)},
        "category": {"S": "detractor" if score <= 6 else "passive" if score <= 8 else "promoter"},
        "submitted_at": {"S": submitted or updated},
        "updated_at": {"S": updated},
    }
    image.update({k: {"S": v} for k, v in more.items()})
    return image


# --- events ------------------------------------------------------------------------------


def test_the_same_change_yields_the_same_event_ids():
    first = response_events(0, None, response(3), 1_770_000_000)
    again = response_events(5, None, response(3), 1_770_000_000)
    assert [e.type for e in first] == ["response.received", "detractor.alert"]
    assert [e.id for e in first] == [e.id for e in again]
    assert first[0].body() == again[0].body()
    newer = response_events(0, response(3), response(2, updated="2026-01-16T00:00:00.000000Z"), 1)
    assert [e.type for e in newer] == ["response.received"]  # already a detractor: no alert
    assert newer[0].id != first[0].id


def test_a_restamp_or_a_move_is_not_a_new_response():
    stamped = {**response(3), "plan": {"S": "pro"}}
    assert response_events(0, response(3), stamped, 1) == []


def test_customer_change_compares_with_the_latest_other_answer():
    earlier = response(9, updated="2026-01-01T00:00:00.000000Z", pk="RESP#g#r0")
    later = response(3, updated="2026-02-01T00:00:00.000000Z", pk="RESP#g#r2")
    event = customer_change(0, None, response(3), [earlier], 1)
    assert (event.data["old"]["score"], event.data["new"]["score"]) == (9, 3)
    assert customer_change(0, None, response(3), [later], 1) is None  # not the latest answer
    assert customer_change(0, None, response(9), [earlier], 1) is None  # same score


def test_filters_match_attributes_or_an_aggregates_dimension():
    [received, alert] = response_events(0, None, response(3, plan="enterprise"), 1)
    assert matches(alert, ["detractor.alert"], {"plan": "enterprise"})
    assert matches(alert, ["detractor.alert"], {"plan": ["pro", "enterprise"]})
    assert not matches(alert, ["detractor.alert"], {"plan": "pro"})
    assert not matches(received, ["detractor.alert"], {})
    assert set(EVENT_TYPES) == {
        "response.received",
        "detractor.alert",
        "customer.nps_changed",
        "aggregate.updated",
    }


# --- the SSRF guard ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.3.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "fd00:ec2::254",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
        "0.0.0.0",  # noqa: S104 - an address refused, not bound
        "224.0.0.1",
        "100.64.0.1",
        "fe80::1",
        "240.0.0.1",
    ],
)
def test_private_and_special_addresses_are_refused(address):
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00:ec2::254]/",
        "https://[::ffff:7f00:1]/",
        "https://user:pw@hooks.example.com/",
        "ftp://hooks.example.com/",
        "http://hooks.example.com/",  # public, but not https
    ],
)
def test_blocked_urls_are_refused_with_a_reason(url):
    with pytest.raises(BlockedUrl) as refused:
        vet(url, resolver=lambda host, port: ["93.184.215.14"])
    assert refused.value.message.startswith("url: ")


def test_a_name_is_refused_if_any_of_its_addresses_is_private():
    with pytest.raises(BlockedUrl, match="loopback"):
        vet("https://hooks.example.com/x", resolver=lambda h, p: ["127.0.0.1"])
    with pytest.raises(BlockedUrl, match="private"):
        vet("https://hooks.example.com/x", resolver=lambda h, p: ["93.184.215.14", "10.1.2.3"])
    target = vet("https://Hooks.Example.com:8443/x?a=1", resolver=lambda h, p: ["93.184.215.14"])
    assert (target.host, target.port, target.path) == ("hooks.example.com", 8443, "/x?a=1")


def test_local_mode_allows_loopback_only():
    assert vet("http://127.0.0.1:8080/hook", allow_local=True).addresses == ("127.0.0.1",)
    assert vet("http://localhost:8080/hook", allow_local=True, resolver=lambda h, p: ["::1"])
    with pytest.raises(BlockedUrl):
        vet("http://10.0.0.1/hook", allow_local=True)
    with pytest.raises(BlockedUrl):
        vet("http://169.254.169.254/", allow_local=True)


# --- back-off ----------------------------------------------------------------------------


def test_backoff_doubles_from_30_seconds_up_to_12_hours_with_jitter():
    assert [backoff(n, lambda: 1.0) for n in (1, 2, 3)] == [30, 60, 120]
    assert [backoff(n, lambda: 0.0) for n in (1, 2, 3)] == [15, 30, 60]
    assert backoff(20, lambda: 1.0) == 12 * 3600
    assert all(15 <= backoff(1) <= 30 for _ in range(100))


def test_the_retries_span_at_least_a_day_before_the_dead_letter_queue(template):
    # minimum_span counts every wait at the bottom of its jitter and, where SQS allows less,
    # at the least it allows (visibility_allowance)
    assert minimum_span(MAX_ATTEMPTS) >= 24 * 3600
    assert minimum_span(MAX_ATTEMPTS - 1) < 24 * 3600  # and not needlessly longer
    queue = template.resources["DeliveryQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == MAX_ATTEMPTS
    assert queue["VisibilityTimeout"] == QUEUE_VISIBILITY_SECONDS
    assert template.functions["DeliveryFunction"].timeout <= 30  # as visibility_allowance assumes
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] > maximum_span(MAX_ATTEMPTS)


def test_the_hiding_asked_for_stays_inside_the_12_hours_of_the_receive():
    now = 1_770_000_000.0
    # first attempt: ApproximateFirstReceiveTimestamp is this receive
    assert visibility_allowance(now - 5, now - 2, now) == VISIBILITY_LIMIT_SECONDS - 5 - 30
    # a later one: this receive was at most the queue's visibility timeout before the start
    later = visibility_allowance(now - 86_400, now - 10, now)
    assert later == VISIBILITY_LIMIT_SECONDS - 10 - QUEUE_VISIBILITY_SECONDS - 30
    assert visibility_allowance(None, now - 10, now) == later


class _Queue:
    def __init__(self):
        self.hidden: list[int] = []

    def retry_later(self, receipt_handle, seconds):
        self.hidden.append(seconds)


class _Subscriptions:
    def get(self, subscription_id):
        return Subscription(subscription_id, "https://hooks.example.com/", ("response.received",))

    def record(self, delivery):
        pass


def test_a_failed_late_attempt_is_hidden_no_longer_than_sqs_accepts():
    queue, now = _Queue(), 1_770_000_000.0
    delivery = Delivery(
        _Subscriptions(),
        queue,
        post=lambda url, body, headers, budget: Answer(503),
        clock=lambda: now,
        delay=lambda attempt: backoff(attempt, lambda: 1.0),  # the top of the jitter: 12 h
    )
    record = {
        "messageId": "m1",
        "receiptHandle": "h1",
        "body": '{"subscription_id": "sub_1", "event": {"id": "evt_1", "type": "x"}}',
        "attributes": {
            "ApproximateReceiveCount": "14",
            "ApproximateFirstReceiveTimestamp": str(int((now - 30 * 3600) * 1000)),
        },
    }
    assert delivery.handle({"Records": [record]}) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}]
    }
    [hidden] = queue.hidden
    assert 0 < hidden <= VISIBILITY_LIMIT_SECONDS - QUEUE_VISIBILITY_SECONDS


# --- signatures --------------------------------------------------------------------------


def test_during_a_rotation_both_secrets_sign_and_either_verifies():
    old, new = new_secret(), new_secret()
    now = int(time.time())
    subscription = Subscription(
        "sub_1",
        "https://x",
        ("response.received",),
        secret=new,
        previous=((old, now + 3600),),
    )
    body = b'{"id":"evt_1"}'
    header = signature_header(subscription.signing_secrets(now), "evt_1", now, body)
    assert header.count("v1,") == 2
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(now), "webhook-signature": header}
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == {"id": "evt_1"}
    assert subscription.signing_secrets(now + 3601) == [new]
