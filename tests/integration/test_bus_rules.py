"""Only what a rule can receive goes on the bus (docs/events.md "What goes on the bus"): rules
made in moto, whose own pattern matching routes what is put to one queue per rule, so what
each rule receives is checked by an implementation other than ours; ListRules failing (a
botocore Stubber, a refused connection) puts everything."""

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from moto import mock_aws

from local.aws import Stack
from nps_sync.core.observability import metrics
from nps_sync.delivery.events import (
    AGGREGATE_UPDATED,
    CUSTOMER_NPS_CHANGED,
    DETRACTOR_ALERT,
    EVENT_TYPES,
    RESPONSE_RECEIVED,
    SOURCE,
    Event,
)
from nps_sync.delivery.fanout import Fanout
from nps_sync.delivery.outbound import DeliveryQueue, EventBus
from nps_sync.delivery.rules import RULES_TTL_SECONDS, UNAVAILABLE_METRIC, BusRules, could_match
from nps_sync.store.subscriptions import SubscriptionsStore

from .conftest import _MotoAccount

BUS = "nps-events"


def events() -> list[Event]:
    """One of each type, enterprise and pro, as the aggregator derives them."""
    made = []
    for n, plan in enumerate(("enterprise", "pro")):
        for kind in EVENT_TYPES:
            data = {"plan": plan, "score": 3}
            if kind == AGGREGATE_UPDATED:
                data = {"dimension": "plan", "value": plan, "new_nps": 10}
            made.append(Event(f"evt_{kind}_{plan}", kind, "2026-03-02T10:15:04Z", data, n))
    return made


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Bus:
    """A bus in moto, the entries our PutEvents requests carry and the ListRules calls."""

    def __init__(self):
        self.client = boto3.client("events", region_name="us-east-1")
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.client.create_event_bus(Name=BUS)
        self.put: list[dict] = []
        self.lookups = 0
        self.client.meta.events.register("provide-client-params.events.PutEvents", self._record)
        self.client.meta.events.register("provide-client-params.events.ListRules", self._count)
        self.clock = Clock()
        self.queues: dict[str, str] = {}

    def _record(self, params, **_):
        self.put.extend(params["Entries"])

    def _count(self, params, **_):
        self.lookups += 1

    def filtering(self) -> EventBus:
        return EventBus(BUS, self.client, BusRules(self.client, BUS, clock=self.clock))

    def rule(self, name: str, pattern: Any, state: str = "ENABLED") -> None:
        """A rule sending what it matches to a queue of its own."""
        self.client.put_rule(
            Name=name, EventBusName=BUS, EventPattern=json.dumps(pattern), State=state
        )
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        self.client.put_targets(
            Rule=name,
            EventBusName=BUS,
            Targets=[{"Id": name, "Arn": arn["Attributes"]["QueueArn"]}],
        )
        self.queues[name] = url

    def received(self) -> dict[str, set[str]]:
        """Event ids each rule's queue got since the last call (and empties the queues)."""
        seen: dict[str, set[str]] = {}
        for name, url in self.queues.items():
            seen[name] = set()
            while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
                "Messages"
            ):
                for message in messages:
                    seen[name].add(json.loads(message["Body"])["detail"]["id"])
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return seen

    def put_types(self) -> set[str]:
        return {entry["DetailType"] for entry in self.put}


