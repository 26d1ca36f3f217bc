"""HubSpot CRM reads against a local fake API: batching, profiles, retryable failures, and
rate limits waited out on the enrichment queue."""

import json
import socket
import threading
from pathlib import Path

import boto3
import msgspec
import pytest
from aws_lambda_powertools.utilities.batch import process_partial_response

from local.aws import Emulator
from local.lambdas import LocalFunction
from local.pollers import SqsPoller
from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.models import CrmProfile
from nps_sync.ingest.enqueue import enqueue
from nps_sync.ingest.enrichment import EnrichmentBatch, QueuedRead, enrich
from nps_sync.ingest.hubspot import (
    HubSpotApiError,
    HubSpotClient,
    HubSpotRetryable,
    PropertyNames,
    fetch_profiles,
)
from nps_sync.store.customers import CustomerRecords
from tests.fakes.hubspot import FakeHubSpot

TOKEN = "dev-hubspot-token"
# the enrichment queue's sample SQS event: one record
SAMPLE = Path(__file__).resolve().parents[2] / "events" / "queues" / "crm-enrichment.json"


@pytest.fixture
def hubspot():
    fake = FakeHubSpot(TOKEN)
    fake.base_url = fake.start()
    yield fake
    fake.stop()


def client_for(fake: FakeHubSpot, **options) -> HubSpotClient:
    return HubSpotClient(
        TOKEN, base_url=fake.base_url, timeout=options.pop("timeout", 5), **options
    )


def test_batch_read_sends_at_most_100_ids_per_call(hubspot):
    ids = [str(1000 + n) for n in range(250)]
    for object_id in ids:
        hubspot.add("contacts", object_id, email=f"c{object_id}@example.com")

    found = client_for(hubspot).batch_read("contact", ids, ["email"])

    assert [len(call_ids) for _, call_ids in hubspot.calls] == [100, 100, 50]
    assert sorted(item.id for item in found) == sorted(ids)


def test_batch_read_asks_each_id_once_and_leaves_out_unknown_ones(hubspot):
    hubspot.add("companies", "77", name="Acme GmbH")

    found = client_for(hubspot).batch_read("company", ["77", "77", "404"], ["name"])

    assert hubspot.calls == [("companies", ["77", "404"])]
    assert [(item.id, item.properties["name"]) for item in found] == [("77", "Acme GmbH")]


def test_fetch_profiles_gives_contacts_their_primary_company_name(hubspot):
    hubspot.add(
        "contacts",
        "901",
        updated_at="2026-03-02T10:20:00.250Z",
        email=" Ana@Example.com ",
        company="acme (typed by hand)",
        associatedcompanyid="5790939450",
        lifecyclestage="customer",
        country="DE",
        hubspot_owner_id="52831077",
        sales_region="EMEA",
        plan_tier="enterprise",
    )
    hubspot.add("contacts", "902", company="Free Text Ltd")
    hubspot.add("companies", "5790939450", name="Acme GmbH", country="DE")
    hubspot.add("companies", "5790939451", name="Globex", lifecyclestage="opportunity")
    names = PropertyNames(region="sales_region", extra=("plan_tier",))

    profiles = fetch_profiles(
        client_for(hubspot),
        [("contact", "901"), ("contact", "902"), ("company", "5790939451"), ("deal", "1")],
        names,
    )

    by_id = {p["source_id"]: msgspec.convert(p, CrmProfile) for p in profiles}
    assert set(by_id) == {"contact-901", "contact-902", "company-5790939451"}  # not name-only
    ana = by_id["contact-901"]
    assert (ana.customer_key, ana.account, ana.region, ana.country) == (
        "ana@example.com",
        "Acme GmbH",
        "EMEA",
        "DE",
    )
    assert (ana.owner, ana.lifecycle_stage, ana.properties) == (
        "52831077",
        "customer",
        {"plan_tier": "enterprise"},
    )
    assert ana.event_id == "fetch-contact-901-1772446800250"
    assert by_id["contact-902"].account == "Free Text Ltd"
    assert by_id["contact-902"].customer_key == "hubspot:contact-902"
    globex = by_id["company-5790939451"]
    assert (globex.object_type, globex.account, globex.customer_key) == (
        "company",
        "Globex",
        "hubspot:company-5790939451",
    )
    assert [kind for kind, _ in hubspot.calls] == ["contacts", "companies"]


