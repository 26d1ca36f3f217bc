"""CRM write-back end to end in-process: stream -> aggregator -> destination queue ->
DestinationFunction's logic -> the HubSpot stand-in on 127.0.0.1 (moto underneath)."""

import json
import threading
import time

import pytest

from local.pollers import SqsPoller
from local.standins.hubspot import HubSpotStandin
from local.template import EventSource
from nps_sync.core.settings import destination_settings
from nps_sync.delivery.fanout import Destinations, Fanout
from nps_sync.delivery.outbound import DeliveryQueue
from nps_sync.destinations import clients
from nps_sync.destinations.consumer import DestinationConsumer
from nps_sync.destinations.erasure import DestinationClearing
from nps_sync.destinations.writer import DestinationWriter
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.destinations import DestinationsStore
from nps_sync.store.secrets import clear_cache

from .conftest import DEV_SECRETS
from .test_fanout import Fan, fan  # noqa: F401 - the moto stack fixture

TOKEN = json.loads(DEV_SECRETS.read_text())["destinations"]["hubspot-dev"]["access_token"]


@pytest.fixture
def hubspot():
    with HubSpotStandin(TOKEN, rate=None, search_rate=None) as running:
        running.add("contacts", "101", email="ana@example.com", firstname="Ana")
        running.add("contacts", "102", email="ben@example.com")
        yield running


class Rig:
    def __init__(self, stack: Fan, hubspot: HubSpotStandin):
        self.fan = stack
        self.hubspot = hubspot
        self.store = DestinationsStore(stack.stack.refs["SubscriptionsTable"], stack.world.ddb)
        self.queue_url = stack.stack.refs["DestinationQueue"]
        self.records = CustomerRecords(stack.world.records_table, stack.world.ddb)
        self.consumer = DestinationConsumer(
            self.store,
            DestinationWriter(self.records, clients.client_for),
            DeliveryQueue(self.queue_url, stack.sqs),
            delay=lambda attempt: 0,  # no real back-off in tests
        )

    def destination(self, **options):
        options = {
            "fields": {},
            "include_comment": False,
            "window_days": 90,
            "filters": {},
            **options,
        }
        created = self.store.create("hubspot", "hubspot-dev", **options)
        assert clients.check(created).ok  # creates the properties, as POST …/test does
        return created

    def aggregate(self) -> None:
        aggregator = self.fan.world.aggregator()
        aggregator.fanout = Fanout(
            None,
            None,
            None,
            Destinations(self.store, DeliveryQueue(self.queue_url, self.fan.sqs)),
        )
        self.fan.world.run(aggregator)

    def write(self, rounds: int = 1) -> list[dict]:
        """Lambda's SQS mapping (local.pollers) polled ``rounds`` times."""
        answers = []
        consumer = self.consumer

        class Function:
            name = "DestinationFunction"

            def invoke(self, event):
                answers.append(consumer.handle(event))
                return answers[-1]

        arn = self.fan.stack.attributes[("DestinationQueue", "Arn")]
        mapping = EventSource("DestinationFunction", arn, 100, True, None, False)
        poller = SqsPoller(Function(), mapping, arn, self.fan.account, threading.Event())
        for _ in range(rounds):
            poller.poll_once()
        return answers

    def depth(self) -> int:
        return self.fan.depth("DestinationQueue")

    def written(self, contact: str, name: str):
        return self.hubspot.value("contacts", contact, name)


@pytest.fixture
def rig(fan, hubspot, monkeypatch):  # noqa: F811 - the fixture imported above
    monkeypatch.setenv("NPS_SYNC_SECRETS_FILE", str(DEV_SECRETS))
    monkeypatch.setenv("RECORDS_TABLE", fan.world.records_table)
    monkeypatch.setenv("HUBSPOT_DESTINATION_URL", hubspot.url)
    monkeypatch.setenv("ALLOW_LOCAL_SUBSCRIBERS", "true")
    destination_settings.cache_clear()
    clear_cache()
    yield Rig(fan, hubspot)
    destination_settings.cache_clear()


def test_a_survey_answer_reaches_the_contact_found_by_email_and_is_remembered(rig):
    destination = rig.destination()
    rig.fan.world.respond("r1", "ana@example.com", 3, email="ana@example.com", survey="q1")
    rig.aggregate()
    rig.write()

    assert rig.written("101", "nps_score") == "3"
    assert rig.written("101", "nps_category") == "detractor"
    assert rig.written("101", "nps_answered_at") == "2026-01-15"
    assert rig.written("101", "nps_comment") is None  # comments only when switched on
    assert rig.depth() == 0
    log = rig.store.log(destination.id)
    assert [(e["status"], e["object_id"]) for e in log] == [("written", "101")]
    # the match is an identity link now: the next write needs no search
    searches = rig.hubspot.count("POST", "/crm/v3/objects/contacts/search")
    rig.fan.world.respond("r2", "ana@example.com", 10, day="2026-02-01", email="ana@example.com")
    rig.aggregate()
    rig.write()
    assert rig.written("101", "nps_score") == "10"
    assert rig.hubspot.count("POST", "/crm/v3/objects/contacts/search") == searches


