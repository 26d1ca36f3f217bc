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
from aws_lambda_powertools.utilities.batch import process_partial_response
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from standardwebhooks.webhooks import Webhook

from local.aws import Stack
from local.lambdas import Context
from local.pollers import SqsPoller
from local.template import EventSource
from nps_sync.cli.redrive import redrive
from nps_sync.core.observability import metrics
from nps_sync.core.retry import ATTEMPTS
from nps_sync.delivery.events import COMMENT_LIMIT, EVENT_TYPES, Event
from nps_sync.delivery.fanout import TOO_LARGE_METRIC, Fanout
from nps_sync.delivery.outbound import DeliveryQueue, EventBus
from nps_sync.delivery.sender import MAX_ATTEMPTS, Delivery, DeliveryBatch, Sender
from nps_sync.query.customers import customer_view
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.subscriptions import SubscriptionsStore
from tests.fakes.aws_limits import Limits, RawBody
from tests.fakes.receiver import Receiver

from .conftest import World, _MotoAccount


@dataclass
class Fan:
    world: World
    stack: Stack
    account: Any
    subscriptions: SubscriptionsStore
    limits: Limits  # what AWS refuses and moto does not, in front of fanout()'s clients

    @property
    def sqs(self):
        return self.account.client("sqs")

    def queue(self, logical_id="DeliveryQueue") -> str:
        return self.stack.refs[logical_id]

    def fanout(self) -> Fanout:
        return Fanout(
            EventBus(
                self.stack.refs["EventBus"], self.limits.install(self.account.client("events"))
            ),
            DeliveryQueue(self.queue(), self.limits.install(self.sqs)),
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

    def deliver(
        self, delivery: Delivery | None = None, rounds: int = 1, timeout: float | None = None
    ) -> list[dict]:
        """Lambda's SQS event source mapping (local.pollers), polled ``rounds`` times, invoking
        what DeliveryFunction's handler runs (with a context of ``timeout`` seconds, or none:
        no deadline); returns the answers."""
        delivery = delivery or self.delivery()
        answers = []

        class Function:
            name = "DeliveryFunction"

            def invoke(self, event):
                context = None
                if timeout is not None:
                    context = Context("DeliveryFunction", 256, timeout, "req", "arn:delivery")
                answers.append(
                    process_partial_response(event, delivery.deliver, DeliveryBatch(), context)
                )
                return answers[-1]

        arn = self.stack.attributes[("DeliveryQueue", "Arn")]
        mapping = EventSource("DeliveryFunction", arn, 10, True, None, False)
        poller = SqsPoller(Function(), mapping, arn, self.account, threading.Event())
        for _ in range(rounds):
            poller.poll_once()
        return answers

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
        subscriptions = SubscriptionsStore(stack.refs["SubscriptionsTable"])
        yield Fan(world, stack, account, subscriptions, Limits())


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
    [answer] = fan.deliver(timeout=2.5)  # less than a delivery and its bookkeeping need

    assert len(answer["batchItemFailures"]) == 1  # answered, not raised
    assert receiver.attempts == 0
    assert fan.subscriptions.deliveries(subscription.id) == []  # no attempt logged
    visible = fan.sqs.receive_message(QueueUrl=fan.queue()).get("Messages", [])
    assert visible == [] and fan.depth("DeliveryQueue") == 1  # hidden as received: no back-off


def test_a_malformed_message_is_dropped_and_the_rest_of_its_batch_delivered(fan, receiver):
    refusing = Receiver(always_fail=True).start()
    try:
        ok = fan.subscriptions.create(receiver.url, ["response.received"], {})
        failing = fan.subscriptions.create(refusing.url, ["response.received"], {})
        event = {"id": "evt_1", "type": "response.received", "version": 1, "data": {}}

        def send(body) -> str:
            return fan.sqs.send_message(QueueUrl=fan.queue(), MessageBody=body)["MessageId"]

        send(json.dumps({"subscription_id": ok.id, "event": event}))
        refused = send(json.dumps({"subscription_id": failing.id, "event": event}))
        send("not json")
        send(json.dumps({"subscription_id": ok.id, "event": {"type": "response.received"}}))
        [answer] = fan.deliver()
    finally:
        refusing.stop()

    assert answer == {"batchItemFailures": [{"itemIdentifier": refused}]}
    assert [r.event for r in receiver.received] == [event]
    assert refusing.attempts == 1
    [left] = fan.sqs.receive_message(QueueUrl=fan.queue())["Messages"]  # no back-off in tests
    assert left["MessageId"] == refused and fan.depth("DeliveryQueue") == 1


def test_a_batch_whose_every_message_failed_is_answered_and_stays_in_the_queue(fan):
    refusing = Receiver(always_fail=True).start()
    try:
        fan.subscriptions.create(refusing.url, ["response.received"], {})
        fan.world.respond("r1", "ana@example.com", 9)
        fan.world.respond("r2", "bo@example.com", 8)
        fan.aggregate()
        [answer] = fan.deliver()
    finally:
        refusing.stop()

    assert len(answer["batchItemFailures"]) == refusing.attempts == 2
    assert fan.depth("DeliveryQueue") == 2


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


@pytest.mark.parametrize(
    ("service", "operation"), [("events", "PutEvents"), ("sqs", "SendMessageBatch")]
)
def test_a_failed_publish_loses_no_event_on_the_bus_or_for_the_subscribers(
    fan, receiver, service, operation
):
    """EventBridge or SQS fails its second call, and each of the aggregator's tries of it
    within the invocation (a 500 injected under botocore, its retries off): what went out
    before it, and everything after, still reaches both."""
    fan.subscriptions.create(receiver.url, list(EVENT_TYPES), {})
    tap = fan.bus_tap()
    faulty = boto3.client(service, config=Config(retries={"total_max_attempts": 1}))
    calls = []

    def refuse_the_second_call(request, **kwargs):
        calls.append(request.url)
        if not 2 <= len(calls) <= 1 + ATTEMPTS:
            return None
        body = json.dumps({"__type": "InternalFailure", "message": "injected"}).encode()
        headers = {"content-type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, 500, headers, raw=RawBody(body))

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


# --- size: AWS's request limits, enforced by tests.fakes.aws_limits ------------------------


def test_the_double_refuses_what_aws_refuses(fan):
    events = fan.limits.install(fan.account.client("events"))
    sqs = fan.limits.install(fan.sqs)
    entry = {"Source": "nps-sync", "DetailType": "t", "Detail": json.dumps({"a": "x" * 130_000})}

    with pytest.raises(ClientError, match=r"ValidationException.*Total size of the entries"):
        events.put_events(Entries=[entry, entry])
    with pytest.raises(ClientError, match=r"ValidationException.*less than or equal to 10"):
        events.put_events(Entries=[{**entry, "Detail": "{}"}] * 11)
    with pytest.raises(sqs.exceptions.BatchRequestTooLong):
        sqs.send_message_batch(
            QueueUrl=fan.queue(),
            Entries=[{"Id": str(n), "MessageBody": "é" * 14_000} for n in range(10)],
        )
    assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0  # one alone is fine
    assert fan.limits.refused == [
        ("PutEvents", "ValidationException"),
        ("PutEvents", "ValidationException"),
        ("SendMessageBatch", "AWS.SimpleQueueService.BatchRequestTooLong"),
    ]


def test_two_long_detractor_comments_in_one_batch_reach_the_bus_and_every_subscriber(fan, receiver):
    """Two 20,000-character comments (multi-byte: 70 and 60 KB) in one stream batch: their
    four events made a PutEvents request over 256 KB, refused on every retry. Cut to
    COMMENT_LIMIT characters they go out the first time, and none is lost."""
    fan.subscriptions.create(receiver.url, list(EVENT_TYPES), {})
    tap = fan.bus_tap()
    comments = {"r1": "€😀" * 10_000, "r2": ("ß日😀" * 6_667)[:20_000]}
    fan.world.respond("r1", "ana@example.com", 2, comment=comments["r1"])
    fan.world.respond("r2", "bo@example.com", 3, comment=comments["r2"])
    aggregator = fan.world.aggregator()
    aggregator.fanout = fan.fanout()
    aggregator.event_granularities = frozenset()  # the six record events: one request

    batches = fan.world.run(aggregator, attempts=3)
    fan.deliver(rounds=3)

    assert len(batches) == 1  # no failure reported, nothing delivered again
    assert fan.limits.refused == []
    seen = [m["detail"] for m in fan.tapped(tap)]
    kinds = ["response.received", "detractor.alert", "customer.nps_changed"]
    assert sorted(e["type"] for e in seen) == sorted(kinds * 2)
    assert sorted(r.headers["webhook-id"] for r in receiver.received) == sorted(
        e["id"] for e in seen
    )
    for event in (e for e in seen if "comment" in e["data"]):
        whole = comments[event["data"]["response_id"]]
        assert event["data"]["comment"] == whole[:COMMENT_LIMIT]
        assert event["data"]["comment_truncated"] is True
    # the whole text stays readable: GET /customers/{key}
    records = CustomerRecords(fan.world.records_table, fan.world.ddb)
    view = customer_view(records, "ana@example.com")
    assert [response["comment"] for response in view["responses"]] == [comments["r1"]]


def test_events_over_one_request_together_are_split_and_one_over_it_alone_is_left_out(
    fan, receiver
):
    fan.subscriptions.create(receiver.url, ["response.received"], {})
    tap = fan.bus_tap()
    events = [  # 60 KB each, the fourth 320 KB: more than any request takes
        Event(f"evt_{n}", "response.received", "2026-03-02T10:15:04Z", {"note": "😀" * size}, n)
        for n, size in enumerate([15_000] * 3 + [80_000] + [15_000] * 4)
    ]
    fanout = fan.fanout()
    metrics.clear_metrics()
    try:
        fanout.publish(events)  # raises nothing
        counted = metrics.metric_set[TOO_LARGE_METRIC]["Value"]
    finally:
        metrics.clear_metrics()
    fan.deliver(rounds=3)

    assert fan.limits.refused == []
    assert [n for op, n in fan.limits.requests if op == "PutEvents"] == [4, 3]
    assert [n for op, n in fan.limits.requests if op == "SendMessageBatch"] == [4, 3]
    sent = sorted(e.id for e in events if e.index != 3)
    assert sorted(m["detail"]["id"] for m in fan.tapped(tap)) == sent
    assert sorted(r.headers["webhook-id"] for r in receiver.received) == sent
    assert fanout.too_large == 1 and counted == [1.0]


def test_an_event_left_out_sets_off_an_alarm(template):
    [alarm] = [
        resource["Properties"]
        for resource in template.of_type("AWS::CloudWatch::Alarm").values()
        if resource["Properties"].get("MetricName") == TOO_LARGE_METRIC
    ]
    assert (alarm["Namespace"], alarm["Dimensions"]) == (
        "NpsSync",  # POWERTOOLS_METRICS_NAMESPACE and _SERVICE_NAME in Globals
        [{"Name": "service", "Value": "nps-sync"}],
    )
    assert (alarm["Statistic"], alarm["Threshold"], alarm["TreatMissingData"]) == (
        "Sum",
        1,
        "notBreaching",
    )