def test_fetch_profiles_of_nothing_calls_nothing(hubspot):
    assert fetch_profiles(client_for(hubspot), []) == []
    assert hubspot.calls == []


def test_rate_limit_is_retryable_with_retry_after(hubspot):
    hubspot.fail_next(429, {"Retry-After": "7"})

    with pytest.raises(HubSpotRetryable) as raised:
        client_for(hubspot).batch_read("contact", ["1"], ["email"])

    assert (raised.value.status, raised.value.retry_after) == (429, 7.0)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(hubspot, status):
    hubspot.fail_next(status)
    with pytest.raises(HubSpotRetryable):
        client_for(hubspot).batch_read("contact", ["1"], ["email"])


def test_a_wrong_token_is_not_retryable(hubspot):
    client = HubSpotClient("not-the-token", base_url=hubspot.base_url, timeout=5)
    with pytest.raises(HubSpotApiError) as raised:
        client.batch_read("contact", ["1"], ["email"])
    assert raised.value.status == 401
    assert not isinstance(raised.value, HubSpotRetryable)


def test_an_unreachable_api_is_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the call: nothing listens
    client = HubSpotClient(TOKEN, base_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(HubSpotRetryable):
        client.batch_read("contact", ["1"], ["email"])


def test_a_slow_api_times_out_as_retryable(hubspot):
    hubspot.delay = 1.0
    with pytest.raises(HubSpotRetryable):
        client_for(hubspot, timeout=0.2).batch_read("contact", ["1"], ["email"])


@pytest.mark.parametrize(
    "base_url", ["http://api.hubapi.com", "ftp://127.0.0.1", "file:///etc/passwd"]
)
def test_plain_http_is_refused_except_for_a_local_fake(base_url):
    with pytest.raises(ValueError, match="https"):
        HubSpotClient(TOKEN, base_url=base_url)


def test_associated_reads_every_page_of_a_companys_contacts(hubspot):
    hubspot.page_size = 2
    hubspot.associate("companies", "77", "contacts", ["901", "902", "903", "904", "905"])

    found = client_for(hubspot).associated("company", ["77", "78"], "contact")

    assert found == {"77": ["901", "902", "903", "904", "905"]}  # 78 has none
    assert hubspot.calls[0] == ("companies->contacts", ["77", "78"])
    assert len(hubspot.calls) == 3  # 2 + 2 + 1


def test_a_contact_without_a_region_takes_its_companys_and_the_newer_time(hubspot):
    hubspot.add("contacts", "901", updated_at="2026-03-02T10:20:00Z", associatedcompanyid="77")
    hubspot.add("companies", "77", updated_at="2026-03-03T08:00:00Z", name="Acme", region="DACH")

    (ana,) = fetch_profiles(client_for(hubspot), [("contact", "901")])

    profile = msgspec.convert(ana, CrmProfile)
    assert (profile.account, profile.region) == ("Acme", "DACH")
    assert profile.source_updated_at.isoformat() == "2026-03-03T08:00:00+00:00"
    assert profile.event_id == "fetch-contact-901-1772524800000"  # a new version of the read


def record(n: int, body: str) -> dict:
    [sample] = json.loads(SAMPLE.read_text())["Records"]
    return {**sample, "messageId": f"m{n}", "receiptHandle": f"h{n}", "body": body}


def message(object_type: str, object_id: str, n: int, receive: int = 1) -> QueuedRead:
    """The ``receive``-th receive of a queued read (message ``m<n>``, receipt handle ``h<n>``)."""
    body = {"provider": "hubspot", "object_type": object_type, "object_id": object_id}
    queued = record(n, json.dumps(body))
    queued["attributes"] = {**queued["attributes"], "ApproximateReceiveCount": str(receive)}
    return QueuedRead.model_validate(queued)


def test_enrich_skips_an_invalid_record_and_stores_the_others(hubspot):
    hubspot.add("contacts", "901", email="ana@example.com", company="A" * 600)  # > 512
    hubspot.add("contacts", "902", email="ben@example.org", company="Globex")
    stored = []

    result = enrich(
        [message("contact", "901", 1), message("contact", "902", 2)],
        client_for(hubspot),
        stored.append,
    )

    assert [p.customer_key for p in stored] == ["ben@example.org"]
    assert (result.failed, result.invalid) == ([], 1)


def test_enrich_queues_a_changed_companys_contacts(hubspot):
    hubspot.add("companies", "77", name="Acme Group")
    hubspot.associate("companies", "77", "contacts", ["901", "902"])
    stored, queued = [], []

    result = enrich(
        [message("company", "77", 1), message("contact", "902", 2)],
        client_for(hubspot),
        stored.append,
        follow=queued.extend,
    )

    assert queued == [("contact", "901")]  # 902 is read in this batch anyway
    assert [p.source_id for p in stored] == ["company-77"]  # 902 is not in HubSpot
    assert (result.failed, result.followed) == ([], 1)


def test_enrich_without_a_queue_reads_a_changed_companys_contacts_at_once(hubspot):
    hubspot.add("companies", "77", name="Acme Group")
    hubspot.add("contacts", "901", email="ana@example.com", associatedcompanyid="77")
    hubspot.associate("companies", "77", "contacts", ["901"])
    stored = []

    enrich([message("company", "77", 1)], client_for(hubspot), stored.append)

    ana = next(p for p in stored if p.object_type == "contact")
    assert (ana.customer_key, ana.account) == ("ana@example.com", "Acme Group")


def test_an_enrichment_batch_drops_unreadable_messages_and_reads_the_rest_at_once(hubspot):
    hubspot.add("contacts", "901", email="ana@example.com")
    hubspot.add("contacts", "902", email="ben@example.org")
    read = json.dumps({"provider": "hubspot", "object_type": "contact", "object_id": 901})
    event = {
        "Records": [
            record(0, read),
            record(1, "not json"),
            record(2, json.dumps({"provider": "hubspot", "object_type": "contact"})),  # no id
            {**record(3, read), "eventSource": None},  # a broken SQS envelope
            record(4, read.replace("901", "902")),
        ]
    }
    stored, batches = [], []

    def handler(records):
        batches.append([r.messageId for r in records])
        return enrich(records, client_for(hubspot), stored.append)

    answer = process_partial_response(event, handler, EnrichmentBatch())

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m3"}]}  # it comes back
    assert batches == [["m0", "m4"]]  # one call with what parsed
    assert sorted(p.customer_key for p in stored) == ["ana@example.com", "ben@example.org"]
    assert [call for call, _ in hubspot.calls] == ["contacts"]


def test_an_enrichment_batch_hubspot_refuses_is_answered_failed_not_raised(hubspot):
    hubspot.fail_next(429, {"Retry-After": "7"})
    stored = []
    reads = [{"object_type": "contact", "object_id": str(901 + n)} for n in range(2)]
    event = {"Records": [record(n, json.dumps(body)) for n, body in enumerate(reads)]}

    answer = process_partial_response(
        event,
        lambda records: enrich(records, client_for(hubspot), stored.append),
        EnrichmentBatch(),
    )

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    assert stored == []


# --- rate limits: a 429's messages wait it out, hidden, instead of spending their receives ---


def test_a_rate_limited_batch_waits_retry_after_at_least_and_longer_the_more_it_was_received(
    hubspot,
):
    hubspot.rate_limit(retry_after="90")
    waits = []

    result = enrich(
        [message("contact", "901", 0), message("contact", "902", 1, receive=3)],
        client_for(hubspot),
        [].append,
        wait=waits.append,
    )

    assert result.failed == ["m0", "m1"]  # both stay queued
    assert waits == [[("h0", 90), ("h1", 240)]]  # Retry-After; the third receive's 240 s


@pytest.mark.parametrize("status", [500, 503])
def test_a_failing_hubspot_is_left_to_the_queues_visibility_timeout(hubspot, status):
    hubspot.fail_next(status)
    waits = []

    result = enrich(
        [message("contact", "901", 0)], client_for(hubspot), [].append, wait=waits.append
    )

    assert (result.failed, waits) == (["m0"], [])


def test_a_rate_limited_batch_sqs_would_not_hide_still_stays_queued(hubspot):
    hubspot.rate_limit(policy="DAILY")

    def refuse(waits):
        raise StorageUnavailable("SQS did not hide 1 rate-limited reads")

    result = enrich([message("contact", "901", 0)], client_for(hubspot), [].append, wait=refuse)

    assert result.failed == ["m0"]  # back after the queue's visibility timeout instead


class EnrichmentQueue:
    """CrmEnrichmentQueue in moto, polled into CrmEnrichFunction's handler as Lambda's mapping
    polls it (local.pollers), with each visibility change the handler asks SQS for recorded."""

    def __init__(self, stack, template, session: boto3.Session):
        (mapping,) = [m for m in template.event_sources if m.function == "CrmEnrichFunction"]
        function = LocalFunction(template.functions["CrmEnrichFunction"])
        arn = stack.resolve(mapping.source)
        self.poller = SqsPoller(function, mapping, arn, Emulator(), threading.Event(), 0)
        self.url = stack.refs["CrmEnrichmentQueue"]
        self.dead_letters = stack.refs["CrmEnrichmentDeadLetterQueue"]
        self.sqs = boto3.client("sqs")
        self.hidden: list[dict] = []  # ChangeMessageVisibility entries, in order
        self.waiting: list[dict] = []  # those of messages still hidden
        session.events.register(
            "provide-client-params.sqs.ChangeMessageVisibilityBatch", self._hide
        )

    def _hide(self, params, **_):
        self.hidden.extend(params["Entries"])
        self.waiting.extend(params["Entries"])

    def poll(self) -> bool:
        return self.poller.poll_once()

    def waits_pass(self) -> None:
        """The hidden messages come back, as they do once their wait is over."""
        for entry in self.waiting:
            self.sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=entry["ReceiptHandle"], VisibilityTimeout=0
            )
        self.waiting.clear()

    def depth(self) -> tuple[int, int, int]:
        """(visible, hidden, dead-lettered) messages."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        queue, dead = (
            self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            for url in (self.url, self.dead_letters)
        )
        return (int(queue[names[0]]), int(queue[names[1]]), sum(map(int, dead.values())))


@pytest.fixture
def queue(function_env, template, hubspot, monkeypatch):
    monkeypatch.setenv("HUBSPOT_API_URL", hubspot.base_url)
    session = boto3.Session()  # the handler's clients come from it: their calls are seen
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    return EnrichmentQueue(function_env, template, session)


def test_a_rate_limited_batch_is_hidden_for_hubspots_retry_after_and_stays_queued(queue, hubspot):
    enqueue(queue.url, "hubspot", [("contact", "901"), ("contact", "902")])
    hubspot.rate_limit(retry_after="120")

    assert queue.poll()

    assert [entry["VisibilityTimeout"] for entry in queue.hidden] == [120, 120]
    assert queue.depth() == (0, 2, 0)  # hidden: not deleted, not dead-lettered


def test_a_rate_limit_storm_spends_the_receives_slowly_and_loses_nothing(
    queue, hubspot, function_env
):
    hubspot.add("contacts", "901", email="ana@example.com")
    enqueue(queue.url, "hubspot", [("contact", "901")])
    hubspot.rate_limit(retry_after="1", policy="DAILY", times=4)

    for _ in range(4):  # four receives rate-limited
        assert queue.poll()
        queue.waits_pass()
    assert queue.poll()  # then HubSpot answers

    # a wait doubling with the receives, longer than the second HubSpot asked for
    assert [entry["VisibilityTimeout"] for entry in queue.hidden] == [60, 120, 240, 480]
    assert queue.depth() == (0, 0, 0)
    customers = CustomerRecords(function_env.refs["RecordsTable"], boto3.client("dynamodb"))
    assert customers.profile("ana@example.com")["email"]["S"] == "ana@example.com"  # stored
