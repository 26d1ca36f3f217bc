"""Outgoing events end to end in-process: stream -> aggregator -> bus + delivery queue ->
DeliveryFunction's logic -> a real HTTP receiver on 127.0.0.1 (moto underneath)."""

import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from standardwebhooks.webhooks import Webhook

from local.aws import Stack
from local.pollers import SqsPoller
from local.template import EventSource
from nps_sync.cli.redrive import redrive
from nps_sync.delivery.events import EVENT_TYPES
from nps_sync.delivery.fanout import Fanout
from nps_sync.delivery.outbound import DeliveryQueue, EventBus
from nps_sync.delivery.sender import MAX_ATTEMPTS, Delivery, Sender
from nps_sync.store.subscriptions import SubscriptionsStore
from tests.fakes.receiver import Receiver

from .conftest import World, _MotoAccount


@dataclass
class Fan:
    world: World
    stack: Stack
    account: Any
    subscriptions: SubscriptionsStore

    @property
    def sqs(self):
        return self.account.client("sqs")

    def queue(self, logical_id="DeliveryQueue") -> str:
        return self.stack.refs[logical_id]

    def fanout(self) -> Fanout:
        return Fanout(
            EventBus(self.stack.refs["EventBus"], self.account.client("events")),
            DeliveryQueue(self.queue(), self.sqs),
            self.subscriptions,
        )

    def aggregate(self) -> None:
        aggregator = self.world.aggregator()
        aggregator.fanout = self.fanout()
        aggregator.event_granularities = frozenset({"all"})
        self.world.run(aggregator)

    def delivery(self, **kwargs) -> Delivery:
        kwargs.setdefault("post", Sender(allow_local=True, timeout=2).post)
        kwargs.setdefault("delay", lambda attempt: 0)  # no real back-off in tests
        return Delivery(self.subscriptions, DeliveryQueue(self.queue(), self.sqs), **kwargs)

    def deliver(self, delivery: Delivery | None = None, rounds: int = 1, remaining_ms=None):
        """Lambda's SQS event source mapping (local.pollers), polled ``rounds`` times;
        ``remaining_ms`` stands for the context's get_remaining_time_in_millis."""
        delivery = delivery or self.delivery()

        class Function:
            name = "DeliveryFunction"

            def invoke(self, event):
                return delivery.handle(event, remaining_ms)

        arn = self.stack.attributes[("DeliveryQueue", "Arn")]
        mapping = EventSource("DeliveryFunction", arn, 10, True, None, False)
        poller = SqsPoller(Function(), mapping, arn, self.account, threading.Event())
        for _ in range(rounds):
            poller.poll_once()

    def bus_tap(self) -> str:
        """A queue that a rule on the bus fills with every nps-sync event (what AWS-native
        subscribers see)."""
        events, sqs, bus = self.account.client("events"), self.sqs, self.stack.refs["EventBus"]
        tap = sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]
        events.put_rule(
            Name="tap", EventBusName=bus, EventPattern=json.dumps({"source": ["nps-sync"]})
        )
        events.put_targets(
            Rule="tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn["QueueArn"]}]
        )
        return tap

    def tapped(self, tap: str) -> list[dict]:
        seen = []
        while messages := self.sqs.receive_message(QueueUrl=tap, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            seen.extend(json.loads(m["Body"]) for m in messages)
            self.sqs.delete_message_batch(
                QueueUrl=tap,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        return seen

    def depth(self, logical_id: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue(logical_id),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())


@pytest.fixture
def fan(template, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        account = _MotoAccount()
        stack = Stack(template, account).provision()
        world = World(
            records_table=stack.refs["RecordsTable"],
            aggregates_table=stack.refs["AggregatesTable"],
            stream_arn=stack.attributes[("RecordsTable", "StreamArn")],
            ddb=account.client("dynamodb"),
            streams=account.client("dynamodbstreams"),
        )
        yield Fan(world, stack, account, SubscriptionsStore(stack.refs["SubscriptionsTable"]))


@pytest.fixture
def receiver():
    running = Receiver().start()
    yield running
    running.stop()


def verify(subscription, received) -> dict:
    """The receiver's side, with the standardwebhooks library."""
    return Webhook(subscription.secret).verify(received.body, received.headers)


def test_each_event_type_reaches_its_subscriber_signed(fan, receiver):
    everything = fan.subscriptions.create(
        receiver.url,
        ["response.received", "detractor.alert", "customer.nps_changed", "aggregate.updated"],
        {},
    )
    fan.world.profile("ana@example.com", 1, plan="enterprise", mrr_amount=99000, mrr_currency="EUR")
    fan.world.respond("r1", "ana@example.com", 3, comment="too slow", survey="q1")
    fan.aggregate()
    fan.deliver(rounds=3)

    types = receiver.types()
    assert sorted(set(types)) == [
        "aggregate.updated",
        "customer.nps_changed",
        "detractor.alert",
        "response.received",
    ]
    for received in receiver.received:
        assert verify(everything, received)["id"] == received.headers["webhook-id"]
    alert = next(r.event for r in receiver.received if r.event["type"] == "detractor.alert")
    assert alert["id"].startswith("evt_") and alert["version"] == 1
    assert alert["data"]["comment"] == "too slow"
    assert alert["data"]["plan"] == "enterprise"
    assert alert["data"]["mrr_at_risk"] == {"amount": 99000, "currency": "EUR"}
    assert alert["data"]["customer_key"] == "ana@example.com"
    changed = next(r.event for r in receiver.received if r.event["type"] == "customer.nps_changed")
    assert changed["data"]["old"] is None and changed["data"]["new"]["score"] == 3
    log = fan.subscriptions.deliveries(everything.id)
    assert {entry["status"] for entry in log} == {"delivered"}
    assert len(log) == len(receiver.received)


def test_subscribers_get_only_their_types_and_filters(fan, receiver):
    other = Receiver().start()
    try:
        alerts = fan.subscriptions.create(receiver.url, ["detractor.alert"], {"plan": "enterprise"})
        aggregates = fan.subscriptions.create(other.url, ["aggregate.updated"], {"plan": "pro"})
        fan.world.profile("ana@example.com", 1, plan="enterprise")
        fan.world.profile("bo@example.com", 1, plan="pro")
        fan.world.respond("r1", "ana@example.com", 2)
        fan.world.respond("r2", "bo@example.com", 1)  # a detractor, but on the pro plan
        fan.world.respond("r3", "cy@example.com", 10)
        fan.aggregate()
        fan.deliver(rounds=3)
    finally:
        other.stop()

    assert receiver.types() == ["detractor.alert"]
    assert receiver.received[0].event["data"]["response_id"] == "r1"
    assert verify(alerts, receiver.received[0])
    assert set(other.types()) == {"aggregate.updated"}
    assert {(r.event["data"]["dimension"], r.event["data"]["value"]) for r in other.received} == {
        ("plan", "pro")
    }
    assert verify(aggregates, other.received[0])


def test_reprocessing_the_same_stream_records_yields_the_same_event_ids(fan, receiver):
    fan.subscriptions.create(receiver.url, ["response.received", "aggregate.updated"], {})
    fan.world.respond("r1", "ana@example.com", 9)
    aggregator = fan.world.aggregator()
    aggregator.fanout, aggregator.event_granularities = fan.fanout(), frozenset({"all"})
    batches = fan.world.run(aggregator)
    aggregator.handle({"Records": batches[0]})  # Lambda delivers the batch again
    fan.deliver(rounds=3)

    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 2 * len(set(ids))  # every event twice, with the same id
    assert fan.world.differences() == []  # and the counters once


class _Bus:
    """An EventBridge client that keeps what it is sent, and refuses it while ``down``."""

    def __init__(self, down: bool):
        self.down = down
        self.events: list[dict] = []

    def put_events(self, Entries):  # noqa: N803 - boto3's parameter name
        self.events.extend(json.loads(entry["Detail"]) for entry in Entries)
        if self.down:
            raise ClientError({"Error": {"Code": "InternalException"}}, "PutEvents")
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in Entries]}


def test_an_aggregate_event_keeps_its_id_when_its_batch_comes_back_longer(fan):
    """The bus refuses a batch's events; Lambda delivers the batch again with a record more
    (arrived meanwhile) for the same aggregates: the events of the first batch's writes are
    derived again, with the same ids and contents, and the new record's come on top."""
    fan.world.respond("r1", "ana@example.com", 9)
    fan.world.respond("r2", "bo@example.com", 3)
    first = fan.world.new_records()
    aggregator = fan.world.aggregator()
    aggregator.event_granularities = frozenset({"all"})
    down, up = _Bus(down=True), _Bus(down=False)
    aggregator.fanout = Fanout(EventBus("bus", down))
    assert aggregator.handle({"Records": first})["batchItemFailures"]  # from the first record

    fan.world.respond("r3", "cy@example.com", 10)
    aggregator.fanout = Fanout(EventBus("bus", up))
    assert aggregator.handle({"Records": first + fan.world.new_records()}) == {
        "batchItemFailures": []
    }

    def aggregates(bus):
        return {e["id"]: e for e in bus.events if e["type"] == "aggregate.updated"}

    refused, sent = aggregates(down), aggregates(up)
    assert refused and all(sent.get(key) == event for key, event in refused.items())
    overall = [e["data"] for e in sent.values() if e["data"]["dimension"] == "overall"]
    # r1 (9) and r2 (3): nobody -> 0; then r3 (10): 0 -> 33.3
    assert {(d["old_nps"], d["new_nps"]) for d in overall} == {(None, 0.0), (0.0, 33.3)}
    assert fan.world.differences() == []


def test_a_receiver_failing_three_times_gets_the_event_with_the_same_id(fan, receiver):
    subscription = fan.subscriptions.create(receiver.url, ["response.received"], {})
    receiver.fail_times = 3
    fan.world.respond("r1", "ana@example.com", 9)
    fan.aggregate()
    fan.deliver(rounds=4)

    assert receiver.attempts == 4
    assert len(receiver.received) == 1
    assert verify(subscription, receiver.received[0])
    [entry] = fan.subscriptions.deliveries(subscription.id)
    assert (entry["status"], entry["attempts"], entry["response_code"]) == ("delivered", 4, 204)
    assert entry["event_id"] == receiver.received[0].headers["webhook-id"]


def test_a_receiver_that_always_fails_ends_in_the_dead_letter_queue_and_redrive_delivers(
    fan, receiver
):
    subscription = fan.subscriptions.create(receiver.url, ["response.received"], {})
    receiver.always_fail = True
    fan.world.respond("r1", "ana@example.com", 9)
    fan.aggregate()
    fan.deliver(rounds=MAX_ATTEMPTS + 1)

    assert receiver.attempts == MAX_ATTEMPTS
    assert fan.depth("DeliveryQueue") == 0
    assert fan.depth("DeliveryDeadLetterQueue") == 1
    [entry] = fan.subscriptions.deliveries(subscription.id)
    assert (entry["status"], entry["attempts"], entry["response_code"]) == (
        "dead_lettered",
        MAX_ATTEMPTS,
        503,
    )

    receiver.always_fail = False  # the subscriber is back
    moved = redrive(fan.sqs, fan.queue("DeliveryDeadLetterQueue"), fan.queue("DeliveryQueue"))
    fan.deliver()

    assert moved == 1 and fan.depth("DeliveryDeadLetterQueue") == 0
    assert len(receiver.received) == 1 and verify(subscription, receiver.received[0])
    assert fan.subscriptions.deliveries(subscription.id)[0]["status"] == "delivered"


def test_a_slow_subscriber_does_not_hold_up_or_resend_the_others(fan, receiver):
    fast = fan.subscriptions.create(receiver.url, ["response.received"], {})
    failing = fan.subscriptions.create(
        "http://127.0.0.1:9/nothing-listens", ["response.received"], {}
    )
    slow_calls = []

    def post(url, body, headers, budget):
        if "nothing-listens" in url:
            slow_calls.append(time.monotonic())
        return Sender(allow_local=True, timeout=1).post(url, body, headers, budget)

    fan.world.respond("r1", "ana@example.com", 9)
    fan.aggregate()
    fan.deliver(fan.delivery(post=post), rounds=3)

    assert len(receiver.received) == 1  # delivered once, not again with the failing one
    assert len(slow_calls) == 3
    assert fan.subscriptions.deliveries(fast.id)[0]["attempts"] == 1
    assert fan.subscriptions.deliveries(failing.id)[0]["status"] == "retrying"


def test_a_subscriber_trickling_its_answer_is_cut_off_and_retried_alone(fan, receiver):
    slow = Receiver(trickle_seconds=4).start()  # a byte every 0.08 s: no read ever times out
    try:
        fast = fan.subscriptions.create(receiver.url, ["response.received"], {})
        trickling = fan.subscriptions.create(slow.url, ["response.received"], {})
        fan.world.respond("r1", "ana@example.com", 9)
        fan.aggregate()
        delivery = fan.delivery(post=Sender(allow_local=True, timeout=1).post)
        began = time.monotonic()
        fan.deliver(delivery)
        took = time.monotonic() - began
        fan.deliver(delivery)  # the trickling one comes back (no back-off in tests)
    finally:
        slow.stop()

    assert took < 2.5  # one deadline of 1 s, not the 4 s of the trickle
    assert (receiver.attempts, len(receiver.received)) == (1, 1)  # not sent again
    assert fan.subscriptions.deliveries(fast.id)[0]["attempts"] == 1
    assert slow.attempts == 2
    [entry] = fan.subscriptions.deliveries(trickling.id)
    assert (entry["status"], entry["attempts"]) == ("retrying", 2)
    assert entry["error"] == "no answer within 1 s"


def _blackholes(addresses: list[str]) -> tuple[int, list[socket.socket]]:
    """Listeners on one port whose accept queues are full: connecting to them hangs, as if
    the packets were dropped. Returns the port and every socket to close."""
    sockets, port = [], 0
    for address in addresses:
        listener = socket.socket()
        listener.bind((address, port))
        listener.listen(0)
        port = listener.getsockname()[1]
        sockets.append(listener)
        for _ in range(3):
            filling = socket.socket()
            filling.setblocking(False)
            filling.connect_ex((address, port))
            sockets.append(filling)
    return port, sockets


def test_a_name_with_dead_addresses_is_given_up_on_at_the_deadline():
    addresses = [f"127.0.0.{n}" for n in (2, 3, 4, 5, 6)]
    port, sockets = _blackholes(addresses)
    sender = Sender(allow_local=True, timeout=1, resolver=lambda host, p: addresses)
    try:
        began = time.monotonic()
        answer = sender.post(f"http://localhost:{port}/hook", b"{}", {})
        took = time.monotonic() - began
    finally:
        for sock in sockets:
            sock.close()

    assert took < 1.5  # five dead addresses share one deadline (and at most 3 are tried)
    assert (answer.status, answer.error) == (None, "no answer within 1 s")


def test_a_message_the_invocation_has_no_time_left_for_is_not_attempted(fan, receiver):
    subscription = fan.subscriptions.create(receiver.url, ["response.received"], {})
    fan.world.respond("r1", "ana@example.com", 9)
    fan.aggregate()
    fan.deliver(remaining_ms=lambda: 2500)  # less than a delivery and its bookkeeping need

    assert receiver.attempts == 0
    assert fan.subscriptions.deliveries(subscription.id) == []  # no attempt logged
    visible = fan.sqs.receive_message(QueueUrl=fan.queue()).get("Messages", [])
    assert visible == [] and fan.depth("DeliveryQueue") == 1  # hidden as received: no back-off


def test_a_deleted_subscription_gets_nothing_more(fan, receiver):
    subscription = fan.subscriptions.create(receiver.url, ["response.received"], {})
    fan.world.respond("r1", "ana@example.com", 9)
    fan.aggregate()
    fan.subscriptions.delete(subscription.id)
    fan.deliver()

    assert receiver.received == [] and fan.depth("DeliveryQueue") == 0


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/hook", "https://169.254.169.254/latest", "http://[::1]:9/hook"],
)
def test_blocked_addresses_are_refused_at_delivery(fan, url):
    subscription = fan.subscriptions.create(url, ["response.received"], {})  # bypassing the API
    fan.world.respond("r1", "ana@example.com", 9)
    fan.aggregate()
    fan.deliver(fan.delivery(post=Sender(allow_local=False).post))

    [entry] = fan.subscriptions.deliveries(subscription.id)
    assert entry["status"] == "blocked" and "response_code" not in entry


