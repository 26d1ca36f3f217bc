"""Pure parts of the fan-out: event ids and derivation, the SSRF guard, back-off, signatures."""

import ipaddress
import json
import time
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.batch import process_partial_response
from standardwebhooks.webhooks import Webhook

from nps_sync.core.errors import BlockedUrl
from nps_sync.core.observability import metrics
from nps_sync.delivery import outbound
from nps_sync.delivery.events import (
    COMMENT_LIMIT,
    EVENT_TYPES,
    Event,
    customer_change,
    matches,
    response_events,
)
from nps_sync.delivery.fanout import TOO_LARGE_METRIC, Fanout
from nps_sync.delivery.outbound import DeliveryQueue, EventBus, PublishFailed, entry_size, packed
from nps_sync.delivery.sender import (
    MAX_ATTEMPTS,
    QUEUE_VISIBILITY_SECONDS,
    VISIBILITY_LIMIT_SECONDS,
    Answer,
    Delivery,
    DeliveryBatch,
    backoff,
    maximum_span,
    minimum_span,
    signature_header,
    visibility_allowance,
)
from nps_sync.delivery.ssrf import refusal, vet
from nps_sync.store.items import stored_response
from nps_sync.store.subscriptions import Subscription, new_secret
from tests.fakes.aws_limits import Events, Sqs


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
    return stored_response(image)


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
    stamped = response(3, plan="pro")
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


# --- size: what an event carries, and what one request takes -----------------------------


def test_a_long_comment_is_cut_in_both_events_and_flagged():
    long = "é😀" * COMMENT_LIMIT
    received, alert = response_events(0, None, response(3, comment=long), 1)
    for event in (received, alert):
        assert event.data["comment"] == long[:COMMENT_LIMIT]
        assert event.data["comment_truncated"] is True
    [whole, _] = response_events(0, None, response(3, comment="é" * COMMENT_LIMIT), 1)
    assert whole.data["comment"] == "é" * COMMENT_LIMIT and whole.data["comment_truncated"] is False
    [without, _] = response_events(0, None, response(3), 1)
    assert without.data["comment"] is None and without.data["comment_truncated"] is False
    assert received.id == without.id  # the id names the version, whatever the comment


def test_the_largest_possible_event_stays_under_64_kb():
    worst = "\x01" * 512  # every field at its bound, each character escaped to 6 bytes
    fields = ("provider", "email", "survey", "channel", "plan", "region", "account")
    image = response(
        3,
        pk=f"RESP#{worst}#{worst}",
        comment="\x01" * 20_000,
        customer_key=worst,
        mrr_currency="EUR",
        **dict.fromkeys(fields, worst),
    )
    events = [*response_events(0, None, image, 1), customer_change(0, None, image, [], 1)]
    bus, queue = EventBus("bus", Events()), DeliveryQueue("queue", Sqs())
    subscription = "sub_" + "0" * 32

    assert len(events) == 3
    for event in events:
        assert bus.size(event) < 64_000, event.type  # one billing unit; 3 fit any request
        assert queue.size((event, subscription)) < 64_000, event.type


def test_the_packer_fills_each_request_up_to_both_limits_in_order():
    def runs(sizes: list[int]) -> list[list[int]]:
        items = list(enumerate(sizes))
        found = list(packed(items, lambda item: item[1], 3, 10))  # 3 items, 10 bytes
        assert [item for run in found for item in run] == items  # in order, none lost
        return [[size for _, size in run] for run in found]

    assert runs([]) == []
    assert runs([1, 1, 1, 1]) == [[1, 1, 1], [1]]  # the count
    assert runs([4, 6, 1]) == [[4, 6], [1]]  # exactly the budget: still one request
    assert runs([4, 7]) == [[4], [7]]  # a byte over: the next one
    assert runs([10, 1]) == [[10], [1]]
    assert runs([2, 11, 2]) == [[2], [11], [2]]  # too large alone: a run by itself


