"""HubSpot CRM reads against a local fake API: batching, profiles, retryable failures."""

import json
import socket

import pytest

from nps_sync.core.models import CrmProfile
from nps_sync.ingest.enrichment import enrich
from nps_sync.ingest.hubspot import (
    HubSpotApiError,
    HubSpotClient,
    HubSpotRetryable,
    PropertyNames,
    fetch_profiles,
)
from tests.fakes.hubspot import FakeHubSpot

TOKEN = "dev-hubspot-token"


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

    by_id = {p["source_id"]: CrmProfile.model_validate(p) for p in profiles}
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

    profile = CrmProfile.model_validate(ana)
    assert (profile.account, profile.region) == ("Acme", "DACH")
    assert profile.source_updated_at.isoformat() == "2026-03-03T08:00:00+00:00"
    assert profile.event_id == "fetch-contact-901-1772524800000"  # a new version of the read


def message(object_type: str, object_id: str, n: int) -> dict:
    body = {"provider": "hubspot", "object_type": object_type, "object_id": object_id}
    return {"messageId": f"m{n}", "body": json.dumps(body)}


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