def test_a_name_rebound_to_loopback_after_registration_is_refused(fan, receiver):
    answers = {"hooks.example.com": ["93.184.215.14"]}
    subscription = fan.subscriptions.create(
        "https://hooks.example.com/nps", ["response.received"], {}
    )
    answers["hooks.example.com"] = ["127.0.0.1"]  # DNS rebinding
    sender = Sender(allow_local=False, resolver=lambda host, port: answers[host])
    fan.world.respond("r1", "ana@example.com", 9)
    fan.aggregate()
    fan.deliver(fan.delivery(post=sender.post))

    [entry] = fan.subscriptions.deliveries(subscription.id)
    assert entry["status"] == "blocked" and "loopback" in entry["error"]


def test_every_event_is_put_on_the_bus(fan):
    tap = fan.bus_tap()
    fan.world.respond("r1", "ana@example.com", 4)
    fan.aggregate()

    seen = fan.tapped(tap)
    assert {m["detail-type"] for m in seen} >= {"response.received", "detractor.alert"}
    assert all(m["source"] == "nps-sync" and m["detail"]["id"].startswith("evt_") for m in seen)


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


@pytest.mark.parametrize(
    ("service", "operation"), [("events", "PutEvents"), ("sqs", "SendMessageBatch")]
)
def test_a_failed_publish_loses_no_event_on_the_bus_or_for_the_subscribers(
    fan, receiver, service, operation
):
    """EventBridge or SQS fails its second call once (a 500 injected under botocore, its
    retries off): what went out before it, and everything after, still reaches both."""
    fan.subscriptions.create(receiver.url, list(EVENT_TYPES), {})
    tap = fan.bus_tap()
    faulty = boto3.client(service, config=Config(retries={"total_max_attempts": 1}))
    calls = []

    def refuse_the_second_call(request, **kwargs):
        calls.append(request.url)
        if len(calls) != 2:
            return None
        body = json.dumps({"__type": "InternalFailure", "message": "injected"}).encode()
        headers = {"content-type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, 500, headers, raw=_Raw(body))

    faulty.meta.events.register_first(f"before-send.{service}.{operation}", refuse_the_second_call)
    clients = {"events": fan.account.client("events"), "sqs": fan.sqs, service: faulty}
    for n in range(4):  # 3 record events each, and the aggregates': more than one call
        fan.world.respond(f"r{n}", f"c{n}@example.com", 3)
    aggregator = fan.world.aggregator()
    aggregator.event_granularities = frozenset({"all"})
    aggregator.fanout = Fanout(
        EventBus(fan.stack.refs["EventBus"], clients["events"]),
        DeliveryQueue(fan.queue(), clients["sqs"]),
        fan.subscriptions,
    )
    batches = fan.world.run(aggregator)
    fan.deliver(rounds=6)

    assert len(calls) > 2 and len(batches) == 2  # delivered again after the failure
    on_the_bus = {m["detail"]["id"] for m in fan.tapped(tap)}
    delivered = {r.headers["webhook-id"] for r in receiver.received}
    assert len(on_the_bus) > 10
    assert delivered == on_the_bus