def test_entry_size_is_eventbridges_own_count():
    entry = {
        "Source": "nps-sync",
        "DetailType": "detractor.alert",
        "Detail": '{"c":"é😀"}',
        "Resources": ["arn:x", "arn:yz"],
        "EventBusName": "a-bus-name-is-not-counted",
    }
    assert entry_size(entry) == 8 + 15 + (6 + 2 + 4 + 2) + 5 + 6
    assert entry_size({**entry, "Time": 1_770_000_000}) == entry_size(entry) + 14


def _event(index: int, kilobytes: int) -> Event:
    data = {"plan": "pro", "email": "ana@example.com", "blob": "x" * (kilobytes * 1000)}
    return Event(f"evt_{index}", "response.received", "2026-03-02T10:15:04Z", data, index)


class _Routes:
    def routing(self) -> list[Subscription]:
        return [Subscription("sub_1", "https://hooks.example.com/", ("response.received",))]


def test_events_too_large_together_go_out_in_requests_aws_takes():
    events, sqs = Events(), Sqs()  # both refuse what AWS refuses
    fanout = Fanout(EventBus("bus", events), DeliveryQueue("queue", sqs), _Routes())

    fanout.publish([_event(n, 60) for n in range(7)])

    assert [len(request) for request in events.requests] == [4, 3]  # 256 KB, not 10 events
    assert [len(batch) for batch in sqs.batches] == [4, 3]
    assert [e["id"] for e in events.details] == [f"evt_{n}" for n in range(7)]
    assert [m["event"]["id"] for m in sqs.bodies] == [f"evt_{n}" for n in range(7)]


def test_an_event_no_request_can_take_is_left_out_counted_and_logged_and_the_rest_goes_out(
    caplog,
):
    events, sqs = Events(), Sqs()
    fanout = Fanout(EventBus("bus", events), DeliveryQueue("queue", sqs), _Routes())
    metrics.clear_metrics()
    try:
        fanout.publish([_event(0, 1), _event(1, 300), _event(2, 1)])  # raises nothing
        counted = metrics.metric_set[TOO_LARGE_METRIC]["Value"]
    finally:
        metrics.clear_metrics()

    assert [e["id"] for e in events.details] == ["evt_0", "evt_2"]
    assert [m["event"]["id"] for m in sqs.bodies] == ["evt_0", "evt_2"]
    assert fanout.too_large == 1 and counted == [1.0]
    [line] = [r for r in caplog.records if r.getMessage().startswith("event too large")]
    assert (line.event_id, line.event_type) == ("evt_1", "response.received")
    assert line.bytes > 300_000
    assert "ana@example.com" not in str(vars(line)) and "xxxxxxxx" not in str(vars(line))


def test_without_a_bus_the_queue_s_limit_decides():
    sqs = Sqs()
    fanout = Fanout(None, DeliveryQueue("queue", sqs), _Routes())

    fanout.publish([_event(0, 258), _event(1, 270)])  # over EventBridge's, under / over SQS's

    assert [m["event"]["id"] for m in sqs.bodies] == ["evt_0"] and fanout.too_large == 1


def test_a_refused_request_fails_every_event_from_its_first_on(monkeypatch):
    monkeypatch.setattr(outbound, "RETRY_SECONDS", 0)
    events = Events(fail_requests={2, 3, 4})  # the second request, and its two retries
    fanout = Fanout(EventBus("bus", events))

    with pytest.raises(PublishFailed) as failed:
        fanout.publish([_event(n, 60) for n in range(7)])

    assert [e.id for e in failed.value.events] == ["evt_4", "evt_5", "evt_6"]
    assert [e["id"] for e in events.details] == [f"evt_{n}" for n in range(4)]


def test_a_request_refused_once_is_sent_again_and_nothing_fails(monkeypatch):
    monkeypatch.setattr(outbound, "RETRY_SECONDS", 0)
    events = Events(fail_requests={2})
    Fanout(EventBus("bus", events)).publish([_event(n, 60) for n in range(7)])

    assert events.calls == 3
    assert [e["id"] for e in events.details] == [f"evt_{n}" for n in range(7)]


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