@pytest.fixture
def bus(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield Bus()


ALL = set(EVENT_TYPES)
PATTERNS = [
    ({"source": [SOURCE]}, ALL),
    ({"source": [SOURCE], "detail-type": [DETRACTOR_ALERT]}, {DETRACTOR_ALERT}),
    ({"source": ["aws.ec2"]}, set()),
    (
        {"source": [{"prefix": "nps-"}], "detail-type": [{"prefix": "customer."}]},
        {CUSTOMER_NPS_CHANGED},
    ),
    ({"detail-type": [{"prefix": {"equals-ignore-case": "RESPONSE."}}]}, {RESPONSE_RECEIVED}),
    ({"detail-type": [{"suffix": ".alert"}]}, {DETRACTOR_ALERT}),
    ({"detail-type": [{"anything-but": AGGREGATE_UPDATED}]}, ALL - {AGGREGATE_UPDATED}),
    (
        {"detail-type": [{"anything-but": [AGGREGATE_UPDATED, RESPONSE_RECEIVED]}]},
        {DETRACTOR_ALERT, CUSTOMER_NPS_CHANGED},
    ),
    ({"detail-type": [{"anything-but": {"prefix": "aggregate."}}]}, ALL - {AGGREGATE_UPDATED}),
    ({"source": [{"anything-but": {"prefix": "nps"}}]}, set()),
    (
        {"detail-type": [{"anything-but": {"equals-ignore-case": ["DETRACTOR.ALERT"]}}]},
        ALL - {DETRACTOR_ALERT},
    ),
    ({"detail-type": [{"anything-but": {"wildcard": "*.*e*"}}]}, set()),
    ({"detail-type": [{"wildcard": "*nps*"}]}, {CUSTOMER_NPS_CHANGED}),
    ({"detail-type": [{"wildcard": "*e.*ed"}]}, {RESPONSE_RECEIVED, AGGREGATE_UPDATED}),
    ({"detail-type": [{"equals-ignore-case": "Detractor.Alert"}]}, {DETRACTOR_ALERT}),
    (
        {"source": [{"exists": True}], "detail-type": [DETRACTOR_ALERT, AGGREGATE_UPDATED]},
        {
            DETRACTOR_ALERT,
            AGGREGATE_UPDATED,
        },
    ),
    ({"source": [{"exists": False}]}, set()),
    (
        {"$or": [{"detail-type": [DETRACTOR_ALERT]}, {"detail-type": [RESPONSE_RECEIVED]}]},
        {DETRACTOR_ALERT, RESPONSE_RECEIVED},
    ),
    # the detail is not read here: the type goes on the bus, moto's matching picks the plan
    (
        {"detail-type": [DETRACTOR_ALERT], "detail": {"data": {"plan": ["enterprise"]}}},
        {DETRACTOR_ALERT},
    ),
    ({"detail": {"data": {"plan": ["enterprise"]}}}, ALL),
    ({"account": ["123456789012"]}, ALL),
]


@pytest.mark.parametrize(("pattern", "expected"), PATTERNS)
def test_the_bus_gets_the_types_a_rule_could_match_and_the_rule_gets_all_it_would(
    bus, pattern, expected
):
    bus.rule("rule", pattern)
    everything = events()
    EventBus(BUS, bus.client).put(everything)  # no rules read: every event, as before
    before = bus.received()
    bus.put.clear()

    bus.filtering().put(everything)

    assert bus.put_types() == expected
    assert bus.received() == before  # what the rule receives, by moto's own matching


def test_many_rules_at_once_each_receive_what_they_would_and_fewer_events_are_put(bus):
    for n, (pattern, _) in enumerate(PATTERNS):
        bus.rule(f"rule-{n}", pattern)
    everything = events()
    EventBus(BUS, bus.client).put(everything)
    before, every = bus.received(), len(bus.put)
    bus.put.clear()

    bus.filtering().put(everything)

    assert bus.received() == before
    assert bus.put_types() == ALL and len(bus.put) == every  # some rule takes every type
    assert any(before.values())


def test_no_rule_no_request(bus):
    filtering = bus.filtering()

    filtering.put(events())

    assert bus.put == [] and bus.lookups == 1


def test_disabled_rules_and_other_buses_rules_do_not_count(bus):
    bus.rule("off", {"source": [SOURCE]}, state="DISABLED")
    bus.client.put_rule(Name="default-bus", EventPattern=json.dumps({"source": [SOURCE]}))

    bus.filtering().put(events())

    assert bus.put == []


def test_a_schedule_takes_no_events():
    client = boto3.client(
        "events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    rules = [
        {"Name": "nightly", "State": "ENABLED", "ScheduleExpression": "rate(1 day)"},
        {
            "Name": "alerts",
            "State": "ENABLED",
            "EventPattern": '{"detail-type": ["detractor.alert"]}',
        },
    ]
    stub.add_response("list_rules", {"Rules": rules}, {"EventBusName": BUS, "Limit": 100})
    with stub:
        rules_of_bus = BusRules(client, BUS)
        wanted = {kind for kind in EVENT_TYPES if rules_of_bus.wants(SOURCE, kind)}
    stub.assert_no_pending_responses()

    assert wanted == {DETRACTOR_ALERT}


def test_every_page_of_rules_is_read(bus):
    for n in range(120):  # moto answers 50 a page by default, AWS 100 with Limit=100
        bus.client.put_rule(
            Name=f"other-{n:03}", EventBusName=BUS, EventPattern='{"source": ["aws.ec2"]}'
        )
    bus.rule("zzz-alerts", {"detail-type": [DETRACTOR_ALERT]})  # the last one listed

    bus.filtering().put(events())

    assert bus.put_types() == {DETRACTOR_ALERT}
    assert bus.lookups == 2  # 121 rules, 100 a page


def test_a_new_rule_counts_once_the_cache_expires(bus):
    filtering = bus.filtering()
    filtering.put(events())
    bus.rule("alerts", {"detail-type": [DETRACTOR_ALERT]})

    bus.clock.now += RULES_TTL_SECONDS - 1
    filtering.put(events())
    assert bus.put == [] and bus.lookups == 1  # still what the first lookup said

    bus.clock.now += 1
    filtering.put(events())
    assert bus.put_types() == {DETRACTOR_ALERT} and bus.lookups == 2


def _entries(bus: EventBus, batch: list[Event]) -> list[dict]:
    return [bus.entry(event) for event in batch]


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException"])
def test_rules_that_cannot_be_read_put_everything_and_say_so_once(code, caplog):
    caplog.set_level("WARNING", logger="nps-sync")
    metrics.clear_metrics()
    client = boto3.client(
        "events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    clock = Clock()
    bus = EventBus(BUS, client, BusRules(client, BUS, clock=clock))
    everything = events()
    ok = {"FailedEntryCount": 0, "Entries": [{"EventId": "e"}] * 8}
    stub = Stubber(client)
    stub.add_client_error("list_rules", code, "no", 400)
    requests = bus.requests(everything)
    for batch in requests:
        stub.add_response("put_events", ok, {"Entries": _entries(bus, batch)})
    for batch in requests:  # again within the TTL: no second lookup
        stub.add_response("put_events", ok, {"Entries": _entries(bus, batch)})
    stub.add_response("list_rules", {"Rules": []}, {"EventBusName": BUS, "Limit": 100})
    try:
        with stub:
            bus.put(everything)
            bus.put(everything)
            clock.now += RULES_TTL_SECONDS
            bus.put(everything)  # read again, readable now: no rule, nothing put
        stub.assert_no_pending_responses()
        counted = metrics.metric_set[UNAVAILABLE_METRIC]["Value"]
    finally:
        metrics.clear_metrics()

    warnings = [r for r in caplog.records if r.name.startswith("nps-sync")]
    assert [r.getMessage() for r in warnings] == ["bus rules unavailable; every event is put"]
    assert warnings[0].error == code
    assert counted == [1.0]


def test_a_refused_connection_to_list_rules_puts_everything(bus):
    def refuse(**_):
        raise EndpointConnectionError(endpoint_url="https://events.us-east-1.amazonaws.com")

    bus.client.meta.events.register("before-send.events.ListRules", refuse)
    bus.rule("alerts", {"detail-type": [DETRACTOR_ALERT]})

    bus.filtering().put(events())

    assert len(bus.put) == len(events())


# --- could_match on its own: what is not read here counts as a match ---------------------


@pytest.mark.parametrize(
    "pattern",
    [
        {"detail-type": [{"numeric": [">", 0]}]},
        {"detail-type": [{"cidr": "10.0.0.0/8"}]},
        {"detail-type": [{"some-future-operator": "x"}]},
        {"detail-type": [{"anything-but": {"some-future-operator": "x"}}]},
        {"detail-type": [{"wildcard": "detractor\\*"}]},  # an escape: not read here
        {"detail-type": [{"equals-ignore-case": "DETRACTOR.ALERT\u0130"}]},  # not ASCII
        {"detail-type": [{"anything-but": {"equals-ignore-case": "RESPONSE.RECEİVED"}}]},
        {"detail-type": [7]},
        {"detail-type": "response.received"},
        {"detail-type": []},
        {"$or": "nonsense"},
        "not an object",
        None,
    ],
)
def test_what_is_not_read_here_may_match(pattern):
    assert could_match(pattern, SOURCE, RESPONSE_RECEIVED)


def test_an_operator_not_read_here_does_not_outweigh_one_that_fails():
    pattern = {"source": ["aws.ec2"], "detail-type": [{"numeric": [">", 0]}]}

    assert not could_match(pattern, SOURCE, RESPONSE_RECEIVED)


# --- the aggregator's question: would aggregate.updated go anywhere? ---------------------


@pytest.fixture
def stack(template, bus):
    return Stack(template, _MotoAccount()).provision()


def test_aggregate_events_are_wanted_only_where_a_rule_or_a_subscription_takes_them(bus, stack):
    queue = DeliveryQueue(stack.refs["DeliveryQueue"], bus.sqs)
    subscriptions = SubscriptionsStore(stack.refs["SubscriptionsTable"])
    subscriptions.create("https://example.com/hook", [DETRACTOR_ALERT], {})
    reads = []
    subscriptions.client.meta.events.register(
        "provide-client-params.dynamodb.Query", lambda params, **_: reads.append(params)
    )
    fanout = Fanout(bus.filtering(), queue, subscriptions)

    assert not fanout.wants(AGGREGATE_UPDATED)
    assert fanout.wants(DETRACTOR_ALERT)  # the subscription takes it
    fanout.publish(events())  # the subscriptions wants() read are used, not read again
    assert len(reads) == 2 and fanout.sent == 2 and bus.put == []

    subscriptions.create("https://example.com/dash", [AGGREGATE_UPDATED], {})
    assert fanout.wants(AGGREGATE_UPDATED)
    bus.rule("dashboards", {"detail-type": [AGGREGATE_UPDATED]})
    bus.clock.now += RULES_TTL_SECONDS
    assert Fanout(fanout.bus).wants(AGGREGATE_UPDATED)  # the bus alone: the rule takes it