def test_a_burst_from_one_customer_is_one_write_of_the_latest_and_a_retry_sends_nothing(rig):
    rig.destination()
    for n, (score, day) in enumerate([(2, "2026-01-10"), (9, "2026-03-01"), (5, "2026-02-01")]):
        rig.fan.world.respond(f"b{n}", "ana@example.com", score, day=day, email="ana@example.com")
    rig.aggregate()
    updates = rig.hubspot.count("POST", "/crm/v3/objects/contacts/batch/update")
    rig.write()

    assert rig.written("101", "nps_score") == "9"  # the latest answer, not the last queued
    assert rig.hubspot.count("POST", "/crm/v3/objects/contacts/batch/update") == updates + 1
    # the stream batch comes again (at least once): the contact holds the values already
    rig.fan.world.seen.clear()
    rig.fan.world.iterator = None
    rig.aggregate()
    rig.write()
    assert rig.hubspot.count("POST", "/crm/v3/objects/contacts/batch/update") == updates + 1


def test_a_customer_the_crm_does_not_have_is_skipped_with_its_reason_not_retried(rig):
    destination = rig.destination()
    rig.fan.world.respond("s1", "zoe@example.com", 8, email="zoe@example.com")
    rig.aggregate()
    rig.write()

    assert rig.depth() == 0
    (entry,) = rig.store.log(destination.id)
    assert entry["status"] == "skipped" and "no object" in entry["reason"]
    assert "zoe" not in json.dumps(entry)  # no e-mail in the log


def test_a_429_keeps_the_changes_queued_for_retry_after_and_they_are_written_then(rig):
    destination = rig.destination()
    rig.fan.world.respond("t1", "ben@example.com", 10, email="ben@example.com")
    rig.aggregate()
    rig.hubspot.rate_limit(retry_after="1", times=1)
    (answer,) = rig.write()

    assert len(answer["batchItemFailures"]) == 1
    assert rig.written("102", "nps_score") is None
    assert rig.store.log(destination.id)[0]["status"] == "retrying"
    assert rig.write() == []  # hidden for Retry-After + 1 s
    time.sleep(2.2)
    rig.write()
    assert rig.written("102", "nps_score") == "10"
    health = rig.store.health(rig.store.get(destination.id))
    assert health["failures_last_day"] == 1 and health["writes_last_day"] == 1


def test_a_filter_routes_only_matching_answers(rig):
    rig.destination(filters={"survey": "onboarding"})
    rig.fan.world.respond("f1", "ana@example.com", 4, email="ana@example.com", survey="q1")
    rig.fan.world.respond("f2", "ben@example.com", 6, email="ben@example.com", survey="onboarding")
    rig.aggregate()
    rig.write()

    assert rig.written("101", "nps_score") is None
    assert rig.written("102", "nps_score") == "6"


def test_erasure_clears_our_fields_and_keeps_the_contact(rig):
    destination = rig.destination(include_comment=True)
    rig.fan.world.respond("e1", "ana@example.com", 1, email="ana@example.com", comment="slow")
    rig.aggregate()
    rig.write()
    assert rig.written("101", "nps_comment") == "slow"

    clearing = DestinationClearing(rig.store, DeliveryQueue(rig.queue_url, rig.fan.sqs))
    assert clearing.queue_clears(rig.records.by_customer("ana@example.com")) == 1
    rig.write()

    for name in ("nps_score", "nps_category", "nps_comment"):
        assert rig.written("101", name) in (None, "")
    assert rig.written("101", "firstname") == "Ana"  # the contact itself stays
    assert rig.store.log(destination.id)[0]["status"] == "cleared"


def test_a_deleted_destination_drops_its_queued_changes(rig):
    destination = rig.destination()
    rig.fan.world.respond("d1", "ana@example.com", 7, email="ana@example.com")
    rig.aggregate()
    rig.store.delete(destination.id)
    rig.write()

    assert rig.depth() == 0
    assert rig.written("101", "nps_score") is None


def test_a_429_storm_then_recovery_writes_each_customers_latest_state_once(rig):
    """HubSpot refuses every call for a while (a storm of 429s without Retry-After, as its
    TEN_SECONDLY_ROLLING limit answers): nothing is lost or dead-lettered, and when it
    answers again each of 30 customers is written once, with its latest answer."""
    destination = rig.destination()
    for n in range(30):
        email = f"storm{n}@example.com"
        rig.hubspot.add("contacts", str(500 + n), email=email)
        rig.fan.world.respond(f"s{n}a", email, 2, day="2026-02-01", email=email)
        rig.fan.world.respond(f"s{n}b", email, n % 11, day="2026-02-02", email=email)
    rig.aggregate()
    rig.hubspot.rate_limit(times=12)  # more than one receive's worth of calls

    rounds = 0
    while rig.depth() and rounds < 20:
        rig.write()
        rounds += 1
        time.sleep(1.1)  # a refused change is hidden for at least 1 s (no Retry-After)

    assert rig.depth() == 0 and rounds > 1  # refused, kept, and written later
    assert rig.fan.depth("DestinationDeadLetterQueue") == 0
    assert [rig.written(str(500 + n), "nps_score") for n in range(30)] == [
        str(n % 11) for n in range(30)
    ]
    statuses = [e["status"] for e in rig.store.log(destination.id)]
    assert statuses.count("written") == 30 and "retrying" in statuses  # each customer once