def queued(**attributes) -> dict:
    """The delivery queue's sample SQS event (events/queues/delivery.json), its one record's
    attributes overridden."""
    path = Path(__file__).resolve().parents[2] / "events" / "queues" / "delivery.json"
    event = json.loads(path.read_text())
    event["Records"][0]["attributes"].update(attributes)
    return event


def test_a_failed_late_attempt_is_hidden_no_longer_than_sqs_accepts():
    queue, now = _Queue(), 1_770_000_000.0
    delivery = Delivery(
        _Subscriptions(),
        queue,
        post=lambda url, body, headers, budget: Answer(503),
        clock=lambda: now,
        delay=lambda attempt: backoff(attempt, lambda: 1.0),  # the top of the jitter: 12 h
    )
    event = queued(
        ApproximateReceiveCount="14",
        ApproximateFirstReceiveTimestamp=str(int((now - 30 * 3600) * 1000)),
    )

    answer = process_partial_response(event, delivery.deliver, DeliveryBatch(clock=lambda: now))

    [record] = event["Records"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    [hidden] = queue.hidden
    assert 0 < hidden <= VISIBILITY_LIMIT_SECONDS - QUEUE_VISIBILITY_SECONDS


def batch(*bodies: str) -> dict:
    """The sample event with one record per body, message ids m0, m1, ..."""
    [sample] = queued()["Records"]
    records = [
        {**sample, "messageId": f"m{n}", "receiptHandle": f"h{n}", "body": body}
        for n, body in enumerate(bodies)
    ]
    return {"Records": records}


def message(event_id: str, subscription_id: str = "sub_1") -> str:
    event = {"id": event_id, "type": "response.received"}
    return json.dumps({"subscription_id": subscription_id, "event": event})


def test_a_malformed_message_is_dropped_and_the_others_answered_one_by_one():
    posted = []

    def post(url, body, headers, budget):
        posted.append(json.loads(body)["id"])
        if b"evt_slow_refused" in body:
            time.sleep(0.2)  # finishes after the others
        return Answer(503 if b"refused" in body else 204)

    queue = _Queue()
    delivery = Delivery(_Subscriptions(), queue, post=post, delay=lambda attempt: 0)
    event = batch(
        message("evt_slow_refused"),
        "not json",
        message("evt_ok"),
        json.dumps({"subscription_id": "sub_1", "event": {"type": "response.received"}}),
        message("evt_refused"),
    )
    event["Records"].append({**event["Records"][2], "messageId": "m5", "attributes": {}})

    answer = process_partial_response(event, delivery.deliver, DeliveryBatch())

    # in the batch's order: the two refused, and the record whose SQS envelope is broken
    assert answer == {"batchItemFailures": [{"itemIdentifier": m} for m in ("m0", "m4", "m5")]}
    assert sorted(posted) == ["evt_ok", "evt_refused", "evt_slow_refused"]
    assert queue.hidden == [0, 0]  # a back-off for each refused one, none for the others


def test_a_message_failing_unexpectedly_fails_alone_and_is_logged(caplog):
    class Broken(_Subscriptions):
        def get(self, subscription_id):
            if subscription_id == "sub_broken":
                raise RuntimeError("a bug")
            return super().get(subscription_id)

    posted = []
    delivery = Delivery(Broken(), _Queue(), post=lambda *a: posted.append(a) or Answer(204))
    event = batch(message("evt_1", "sub_broken"), message("evt_2"))

    answer = process_partial_response(event, delivery.deliver, DeliveryBatch())

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert len(posted) == 1
    assert "message failed unexpectedly" in caplog.text and "a bug" in caplog.text


class _Context:
    def __init__(self, remaining_ms: int):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_a_batch_without_time_left_is_answered_failed_not_raised():
    posted = []
    delivery = Delivery(_Subscriptions(), _Queue(), post=lambda *a: posted.append(a))
    event = batch(message("evt_1"), message("evt_2"))

    answer = process_partial_response(
        event, delivery.deliver, DeliveryBatch(), _Context(remaining_ms=2500)
    )

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    assert posted == []  # not attempted


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
